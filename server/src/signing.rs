//! Signed file URLs. On S3 the storage presigns; on a local directory the
//! server signs URLs of its own — `/files/<namespace>/<table>/<path>?sp=r
//! &se=<expiry, unix seconds>&sig=<hex HMAC-SHA256>` — with a key kept in
//! `ROOT/_wavelake/signing.key`. The query names follow the SAS convention
//! (signed permission, expiry, signature), which Delta kernels recognise
//! as a presigned URL. The `/files` route serves what these URLs name.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use crate::error::ApiError;
use wavelake_engine::storage::StorageRef;

/// Where the signing key lives, relative to the root.
pub const SIGNING_KEY_PATH: &str = "_wavelake/signing.key";

/// Characters escaped in the path of a signed URL (all but unreserved ones
/// and `/`).
const PATH_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Signs and checks the server's own file URLs.
pub struct UrlSigner {
    /// HMAC-SHA256 keyed once with the signing key; cloned per URL.
    keyed: Hmac<Sha256>,
    base_url: String,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Why a signed URL is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Past its expiry.
    Expired,
    /// Signature does not match (tampered or forged).
    BadSignature,
}

impl UrlSigner {
    /// Loads the key from the root, creating it on first start (with
    /// put-if-absent: servers starting together on one root agree on one
    /// key, so each accepts the URLs the others sign).
    pub async fn load_or_create(root: &StorageRef, base_url: String) -> Result<Self> {
        let engine = base64::engine::general_purpose::STANDARD;
        let stored = match root.get(SIGNING_KEY_PATH).await {
            Ok(bytes) => Some(bytes),
            Err(wavelake_engine::Error::NotFound { .. }) => None,
            Err(e) => return Err(e).context("cannot read the signing key"),
        };
        let stored = match stored {
            Some(bytes) => bytes,
            None => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                let text = Bytes::from(engine.encode(&key));
                match root.put_if_absent(SIGNING_KEY_PATH, text.clone()).await {
                    Ok(()) => text,
                    Err(wavelake_engine::Error::AlreadyExists { .. }) => root
                        .get(SIGNING_KEY_PATH)
                        .await
                        .context("cannot read the signing key")?,
                    Err(e) => return Err(e).context("cannot store the signing key"),
                }
            }
        };
        let key = engine
            .decode(stored.trim_ascii())
            .context("the signing key is not base64")?;
        crate::secrets::restrict(root.as_ref(), SIGNING_KEY_PATH);
        Self::with_key(&key, base_url)
    }

    /// A signer with `key` (at least 32 bytes) for URLs under `base_url`.
    pub fn with_key(key: &[u8], base_url: String) -> Result<Self> {
        if key.len() < 32 {
            anyhow::bail!("the signing key is shorter than 32 bytes");
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|e| anyhow::anyhow!("unusable signing key: {e}"))?;
        Ok(Self { keyed, base_url })
    }

    fn mac(&self, resource: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(resource.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The URL of `path` in table `namespace.table`, valid until `expires`
    /// (unix seconds).
    pub fn sign(&self, namespace: &str, table: &str, path: &str, expires: u64) -> String {
        let resource = format!("{namespace}/{table}/{path}");
        let signature: String = self
            .mac(&resource, expires)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!(
            "{}/files/{}?sp=r&se={expires}&sig={signature}",
            self.base_url,
            utf8_percent_encode(&resource, PATH_ESCAPED)
        )
    }

    /// A Delta Sharing refresh token for `table` (`share.schema.table`) at
    /// `version`, valid until `expires` (unix seconds): the same files
    /// again with fresh URLs, whatever has been committed since.
    pub fn refresh_token(&self, table: &str, version: i64, expires: u64) -> String {
        let signature = self
            .mac(&format!("refresh/{table}/{version}"), expires)
            .finalize()
            .into_bytes();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
        format!("{version}.{expires}.{signature}")
    }

    /// The version a refresh token of `table` stands for, if it is genuine
    /// and not past its expiry at `now`.
    pub fn check_refresh_token(&self, table: &str, token: &str, now: u64) -> Result<i64, Refusal> {
        let mut parts = token.splitn(3, '.');
        let (Some(version), Some(expires), Some(signature)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::BadSignature);
        };
        let version: i64 = version.parse().map_err(|_| Refusal::BadSignature)?;
        let expires: u64 = expires.parse().map_err(|_| Refusal::BadSignature)?;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refusal::BadSignature)?;
        self.mac(&format!("refresh/{table}/{version}"), expires)
            .verify_slice(&signature)
            .map_err(|_| Refusal::BadSignature)?;
        if expires < now {
            return Err(Refusal::Expired);
        }
        Ok(version)
    }

    /// Checks a URL's signature and expiry at `now` (unix seconds).
    pub fn verify(
        &self,
        resource: &str,
        expires: u64,
        signature: &str,
        now: u64,
    ) -> Result<(), Refusal> {
        let bytes: Option<Vec<u8>> = (0..signature.len())
            .step_by(2)
            .map(|i| {
                signature
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        let bytes = bytes.ok_or(Refusal::BadSignature)?;
        self.mac(resource, expires)
            .verify_slice(&bytes)
            .map_err(|_| Refusal::BadSignature)?;
        if expires < now {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A URL for a file of a table, and when it expires (ms since the epoch):
/// presigned by the storage when it can (S3), else signed by the server.
pub async fn file_url(
    signer: &UrlSigner,
    table_storage: &StorageRef,
    namespace: &str,
    table: &str,
    path: &str,
    lifetime: Duration,
) -> Result<(String, i64), ApiError> {
    let expires = now_secs() + lifetime.as_secs();
    let url = match table_storage.signed_url(path, lifetime).await? {
        Some(url) => url,
        None => signer.sign(namespace, table, path, expires),
    };
    Ok((url, (expires as i64) * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::with_key(&[7; 32], "http://host:1".into()).unwrap()
    }

    #[test]
    fn signed_urls_verify_and_refuse_tampering_and_expiry() {
        let signer = signer();
        let url = signer.sign("acme", "orders", "day=2024-01-01/part 0.parquet", 1000);
        assert!(url.starts_with("http://host:1/files/acme/orders/day%3D2024-01-01/part%200.parquet?sp=r&se=1000&sig="), "{url}");
        let signature = url.rsplit("sig=").next().unwrap();
        let resource = "acme/orders/day=2024-01-01/part 0.parquet";
        assert_eq!(signer.verify(resource, 1000, signature, 999), Ok(()));
        assert_eq!(
            signer.verify(resource, 1000, signature, 1001),
            Err(Refusal::Expired)
        );
        assert_eq!(
            signer.verify(resource, 2000, signature, 999),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            signer.verify("acme/orders/other.parquet", 1000, signature, 999),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            signer.verify(resource, 1000, "zz", 999),
            Err(Refusal::BadSignature)
        );
    }
}
