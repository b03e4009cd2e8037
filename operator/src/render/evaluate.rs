//! The pure heart of the operator: from the custom resources (and the public halves of the key
//! material) to what one RelayPool's relays run — the relay configuration, the DNS records to
//! publish, and every resource's status. No I/O, no clock (time is passed in), no randomness:
//! the same inputs always give the same plan. The controllers and `cascade-operator render`
//! both call it.

use crate::records::{dmarc_value, spf_value};
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::relay_config::{self as rc, DkimAlgorithm, RelayConfig};
use cascade_crds::v1alpha1::*;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// (namespace, name) of a namespaced object.
pub type Key = (String, String);

pub fn key_of<K: ResourceExt>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// Everything read from the cluster (or from files).
#[derive(Default, Clone)]
pub struct Inputs {
    pub pools: Vec<RelayPool>,
    pub domains: Vec<SendingDomain>,
    pub dkim_keys: Vec<DkimKey>,
    pub api_keys: Vec<ApiKey>,
    /// Labels of each namespace (for the pools' namespace selectors).
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Secrets the pools name (smarthost credentials), with their decoded data.
    pub secrets: BTreeMap<Key, BTreeMap<String, Vec<u8>>>,
    /// The tenants' webhook endpoints (their signing Secrets are in `secrets`).
    pub webhooks: Vec<WebhookEndpoint>,
    /// Domains recently deleted from the pool (its status), whose queued mail the relays purge.
    pub retired: Vec<RetiredDomain>,
    /// SendingDomains whose ownership challenge passed, with the (unix) time it first did; see
    /// [`ownership`].
    pub verified: BTreeMap<Key, u64>,
}

/// The finalizer on SendingDomains a pool serves: the pool records the deletion (so the relays
/// purge the domain's queued mail) before the object goes.
pub const DOMAIN_FINALIZER: &str = "cascade-mail.com/purge-queued-mail";

/// How long a deleted domain stays listed: longer than the relay keeps any message (`maxAge`).
pub const RETIRED_FOR_SECS: u64 = 7 * 24 * 3600;

/// The pool's retired domains after this reconcile: the previous list without entries that
/// expired or whose domain the same namespace serves again, plus the domains being deleted now.
pub fn retire(previous: &[RetiredDomain], deleting: &[SendingDomain], live: &[SendingDomain], now_unix: u64, now: &str) -> Vec<RetiredDomain> {
    let served_again = |r: &RetiredDomain| live.iter().any(|d| d.spec.domain == r.domain && d.namespace().as_deref() == Some(r.namespace.as_str()));
    let fresh = |r: &RetiredDomain| cascade_core::time::parse_rfc3339(&r.retired_at).is_none_or(|at| now_unix.saturating_sub(at) < RETIRED_FOR_SECS);
    let mut out: Vec<RetiredDomain> = previous.iter().filter(|r| fresh(r) && !served_again(r)).cloned().collect();
    for d in deleting {
        let r = RetiredDomain { domain: d.spec.domain.clone(), namespace: d.namespace().unwrap_or_default(), retired_at: now.into() };
        if !out.iter().any(|o| o.domain == r.domain && o.namespace == r.namespace) {
            out.push(r);
        }
    }
    out
}

/// Where the smarthost AUTH password and CA bundle live inside the relay bundle.
pub const SMARTHOST_PASSWORD_FILE: &str = "smarthost.password";
pub const SMARTHOST_CA_FILE: &str = "smarthost-ca.crt";

/// The bundle files a smarthost credentials Secret (`username`, `password`, optional `ca.crt`)
/// becomes, or what is wrong with it.
/// A RelayPool field the pool cannot be served with; the pool's `Ready=False` (`InvalidSpec`)
/// names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSpec {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidSpec {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

pub fn smarthost_files(secret: &str, data: Option<&BTreeMap<String, Vec<u8>>>) -> Result<(String, BTreeMap<String, Vec<u8>>), InvalidSpec> {
    const FIELD: &str = "delivery.smarthost.credentialsSecret";
    let data = data.ok_or_else(|| InvalidSpec::new(FIELD, format!("Secret {secret:?} not found in the pool's namespace")))?;
    let text = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(v).trim().to_string()).filter(|v| !v.is_empty());
    let (Some(username), Some(password)) = (text("username"), text("password")) else {
        return Err(InvalidSpec::new(FIELD, format!("Secret {secret:?} needs non-empty keys username and password")));
    };
    let mut files = BTreeMap::from([(SMARTHOST_PASSWORD_FILE.to_string(), password.into_bytes())]);
    if let Some(ca) = data.get("ca.crt") {
        files.insert(SMARTHOST_CA_FILE.to_string(), ca.clone());
    }
    Ok((username, files))
}

