//! `cascade-core`: what the operator and the relay both need, and nothing either keeps to itself.
//!
//! [`seal`] is the AES-256-GCM format and key ring (spool files, sealed DKIM keys); [`secret`]
//! makes API key credentials and their hashes; [`dkim_key`] makes DKIM key material and its DNS
//! record; [`dmarc`] is the DMARC summary window relays serve; [`audit`] writes and verifies the HMAC-chained audit trail;
//! [`certificate`] makes self-signed certificates; [`cidr`] reads IP networks as both check them; [`shard`] digests configuration shards; [`suppression`] is the pool-wide suppression list's shared form; [`time`] formats and parses the times both write.
#![forbid(unsafe_code)]

pub mod audit;
pub mod certificate;
pub mod cidr;
pub mod dkim_key;
pub mod dmarc;
pub mod http_client;
pub mod resolver;
pub mod seal;
pub mod secret;
pub mod shard;
pub mod suppression;
pub mod time;

#[cfg(test)]
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("cascade-core-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
