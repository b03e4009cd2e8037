//! The RelayPool controller's decisions: what the world it gathered should become. Pure, apart
//! from drawing fresh keys (the pool's keys when absent or due, a self-signed certificate when
//! none is named).

use super::gather::World;
use crate::bundle::{self, Layout, Parts};
use crate::error::ReconcileError;
use crate::events::Note;
use crate::render::evaluate::{self as core, key_of, Material, Plan};
use crate::secrets::SecretData;
use crate::spool_key::Change;
use crate::workloads::Workloads;
use cascade_core::seal::KeyRing;
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::v1alpha1::*;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{AUDIT_KEY, SEALING_KEY, SPOOL_KEY};

/// What the pool should be, for [`super::apply`].
pub struct Desired {
    /// Live SendingDomains of this pool that need the pool's finalizer.
    pub finalize: Vec<SendingDomain>,
    /// DkimKeys SendingDomains ask to be generated, owned by their domain.
    pub generated: Vec<(SendingDomain, DkimKey)>,
    /// Deleted SendingDomains this pool retires, released once the status records them.
    pub deleting: Vec<SendingDomain>,
    pub served: Option<Box<Served>>,
    /// The pool's status (without the workload counts, which apply reads after applying).
    pub status: RelayPoolStatus,
    pub requeue: Duration,
}

/// A Secret's new data, and the Event to publish once it is written.
pub type Write = (SecretData, Option<Note>);

/// What a valid pool serves.
pub struct Served {
    /// `<pool>-keys` when it must be written.
    pub keys: Option<Write>,
    /// `<pool>-tls` when it must be created.
    pub tls: Option<SecretData>,
    /// `<pool>-admin-ca` when it must be written.
    pub admin: Option<SecretData>,
    /// The bundle when it or a shard differs from the published one.
    pub bundle: Option<BundleWrite>,
    pub domain_statuses: Vec<(SendingDomain, SendingDomainStatus)>,
    pub suspensions: Vec<(ApiKey, Option<ApiKeySuspension>)>,
    /// WebhookEndpoint statuses with the relays' reports folded in, where they changed.
    pub webhook_statuses: Vec<(cascade_crds::v1alpha1::WebhookEndpoint, cascade_crds::v1alpha1::WebhookEndpointStatus)>,
    /// With `externalDns`: each served domain's DNSEndpoint.
    pub endpoints: Option<Vec<(SendingDomain, serde_json::Value)>>,
    pub workloads: Workloads,
    /// What each relay that answered runs: `Ready` waits for the rendered configuration.
    pub configs: Vec<super::readiness::ConfigReport>,
    /// ApiKeys whose last use to record: (key, unix time, network).
    pub usage: Vec<(ApiKey, u64, String)>,
}

/// A new version of the bundle: its entries, the shard Secrets to write before it (an emptied
/// one is no longer listed), and its Event.
pub struct BundleWrite {
    pub files: SecretData,
    pub shards: Vec<(String, SecretData)>,
    pub note: Note,
    /// The generation of every object it was rendered from (`Kind namespace/name`), for the
    /// audit trail's `config.generation` record.
    pub sources: std::collections::BTreeMap<String, i64>,
}

/// `Kind namespace/name` → generation of the pool and of every object its inputs hold.
fn sources(pool: &RelayPool, inputs: &crate::render::evaluate::Inputs) -> std::collections::BTreeMap<String, i64> {
    fn of<K: kube::Resource<DynamicType = ()>>(o: &K) -> (String, i64) {
        let m = o.meta();
        (format!("{} {}/{}", K::kind(&()), m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default()), m.generation.unwrap_or(0))
    }
    let mut out: std::collections::BTreeMap<String, i64> = [of(pool)].into();
    out.extend(inputs.domains.iter().map(of));
    out.extend(inputs.dkim_keys.iter().map(of));
    out.extend(inputs.api_keys.iter().map(of));
    out.extend(inputs.webhooks.iter().map(of));
    out
}

fn new_keys() -> Result<SecretData, ReconcileError> {
    let line = |id: &str| KeyRing::generate_line(id).map(String::into_bytes).map_err(|source| ReconcileError::Seal { what: format!("a new {id} key"), source });
    Ok([(SPOOL_KEY.to_string(), line("s1")?), (SEALING_KEY.to_string(), line("b1")?), (AUDIT_KEY.to_string(), cascade_core::audit::new_key_file()?.into_bytes())].into())
}

