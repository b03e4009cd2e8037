//! The RelayPool controller: the whole world a pool serves goes through the same pure
//! [`evaluate`] as `render`.
//!
//! gather: SendingDomains, DkimKeys, ApiKeys, namespace labels, and the key material in their
//! Secrets → evaluate: the relay configuration, DNS records and SendingDomain statuses → apply:
//! the DkimKeys SendingDomains ask to be generated, the pool's spool key and (if no certificate
//! Secret is named) a self-signed certificate, created once; the config bundle Secret
//! `<pool>-relay-config` (everything `cascade-relay serve` needs, `relay.yaml` at its root); the
//! SendingDomain and RelayPool statuses. Nothing is written when nothing changed. Any change of a
//! SendingDomain, DkimKey or ApiKey re-evaluates every pool, so a revoked key leaves the bundle
//! within one reconcile.

use crate::controller::{apply_status, ReconcileError};
use crate::events::Note;
use crate::render::evaluate::{self, key_of, Inputs, Key, Material};
use crate::secrets::{SecretData, FIELD_MANAGER};
use crate::Context;
use cascade_crds::conditions::{self, types};
use cascade_crds::v1alpha1::*;
use cascade_relay::policy::auth::{format_secret_hash, hash_secret};
use cascade_relay::spool::format::KeyRing;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The pool's part of a SendingDomain status: the records, `Ready` and `DomainConflict` (the
/// DNS checks are the SendingDomain controller's).
const DOMAIN_WRITER: crate::controller::Writer = crate::controller::Writer {
    manager: crate::secrets::FIELD_MANAGER,
    fields: Some(&["observedGeneration", "records", "conditions", "dmarcReports"]),
    conditions: Some(&[types::READY, types::DOMAIN_CONFLICT]),
};

pub fn bundle_secret(pool: &str) -> String {
    format!("{pool}-relay-config")
}

/// The pool's own keys: the spool key and the key that seals the DKIM keys in the bundle. Mounted
/// into the relay pods, never part of the bundle.
pub fn keys_secret(pool: &str) -> String {
    format!("{pool}-keys")
}

pub const SPOOL_KEY: &str = "spool.key";
pub const SEALING_KEY: &str = "sealing.key";
/// The relays' audit HMAC key (base64 of 32 random bytes), in `<pool>-keys`.
pub const AUDIT_KEY: &str = crate::render::evaluate::AUDIT_KEY_FILE;

/// A fresh audit key file: base64 of 32 random bytes.
pub fn new_audit_key() -> Result<String, String> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    use base64::Engine;
    let mut key = [0u8; 32];
    SystemRandom::new().fill(&mut key).map_err(|_| "no randomness for the audit key".to_string())?;
    Ok(format!("{}\n", base64::engine::general_purpose::STANDARD.encode(key)))
}

fn labels(pool: &str) -> BTreeMap<String, String> {
    [("app.kubernetes.io/managed-by".to_string(), "cascade-operator".to_string()), ("cascade-mail.com/relay-pool".to_string(), pool.to_string())].into()
}

async fn gather(ctx: &Context, pool: &RelayPool) -> Result<Inputs, kube::Error> {
    let lp = ListParams::default();
    let mut inputs = Inputs {
        pools: vec![pool.clone()],
        domains: Api::<SendingDomain>::all(ctx.client.clone()).list(&lp).await?.items,
        dkim_keys: Api::<DkimKey>::all(ctx.client.clone()).list(&lp).await?.items,
        api_keys: Api::<ApiKey>::all(ctx.client.clone()).list(&lp).await?.items,
        namespace_labels: BTreeMap::new(),
        secrets: BTreeMap::new(),
        retired: vec![],
    };
    let (ns, _) = key_of(pool);
    if let Some(secret) = pool.spec.delivery.smarthost.as_ref().and_then(|s| s.credentials_secret.clone()) {
        if let Some(data) = ctx.secrets.get(&ns, &secret).await? {
            inputs.secrets.insert((ns, secret), data);
        }
    }
    if !pool.spec.tenants.match_labels.is_empty() {
        let namespaces: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ctx.namespaces);
        for ns in namespaces.list(&lp).await?.items {
            inputs.namespace_labels.insert(ns.name_any(), ns.metadata.labels.unwrap_or_default());
        }
    }
    Ok(inputs)
}

