//! Durability of files written to a local disk: `object_store` writes and
//! links files without flushing them, so a commit acknowledged before a
//! power failure could vanish, or come back empty.

use std::path::Path;

/// Flushes the file at `file`, then each directory from its parent up to
/// and including `stop`, so that both the bytes and every name leading to
/// them are on disk before the write is acknowledged. `stop` is the table
/// root's parent: a new table's own directory entry is flushed too.
pub(crate) fn sync_file_and_parents(file: &Path, stop: &Path) -> std::io::Result<()> {
    sync(file)?;
    let mut dir = file.parent();
    while let Some(current) = dir {
        sync(current)?;
        if current == stop || !current.starts_with(stop) {
            break;
        }
        dir = current.parent();
    }
    Ok(())
}

fn sync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    #[cfg(test)]
    tests::record(path);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(super) fn record(path: &Path) {
        if let Ok(mut synced) = SYNCED.lock() {
            synced.push(path.to_owned());
        }
    }

    /// The paths flushed so far that lie under `dir`, in order.
    pub(crate) fn synced_under(dir: &Path) -> Vec<PathBuf> {
        SYNCED
            .lock()
            .map(|synced| {
                synced
                    .iter()
                    .filter(|p| p.starts_with(dir))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn flushes_the_file_then_each_directory_up_to_the_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = dir.path().join("ns").join("t");
        let log = table.join("_delta_log");
        std::fs::create_dir_all(&log).expect("dirs");
        let commit = log.join("00000000000000000000.json");
        std::fs::write(&commit, b"{}").expect("write");
        super::sync_file_and_parents(&commit, &dir.path().join("ns")).expect("syncs");
        assert_eq!(
            synced_under(dir.path()),
            [commit, log, table, dir.path().join("ns")]
        );
    }
}