/// Public halves of the key material, which the shell generated or loaded.
#[derive(Default, Clone)]
pub struct Material {
    /// DKIM `p=` value per DkimKey.
    pub dkim_public: BTreeMap<Key, String>,
    /// The selector each DkimKey signs with now (its current generation; absent: `spec.selector`).
    pub dkim_selector: BTreeMap<Key, String>,
    /// Every record a DkimKey needs published (all generations not retired), when known.
    pub dkim_records: BTreeMap<Key, Vec<(String, String)>>,
    /// Key id and `sha256:` secret hash per ApiKey.
    pub api_keys: BTreeMap<Key, (String, String)>,
    /// ApiKeys whose credentials Secret the operator did not issue, with why (naming the Secret).
    pub refused_credentials: BTreeMap<Key, String>,
}

/// The desired state for one RelayPool.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub config: RelayConfig,
    /// (fully qualified name, TXT value), sorted.
    pub records: Vec<(String, String)>,
    pub domain_status: BTreeMap<Key, SendingDomainStatus>,
    pub dkim_status: BTreeMap<Key, DkimKeyStatus>,
    pub api_key_status: BTreeMap<Key, ApiKeyStatus>,
}

impl Plan {
    /// The SendingDomains and ApiKeys whose `Ready` is not `True`, with their conditions.
    pub fn not_ready(&self) -> Vec<(&'static str, &Key, &[cascade_crds::conditions::Condition])> {
        let domains = self.domain_status.iter().map(|(k, s)| ("SendingDomain", k, s.conditions.as_slice()));
        let keys = self.api_key_status.iter().map(|(k, s)| ("ApiKey", k, s.conditions.as_slice()));
        domains.chain(keys).filter(|(_, _, c)| !conditions::is_true(c, types::READY)).collect()
    }
}

/// Where a DkimKey's private key file lives inside the relay bundle.
pub fn dkim_key_file((ns, name): &Key) -> String {
    format!("dkim-{ns}.{name}.pem")
}

/// The name of the DkimKey a SendingDomain with `dkim.generate` and no keys gets.
pub fn generated_dkim_name(domain_name: &str) -> String {
    format!("{domain_name}-dkim")
}

/// The longest SendingDomain name whose derived names are valid: the generated DkimKey's name is
/// also a label value on its Secret, and label values have at most 63 characters.
pub const MAX_DOMAIN_OBJECT_NAME: usize = cascade_crds::v1alpha1::bounds::MAX_GENERATING_DOMAIN_NAME;

/// Whether the operator can generate a DkimKey for this SendingDomain.
pub fn generated_name_valid(d: &SendingDomain) -> bool {
    d.name_any().len() <= MAX_DOMAIN_OBJECT_NAME
}

/// The DkimKey the operator makes for a SendingDomain with `dkim.generate` and no keys:
/// selector `cascade1`, RSA-2048, in the domain's namespace.
pub fn generated_dkim_key(d: &SendingDomain) -> DkimKey {
    let (ns, name) = key_of(d);
    let spec = DkimKeySpec { domain: d.spec.domain.clone(), selector: "cascade1".into(), algorithm: DkimAlgorithm::RsaSha256, rotation: Default::default() };
    let mut k = DkimKey::new(&generated_dkim_name(&name), spec);
    k.metadata.namespace = Some(ns);
    k
}

/// The DkimKeys in play: the ones written, plus one per SendingDomain that asks the operator to
/// generate it (selector `cascade1`, RSA-2048) and has none of that name yet.
pub fn effective_dkim_keys(inputs: &Inputs) -> Vec<DkimKey> {
    let mut keys = inputs.dkim_keys.clone();
    let existing: std::collections::BTreeSet<Key> = keys.iter().map(key_of).collect();
    for d in &inputs.domains {
        if d.spec.dkim.keys.is_empty() && d.spec.dkim.generate {
            let (ns, name) = key_of(d);
            let gen = generated_dkim_name(&name);
            if !existing.contains(&(ns, gen)) {
                keys.push(generated_dkim_key(d));
            }
        }
    }
    keys
}

