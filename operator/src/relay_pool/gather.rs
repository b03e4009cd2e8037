//! The RelayPool controller's reads: nothing here writes.

use crate::caches::Caches;
use crate::render::evaluate::{key_of, Inputs, Key};
use crate::secrets::SecretData;
use crate::suspensions::Reported;
use crate::Context;
use cascade_core::http_client::Tls;
use cascade_crds::v1alpha1::{ApiKey, AuditAnchor, DkimKey, DmarcReportSummary, RelayPool, SendingDomain};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Everything one reconcile of a pool reads.
pub struct World {
    /// The resources, SendingDomains being deleted taken out (see `deleting`).
    pub inputs: Inputs,
    /// SendingDomains being deleted (all of them; evaluate picks this pool's).
    pub deleting: Vec<SendingDomain>,
    /// The DkimKey controller's Secrets (sealed private keys), by (namespace, name).
    pub dkim_secrets: BTreeMap<Key, SecretData>,
    /// The labelled credentials Secrets, by (namespace, name): whole, since only those the
    /// ApiKey controller issued count (see [`crate::credentials::verify`]).
    pub credentials: BTreeMap<Key, Secret>,
    /// Secret `<pool>-keys`.
    pub keys: Option<SecretData>,
    /// The certificate: the Secret `spec.tls.secretName` names, else `<pool>-tls`.
    pub tls: Option<SecretData>,
    /// The pool's admin authority, Secret `<pool>-admin-ca`.
    pub admin: Option<SecretData>,
    /// The bundle Secret as it is.
    pub bundle: Option<SecretData>,
    /// The pool's shard Secrets as they are, by name.
    pub shards: BTreeMap<String, SecretData>,
    pub relays: Relays,
}

/// What the pool's relays report (those that answer).
#[derive(Default)]
pub struct Relays {
    pub dmarc: BTreeMap<String, DmarcReportSummary>,
    pub anchors: Vec<AuditAnchor>,
    pub suspensions: Vec<Reported>,
    pub webhooks: Vec<crate::render::evaluate::webhooks::Reported>,
    /// The configuration each relay runs (and refused).
    pub configs: Vec<super::readiness::ConfigReport>,
    /// When each key was last used on each relay.
    pub usage: Vec<crate::key_usage::Reported>,
    /// Each relay's queue per tenant; `None` when no relay answered.
    pub queues: Option<Vec<crate::relay_admin::QueueReport>>,
}

pub async fn gather(ctx: &Context, pool: &RelayPool) -> Result<World, kube::Error> {
    let lp = ListParams::default();
    let c = || ctx.client.clone();
    let (ns, name) = key_of(pool);
    let (domains, mut pools, dkim_keys, api_keys) = custom_resources(ctx).await;
    let (deleting, domains): (Vec<SendingDomain>, Vec<SendingDomain>) = domains.into_iter().partition(|d| d.metadata.deletion_timestamp.is_some());
    // Every pool, for the domains they assign (a claim through another pool may own a domain).
    pools.retain(|p| key_of(p) != (ns.clone(), name.clone()));
    pools.insert(0, pool.clone());
    let verified = crate::render::evaluate::ownership::verified_from_status(&domains);
    // Only the Secrets the DkimKeys and ApiKeys name are kept (a tenant's other labelled
    // Secrets are dropped page by page).
    let dkim_names: BTreeSet<Key> = dkim_keys.iter().map(|k| (k.namespace().unwrap_or_default(), crate::dkim_key::secret_name(&k.name_any()))).collect();
    let credential_names: BTreeSet<Key> = api_keys.iter().map(|k| (k.namespace().unwrap_or_default(), crate::render::evaluate::credentials_secret(&k.name_any()))).collect();
    let webhooks = crate::caches::all(&ctx.caches().await.webhooks);
    let mut inputs = Inputs { pools, domains, dkim_keys, api_keys, verified, ..Default::default() };
    // The signing Secrets of the endpoints in namespaces with a domain on this pool.
    let tenants: BTreeSet<String> = inputs.domains.iter().filter(|d| d.spec.relay_pool.name == name && d.spec.relay_pool.namespace == ns).filter_map(|d| d.namespace()).collect();
    for e in webhooks.iter().filter(|e| e.namespace().is_some_and(|n| tenants.contains(&n))) {
        let key = (e.namespace().unwrap_or_default(), crate::webhook_endpoint::secret_name(e));
        if let Some(data) = ctx.secrets.get(&key.0, &key.1).await? {
            inputs.secrets.insert(key, data);
        }
    }
    inputs.webhooks = webhooks;
    if let Some(secret) = pool.spec.delivery.smarthost.as_ref().and_then(|s| s.credentials_secret.clone()) {
        if let Some(data) = ctx.secrets.get(&ns, &secret).await? {
            inputs.secrets.insert((ns.clone(), secret), data);
        }
    }
    if !pool.spec.tenants.match_labels.is_empty() {
        for n in Api::<Namespace>::all(c()).list(&lp).await?.items {
            inputs.namespace_labels.insert(n.name_any(), n.metadata.labels.unwrap_or_default());
        }
    }
    let tls_secret = pool.spec.tls.secret_name.clone().unwrap_or_else(|| format!("{name}-tls"));
    let addrs = crate::relay_admin::addrs(ctx, pool).await;
    let admin = ctx.secrets.get(&ns, &crate::admin_authority::secret_name(&name)).await?;
    let client = admin.as_ref().and_then(|a| crate::admin_authority::operator_client(a, &ctx.master, &ns, &name, cascade_core::time::now_unix()));
    Ok(World {
        inputs,
        deleting,
        dkim_secrets: issued(ctx, |c| &c.dkim_secrets, &dkim_names).await.into_iter().map(|(k, s)| (k, crate::secrets::data_of(&s))).collect(),
        credentials: issued(ctx, |c| &c.credentials, &credential_names).await,
        keys: ctx.secrets.get(&ns, &crate::labels::keys_secret(&name)).await?,
        tls: ctx.secrets.get(&ns, &tls_secret).await?,
        bundle: ctx.secrets.get(&ns, &crate::labels::bundle_secret(&name)).await?,
        // In the pool's namespace only: shards are never written elsewhere.
        shards: crate::lean::list_secrets(&ctx.secrets.api(&ns), &ListParams::default().labels(&format!("{}={name}", crate::labels::SHARD_OF)), |_, _| true)
            .await?
            .into_iter()
            .map(|secret| (secret.metadata.name.clone().unwrap_or_default(), crate::secrets::data_of(&secret)))
            .collect(),
        relays: relays(&addrs, client.as_ref()).await,
        admin,
    })
}

