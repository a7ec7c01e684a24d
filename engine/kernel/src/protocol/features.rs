//! Which protocol versions and table features this engine can read and
//! write, and the protocol a new table or a new capability needs.

use super::actions::{Metadata, Protocol};
use crate::{Error, Result};

/// Reader features this engine implements.
pub const SUPPORTED_READER_FEATURES: &[&str] = &[
    "deletionVectors",
    "columnMapping",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
    "variantType",
    "variantType-preview",
];

/// Highest reader protocol version understood.
pub const MAX_READER_VERSION: i32 = 3;

/// Refuses a table this engine cannot read correctly, naming the feature.
pub fn ensure_readable(protocol: &Protocol) -> Result<()> {
    let version = protocol.min_reader_version;
    if !(1..=MAX_READER_VERSION).contains(&version) {
        return Err(Error::UnsupportedFeature {
            feature: format!(
                "reader protocol version {version} (this engine reads versions 1 to {MAX_READER_VERSION})"
            ),
        });
    }
    if version == 3 {
        let features = protocol.reader_features.as_deref().unwrap_or_default();
        if let Some(unknown) = features
            .iter()
            .find(|f| !SUPPORTED_READER_FEATURES.contains(&f.as_str()))
        {
            return Err(Error::UnsupportedFeature {
                feature: unknown.clone(),
            });
        }
    }
    Ok(())
}

/// Writer features this engine honours when it writes.
pub const SUPPORTED_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "deletionVectors",
    "columnMapping",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
    "variantType",
    "variantType-preview",
    "domainMetadata",
    "checkConstraints",
    "changeDataFeed",
    "generatedColumns",
    "identityColumns",
];

/// Highest writer protocol version understood.
pub const MAX_WRITER_VERSION: i32 = 7;

/// Refuses to write a table whose protocol or settings would make this
/// engine's commits wrong, naming what it lacks.
pub fn ensure_writable(protocol: &Protocol, metadata: &Metadata) -> Result<()> {
    ensure_readable(protocol)?;
    let unsupported = |feature: String| Err(Error::UnsupportedFeature { feature });
    let version = protocol.min_writer_version;
    if !(1..=MAX_WRITER_VERSION).contains(&version) {
        return unsupported(format!(
            "writer protocol version {version} (this engine writes versions 1 to {MAX_WRITER_VERSION})"
        ));
    }
    if version == 7
        && let Some(unknown) = protocol
            .writer_features
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|f| !SUPPORTED_WRITER_FEATURES.contains(&f.as_str()))
    {
        return unsupported(format!("writing with the {unknown} feature"));
    }
    let enabled = |key: &str| {
        metadata
            .property(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if enabled("delta.enableInCommitTimestamps") || protocol.has_writer_feature("inCommitTimestamp")
    {
        return unsupported("writing tables with in-commit timestamps".into());
    }
    for marker in [
        "delta.generationExpression",
        "delta.identity.start",
        "delta.invariants",
    ] {
        if metadata.schema_string.contains(marker) {
            return unsupported(format!("writing tables with columns that carry {marker}"));
        }
    }
    Ok(())
}

/// Whether the table only accepts appends (`delta.appendOnly`).
pub fn is_append_only(metadata: &Metadata) -> bool {
    metadata
        .property("delta.appendOnly")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `protocol` extended with a table feature (upgrading to reader 3 and
/// writer 7 when needed). Features from older protocol versions are listed
/// explicitly on the way, as the protocol requires.
pub fn with_feature(protocol: &Protocol, feature: &str, reader_too: bool) -> Protocol {
    let mut upgraded = with_table_features(protocol, reader_too);
    let add = |list: &mut Option<Vec<String>>| {
        let list = list.get_or_insert_with(Vec::new);
        if !list.iter().any(|f| f == feature) {
            list.push(feature.to_owned());
        }
    };
    add(&mut upgraded.writer_features);
    if reader_too {
        add(&mut upgraded.reader_features);
    }
    upgraded
}

/// `protocol` upgraded to writer version 7 (and, with `reader_too`, reader
/// version 3), the features its older versions implied listed explicitly;
/// unchanged where it is there already.
pub fn with_table_features(protocol: &Protocol, reader_too: bool) -> Protocol {
    let mut upgraded = protocol.clone();
    if upgraded.min_writer_version < 7 {
        let mut writer: Vec<String> = Vec::new();
        let legacy: &[(i32, &str)] = &[
            (2, "appendOnly"),
            (2, "invariants"),
            (3, "checkConstraints"),
            (4, "changeDataFeed"),
            (4, "generatedColumns"),
            (5, "columnMapping"),
            (6, "identityColumns"),
        ];
        for (version, name) in legacy {
            if protocol.min_writer_version >= *version {
                writer.push((*name).to_owned());
            }
        }
        upgraded.min_writer_version = 7;
        upgraded.writer_features = Some(writer);
    }
    if reader_too && upgraded.min_reader_version < 3 {
        let mut reader = Vec::new();
        if protocol.min_reader_version >= 2 {
            reader.push("columnMapping".to_owned());
        }
        upgraded.min_reader_version = 3;
        upgraded.reader_features = Some(reader);
    }
    upgraded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(reader: i32, features: Option<&[&str]>) -> Protocol {
        Protocol {
            min_reader_version: reader,
            min_writer_version: 7,
            reader_features: features.map(|f| f.iter().map(|s| (*s).to_owned()).collect()),
            writer_features: None,
        }
    }

    #[test]
    fn accepts_known_and_names_unknown_features() {
        assert!(ensure_readable(&protocol(1, None)).is_ok());
        assert!(ensure_readable(&protocol(3, Some(&["deletionVectors", "columnMapping"]))).is_ok());
        let err = ensure_readable(&protocol(3, Some(&["deletionVectors", "catalogOwned"])))
            .expect_err("unknown feature");
        assert!(
            matches!(err, Error::UnsupportedFeature { ref feature } if feature == "catalogOwned")
        );
        assert!(ensure_readable(&protocol(4, None)).is_err());
        assert!(ensure_readable(&protocol(0, None)).is_err());
    }

    #[test]
    fn upgrades_list_legacy_features() {
        let legacy = Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        };
        let upgraded = with_feature(&legacy, "deletionVectors", true);
        assert_eq!(upgraded.min_reader_version, 3);
        assert_eq!(upgraded.min_writer_version, 7);
        assert!(upgraded.has_writer_feature("appendOnly"));
        assert!(upgraded.has_writer_feature("invariants"));
        assert!(upgraded.has_writer_feature("deletionVectors"));
        assert!(upgraded.has_reader_feature("deletionVectors"));
        assert_eq!(with_feature(&upgraded, "deletionVectors", true), upgraded);
    }
}