/// The DkimKeys (among `keys`) that sign for a SendingDomain, or why there are none.
pub fn signing_keys(d: &SendingDomain, keys: &[DkimKey]) -> Result<Vec<DkimKey>, String> {
    let by_key: BTreeMap<Key, &DkimKey> = keys.iter().map(|k| (key_of(k), k)).collect();
    keys_for(d, &by_key).map(|ks| ks.into_iter().cloned().collect())
}

/// The DkimKeys that sign for a SendingDomain.
fn keys_for<'a>(d: &SendingDomain, keys: &BTreeMap<Key, &'a DkimKey>) -> Result<Vec<&'a DkimKey>, String> {
    let (ns, name) = key_of(d);
    let names: Vec<String> = if d.spec.dkim.keys.is_empty() {
        if !d.spec.dkim.generate {
            return Err("no DKIM keys listed and generate is false; every message must be signed".into());
        }
        vec![generated_dkim_name(&name)]
    } else {
        d.spec.dkim.keys.clone()
    };
    names
        .iter()
        .map(|n| {
            let k = *keys.get(&(ns.clone(), n.clone())).ok_or_else(|| format!("DkimKey {n:?} not found in namespace {ns}"))?;
            if k.spec.domain != d.spec.domain {
                return Err(format!("DkimKey {n:?} is for domain {:?}, not {:?}", k.spec.domain, d.spec.domain));
            }
            Ok(k)
        })
        .collect()
}

/// The status `render` reports for a DkimKey whose current key (with `selector`) has public key
/// `public`.
pub fn dkim_key_status(key: &DkimKey, public: &str, selector: &str, now: &str) -> DkimKeyStatus {
    let generation = key.metadata.generation.unwrap_or(0);
    let mut st = key.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    st.current_selector = Some(selector.into());
    st.dns_name = Some(format!("{selector}._domainkey.{}.", key.spec.domain));
    st.txt_value = Some(cascade_core::dkim_key::txt_record(key.spec.algorithm, public));
    conditions::set(&mut st.conditions, types::READY, true, reasons::KEY_GENERATED, "private key generated and stored encrypted; publish txtValue at dnsName", generation, now);
    st
}

/// Whether a served domain is Ready, and whether the relays refuse its mail, from its DNS
/// conditions (written by the SendingDomain controller) and the pool's `dnsVerification`.
fn dns_verdict(pool: &RelayPool, d: &SendingDomain, conds: &[conditions::Condition], by: &str) -> (bool, &'static str, String, Option<String>) {
    use cascade_crds::conditions::types::{DKIM_VERIFIED as DKIM, DMARC_VERIFIED as DMARC, RETURN_PATH_VERIFIED as RETURN_PATH, SPF_VERIFIED as SPF};
    let required = [SPF, DKIM, DMARC].into_iter().chain(d.spec.return_path.as_ref().map(|_| RETURN_PATH));
    let failing: Vec<&str> = required.filter(|t| !conditions::is_true(conds, t)).collect();
    if failing.is_empty() {
        return (true, reasons::SERVED, format!("served by {by}; SPF, DKIM and DMARC verified in DNS"), None);
    }
    let list = failing.join(", ");
    if pool.spec.dns_verification == DnsVerification::Warn {
        return (true, reasons::SERVED, format!("served by {by} (dnsVerification: warn); not verified yet: {list}; publish the records in status.records"), None);
    }
    // Short enough for an SMTP reply line; the status has the whole story.
    let refuse = failing.contains(&DKIM).then(|| {
        let why = conds.iter().find(|c| c.type_ == DKIM).map(|c| c.reason.clone()).unwrap_or_else(|| "not checked yet".into());
        format!("its DKIM record is not verified in DNS ({why}); see the SendingDomain's status")
    });
    let sending = if refuse.is_some() { "its mail is refused until DKIM is verified" } else { "its mail is sent" };
    (false, reasons::DNS_NOT_VERIFIED, format!("not verified in DNS: {list}; {sending}; publish the records in status.records"), refuse)
}