/// Public keys, private keys (for the bundle) and API key hashes from the Secrets the DkimKey and
/// ApiKey controllers maintain. Objects whose Secret is not there yet are simply absent.
fn material(world: &World, master: &KeyRing) -> (Material, BTreeMap<String, Vec<u8>>) {
    let mut m = Material::default();
    let mut private = BTreeMap::new();
    for k in &world.inputs.dkim_keys {
        let key = key_of(k);
        // The generation the DkimKey controller says the relays sign with now.
        let gens = k.status.as_ref().map(|s| s.generations.as_slice()).unwrap_or_default();
        let Some(current) = crate::dkim_lifecycle::signing(gens) else { continue };
        let Some(data) = world.dkim_secrets.get(&(key.0.clone(), crate::dkim_key::secret_name(&key.1))) else { continue };
        let Some(pem) = crate::dkim_key::private_key(master, data, &key.0, &key.1, &current.selector) else { continue };
        let Ok(public) = cascade_core::dkim_key::public_key_of(k.spec.algorithm, &pem) else { continue };
        m.dkim_public.insert(key.clone(), public);
        m.dkim_selector.insert(key.clone(), current.selector.clone());
        let published = gens.iter().filter(|g| g.phase != KeyPhase::Retired);
        m.dkim_records.insert(key.clone(), published.map(|g| (g.dns_name.clone(), g.txt_value.clone())).collect());
        private.insert(core::dkim_key_file(&key), pem);
    }
    // The webhook endpoints' signing secrets (sealed into the shards like DKIM keys).
    let namespaces: std::collections::BTreeSet<String> = world.inputs.webhooks.iter().filter_map(|e| e.namespace()).collect();
    for ns in namespaces {
        private.extend(crate::render::evaluate::webhooks::endpoints(&ns, &world.inputs.webhooks, &world.inputs.secrets).1);
    }
    for a in &world.inputs.api_keys {
        let key = key_of(a);
        let Some(secret) = world.credentials.get(&(key.0.clone(), core::credentials_secret(&key.1))) else { continue };
        match crate::credentials::verify(master, a, secret) {
            Ok(id_and_hash) => drop(m.api_keys.insert(key, id_and_hash)),
            Err(why) => drop(m.refused_credentials.insert(key, why)),
        }
    }
    (m, private)
}

/// The DkimKeys this pool's SendingDomains ask the operator to generate and that do not exist.
fn generated_keys(pool: &RelayPool, world: &World) -> Vec<(SendingDomain, DkimKey)> {
    let (pool_ns, pool_name) = key_of(pool);
    let mut out = Vec::new();
    for d in &world.inputs.domains {
        let (ns, name) = key_of(d);
        let generated = core::generated_dkim_name(&name);
        // A name too long for its derived names is refused on the domain (InvalidSpec), not here.
        let wanted = d.spec.relay_pool.name == pool_name && d.spec.relay_pool.namespace == pool_ns && d.spec.dkim.keys.is_empty() && d.spec.dkim.generate && core::generated_name_valid(d);
        if wanted && !world.inputs.dkim_keys.iter().any(|k| key_of(k) == (ns.clone(), generated.clone())) {
            let mut key = core::generated_dkim_key(d);
            key.metadata.owner_references = d.controller_owner_ref(&()).map(|o| vec![o]);
            out.push((d.clone(), key));
        }
    }
    out
}

/// The pool's keys: created when absent, rotated when due, the audit key added to pools that
/// predate it. `None` when nothing changes.
fn keys(pool: &RelayPool, current: Option<&SecretData>, now_unix: u64) -> Result<(SecretData, Option<Write>), ReconcileError> {
    let mut keys = match current {
        Some(k) => k.clone(),
        None => new_keys()?,
    };
    let mut write = current.is_none().then(|| (keys.clone(), None));
    let every: cascade_crds::HumanDuration = pool.spec.spool.rotate_key_every.parse().map_err(|reason| ReconcileError::Spec { field: "spool.rotateKeyEvery", reason })?;
    let request = pool.annotations().get(crate::spool_key::ROTATE_ANNOTATION).cloned();
    let rotated = crate::spool_key::rotate(&keys, now_unix, every.0, request.as_deref()).map_err(|source| ReconcileError::Seal { what: "a new spool key".into(), source })?;
    if let Some((next, change)) = rotated {
        let note = match change {
            Change::Rotated { key, requested } => {
                let why = if requested { "as the annotation cascade-mail.com/rotate-spool-key asked" } else { "on schedule" };
                Some(Note::normal(reasons::SPOOL_KEY_ROTATED, "RotateSpoolKey", format!("spool key {key} now seals new spool files ({why}); the older keys still open theirs")))
            }
            Change::Tracked => None,
        };
        keys = next;
        write = Some((keys.clone(), note));
    }
    if !keys.contains_key(AUDIT_KEY) {
        // Pools created before relays kept an audit trail: add its key, keep the others.
        keys.insert(AUDIT_KEY.to_string(), cascade_core::audit::new_key_file()?.into_bytes());
        let note = write.and_then(|(_, n)| n);
        write = Some((keys.clone(), note));
    }
    Ok((keys, write))
}

