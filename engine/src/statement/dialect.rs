//! The one SQL dialect the engine parses every statement with: DataFusion's
//! generic dialect, plus Databricks' time travel (`VERSION AS OF`,
//! `TIMESTAMP AS OF`) and Spark's column types (`LONG`, `MAP<K, V>`), and
//! with MySQL's `/*! … */` comments kept as
//! comments. The generic dialect runs the text inside such a comment as
//! SQL, so a classifier that took it for a comment and a planner that ran
//! it would disagree about what a statement does; here both see a comment.

use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};

/// DataFusion's generic dialect with table versioning and without
/// comment hints (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct WavelakeDialect;

/// Forwards each named `fn(&self) -> bool` of [`Dialect`] to the generic
/// dialect, the way sqlparser's own wrapped-dialect example does.
macro_rules! as_generic {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool {
            GenericDialect.$name()
        })*
    };
}

impl Dialect for WavelakeDialect {
    /// The parser's dialect checks treat this dialect as the generic one.
    fn dialect(&self) -> std::any::TypeId {
        GenericDialect.dialect()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_multiline_comment_hints(&self) -> bool {
        false
    }

    fn supports_long_type_as_bigint(&self) -> bool {
        true
    }

    fn supports_map_literal_with_angle_brackets(&self) -> bool {
        true
    }

    as_generic!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parses_alike(sql: &str) {
        let ours = Parser::parse_sql(&WavelakeDialect, sql).expect(sql);
        let generic = Parser::parse_sql(&GenericDialect, sql).expect(sql);
        assert_eq!(ours, generic, "{sql}");
    }

    #[test]
    fn queries_parse_as_in_the_generic_dialect() {
        for sql in [
            r#"SELECT "Quoted Col", `tick`, a::int FROM t WHERE x ILIKE 'a%' LIMIT 3"#,
            "SELECT * EXCLUDE (a) FROM t",
            "SELECT interval '1 day', DATE '2024-01-01' - INTERVAL '3' MONTH",
            "SELECT {'a': 1}, [1, 2][1], struct(1, 2)",
        ] {
            parses_alike(sql);
        }
    }

    #[test]
    fn time_travel_parses_and_hints_stay_comments() {
        let parsed = Parser::parse_sql(&WavelakeDialect, "SELECT * FROM t VERSION AS OF 3");
        assert!(parsed.is_ok(), "{parsed:?}");
        let hidden = Parser::parse_sql(&WavelakeDialect, "/*!DELETE FROM*/ t").unwrap_err();
        assert!(hidden.to_string().contains("Expected"), "{hidden}");
        // The generic dialect would run the hint's text.
        let generic = Parser::parse_sql(&GenericDialect, "/*!DELETE FROM*/ t").unwrap();
        assert!(generic[0].to_string().starts_with("DELETE"));
    }
}