fn api_key_state(spec: &ApiKeySpec, now_unix: u64) -> Result<ApiKeyState, String> {
    if spec.revoked {
        return Ok(ApiKeyState::Revoked);
    }
    match &spec.expires_at {
        Some(t) => match cascade_core::time::parse_rfc3339(t) {
            Some(at) if at <= now_unix => Ok(ApiKeyState::Expired),
            Some(_) => Ok(ApiKeyState::Active),
            None => Err(format!("expiresAt {t:?} is not an RFC 3339 time")),
        },
        None => Ok(ApiKeyState::Active),
    }
}

/// An ApiKey's status given its key id and secret hash, and whether relays must refuse it
/// (revoked, expired, or an invalid spec, including `problem` found by the caller).
pub fn api_key_status(a: &ApiKey, key_id: &str, hash: &str, problem: Option<String>, now_unix: u64, now: &str) -> (ApiKeyStatus, bool) {
    let generation = a.metadata.generation.unwrap_or(0);
    let mut st = a.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    let (state, problem) = match api_key_state(&a.spec, now_unix) {
        Ok(s) => (s, problem),
        Err(e) => (ApiKeyState::Revoked, Some(e)),
    };
    let suspension = st.suspension.as_ref().filter(|s| s.generation == generation);
    let state = match suspension {
        Some(_) if state == ApiKeyState::Active => ApiKeyState::Suspended,
        _ => state,
    };
    st.key_id = Some(key_id.to_string());
    st.fingerprint = Some(hash.trim_start_matches("sha256:").chars().take(16).collect());
    st.state = Some(state);
    match &problem {
        Some(p) => conditions::set(&mut st.conditions, types::READY, false, reasons::INVALID_SPEC, p, generation, now),
        None if state == ApiKeyState::Active => {
            conditions::set(&mut st.conditions, types::READY, true, reasons::ACTIVE, &format!("credentials in Secret {}", credentials_secret(&a.name_any())), generation, now)
        }
        None if state == ApiKeyState::Suspended => {
            let s = suspension.expect("Suspended comes from a suspension");
            let msg = format!(
                "suspended since {} after unusual sending ({}: {}); refused by every relay until this ApiKey is edited (for example set spec.anomalies.acknowledged)",
                s.since, s.kind, s.detail
            );
            conditions::set(&mut st.conditions, types::READY, false, reasons::SUSPENDED, &msg, generation, now)
        }
        None => conditions::set(&mut st.conditions, types::READY, false, &format!("{state:?}"), &format!("the key is {state:?} and refused by every relay"), generation, now),
    }
    let refused = problem.is_some() || state != ApiKeyState::Active;
    (st, refused)
}

/// The Secret holding an ApiKey's username and password for its owner.
pub fn credentials_secret(api_key_name: &str) -> String {
    format!("{api_key_name}-credentials")
}

/// Computes the plan for `pool`. `now` is an RFC 3339 time for condition transitions.
/// Whether a claim of a domain is served, and with which DkimKeys: `Err((reason, message))`
/// when the claim is unproven (see [`ownership`]), another proven claim owns the domain, the pool
/// does not serve the namespace, or a named
/// DkimKey is missing.
/// `ranks`: each claim of this pool's place in its namespace's age order, and how many claims
/// that namespace has (for the domain quota).
fn claim<'a>(
    pool: &RelayPool,
    inputs: &Inputs,
    owners: &BTreeMap<String, Key>,
    all_keys: &BTreeMap<Key, &'a DkimKey>,
    ranks: &BTreeMap<Key, (usize, usize)>,
    d: &SendingDomain,
) -> Result<Vec<&'a DkimKey>, (&'static str, String)> {
    let (pool_ns, pool_name) = key_of(pool);
    let k = key_of(d);
    let no_labels = BTreeMap::new();
    let selected = pool.spec.tenants.selects(&k.0, inputs.namespace_labels.get(&k.0).unwrap_or(&no_labels));
    match owners.get(&d.spec.domain) {
        _ if ownership::proof(inputs, d).is_none() => Err((reasons::OWNERSHIP_UNVERIFIED, ownership::unproven_message(d))),
        Some((ons, oname)) if (ons, oname) != (&k.0, &k.1) => {
            Err((reasons::DOMAIN_CONFLICT, format!("domain {} is owned by SendingDomain {ons}/{oname}, proven first; this claim is not served", d.spec.domain)))
        }
        _ if !selected => Err((reasons::NAMESPACE_NOT_SERVED, format!("RelayPool {pool_ns}/{pool_name} does not serve namespace {}", k.0))),
        _ => {
            if let Some(problem) = domain_problem(d) {
                return Err((reasons::INVALID_SPEC, problem));
            }
            let max = pool.spec.limits.tenant_max_domains;
            if ranks.get(&k).is_some_and(|r| r.0 >= max as usize) {
                return Err((reasons::QUOTA_EXCEEDED, quota::message(&k.0, ranks[&k].1, max, "limits.tenantMaxDomains", "SendingDomains on this pool")));
            }
            keys_for(d, all_keys).map_err(|e| (reasons::DKIM_KEY_MISSING, e))
        }
    }
}