/// Every SendingDomain, RelayPool, DkimKey and ApiKey, from the shared caches.
async fn custom_resources(ctx: &Context) -> (Vec<SendingDomain>, Vec<RelayPool>, Vec<DkimKey>, Vec<ApiKey>) {
    use crate::caches::all;
    let c = ctx.caches().await;
    (all(&c.domains), all(&c.pools), all(&c.dkim_keys), all(&c.api_keys))
}

/// The issued Secrets among `names`, from their cache.
async fn issued(ctx: &Context, cached: fn(&Caches) -> &Store<Secret>, names: &BTreeSet<Key>) -> BTreeMap<Key, Secret> {
    let cache = cached(ctx.caches().await);
    let key = |s: &Secret| (s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default());
    cache.state().iter().filter(|s| names.contains(&key(s))).map(|s| (key(s), (**s).clone())).collect()
}

/// Asks every relay at once (over the pool's mutual TLS once its authority exists): one that
/// does not answer costs one timeout, not one each.
async fn relays(addrs: &[SocketAddr], tls: Option<&Tls>) -> Relays {
    let each = |path: &'static str| futures::future::join_all(addrs.iter().map(move |a| crate::relay_admin::get_json::<serde_json::Value>(*a, tls, path)));
    let (dmarc, anchors, anomalies, webhooks, configs, usage, queues) = futures::join!(
        futures::future::join_all(addrs.iter().map(|a| crate::dmarc_reports::fetch(*a, tls))),
        futures::future::join_all(addrs.iter().map(|a| crate::relay_admin::audit_anchor(*a, tls))),
        each("/anomalies"),
        each("/webhooks"),
        each("/config"),
        each("/keys/usage"),
        each("/queue"),
    );
    let answered: Vec<_> = queues.into_iter().flatten().filter_map(|v| serde_json::from_value::<Vec<crate::relay_admin::QueueReport>>(v).ok()).collect();
    let dmarc: Vec<_> = dmarc.into_iter().flatten().collect();
    Relays {
        dmarc: crate::dmarc_reports::merge(&dmarc),
        anchors: anchors.into_iter().flatten().collect(),
        suspensions: anomalies.into_iter().flatten().filter_map(|v| serde_json::from_value::<Vec<Reported>>(v).ok()).flatten().collect(),
        webhooks: webhooks.into_iter().flatten().filter_map(|v| serde_json::from_value::<Vec<crate::render::evaluate::webhooks::Reported>>(v).ok()).flatten().collect(),
        configs: configs.into_iter().flatten().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        usage: usage.into_iter().flatten().filter_map(|v| serde_json::from_value::<Vec<crate::key_usage::Reported>>(v).ok()).flatten().collect(),
        queues: (!answered.is_empty()).then(|| answered.into_iter().flatten().collect()),
    }
}
