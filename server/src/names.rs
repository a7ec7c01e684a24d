//! Names of namespaces and tables as the server accepts them: letters,
//! digits and `_`, so that a name never reaches outside its directory.

use crate::error::ApiError;

/// Checks a namespace or table name: letters, digits and `_`, so a name can
/// never reach outside its directory.
pub fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "bad {kind} name {name:?}: use letters, digits and _"
        )))
    }
}