/// A lower-case DNS domain of at least two labels (what `bounds::DOMAIN_PATTERN` says).
fn valid_domain_name(d: &str) -> bool {
    let label = |l: &str| (1..=63).contains(&l.len()) && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    d.len() <= 253 && d.split('.').count() >= 2 && d.split('.').all(label)
}

/// What in a SendingDomain the operator refuses before serving it, naming the field (the CRD
/// schema refuses the same at admission where it is current).
fn domain_problem(d: &SendingDomain) -> Option<String> {
    use cascade_crds::v1alpha1::bounds::{MAX_DKIM_KEYS, MAX_SPF_EGRESS};
    let name = d.name_any();
    for (field, value) in [("spec.domain", Some(&d.spec.domain)), ("spec.returnPath", d.spec.return_path.as_ref())] {
        if let Some(v) = value.filter(|v| !valid_domain_name(v)) {
            let shown: String = v.chars().take(64).collect();
            return Some(format!("{field}: {shown:?} is not a lower-case domain name like mail.example.com"));
        }
    }
    if d.spec.dkim.keys.is_empty() && d.spec.dkim.generate && !generated_name_valid(d) {
        return Some(format!("metadata.name: {} characters; at most {MAX_DOMAIN_OBJECT_NAME} so that the generated DkimKey {:?} is a valid name", name.len(), generated_dkim_name(&name)));
    }
    for (field, len, max) in [("spec.dkim.keys", d.spec.dkim.keys.len(), MAX_DKIM_KEYS), ("spec.spf.egress", d.spec.spf.egress.len(), MAX_SPF_EGRESS)] {
        if len > max {
            return Some(format!("{field}: {len} items; at most {max}"));
        }
    }
    None
}

/// What one served domain becomes: its status (records and `Ready`), its DkimKeys' statuses, and
/// its entry in the relay configuration unless a key has no material yet.
struct Served {
    status: SendingDomainStatus,
    dkim_status: Vec<(Key, DkimKeyStatus)>,
    domain: Option<rc::SendingDomain>,
}

fn serve(pool: &RelayPool, d: &SendingDomain, keys: Vec<&DkimKey>, material: &Material, mut st: SendingDomainStatus, now: &str) -> Served {
    let (pool_ns, pool_name) = key_of(pool);
    let gen = d.metadata.generation.unwrap_or(0);
    conditions::remove(&mut st.conditions, types::DOMAIN_CONFLICT);
    let (mut refs, mut recs, mut dkim_status, mut missing) = (Vec::new(), Vec::new(), Vec::new(), None);
    for key in keys {
        let kk = key_of(key);
        let Some(public) = material.dkim_public.get(&kk) else {
            missing = Some(format!("DkimKey {} has no key material yet", kk.1));
            continue;
        };
        let selector = material.dkim_selector.get(&kk).unwrap_or(&key.spec.selector);
        let ks = dkim_key_status(key, public, selector, now);
        let current = vec![(ks.dns_name.clone().unwrap_or_default(), ks.txt_value.clone().unwrap_or_default())];
        dkim_status.push((kk.clone(), ks));
        for (name, value) in material.dkim_records.get(&kk).unwrap_or(&current) {
            recs.push(DnsRecord { name: name.clone(), type_: "TXT".into(), value: value.clone() });
        }
        refs.push(rc::DkimKeyRef { selector: selector.clone(), algorithm: key.spec.algorithm, key_file: dkim_key_file(&kk) });
    }
    if let Some(v) = spf_value(&d.spec.spf) {
        for name in std::iter::once(&d.spec.domain).chain(&d.spec.return_path) {
            recs.push(DnsRecord { name: format!("{name}."), type_: "TXT".into(), value: v.clone() });
        }
    }
    recs.push(DnsRecord { name: format!("_dmarc.{}.", d.spec.domain), type_: "TXT".into(), value: dmarc_value(&d.spec.dmarc) });
    st.records = recs;
    let domain = match missing {
        Some(msg) => {
            conditions::set(&mut st.conditions, types::READY, false, reasons::DKIM_KEY_PENDING, &msg, gen, now);
            None
        }
        None => {
            let (ready, reason, msg, refuse) = dns_verdict(pool, d, &st.conditions, &format!("RelayPool {pool_ns}/{pool_name}"));
            conditions::set(&mut st.conditions, types::READY, ready, reason, &msg, gen, now);
            Some(rc::SendingDomain { name: d.spec.domain.clone(), dkim: refs, refuse, suppressed_reasons: d.spec.suppressed_reasons.clone() })
        }
    };
    Served { status: st, dkim_status, domain }
}

