//! Loads the relay configuration file and everything it references, checks all of it, and builds
//! the [`Runtime`] the relay runs on. Every problem is reported (not just the first) as
//! `file: field: reason`. A relay that is running keeps its last good runtime when a reload fails.

mod check;
pub mod webhooks;

use crate::dkim::Signer;
use cascade_core::cidr::Cidr;
use cascade_core::seal::KeyRing;
use cascade_crds::relay_config::RelayConfig;
use check::{check_with, Files};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cascade_crds::relay_config::{KNOWN_SCOPES, SCOPE_DMARC_UPLOAD, SCOPE_MESSAGES_SEND, SCOPE_SMTP_SUBMIT, SCOPE_SUPPRESSIONS_MANAGE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<Problem>);

/// A sending domain as the relay enforces it.
pub struct DomainPolicy {
    pub tenant: String,
    pub signers: Vec<Signer>,
    /// Why mail from this domain is refused, if it is.
    pub refuse: Option<String>,
}

/// An API key as the relay enforces it.
pub struct KeyPolicy {
    pub tenant: String,
    pub secret_hash: [u8; 32],
    pub scopes: Vec<String>,
    /// Empty: every domain of the tenant.
    pub allowed_domains: HashSet<String>,
    pub allowed_cidrs: Vec<Cidr>,
    pub messages_per_minute: Option<u32>,
    pub recipients_per_minute: Option<u32>,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    pub anomalies: cascade_crds::relay_config::KeyAnomalies,
    /// The ApiKey resource's generation; a suspension holds for the generation it happened at.
    pub generation: i64,
}

/// The checked, loaded configuration.
pub struct Runtime {
    pub config: RelayConfig,
    pub base_dir: PathBuf,
    pub domains: HashMap<String, DomainPolicy>,
    pub keys: HashMap<String, KeyPolicy>,
    pub spool_keys: Arc<KeyRing>,
    /// Outbound TLS for the smarthost, built once at load (its CA file read here, not per delivery).
    pub smarthost_tls: Option<Arc<rustls::ClientConfig>>,
    pub smarthost_password: Option<String>,
    pub nameservers: Vec<SocketAddr>,
    /// Networks allowed to connect; empty means any.
    pub client_networks: Vec<Cidr>,
    /// Load balancers whose connections start with a PROXY v2 header.
    pub proxy_networks: Vec<Cidr>,
    /// Where MX delivery may connect.
    pub destinations: crate::delivery::destination::DestinationFilter,
    /// The audit HMAC key, when the trail is configured.
    pub audit_key: Option<Vec<u8>>,
    /// (tenant, domain) pairs whose queued mail is purged (see `retiredDomains`).
    pub retired: HashSet<(String, String)>,
    /// Tenants in lockdown: their queued mail waits, untouched, until they leave this set.
    pub held: HashSet<String>,
    /// The server certificate and key (PEM) as checked at load, so a configuration that did not
    /// come from files (a watched Secret) can install them.
    pub tls_pem: (Vec<u8>, Vec<u8>),
    /// The admin listener's and the handovers' mutual TLS, when configured.
    pub admin_tls: Option<crate::tls::AdminChannel>,
    /// Each tenant's webhook endpoints, and the TLS client configuration that verifies them.
    pub webhooks: webhooks::ByTenant,
    pub webhook_tls: Arc<rustls::ClientConfig>,
    /// Tenant entries (a domain, an API key) left out for their problems; the rest is served.
    pub dropped: Vec<Problem>,
    /// The generation of the `relay.yaml` this is ([`generation_of`]).
    pub config_hash: String,
}

impl Runtime {
    pub fn client_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.client_networks.is_empty() || self.client_networks.iter().any(|n| n.contains(ip))
    }

    /// Whether a connection from `peer` must start with a PROXY v2 header.
    pub fn behind_proxy(&self, peer: std::net::IpAddr) -> bool {
        self.proxy_networks.iter().any(|n| n.contains(peer))
    }
}

