//! `cascade-operator render -f FILE... -o OUT`: the operator's evaluation without a cluster.
//!
//! Reads custom resources (and optional `Namespace` objects, for label selectors, and `Secret`
//! objects, for a smarthost's credentials) from YAML,
//! loads or creates the key material under OUT, runs [`evaluate`], and writes:
//! - `OUT/relay/` — the bundle as [`crate::bundle`] builds it in its directory layout: `relay.yaml`,
//!   one `tenant-<ns>.yaml` shard per tenant
//!   and everything it references (TLS certificate, spool and audit keys, DKIM keys), ready for
//!   `cascade-relay serve --config OUT/relay/relay.yaml`;
//! - `OUT/credentials/<namespace>.<apikey>.json` — `{"username", "password"}`, created once;
//! - `OUT/dns.zone` — the records to publish;
//! - `OUT/status.yaml` — the status every resource would get;
//! - `OUT/workloads.yaml` — the pool's typed workloads as the operator would apply them.
//!
//! Running it again on the same OUT keeps existing keys and credentials. (A command: its errors
//! are `anyhow`, like the binary's.)

pub mod evaluate;

use anyhow::{bail, Context};
use cascade_core::secret::Credentials;
use cascade_core::secret::{format_secret_hash, hash_secret};
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use evaluate::{key_of, Inputs, Key, Material};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Parses every YAML document of `files` into the inputs; errors name the file and document.
pub fn read_inputs(files: &[PathBuf]) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    for file in files {
        let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for (i, mut doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let at = || format!("{} (document {})", file.display(), i + 1);
            let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
            let api = doc.get("apiVersion").and_then(|k| k.as_str()).unwrap_or_default().to_string();
            if kind == "Namespace" {
                let name = doc.pointer("/metadata/name").and_then(|n| n.as_str()).with_context(|| format!("{}: Namespace without a name", at()))?;
                let labels = doc.pointer("/metadata/labels").cloned().map(serde_json::from_value).transpose().with_context(at)?.unwrap_or_default();
                inputs.namespace_labels.insert(name.to_string(), labels);
                continue;
            }
            if kind == "Secret" && api == "v1" {
                let (key, data) = secret_doc(&doc).with_context(at)?;
                inputs.secrets.insert(key, data);
                continue;
            }
            if api != "cascade-mail.com/v1alpha1" {
                bail!("{}: apiVersion {api:?} kind {kind:?} is not a Cascade resource (cascade-mail.com/v1alpha1)", at());
            }
            if doc.pointer("/metadata/namespace").and_then(|n| n.as_str()).is_none_or(str::is_empty) {
                bail!("{}: metadata.namespace is required (a tenant is a namespace)", at());
            }
            // Creation times come from the API server, never from a file: anyone who writes a
            // file could backdate a claim on another tenant's domain.
            if let Some(meta) = doc.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.remove("creationTimestamp");
            }
            match kind.as_str() {
                "RelayPool" => inputs.pools.push(serde_json::from_value::<RelayPool>(doc).with_context(at)?),
                "SendingDomain" => inputs.domains.push(serde_json::from_value::<SendingDomain>(doc).with_context(at)?),
                "DkimKey" => inputs.dkim_keys.push(serde_json::from_value::<DkimKey>(doc).with_context(at)?),
                "ApiKey" => inputs.api_keys.push(serde_json::from_value::<ApiKey>(doc).with_context(at)?),
                other => bail!("{}: unknown kind {other:?}", at()),
            }
        }
    }
    Ok(inputs)
}