/// Where the pool's workloads come from: the relay image and the operator's namespace.
pub struct Site<'a> {
    pub relay_image: &'a str,
    pub operator_namespace: &'a str,
}

pub fn desired(pool: &RelayPool, mut world: World, master: &KeyRing, site: &Site<'_>, now_unix: u64) -> Result<Desired, ReconcileError> {
    let (ns, name) = key_of(pool);
    let now = cascade_core::time::rfc3339_utc(now_unix);
    let generation = pool.metadata.generation.unwrap_or(0);
    let finalize: Vec<_> = crate::domain_cleanup::needing_finalizer(pool, &world.inputs.domains).into_iter().cloned().collect();
    let deleting = crate::domain_cleanup::retiring(pool, &world.deleting);
    let previous = pool.status.as_ref().map(|s| s.retired_domains.clone()).unwrap_or_default();
    world.inputs.retired = core::retire(&previous, &deleting, &world.inputs.domains, now_unix, &now);
    let generated = generated_keys(pool, &world);
    world.inputs.dkim_keys.extend(generated.iter().map(|(_, k)| k.clone()));
    let (material, private) = material(&world, master);
    let mut status = pool.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.retired_domains = world.inputs.retired.clone();
    let plan = match core::evaluate(pool, &world.inputs, &material, now_unix, &now) {
        Ok(p) => p,
        Err(e) => {
            conditions::set(&mut status.conditions, types::READY, false, reasons::INVALID_SPEC, &e.to_string(), generation, &now);
            // Deletions recorded in the status reach the bundle once the spec is valid again.
            return Ok(Desired { finalize, generated, deleting, served: None, status, requeue: Duration::from_secs(300) });
        }
    };
    let (keys, keys_write) = keys(pool, world.keys.as_ref(), now_unix)?;
    let sealing = keys.get(SEALING_KEY).and_then(|b| KeyRing::parse(&String::from_utf8_lossy(b)).ok());
    let sealing = sealing.ok_or_else(|| ReconcileError::Secret { secret: crate::labels::keys_secret(&name), reason: format!("no valid {SEALING_KEY}") })?;
    let (tls, tls_create) = match (&pool.spec.tls.secret_name, world.tls.take()) {
        (Some(_), tls) => (tls.unwrap_or_default(), None),
        (None, Some(tls)) => (tls, None),
        (None, None) => {
            let (cert, key) = cascade_core::certificate::self_signed(&[pool.spec.hostname.as_str()])?;
            let tls: SecretData = [("tls.crt".to_string(), cert.into_bytes()), ("tls.key".to_string(), key.into_bytes())].into();
            (tls.clone(), Some(tls))
        }
    };
    let (authority, admin_write) = crate::admin_authority::desired(world.admin.as_ref(), master, &ns, &name, now_unix)?;
    let admin = crate::admin_authority::relay_files(&authority, master, &ns, &name);
    let smarthost = match pool.spec.delivery.smarthost.as_ref().and_then(|s| s.credentials_secret.as_ref()) {
        // evaluate() accepted this Secret, so its files are there.
        Some(secret) => core::smarthost_files(secret, world.inputs.secrets.get(&(ns.clone(), secret.clone()))).map_err(|e| ReconcileError::Secret { secret: secret.clone(), reason: e.reason })?.1,
        None => SecretData::new(),
    };
    let published: SecretData = world.shards.values().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    let bundle_name = crate::labels::bundle_secret(&name);
    let layout = Layout::Pod { bundle: &bundle_name, sealing: &sealing, published: Some(&published) };
    let built = bundle::build(&plan.config, Parts { tls: &tls, admin, smarthost, dkim_private: &private }, layout)
        .map_err(|e| ReconcileError::Secret { secret: crate::labels::bundle_secret(&name), reason: e.to_string() })?;
    // Shards that changed, shards no longer listed (emptied), and the bundle when any of it changed.
    let mut shards: Vec<(String, SecretData)> = built.shards.iter().filter(|(n, d)| world.shards.get(*n) != Some(*d)).map(|(n, d)| (n.clone(), d.clone())).collect();
    shards.extend(world.shards.iter().filter(|(n, d)| !built.shards.contains_key(*n) && !d.is_empty()).map(|(n, _)| (n.clone(), SecretData::new())));
    let bundle = (world.bundle.as_ref() != Some(&built.files) || !shards.is_empty()).then(|| {
        let domains: usize = plan.config.tenants.iter().map(|t| t.domains.len()).sum();
        let note = format!("Secret {} updated: {} tenant(s), {domains} domain(s), {} API key(s)", crate::labels::bundle_secret(&name), plan.config.tenants.len(), plan.config.api_keys.len());
        BundleWrite { files: built.files.clone(), shards, note: Note::normal(reasons::CONFIG_UPDATED, "RenderConfig", note), sources: sources(pool, &world.inputs) }
    });
    let config_hash = crate::apply::short_hash(built.yaml.as_bytes());
    let domain_statuses = domain_statuses(&world, &plan);
    let key_ids: Vec<_> = world.inputs.api_keys.iter().filter_map(|a| material.api_keys.get(&key_of(a)).map(|(id, _)| (a, id.as_str()))).collect();
    let suspensions = crate::suspensions::desired(&key_ids, &world.relays.suspensions).into_iter().map(|(k, s)| (k.clone(), s)).collect();
    let usage = crate::key_usage::desired(&key_ids, &world.relays.usage).into_iter().map(|(k, t, n)| (k.clone(), t, n)).collect();
    let endpoints = pool.spec.external_dns.then(|| {
        // Served claims only, and only in the zones this pool assigns to the claim's namespace.
        let assigned = |d: &SendingDomain| crate::render::evaluate::ownership::assigned(pool, &key_of(d).0, &d.spec.domain);
        let served = world.inputs.domains.iter().filter(|d| assigned(d)).filter_map(|d| plan.domain_status.get(&key_of(d)).filter(|s| !s.records.is_empty()).map(|s| (d, s)));
        served.map(|(d, s)| (d.clone(), crate::external_dns::endpoint(d, &s.records))).collect()
    });
    status.config_hash = Some(config_hash.clone());
    status.audit_anchors = crate::relay_admin::merge_anchors(&status.audit_anchors, world.relays.anchors.clone());
    if let Some(queues) = &world.relays.queues {
        status.queues = crate::relay_admin::fold_queues(queues);
    }
    // Material other controllers are still creating shows up as watch events, but an event can
    // slip past before this pool is in the mappers' cache: look again soon. Otherwise once a
    // minute, which bounds how long a suspension one relay imposed takes to reach the others
    // (an unchanged world writes nothing).
    let waiting = world.inputs.api_keys.iter().map(key_of).any(|k| !material.api_keys.contains_key(&k) && !material.refused_credentials.contains_key(&k))
        || plan.domain_status.values().any(|d| d.conditions.iter().any(|c| c.reason == reasons::DKIM_KEY_PENDING));
    let shard_names: Vec<String> = built.shards.keys().cloned().collect();
    let workloads = crate::workloads::all(pool, site.relay_image, &config_hash, site.operator_namespace, &shard_names);
    let webhook_statuses = crate::render::evaluate::webhooks::fold(&world.inputs.webhooks, &world.relays.webhooks);
    let configs = std::mem::take(&mut world.relays.configs);
    let served = Served { keys: keys_write, tls: tls_create, admin: admin_write.then_some(authority), bundle, domain_statuses, suspensions, webhook_statuses, endpoints, workloads, configs, usage };
    Ok(Desired { finalize, generated, deleting, served: Some(Box::new(served)), status, requeue: Duration::from_secs(if waiting { 2 } else { 60 }) })
}

/// The pool's part of each SendingDomain's status, with the relays' DMARC summary for domains
/// it serves.
fn domain_statuses(world: &World, plan: &Plan) -> Vec<(SendingDomain, SendingDomainStatus)> {
    let mut out = Vec::new();
    for d in &world.inputs.domains {
        let Some(st) = plan.domain_status.get(&key_of(d)) else { continue };
        let mut st = st.clone();
        let served = st.conditions.iter().all(|c| c.type_ != types::DOMAIN_CONFLICT || c.status != conditions::TRUE);
        if let Some(summary) = world.relays.dmarc.get(&d.spec.domain).filter(|_| served) {
            st.dmarc_reports = Some(summary.clone());
        }
        out.push((d.clone(), st));
    }
    out
}
