//! Table properties a writer sets (`CREATE TABLE … TBLPROPERTIES`, `ALTER
//! TABLE … SET TBLPROPERTIES`): which `delta.*` keys exist, the values they
//! take, and the table features they need. A property whose feature this
//! engine writes correctly turns the feature on; one it cannot honour is
//! refused, so no table is created or changed into one this engine would
//! then refuse to write. Keys outside `delta.*` are the user's own, except
//! Wavelake's write settings, whose values are checked.

use crate::protocol::Protocol;
use crate::protocol::features::{
    SUPPORTED_READER_FEATURES, SUPPORTED_WRITER_FEATURES, with_feature, with_table_features,
};
use crate::{Error, Result};

/// What a property's value must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number at least this.
    Count(i64),
    /// An interval like `interval 7 days`.
    Interval,
    /// A size like `128mb`.
    Size,
    /// One of these words (any case).
    OneOf(&'static [&'static str]),
    /// Any text.
    Text,
}

/// A table feature a property turns on when its value is `true`.
#[derive(Debug, Clone, Copy)]
struct Feature {
    name: &'static str,
    /// Readers must know it too (a reader-writer feature).
    reader: bool,
    /// The legacy writer version that implies it, if any.
    legacy_writer: Option<i32>,
}

/// One known property.
#[derive(Debug, Clone, Copy)]
struct Rule {
    key: &'static str,
    kind: Kind,
    /// The feature `true` needs.
    feature: Option<Feature>,
    /// `true` is refused: the engine does not write what it asks for.
    unsupported_when_on: bool,
}

const fn rule(key: &'static str, kind: Kind) -> Rule {
    Rule {
        key,
        kind,
        feature: None,
        unsupported_when_on: false,
    }
}

const fn needs(key: &'static str, name: &'static str, reader: bool, legacy: Option<i32>) -> Rule {
    Rule {
        key,
        kind: Kind::Bool,
        feature: Some(Feature {
            name,
            reader,
            legacy_writer: legacy,
        }),
        unsupported_when_on: false,
    }
}

const fn refused_when_on(key: &'static str) -> Rule {
    Rule {
        key,
        kind: Kind::Bool,
        feature: None,
        unsupported_when_on: true,
    }
}

/// The `delta.*` properties this engine knows.
const DELTA_RULES: &[Rule] = &[
    needs("delta.appendOnly", "appendOnly", false, Some(2)),
    needs(
        "delta.enableChangeDataFeed",
        "changeDataFeed",
        false,
        Some(4),
    ),
    needs("delta.enableDeletionVectors", "deletionVectors", true, None),
    needs("delta.enableTypeWidening", "typeWidening", true, None),
    rule(
        "delta.columnMapping.mode",
        Kind::OneOf(&["none", "name", "id"]),
    ),
    rule("delta.columnMapping.maxColumnId", Kind::Count(0)),
    rule("delta.checkpointInterval", Kind::Count(1)),
    rule("delta.logRetentionDuration", Kind::Interval),
    rule("delta.deletedFileRetentionDuration", Kind::Interval),
    rule("delta.setTransactionRetentionDuration", Kind::Interval),
    rule(
        "delta.isolationLevel",
        Kind::OneOf(&["Serializable", "WriteSerializable"]),
    ),
    rule("delta.dataSkippingNumIndexedCols", Kind::Count(-1)),
    rule("delta.dataSkippingStatsColumns", Kind::Text),
    rule("delta.checkpoint.writeStatsAsJson", Kind::Bool),
    rule("delta.checkpoint.writeStatsAsStruct", Kind::Bool),
    rule("delta.checkpointPolicy", Kind::OneOf(&["classic"])),
    rule("delta.enableExpiredLogCleanup", Kind::Bool),
    rule("delta.targetFileSize", Kind::Size),
    rule("delta.tuneFileSizesForRewrites", Kind::Bool),
    rule("delta.autoOptimize.optimizeWrite", Kind::Bool),
    rule("delta.autoOptimize.autoCompact", Kind::Bool),
    refused_when_on("delta.enableInCommitTimestamps"),
    refused_when_on("delta.enableRowTracking"),
    refused_when_on("delta.enableIcebergCompatV1"),
    refused_when_on("delta.enableIcebergCompatV2"),
    refused_when_on("delta.randomizeFilePrefixes"),
    refused_when_on("delta.compatibility.symlinkFormatManifest.enabled"),
    rule("delta.universalFormat.enabledFormats", Kind::OneOf(&[""])),
];