/// A `v1 Secret` document (smarthost credentials): `data` (base64) and `stringData` merged.
fn secret_doc(doc: &serde_json::Value) -> anyhow::Result<(Key, BTreeMap<String, Vec<u8>>)> {
    use base64::Engine;
    let text = |p: &str| doc.pointer(p).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    let key = (text("/metadata/namespace").context("metadata.namespace is required")?.to_string(), text("/metadata/name").context("metadata.name is required")?.to_string());
    let mut data = BTreeMap::new();
    for (k, v) in doc.get("data").and_then(|d| d.as_object()).into_iter().flatten() {
        let value = v.as_str().and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok()).with_context(|| format!("data.{k} is not base64"))?;
        data.insert(k.clone(), value);
    }
    for (k, v) in doc.get("stringData").and_then(|d| d.as_object()).into_iter().flatten() {
        data.insert(k.clone(), v.as_str().with_context(|| format!("stringData.{k} is not a string"))?.as_bytes().to_vec());
    }
    Ok((key, data))
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Loads the key material under `out`, creating what is missing.
fn ensure_material(inputs: &Inputs, out: &Path) -> anyhow::Result<(Material, BTreeMap<String, Vec<u8>>)> {
    let relay = out.join("relay");
    let mut material = Material::default();
    let mut private = BTreeMap::new();
    for k in evaluate::effective_dkim_keys(inputs) {
        let key: Key = key_of(&k);
        let path = relay.join(evaluate::dkim_key_file(&key));
        let pem = match fs::read(&path) {
            Ok(p) => p,
            Err(_) => {
                let (pem, _) = cascade_core::dkim_key::generate(k.spec.algorithm)?;
                write_private(&path, pem.as_bytes())?;
                pem.into_bytes()
            }
        };
        let public = cascade_core::dkim_key::public_key_of(k.spec.algorithm, &pem).with_context(|| format!("{}", path.display()))?;
        material.dkim_public.insert(key.clone(), public);
        private.insert(evaluate::dkim_key_file(&key), pem);
    }
    for a in &inputs.api_keys {
        let key = key_of(a);
        let path = out.join("credentials").join(format!("{}.{}.json", key.0, key.1));
        let creds: Credentials = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", path.display()))?,
            Err(_) => {
                let c = cascade_core::secret::new_api_key()?;
                write_private(&path, &serde_json::to_vec_pretty(&c)?)?;
                c
            }
        };
        material.api_keys.insert(key, (creds.username, format_secret_hash(&hash_secret(&creds.password))));
    }
    Ok((material, private))
}

/// The claims `--verified-claims FILE` says passed their ownership challenge: lines
/// `NAMESPACE/NAME` (`#` comments, blank lines ignored), in the order they were verified.
pub fn read_verified_claims(path: &Path) -> anyhow::Result<BTreeMap<Key, u64>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
        let Some((ns, name)) = line.split_once('/').filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/')) else {
            bail!("{}: line {}: expected NAMESPACE/NAME, got {line:?}", path.display(), n + 1);
        };
        out.entry((ns.to_string(), name.to_string())).or_insert(n as u64);
    }
    Ok(out)
}

