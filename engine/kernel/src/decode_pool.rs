//! Where log files are decoded. Natively, a large commit or checkpoint is
//! parsed on Tokio's blocking pool, so that the files of one replay decode
//! on every core while the async thread keeps fetching; in JavaScript hosts
//! (one thread) and outside a Tokio runtime, right where it is called.

use crate::Result;

/// Files smaller than this decode in place: a thread hand-off costs more
/// than parsing them.
#[cfg(not(target_arch = "wasm32"))]
const OFF_THREAD_BYTES: usize = 1 << 20;

/// Runs `decode` (of a file of `len` bytes at `path`) off the async thread
/// when that pays, and returns its outcome.
#[cfg(not(target_arch = "wasm32"))]
pub async fn decode<T, F>(path: &str, len: usize, decode: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return decode();
    };
    if len < OFF_THREAD_BYTES {
        return decode();
    }
    runtime.spawn_blocking(decode).await.map_err(|e| {
        let reason = if e.is_panic() {
            crate::parquet_guard::panic_message(e.into_panic().as_ref())
        } else {
            "the decoding task was cancelled".to_owned()
        };
        crate::Error::corrupt(path, format!("decoding failed: {reason}"))
    })?
}

/// Runs `decode` in place: JavaScript hosts have one thread.
#[cfg(target_arch = "wasm32")]
pub async fn decode<T, F>(_path: &str, _len: usize, decode: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_files_decode_on_the_blocking_pool_small_ones_in_place() {
        let caller = std::thread::current().id();
        let large = decode("big.json", OFF_THREAD_BYTES, move || {
            Ok(std::thread::current().id())
        })
        .await
        .unwrap();
        assert_ne!(large, caller);
        let small = decode("small.json", 10, || Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(small, caller);
    }

    #[tokio::test]
    async fn a_panic_while_decoding_is_a_corrupt_file_not_a_crash() {
        let err = decode::<(), _>("bad.json", OFF_THREAD_BYTES, || panic!("bad bytes"))
            .await
            .expect_err("panicked");
        assert!(
            matches!(&err, crate::Error::Corrupt { path, reason } if path == "bad.json" && reason.contains("bad bytes")),
            "{err}"
        );
    }

    #[test]
    fn outside_a_runtime_files_decode_in_place() {
        let caller = std::thread::current().id();
        let outcome =
            futures::FutureExt::now_or_never(decode("big.json", OFF_THREAD_BYTES, || {
                Ok(std::thread::current().id())
            }))
            .expect("ready at once")
            .unwrap();
        assert_eq!(outcome, caller);
    }
}
