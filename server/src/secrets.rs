//! Files that hold secrets (token hashes, the URL signing key, shares and
//! recipients): on a local root they are readable by the server's user
//! only. Other roots keep their store's own access control.

use wavelake_engine::storage::Storage;

/// On a local root, makes `path` (under the root) `0600` and its directory
/// `0700`; a failure is logged, not fatal.
pub fn restrict(storage: &dyn Storage, path: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let location = storage.location();
        let Some(root) = location.strip_prefix("file://") else {
            return;
        };
        let root = percent_encoding::percent_decode_str(root).decode_utf8_lossy();
        let file = std::path::Path::new(root.as_ref()).join(path);
        let mut targets = vec![(file.clone(), 0o600)];
        if let Some(directory) = file.parent() {
            targets.push((directory.to_path_buf(), 0o700));
        }
        for (target, mode) in targets {
            if let Err(e) = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            {
                tracing::warn!(path = %target.display(), error = %e, "cannot restrict a secrets file");
            }
        }
    }
}