/// Wavelake's own write settings (other `wavelake.*` keys belong to the
/// server and are its to check).
const WAVELAKE_RULES: &[Rule] = &[
    rule(
        "wavelake.compression",
        Kind::OneOf(&["snappy", "zstd", "none", "uncompressed"]),
    ),
    rule("wavelake.bloomFilterColumns", Kind::Text),
    rule("wavelake.buffer.flushIntervalMs", Kind::Count(1)),
    rule("wavelake.buffer.flushRows", Kind::Count(1)),
];

/// Prefix of the properties that name a table feature to turn on
/// (`delta.feature.deletionVectors = 'supported'`).
const FEATURE_PREFIX: &str = "delta.feature.";

/// Prefix of CHECK constraints kept as properties.
const CONSTRAINT_PREFIX: &str = "delta.constraints.";

/// What setting one property does.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedProperty {
    /// The key to record in the table's configuration, in Delta's
    /// spelling; `None` for keys that only change the protocol
    /// (`delta.minWriterVersion`, `delta.feature.*`).
    pub key: Option<String>,
    /// The value to record.
    pub value: String,
    /// The protocol the property needs (`protocol` itself when it needs
    /// nothing more).
    pub protocol: Protocol,
}

/// Checks `key = value` against what this engine writes, for a table whose
/// protocol is `protocol`.
pub fn check_property(protocol: &Protocol, key: &str, value: &str) -> Result<CheckedProperty> {
    let lower = key.to_ascii_lowercase();
    let set = |key: &str, protocol: Protocol| CheckedProperty {
        key: Some(key.to_owned()),
        value: value.to_owned(),
        protocol,
    };
    if let Some(feature) = lower.strip_prefix(FEATURE_PREFIX) {
        return feature_property(protocol, key, feature, value);
    }
    if lower == "delta.minreaderversion" || lower == "delta.minwriterversion" {
        return protocol_version(protocol, &lower, key, value);
    }
    if lower.starts_with(CONSTRAINT_PREFIX) {
        return Err(Error::UnsupportedFeature {
            feature: format!("{key}: CHECK constraints set as table properties"),
        });
    }
    let rules = if lower.starts_with("delta.") {
        DELTA_RULES
    } else if lower.starts_with("wavelake.") {
        WAVELAKE_RULES
    } else {
        return Ok(set(key, protocol.clone()));
    };
    let Some(rule) = rules.iter().find(|r| r.key.eq_ignore_ascii_case(key)) else {
        if rules.as_ptr() == WAVELAKE_RULES.as_ptr() {
            return Ok(set(key, protocol.clone()));
        }
        return Err(Error::InvalidArgument(format!(
            "unknown Delta table property {key}; known ones are {}",
            DELTA_RULES
                .iter()
                .map(|r| r.key)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    check_value(rule, value)?;
    let on = matches!(rule.kind, Kind::Bool) && value.eq_ignore_ascii_case("true");
    if on && rule.unsupported_when_on {
        return Err(Error::UnsupportedFeature {
            feature: format!("{} = true (this engine does not write it)", rule.key),
        });
    }
    let protocol = match rule.feature {
        Some(feature) if on => require(protocol, feature),
        _ => protocol.clone(),
    };
    Ok(set(rule.key, protocol))
}

/// Refuses a value of the wrong kind, naming the property and what it takes.
fn check_value(rule: &Rule, value: &str) -> Result<()> {
    let text = value.trim();
    let (ok, expected) = match rule.kind {
        Kind::Bool => (
            text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false"),
            "true or false".to_owned(),
        ),
        Kind::Count(min) => (
            text.parse::<i64>().is_ok_and(|n| n >= min),
            format!("a whole number of at least {min}"),
        ),
        Kind::Interval => (
            crate::checkpoint::parse_interval_ms(text).is_some(),
            "an interval like 'interval 7 days'".to_owned(),
        ),
        Kind::Size => (
            crate::target::parse_size(text).is_some(),
            "a size in bytes, or like 128mb".to_owned(),
        ),
        Kind::OneOf(words) => (
            words.iter().any(|w| w.eq_ignore_ascii_case(text)),
            match words {
                [""] => "empty (no other table format is written)".to_owned(),
                _ => format!("one of {}", words.join(", ")),
            },
        ),
        Kind::Text => (true, String::new()),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{} = {value:?}: the value must be {expected}",
            rule.key
        )))
    }
}

/// `protocol` with `feature` on: a legacy protocol is raised to the writer
/// version that implies it where there is one, else upgraded to table
/// features.
fn require(protocol: &Protocol, feature: Feature) -> Protocol {
    match feature.legacy_writer {
        Some(version) if protocol.min_writer_version < 7 => {
            let mut raised = protocol.clone();
            raised.min_writer_version = raised.min_writer_version.max(version);
            raised
        }
        _ => with_feature(protocol, feature.name, feature.reader),
    }
}

/// `protocol` with writer feature `name` on (a writer-only feature): a
/// legacy protocol is raised to `legacy` (the writer version that implies
/// it) where there is one.
pub fn with_writer_feature(
    protocol: &Protocol,
    name: &'static str,
    legacy: Option<i32>,
) -> Protocol {
    require(
        protocol,
        Feature {
            name,
            reader: false,
            legacy_writer: legacy,
        },
    )
}

/// `delta.feature.NAME = 'supported'` (or `'enabled'`): turns a feature
/// this engine writes on.
fn feature_property(
    protocol: &Protocol,
    key: &str,
    feature: &str,
    value: &str,
) -> Result<CheckedProperty> {
    if !["supported", "enabled"]
        .iter()
        .any(|v| v.eq_ignore_ascii_case(value.trim()))
    {
        return Err(Error::InvalidArgument(format!(
            "{key} = {value:?}: the value must be 'supported'"
        )));
    }
    let Some(name) = SUPPORTED_WRITER_FEATURES
        .iter()
        .find(|f| f.eq_ignore_ascii_case(feature))
    else {
        return Err(Error::UnsupportedFeature {
            feature: format!("{key}: this engine does not write the {feature} table feature"),
        });
    };
    let reader = SUPPORTED_READER_FEATURES.contains(name);
    Ok(CheckedProperty {
        key: None,
        value: value.to_owned(),
        protocol: with_feature(protocol, name, reader),
    })
}

/// `delta.minReaderVersion` / `delta.minWriterVersion`: raise the
/// protocol (never lower it) to a version this engine writes.
fn protocol_version(
    protocol: &Protocol,
    lower: &str,
    key: &str,
    value: &str,
) -> Result<CheckedProperty> {
    use crate::protocol::features::{MAX_READER_VERSION, MAX_WRITER_VERSION};
    let reader = lower == "delta.minreaderversion";
    let max = if reader {
        MAX_READER_VERSION
    } else {
        MAX_WRITER_VERSION
    };
    let version: i32 = value
        .trim()
        .parse()
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{key} = {value:?}: the value must be a protocol version from 1 to {max}"
            ))
        })?;
    let mut raised = protocol.clone();
    match (reader, version) {
        (true, 3) => raised = with_table_features(&raised, true),
        (true, _) => raised.min_reader_version = raised.min_reader_version.max(version),
        (false, 7) => raised = with_table_features(&raised, false),
        (false, _) if raised.min_writer_version < 7 => {
            raised.min_writer_version = raised.min_writer_version.max(version);
        }
        (false, _) => {}
    }
    Ok(CheckedProperty {
        key: None,
        value: value.to_owned(),
        protocol: raised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::features::ensure_writable;
    use crate::protocol::{Format, Metadata};

    fn legacy() -> Protocol {
        Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        }
    }

    fn metadata(configuration: &[(&str, &str)]) -> Metadata {
        Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Format::default(),
            schema_string: r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#.into(),
            partition_columns: Vec::new(),
            created_time: Some(0),
            configuration: configuration
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect(),
        }
    }

    #[test]
    fn change_data_feed_raises_the_writer_version_and_stays_writable() {
        let checked = check_property(&legacy(), "delta.enableChangeDataFeed", "true").unwrap();
        assert_eq!(checked.key.as_deref(), Some("delta.enableChangeDataFeed"));
        assert_eq!(checked.protocol.min_writer_version, 4);
        assert_eq!(checked.protocol.min_reader_version, 1);
        ensure_writable(
            &checked.protocol,
            &metadata(&[("delta.enableChangeDataFeed", "true")]),
        )
        .unwrap();
        // On a table-features protocol it is listed as a writer feature.
        let features = with_table_features(&legacy(), true);
        let checked = check_property(&features, "delta.enableChangeDataFeed", "true").unwrap();
        assert!(checked.protocol.has_writer_feature("changeDataFeed"));
        assert!(!checked.protocol.has_reader_feature("changeDataFeed"));
        // Turning it off needs nothing.
        let off = check_property(&legacy(), "delta.enableChangeDataFeed", "false").unwrap();
        assert_eq!(off.protocol, legacy());
    }

    #[test]
    fn keys_are_spelled_as_delta_spells_them() {
        let checked = check_property(&legacy(), "DELTA.ENABLEDELETIONVECTORS", "TRUE").unwrap();
        assert_eq!(checked.key.as_deref(), Some("delta.enableDeletionVectors"));
        assert!(checked.protocol.has_reader_feature("deletionVectors"));
        assert!(checked.protocol.has_writer_feature("deletionVectors"));
        let own = check_property(&legacy(), "owner", "data team").unwrap();
        assert_eq!(own.key.as_deref(), Some("owner"));
        assert_eq!(own.protocol, legacy());
    }

    #[test]
    fn what_this_engine_cannot_write_is_refused_by_name() {
        for (key, value, words) in [
            (
                "delta.enableInCommitTimestamps",
                "true",
                "delta.enableInCommitTimestamps",
            ),
            ("delta.enableRowTracking", "true", "delta.enableRowTracking"),
            ("delta.feature.rowTracking", "supported", "rowTracking"),
            ("delta.constraints.positive", "id > 0", "CHECK constraints"),
            ("delta.checkpointPolicy", "v2", "classic"),
            ("delta.universalFormat.enabledFormats", "iceberg", "empty"),
            ("delta.enableChangeDataFeed", "1", "true or false"),
            ("delta.checkpointInterval", "0", "at least 1"),
            ("delta.logRetentionDuration", "forever", "interval"),
            ("delta.targetFileSize", "huge", "size"),
            ("delta.isolationLevel", "ReadCommitted", "Serializable"),
            ("delta.minWriterVersion", "8", "from 1 to 7"),
            (
                "delta.enableChangeDataFed",
                "true",
                "unknown Delta table property",
            ),
            ("wavelake.compression", "lz5", "snappy"),
            ("wavelake.buffer.flushRows", "-3", "at least 1"),
        ] {
            let err = check_property(&legacy(), key, value).expect_err(key);
            assert!(err.to_string().contains(words), "{key}: {err}");
        }
        // Off is always fine.
        assert!(check_property(&legacy(), "delta.enableRowTracking", "false").is_ok());
    }

    #[test]
    fn feature_and_version_properties_change_only_the_protocol() {
        let checked =
            check_property(&legacy(), "delta.feature.deletionVectors", "supported").unwrap();
        assert_eq!(checked.key, None);
        assert!(checked.protocol.has_reader_feature("deletionVectors"));
        let checked = check_property(&legacy(), "delta.minWriterVersion", "5").unwrap();
        assert_eq!(checked.key, None);
        assert_eq!(checked.protocol.min_writer_version, 5);
        let lowered = check_property(&checked.protocol, "delta.minWriterVersion", "3").unwrap();
        assert_eq!(lowered.protocol.min_writer_version, 5, "never lowered");
        let features = check_property(&legacy(), "delta.minReaderVersion", "3").unwrap();
        assert_eq!(features.protocol.min_reader_version, 3);
        assert_eq!(features.protocol.min_writer_version, 7);
        assert_eq!(features.protocol.reader_features, Some(Vec::new()));
        assert!(features.protocol.has_writer_feature("appendOnly"));
    }
}