impl Runtime {
    /// Whether a queued message belongs to a domain deleted from its tenant.
    pub fn is_retired(&self, tenant: &str, sender: &str) -> bool {
        !self.retired.is_empty() && sender.rsplit_once('@').is_some_and(|(_, d)| self.retired.contains(&(tenant.to_string(), d.to_ascii_lowercase())))
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve(&self.base_dir, path)
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Parses the file's text; YAML and type errors come back as one problem with the location.
pub fn parse(file: &str, text: &str) -> Result<RelayConfig, ConfigErrors> {
    serde_saphyr::from_str::<RelayConfig>(text).map_err(|e| {
        let msg = e.to_string();
        ConfigErrors(vec![Problem { file: file.into(), field: "(document)".into(), reason: msg.trim().replace('\n', " ") }])
    })
}

/// The shard Secrets an in-memory bundle's `relay.yaml` lists (none when it does not parse).
pub fn shard_secrets(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let config = files.get("relay.yaml").and_then(|t| std::str::from_utf8(t).ok()).and_then(|t| parse("relay.yaml", t).ok());
    config.map(|c| c.shards.into_iter().filter_map(|s| s.secret).collect()).unwrap_or_default()
}

/// Whether every shard an in-memory bundle lists is there and matches its digest. A watched set
/// is installed only then: the operator writes the shards before the `relay.yaml` listing them,
/// so in between the set is not yet consistent, and the relay keeps what it runs.
pub fn shards_consistent(files: &BTreeMap<String, Vec<u8>>) -> bool {
    let Some(config) = files.get("relay.yaml").and_then(|t| std::str::from_utf8(t).ok()).and_then(|t| parse("relay.yaml", t).ok()) else { return true };
    config.shards.iter().all(|s| {
        let Some(bytes) = files.get(&s.file) else { return false };
        let Ok(shard) = parse_shard(bytes) else { return true };
        let keys: Option<Vec<&[u8]>> = shard.key_files().iter().map(|f| files.get(*f).map(Vec::as_slice)).collect();
        keys.is_some_and(|k| cascade_core::shard::digest(bytes, &k) == s.digest)
    })
}

/// A shard file's contents.
pub(crate) fn parse_shard(bytes: &[u8]) -> Result<cascade_crds::relay_config::Shard, String> {
    std::str::from_utf8(bytes).map_err(|e| e.to_string()).and_then(|t| serde_saphyr::from_str(t).map_err(|e| e.to_string()))
}

pub fn load(path: &Path) -> Result<Arc<Runtime>, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors(vec![Problem { file: file.clone(), field: "(file)".into(), reason: format!("cannot read: {e}") }]))?;
    let config = parse(&file, &text)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let hash = generation_of(text.as_bytes());
    check(config, &file, &base).map(|rt| Arc::new(Runtime { config_hash: hash, ..rt }))
}

/// The generation of a `relay.yaml` text: the `configGeneration` the operator stamped on its
/// first line (after comments), else the hash of the text ([`cascade_core::shard::config_hash`]).
pub fn generation_of(text: &[u8]) -> String {
    let lines = text.split(|b| *b == b'\n').filter_map(|l| std::str::from_utf8(l).ok());
    let first = lines.map(str::trim_end).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or_default();
    match first.strip_prefix("configGeneration: ") {
        Some(g) if !g.trim().is_empty() && g.trim().len() <= 64 => g.trim().trim_matches(['\'', '"']).to_string(),
        _ => cascade_core::shard::config_hash(text),
    }
}

/// The entry of a bundle that holds the configuration; every other entry is a file it names.
pub const BUNDLE_CONFIG: &str = "relay.yaml";

/// Loads a configuration bundle held in memory (`source` names it in errors, for example
/// `secret ns/name`). Files are named by their entry; absolute paths (spool, capture directory)
/// stay paths on disk.
pub fn load_bundle(source: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<Arc<Runtime>, ConfigErrors> {
    let file = format!("{source}: {BUNDLE_CONFIG}");
    let Some(text) = files.get(BUNDLE_CONFIG) else {
        return Err(ConfigErrors(vec![Problem { file, field: "(file)".into(), reason: "missing from the bundle".into() }]));
    };
    let text = std::str::from_utf8(text).map_err(|_| ConfigErrors(vec![Problem { file: file.clone(), field: "(file)".into(), reason: "not UTF-8".into() }]))?;
    let config = parse(&file, text)?;
    for (field, dir) in [("spool.dir", Some(&config.spool.dir)), ("delivery.captureDir", config.delivery.capture_dir.as_ref())] {
        if dir.is_some_and(|d| !Path::new(d).is_absolute()) {
            return Err(ConfigErrors(vec![Problem { file, field: field.into(), reason: "must be an absolute path in a bundle".into() }]));
        }
    }
    let hash = generation_of(text.as_bytes());
    check_with(config, &file, Files::Bundle(files)).map(|rt| Arc::new(Runtime { config_hash: hash, ..rt }))
}

/// Checks a parsed configuration, loading what it references from files relative to `base`.
pub fn check(config: RelayConfig, file: &str, base: &Path) -> Result<Runtime, ConfigErrors> {
    check_with(config, file, Files::Dir(base.to_path_buf()))
}

#[cfg(test)]
mod tests;
