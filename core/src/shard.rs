//! The digest that ties a configuration shard to the `relay.yaml` listing it: SHA-256 over the
//! shard file and each key file it names, each length-prefixed, in order. The operator computes
//! it when writing; a relay recomputes it over what it read and installs a configuration only
//! when every digest matches, so it never runs half of one version and half of another.

use aws_lc_rs::digest::{Context, SHA256};

/// `sha256:<hex>` of `shard` followed by `key_files`.
pub fn digest(shard: &[u8], key_files: &[&[u8]]) -> String {
    let mut ctx = Context::new(&SHA256);
    for part in std::iter::once(shard).chain(key_files.iter().copied()) {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let hex: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The configuration generation a `relay.yaml` text is: the first 8 bytes of its SHA-256 in hex.
/// The operator records it in the RelayPool status (and rolls pods on it); each relay reports the
/// one it runs.
pub fn config_hash(relay_yaml: &[u8]) -> String {
    aws_lc_rs::digest::digest(&SHA256, relay_yaml).as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_byte_and_every_boundary_counts() {
        let d = super::digest(b"tenants: []", &[b"KEY"]);
        assert!(d.starts_with("sha256:") && d.len() == 7 + 64);
        assert_ne!(d, super::digest(b"tenants: [] ", &[b"KEY"]));
        assert_ne!(d, super::digest(b"tenants: []", &[b"KEY2"]));
        assert_ne!(super::digest(b"ab", &[b"c"]), super::digest(b"a", &[b"bc"]), "parts are length-prefixed");
    }
}