/// Creates the DkimKeys that SendingDomains of this pool ask the operator to generate (owned by
/// their SendingDomain), and adds them to the inputs.
async fn ensure_generated_keys(ctx: &Context, pool: &RelayPool, inputs: &mut Inputs) -> Result<(), kube::Error> {
    let (pool_ns, pool_name) = key_of(pool);
    for d in &inputs.domains {
        let (ns, name) = key_of(d);
        let generated = evaluate::generated_dkim_name(&name);
        let wanted = d.spec.relay_pool.name == pool_name && d.spec.relay_pool.namespace == pool_ns && d.spec.dkim.keys.is_empty() && d.spec.dkim.generate;
        if !wanted || inputs.dkim_keys.iter().any(|k| key_of(k) == (ns.clone(), generated.clone())) {
            continue;
        }
        let mut key = evaluate::generated_dkim_key(d);
        key.metadata.owner_references = d.controller_owner_ref(&()).map(|o| vec![o]);
        let api: Api<DkimKey> = Api::namespaced(ctx.client.clone(), &ns);
        let applied = api.patch(&generated, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&key)).await?;
        tracing::info!(namespace = %ns, dkim_key = %generated, "DkimKey created for SendingDomain {name}");
        ctx.events.publish(&d.object_ref(&()), &Note::normal("DkimKeyCreated", "CreateDkimKey", format!("DkimKey {generated} created for this domain"))).await;
        inputs.dkim_keys.push(applied);
    }
    Ok(())
}

/// Public keys, private keys (for the bundle) and API key hashes from the Secrets the DkimKey and
/// ApiKey controllers maintain. Objects whose Secret is not there yet are simply absent.
async fn material(ctx: &Context, inputs: &Inputs) -> Result<(Material, BTreeMap<Key, Vec<u8>>), ReconcileError> {
    let mut m = Material::default();
    let mut private = BTreeMap::new();
    let dkim_secrets = ctx.secrets.list(crate::dkim_key::SECRET_LABEL).await?;
    let credentials = ctx.secrets.list(crate::api_key::SECRET_LABEL).await?;
    for k in &inputs.dkim_keys {
        let key = key_of(k);
        // The generation the DkimKey controller says the relays sign with now.
        let gens = k.status.as_ref().map(|s| s.generations.as_slice()).unwrap_or_default();
        let Some(current) = crate::dkim_lifecycle::signing(gens) else { continue };
        let Some(data) = dkim_secrets.get(&(key.0.clone(), crate::dkim_key::secret_name(&key.1))) else { continue };
        let Some(pem) = crate::dkim_key::private_key(ctx, data, &key.0, &key.1, &current.selector) else { continue };
        let Ok(public) = cascade_relay::dkim::public_key_of(k.spec.algorithm, &pem) else { continue };
        m.dkim_public.insert(key.clone(), public);
        m.dkim_selector.insert(key.clone(), current.selector.clone());
        let published = gens.iter().filter(|g| g.phase != cascade_crds::v1alpha1::KeyPhase::Retired);
        m.dkim_records.insert(key.clone(), published.map(|g| (g.dns_name.clone(), g.txt_value.clone())).collect());
        private.insert(key, pem);
    }
    for a in &inputs.api_keys {
        let key = key_of(a);
        let Some(data) = credentials.get(&(key.0.clone(), evaluate::credentials_secret(&key.1))) else { continue };
        if let (Some(user), Some(pass)) = (data.get("username"), data.get("password")) {
            let hash = format_secret_hash(&hash_secret(&String::from_utf8_lossy(pass)));
            m.api_keys.insert(key, (String::from_utf8_lossy(user).into_owned(), hash));
        }
    }
    Ok((m, private))
}

/// A Secret's data, created once with `make` when absent.
async fn once(ctx: &Context, ns: &str, name: &str, pool: &RelayPool, make: impl FnOnce() -> Result<SecretData, String>) -> Result<SecretData, ReconcileError> {
    if let Some(d) = ctx.secrets.get(ns, name).await? {
        return Ok(d);
    }
    let data = make().map_err(ReconcileError::Key)?;
    ctx.secrets.apply(ns, name, &data, labels(&pool.name_any()), pool.controller_owner_ref(&())).await?;
    Ok(data)
}