/// Renders the bundle of the one RelayPool in `files`. `verified`: the SendingDomains whose
/// ownership challenge passed (unix time of the verification; see `evaluate::ownership`);
/// other claims are served only when the pool assigns their domain.
pub fn render(files: &[PathBuf], out: &Path, verified: BTreeMap<Key, u64>) -> anyhow::Result<evaluate::Plan> {
    let mut inputs = read_inputs(files)?;
    inputs.verified = verified;
    let mut pool = match inputs.pools.as_slice() {
        [p] => p.clone(),
        [] => bail!("no RelayPool in the input: render needs exactly one"),
        many => bail!("{} RelayPools in the input ({}); render needs exactly one", many.len(), many.iter().map(|p| key_of(p).1).collect::<Vec<_>>().join(", ")),
    };
    // Rendering asks no DNS (that is `check-dns`): the bundle serves domains as with `warn`.
    pool.spec.dns_verification = cascade_crds::v1alpha1::DnsVerification::Warn;
    let (material, private) = ensure_material(&inputs, out)?;
    let now = cascade_core::time::now_unix();
    let plan = evaluate::evaluate(&pool, &inputs, &material, now, &cascade_core::time::rfc3339_utc(now)).map_err(|e| anyhow::anyhow!("RelayPool {}: {e}", key_of(&pool).1))?;

    let relay = out.join("relay");
    let tls = match (fs::read(relay.join("tls.crt")), fs::read(relay.join("tls.key"))) {
        (Ok(cert), Ok(key)) => [("tls.crt".to_string(), cert), ("tls.key".to_string(), key)].into(),
        _ => {
            let (cert, key) = cascade_core::certificate::self_signed(&[plan.config.hostname.as_str()])?;
            [("tls.crt".to_string(), cert.into_bytes()), ("tls.key".to_string(), key.into_bytes())].into()
        }
    };
    let smarthost = match pool.spec.delivery.smarthost.as_ref().and_then(|s| s.credentials_secret.as_ref()) {
        Some(secret) => evaluate::smarthost_files(secret, inputs.secrets.get(&(key_of(&pool).0, secret.clone())))?.1,
        None => BTreeMap::new(),
    };
    let spool_key = match fs::read(relay.join(crate::bundle::SPOOL_KEY)) {
        Ok(k) => k,
        Err(_) => cascade_core::seal::KeyRing::generate_line("k1")?.into_bytes(),
    };
    let audit_key = match fs::read(relay.join(crate::bundle::AUDIT_KEY)) {
        Ok(k) => k,
        Err(_) => cascade_core::audit::new_key_file()?.into_bytes(),
    };
    let keys = [(crate::bundle::SPOOL_KEY.to_string(), spool_key), (crate::bundle::AUDIT_KEY.to_string(), audit_key)].into();
    let admin = admin_files(&relay, &out.join("admin-client"), &key_of(&pool), now)?;
    let parts = crate::bundle::Parts { tls: &tls, admin, smarthost, dkim_private: &private };
    let bundle = crate::bundle::build(&plan.config, parts, crate::bundle::Layout::Directory { keys: &keys })?;
    for (name, contents) in &bundle.files {
        write_private(&relay.join(name), contents)?;
    }
    let zone: String = plan.records.iter().map(|(name, value)| cascade_core::dkim_key::txt_zone_line(name, value)).collect();
    write_private(&out.join("dns.zone"), zone.as_bytes())?;
    let mut status = BTreeMap::new();
    status.insert("sendingDomains", serde_json::to_value(keyed(&plan.domain_status))?);
    status.insert("dkimKeys", serde_json::to_value(keyed(&plan.dkim_status))?);
    status.insert("apiKeys", serde_json::to_value(keyed(&plan.api_key_status))?);
    write_private(&out.join("status.yaml"), serde_saphyr::to_string(&status)?.as_bytes())?;
    // The pool's workloads as the operator would apply them (the relay image and operator
    // namespace at their defaults), for review in GitOps previews.
    let image = concat!("cascade-relay:", env!("CARGO_PKG_VERSION"));
    let workloads = crate::workloads::all(&pool, image, &crate::apply::short_hash(bundle.yaml.as_bytes()), "cascade-system", &shard_secrets(&pool, &plan)).manifests()?;
    write_private(&out.join("workloads.yaml"), format!("# Rendered by `cascade-operator render`.\n{}", workloads.join("---\n")).as_bytes())?;
    Ok(plan)
}

/// The shard Secrets the operator would write for this plan (one per tenant with domains or keys).
fn shard_secrets(pool: &cascade_crds::v1alpha1::RelayPool, plan: &evaluate::Plan) -> Vec<String> {
    let tenants: std::collections::BTreeSet<&str> = plan.config.tenants.iter().map(|t| t.name.as_str()).chain(plan.config.api_keys.iter().map(|k| k.tenant.as_str())).collect();
    tenants.into_iter().map(|t| format!("{}-{t}", crate::labels::bundle_secret(&key_of(pool).1))).collect()
}

fn keyed<T: Clone>(m: &BTreeMap<Key, T>) -> BTreeMap<String, T> {
    m.iter().map(|((ns, n), v)| (format!("{ns}/{n}"), v.clone())).collect()
}

/// The admin channel's files: those already in the output, else a new authority's relay
/// certificate plus a client certificate for the platform's tools (`admin-client.crt`/`.key`,
/// valid a year); the authority's key is not kept (render again into an empty directory for new
/// ones).
fn admin_files(relay: &Path, client: &Path, (ns, pool): &(String, String), now: u64) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    use crate::admin_authority::{relay_name, CA_FILE, CERT_FILE, KEY_FILE};
    let existing: BTreeMap<String, Vec<u8>> = [CERT_FILE, KEY_FILE, CA_FILE].iter().filter_map(|f| Some((f.to_string(), fs::read(relay.join(f)).ok()?))).collect();
    if existing.len() == 3 {
        return Ok(existing);
    }
    let a = cascade_core::certificate::admin_files(&format!("Cascade admin authority {ns}/{pool}"), &[&relay_name(ns, pool)], now)?;
    write_private(&client.with_extension("crt"), a.client_cert.as_bytes())?;
    write_private(&client.with_extension("key"), a.client_key.as_bytes())?;
    Ok([(CERT_FILE.to_string(), a.relay_cert.into_bytes()), (KEY_FILE.to_string(), a.relay_key.into_bytes()), (CA_FILE.to_string(), a.ca_cert.into_bytes())].into())
}
