//! Which protocol versions and reader features this engine can read.

use super::actions::Protocol;
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
}