pub async fn reconcile(pool: Arc<RelayPool>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("RelayPool");
    let (ns, name) = key_of(&*pool);
    let mut inputs = gather(&ctx, &pool).await?;
    let deleting = crate::domain_cleanup::split(&ctx, &pool, &mut inputs).await?;
    let now_unix = cascade_relay::time::now_unix();
    let now = cascade_relay::time::rfc3339_utc(now_unix);
    let previous = pool.status.as_ref().map(|s| s.retired_domains.clone()).unwrap_or_default();
    inputs.retired = evaluate::retire(&previous, &deleting, &inputs.domains, now_unix, &now);
    ensure_generated_keys(&ctx, &pool, &mut inputs).await?;
    ctx.metrics.managed.with_label_values(&["SendingDomain"]).set(inputs.domains.len() as i64);
    let (material, private) = material(&ctx, &inputs).await?;
    let plan = match evaluate::evaluate(&pool, &inputs, &material, now_unix, &now) {
        Ok(p) => p,
        Err(e) => {
            let mut st = pool.status.clone().unwrap_or_default();
            st.observed_generation = pool.metadata.generation.unwrap_or(0);
            conditions::set(&mut st.conditions, types::READY, false, "InvalidSpec", &e, st.observed_generation, &now);
            // Deletions recorded in the status reach the bundle once the spec is valid again.
            st.retired_domains = inputs.retired.clone();
            apply_status(&ctx, &crate::controller::WHOLE, &*pool, "RelayPool", pool.status.as_ref(), &st).await?;
            crate::domain_cleanup::release(&ctx, &deleting).await?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    };

    let mut keys = once(&ctx, &ns, &keys_secret(&name), &pool, || {
        let line = |id: &str| KeyRing::generate_line(id).map(String::into_bytes).map_err(|e| e.to_string());
        Ok([(SPOOL_KEY.to_string(), line("s1")?), (SEALING_KEY.to_string(), line("b1")?), (AUDIT_KEY.to_string(), new_audit_key()?.into_bytes())].into())
    })
    .await?;
    let every: cascade_crds::HumanDuration = pool.spec.spool.rotate_key_every.parse().map_err(|e| ReconcileError::Input(format!("spool.rotateKeyEvery: {e}")))?;
    let request = pool.annotations().get(crate::spool_key::ROTATE_ANNOTATION).cloned();
    if let Some((next, change)) = crate::spool_key::rotate(&keys, now_unix, every.0, request.as_deref()).map_err(ReconcileError::Key)? {
        ctx.secrets.apply(&ns, &keys_secret(&name), &next, labels(&name), pool.controller_owner_ref(&())).await?;
        if let crate::spool_key::Change::Rotated { key, requested } = change {
            let why = if requested { "as the annotation cascade-mail.com/rotate-spool-key asked" } else { "on schedule" };
            let note = format!("spool key {key} now seals new spool files ({why}); the older keys still open theirs");
            ctx.events.publish(&pool.object_ref(&()), &Note::normal("SpoolKeyRotated", "RotateSpoolKey", note)).await;
        }
        keys = next;
    }
    if !keys.contains_key(AUDIT_KEY) {
        // Pools created before relays kept an audit trail: add its key, keep the others.
        keys.insert(AUDIT_KEY.to_string(), new_audit_key().map_err(ReconcileError::Key)?.into_bytes());
        ctx.secrets.apply(&ns, &keys_secret(&name), &keys, labels(&name), pool.controller_owner_ref(&())).await?;
    }
    let sealing = keys.get(SEALING_KEY).and_then(|b| KeyRing::parse(&String::from_utf8_lossy(b)).ok());
    let sealing = sealing.ok_or_else(|| ReconcileError::Key(format!("Secret {} has no valid {SEALING_KEY}", keys_secret(&name))))?;
    let tls = match &pool.spec.tls.secret_name {
        Some(secret) => ctx.secrets.get(&ns, secret).await?.unwrap_or_default(),
        None => {
            once(&ctx, &ns, &format!("{name}-tls"), &pool, || {
                let (cert, key) = cascade_relay::tls::self_signed(&[pool.spec.hostname.as_str()])?;
                Ok([("tls.crt".to_string(), cert.into_bytes()), ("tls.key".to_string(), key.into_bytes())].into())
            })
            .await?
        }
    };
    // In the pod: the spool on its volume; the spool and sealing keys mounted from `<pool>-keys`
    // (which the relay's account cannot read through the API); DKIM keys sealed in the bundle.
    let mut config = plan.config.clone();
    config.spool.dir = crate::workloads::SPOOL_DIR.into();
    config.spool.key_file = format!("{}/{SPOOL_KEY}", crate::workloads::KEYS_DIR);
    config.sealing_key_file = Some(format!("{}/{SEALING_KEY}", crate::workloads::KEYS_DIR));
    // The audit trail on the spool volume (the pod's only writable path), its key beside the others.
    if let Some(audit) = config.audit.as_mut() {
        audit.dir = format!("{}/audit", crate::workloads::SPOOL_DIR);
        audit.key_file = format!("{}/{AUDIT_KEY}", crate::workloads::KEYS_DIR);
    }
    let mut sealed_files = BTreeMap::new();
    for t in &mut config.tenants {
        for d in &mut t.domains {
            for k in &mut d.dkim {
                let Some((_, pem)) = private.iter().find(|(kk, _)| evaluate::dkim_key_file(kk) == k.key_file) else { continue };
                k.key_file = format!("{}.sealed", k.key_file);
                let sealed = cascade_relay::spool::format::seal_blob(&sealing, &k.key_file, pem).map_err(|e| ReconcileError::Key(e.to_string()))?;
                sealed_files.insert(k.key_file.clone(), sealed);
            }
        }
    }
    let yaml = serde_saphyr::to_string(&config).map_err(|e| ReconcileError::Key(e.to_string()))?;
    let mut bundle: SecretData = BTreeMap::new();
    bundle.insert("relay.yaml".into(), yaml.clone().into_bytes());
    for file in ["tls.crt", "tls.key"] {
        bundle.insert(file.into(), tls.get(file).cloned().unwrap_or_default());
    }

    if let Some(secret) = pool.spec.delivery.smarthost.as_ref().and_then(|s| s.credentials_secret.as_ref()) {
        // evaluate() accepted this Secret, so its files are there.
        let (_, files) = evaluate::smarthost_files(secret, inputs.secrets.get(&(ns.clone(), secret.clone()))).map_err(ReconcileError::Input)?;
        bundle.extend(files);
    }
    // Sealing is randomized: keep the sealed files already published while their keys are the same.
    let current = ctx.secrets.get(&ns, &bundle_secret(&name)).await?;
    for (file, sealed) in sealed_files {
        let published = current.as_ref().and_then(|c| c.get(&file)).filter(|old| {
            let now = cascade_relay::spool::format::open_blob(&sealing, &file, &sealed).ok();
            now.is_some() && cascade_relay::spool::format::open_blob(&sealing, &file, old).ok() == now
        });
        bundle.insert(file, published.cloned().unwrap_or(sealed));
    }
    if current.as_ref() != Some(&bundle) {
        ctx.secrets.apply(&ns, &bundle_secret(&name), &bundle, labels(&name), pool.controller_owner_ref(&())).await?;
        tracing::info!(namespace = %ns, relay_pool = %name, api_keys = plan.config.api_keys.len(), "relay configuration bundle updated");
        let domains: usize = plan.config.tenants.iter().map(|t| t.domains.len()).sum();
        let note = format!("Secret {} updated: {} tenant(s), {domains} domain(s), {} API key(s)", bundle_secret(&name), plan.config.tenants.len(), plan.config.api_keys.len());
        ctx.events.publish(&pool.object_ref(&()), &Note::normal("ConfigUpdated", "RenderConfig", note)).await;
    }

    let relays = relay_admin_addrs(&ctx, &pool).await;
    let reports = dmarc_reports(&relays).await;
    let anchors = futures::future::join_all(relays.iter().copied().map(crate::relay_admin::audit_anchor)).await;
    let keys: Vec<_> = inputs.api_keys.iter().filter_map(|a| material.api_keys.get(&key_of(a)).map(|(id, _)| (a, id.as_str()))).collect();
    crate::suspensions::apply(&ctx, &relays, &keys).await?;
    for d in &inputs.domains {
        if let Some(st) = plan.domain_status.get(&key_of(d)) {
            let mut st = st.clone();
            let served = st.conditions.iter().all(|c| c.type_ != types::DOMAIN_CONFLICT || c.status != conditions::TRUE);
            if let Some(summary) = reports.get(&d.spec.domain).filter(|_| served) {
                st.dmarc_reports = Some(summary.clone());
            }
            apply_status(&ctx, &DOMAIN_WRITER, d, "SendingDomain", d.status.as_ref(), &st).await?;
        }
    }
    let config_hash = short_hash(yaml.as_bytes());
    let (ready_replicas, desired, running) = apply_workloads(&ctx, &pool, &config_hash).await?;
    crate::spool_drain::apply(&ctx, &pool, desired, running).await?;
    let mut st = pool.status.clone().unwrap_or_default();
    if pool.spec.external_dns {
        let endpoints: Vec<_> =
            inputs.domains.iter().filter_map(|d| plan.domain_status.get(&key_of(d)).filter(|s| !s.records.is_empty()).map(|s| (d.clone(), crate::external_dns::endpoint(d, &s.records)))).collect();
        let (ok, reason, msg) = match crate::external_dns::apply(&ctx, &endpoints).await? {
            true => (true, "Published", format!("{} DNSEndpoint(s) applied for external-dns", endpoints.len())),
            false => (false, "CRDNotInstalled", "externalDns is on but the DNSEndpoint CRD (externaldns.k8s.io) is not installed; records are only in the SendingDomain statuses".to_string()),
        };
        conditions::set(&mut st.conditions, "ExternalDNS", ok, reason, &msg, pool.metadata.generation.unwrap_or(0), &now);
    } else {
        conditions::remove(&mut st.conditions, "ExternalDNS");
    }
    st.observed_generation = pool.metadata.generation.unwrap_or(0);
    st.config_hash = Some(config_hash);
    st.ready_replicas = ready_replicas;
    st.retired_domains = inputs.retired.clone();
    st.audit_anchors = crate::relay_admin::merge_anchors(&st.audit_anchors, anchors.into_iter().flatten().collect());
    let msg = format!("configuration rendered into Secret {}", bundle_secret(&name));
    conditions::set(&mut st.conditions, types::READY, true, "ConfigRendered", &msg, st.observed_generation, &now);
    apply_status(&ctx, &crate::controller::WHOLE, &*pool, "RelayPool", pool.status.as_ref(), &st).await?;
    // Recorded in the bundle and the status: now the deleted domains may go.
    for d in &deleting {
        let note = format!("SendingDomain {}/{} ({}) deleted: its queued mail is purged", d.namespace().unwrap_or_default(), d.name_any(), d.spec.domain);
        ctx.events.publish(&pool.object_ref(&()), &Note::normal("DomainRetired", "RetireDomain", note)).await;
    }
    crate::domain_cleanup::release(&ctx, &deleting).await?;
    // Material other controllers are still creating shows up as watch events, but an event can
    // slip past before this pool is in the mappers' cache: look again soon. Otherwise once a
    // minute, which bounds how long a suspension one relay imposed takes to reach the others
    // (an unchanged world writes nothing).
    let waiting = inputs.api_keys.iter().any(|a| !material.api_keys.contains_key(&key_of(a))) || plan.domain_status.values().any(|d| d.conditions.iter().any(|c| c.reason == "DkimKeyPending"));
    Ok(Action::requeue(Duration::from_secs(if waiting { 2 } else { 60 })))
}

/// The admin listeners of the pool's relays (one address per pod, from the headless Service).
async fn relay_admin_addrs(ctx: &Context, pool: &RelayPool) -> Vec<std::net::SocketAddr> {
    match &ctx.relay_http {
        Some(a) => a.clone(),
        None => {
            let service = format!("{}-relay-headless.{}.svc", pool.name_any(), pool.namespace().unwrap_or_default());
            ctx.dns.addresses(&service).await.into_iter().map(|ip| std::net::SocketAddr::new(ip, pool.spec.listeners.admin_port)).collect()
        }
    }
}

/// The DMARC report summaries of the pool's relays (those that answer), merged per domain.
async fn dmarc_reports(addrs: &[std::net::SocketAddr]) -> BTreeMap<String, cascade_crds::v1alpha1::DmarcReportSummary> {
    // All relays at once: one that does not answer costs one timeout, not one each.
    let per_relay: Vec<_> = futures::future::join_all(addrs.iter().copied().map(crate::dmarc_reports::fetch)).await.into_iter().flatten().collect();
    crate::dmarc_reports::merge(&per_relay)
}

/// The first 8 bytes of SHA-256 in hex: the config hash that rolls the relay pods.
pub(crate) fn short_hash(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

const SPEC_HASH: &str = "cascade-mail.com/spec-hash";

/// Applies the pool's workloads, each only when its rendered manifest changed (tracked by a hash
/// annotation). Returns the StatefulSet's ready replicas.
/// Applies the workloads; returns the StatefulSet's ready, desired and running replicas.
async fn apply_workloads(ctx: &Context, pool: &RelayPool, config_hash: &str) -> Result<(i32, i32, i32), ReconcileError> {
    let ns = pool.namespace().unwrap_or_default();
    let (mut ready, mut desired, mut running) = (0, pool.spec.replicas, 0);
    for manifest in crate::workloads::all(pool, &ctx.relay_image, config_hash, &ctx.namespace) {
        let api_version = manifest["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = manifest["kind"].as_str().unwrap_or_default().to_string();
        let Some(resource) = ctx.workload_kinds.get(&(api_version, kind.clone())) else { continue };
        let hash = short_hash(manifest.to_string().as_bytes());
        let mut obj: DynamicObject = serde_json::from_value(manifest).map_err(|e| ReconcileError::Key(e.to_string()))?;
        obj.types = Some(kube::core::TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
        obj.metadata.annotations.get_or_insert_with(Default::default).insert(SPEC_HASH.into(), hash.clone());
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, resource);
        let name = obj.name_any();
        let current = match api.get_opt(&name).await? {
            Some(cur) if cur.annotations().get(SPEC_HASH) == Some(&hash) => cur,
            previous => {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let (applied, note) = match api.patch(&name, &params, &Patch::Apply(&obj)).await {
                    Err(e) if previous.is_some() && immutable_field_refused(&kind, &e) => {
                        recreate_orphaning_pods(&api, &name).await?;
                        let note = format!("{kind} {name} recreated: a field Kubernetes never updates in place changed; its pods and claims were kept");
                        (api.patch(&name, &params, &Patch::Apply(&obj)).await?, Note::normal("WorkloadRecreated", "RecreateWorkload", note))
                    }
                    Err(e) => return Err(e.into()),
                    Ok(applied) => (applied, Note::normal("WorkloadApplied", "ApplyWorkload", format!("{kind} {name} {}", if previous.is_some() { "updated" } else { "created" }))),
                };
                ctx.events.publish(&pool.object_ref(&()), &note).await;
                applied
            }
        };
        if kind == "StatefulSet" {
            let int = |p: &str| current.data.pointer(p).and_then(|v| v.as_i64()).map(|v| v as i32);
            ready = int("/status/readyReplicas").unwrap_or(0);
            desired = int("/spec/replicas").unwrap_or(desired);
            running = int("/status/replicas").unwrap_or(0);
        }
    }
    Ok((ready, desired, running))
}

/// A StatefulSet update refused because it changes a field Kubernetes never updates in place
/// (the spool claim template, selector, service name): `422 Invalid`, "Forbidden: updates to
/// statefulset spec".
fn immutable_field_refused(kind: &str, e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if kind == "StatefulSet" && s.code == 422 && s.message.contains("Forbidden: updates to statefulset spec"))
}

/// Deletes the StatefulSet but not its pods (orphan), and waits (bounded) until it is gone, so
/// the new one adopts the running pods and their claims: no relay stops, no spool is lost.
async fn recreate_orphaning_pods(api: &Api<DynamicObject>, name: &str) -> Result<(), ReconcileError> {
    let orphan = kube::api::DeleteParams { propagation_policy: Some(kube::api::PropagationPolicy::Orphan), ..Default::default() };
    api.delete(name, &orphan).await?;
    for _ in 0..100 {
        if api.get_opt(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ReconcileError::Workload(format!("StatefulSet {name} still exists 10 s after its deletion")))
}

pub fn error_policy(pool: Arc<RelayPool>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::controller::record_error(&ctx, "RelayPool", &pool.name_any(), error)
}