pub fn evaluate(pool: &RelayPool, inputs: &Inputs, material: &Material, now_unix: u64, now: &str) -> Result<Plan, InvalidSpec> {
    let (pool_ns, pool_name) = key_of(pool);
    let effective = effective_dkim_keys(inputs);
    let all_keys: BTreeMap<Key, &DkimKey> = effective.iter().map(|k| (key_of(k), k)).collect();
    let owners = ownership::domain_owners(inputs);
    let mine: Vec<&SendingDomain> = inputs.domains.iter().filter(|d| d.spec.relay_pool.name == pool_name && d.spec.relay_pool.namespace == pool_ns).collect();
    let order = quota::ranks(mine.iter().copied());
    let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
    for (ns, _) in order.keys() {
        *per_ns.entry(ns.as_str()).or_default() += 1;
    }
    let ranks: BTreeMap<Key, (usize, usize)> = order.iter().map(|(k, r)| (k.clone(), (*r, per_ns[k.0.as_str()]))).collect();
    let mut domain_status = BTreeMap::new();
    let mut dkim_status = BTreeMap::new();
    let mut tenants: BTreeMap<String, Vec<rc::SendingDomain>> = BTreeMap::new();
    let mut records = Vec::new();
    for d in inputs.domains.iter().filter(|d| d.spec.relay_pool.name == pool_name && d.spec.relay_pool.namespace == pool_ns) {
        let k = key_of(d);
        let gen = d.metadata.generation.unwrap_or(0);
        let mut st = d.status.clone().unwrap_or_default();
        st.observed_generation = gen;
        match claim(pool, inputs, &owners, &all_keys, &ranks, d) {
            Err((reason, msg)) => {
                if reason == reasons::DOMAIN_CONFLICT {
                    conditions::set(&mut st.conditions, types::DOMAIN_CONFLICT, true, reason, &msg, gen, now);
                } else {
                    conditions::remove(&mut st.conditions, types::DOMAIN_CONFLICT);
                }
                conditions::set(&mut st.conditions, types::READY, false, reason, &msg, gen, now);
                st.records.clear();
            }
            Ok(keys) => {
                let served = serve(pool, d, keys, material, st, now);
                records.extend(served.status.records.iter().map(|r| (r.name.clone(), r.value.clone())));
                dkim_status.extend(served.dkim_status);
                if let Some(domain) = served.domain {
                    tenants.entry(k.0.clone()).or_default().push(domain);
                }
                st = served.status;
            }
        }
        domain_status.insert(k, st);
    }
    let (api_keys, api_key_status) = api_keys(inputs, material, &tenants, pool.spec.limits.tenant_max_api_keys, now_unix, now);
    records.sort();
    let hooks = tenants.keys().map(|ns| (ns.clone(), webhooks::endpoints(ns, &inputs.webhooks, &inputs.secrets).0)).collect();
    let config = config::relay_config(pool, inputs, tenants, hooks, api_keys)?;
    Ok(Plan { config, records, domain_status, dkim_status, api_key_status })
}

mod api_keys;
mod config;
pub mod ownership;
pub mod quota;
pub mod webhooks;

use api_keys::api_keys;
pub use api_keys::{api_key_problem, quota_exceeded, refused_status};

#[cfg(test)]
mod tests;
