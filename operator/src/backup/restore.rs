//! Writes an archive back. First everything is checked without a write: the archive and the
//! escrow open, every tenant section with a key opens, the operator is not running (restore
//! holds the operator's Lease for its duration), and none of the objects exists. Then the
//! master key ring (merged into one the operator may already have created), the tenant keys,
//! the custom resources (statuses that carry state included) and the Secrets, re-linked to
//! their new owners. API-key credentials get a new integrity mark for the recreated ApiKey's
//! uid ([`crate::credentials`]): the same key id and secret authenticate.

use super::archive::{self, Payload, TenantKey};
use super::{kube, tenant_keys, BackupError, Item, KeySource, Manifest, KINDS, STATEFUL};
use crate::labels::FIELD_MANAGER;
use crate::master_key;
use crate::secrets::SecretStore;
use cascade_core::seal::KeyRing;
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain, SuppressionShard, WebhookEndpoint};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Resource;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;

/// What a restore did.
#[derive(Debug, Default)]
pub struct Report {
    pub manifest: Manifest,
    /// Objects created, as `Kind namespace/name`.
    pub created: Vec<String>,
    /// Tenants whose data key is gone (erased): their sections stay sealed.
    pub shredded: Vec<String>,
}

/// The archive's items per tenant, for tenants whose key is at hand; the others are shredded.
/// A section that does not open with its key refuses the whole restore.
pub fn open_sections(header: &archive::Header, payload: &Payload, keys: &BTreeMap<String, TenantKey>) -> Result<(Vec<Item>, Vec<String>), BackupError> {
    let (mut items, mut shredded) = (payload.platform.clone(), Vec::new());
    for (ns, section) in &payload.tenants {
        match keys.get(ns).filter(|k| k.id == section.key_id) {
            Some(key) => items.extend(archive::open_tenant(header, ns, key, section)?),
            None => shredded.push(ns.clone()),
        }
    }
    Ok((items, shredded))
}

/// The live ring with the archived ring's keys added (the live active key stays active). A key
/// id both hold with different material refuses the restore.
pub fn merge_rings(live: Option<&str>, archived: &str) -> Result<String, BackupError> {
    let Some(live) = live else { return Ok(archived.to_string()) };
    let id = |l: &str| l.split_whitespace().next().map(str::to_string);
    let mut out = live.trim_end().to_string();
    for line in archived.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        match live.lines().find(|l| id(l) == id(line)) {
            Some(same) if same.trim() == line.trim() => {}
            Some(_) => return Err(BackupError::Refused(format!("master key {:?} exists in the cluster with other key material", id(line).unwrap_or_default()))),
            None => out.push_str(&format!("\n{}", line.trim())),
        }
    }
    out.push('\n');
    Ok(out)
}

fn secret_field(item: &Item, field: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(item.object["data"][field].as_str()?).ok()
}

fn is(item: &Item, kind: &str, ns: &str, name: &str) -> bool {
    item.kind == kind && item.namespace() == ns && item.name() == name
}

/// Restores `bytes` (opened with `source`; tenant keys from `escrow`, else the cluster's).
pub async fn restore(client: &kube::Client, operator_ns: &str, bytes: &[u8], source: &KeySource, escrow: Option<&[u8]>) -> Result<Report, BackupError> {
    let (header, payload) = archive::read(bytes, source)?;
    if payload.manifest.kind != "backup" {
        return Err(BackupError::Refused(format!("this file is a {}, not a backup", payload.manifest.kind)));
    }
    let escrowed = match escrow {
        Some(e) => {
            let (_, p) = archive::read(e, source)?;
            if p.manifest.kind != "escrow" {
                return Err(BackupError::Refused("the --escrow file is not a key escrow".into()));
            }
            p.tenant_keys
        }
        None => BTreeMap::new(),
    };
    let secrets = SecretStore::new(client.clone());
    let lease = crate::leader::Elector::new(client.clone(), operator_ns, "cascade-operator", "cascade-operator-restore", std::time::Duration::from_secs(120));
    if !lease.try_acquire().await.map_err(kube("taking the operator's Lease"))? {
        return Err(BackupError::Refused(format!("the operator is running (it holds Lease {operator_ns}/cascade-operator): scale it to 0, restore, then scale it up")));
    }
    let result = restore_held(client, &secrets, operator_ns, &header, &payload, &escrowed).await;
    lease.release().await.map_err(kube("releasing the operator's Lease"))?;
    let report = result?;
    // For the operator's audit trail (crate::admin_records); a refused restore leaves nothing.
    let record = serde_json::json!({ "archive": header.id, "backupCreated": report.manifest.created, "objects": report.created.len(), "shredded": report.shredded });
    crate::admin_records::leave(client, operator_ns, "restore", record).await.map_err(kube("recording the restore for the audit trail"))?;
    Ok(report)
}

async fn restore_held(client: &kube::Client, secrets: &SecretStore, ns: &str, header: &archive::Header, payload: &Payload, escrowed: &BTreeMap<String, TenantKey>) -> Result<Report, BackupError> {
    let master_item = payload.platform.iter().find(|i| is(i, "Secret", ns, master_key::SECRET_NAME));
    let archived = master_item.and_then(|i| secret_field(i, master_key::FIELD)).ok_or_else(|| BackupError::Refused("the archive holds no master key".into()))?;
    let live = secrets.get(ns, master_key::SECRET_NAME).await.map_err(kube("reading the master key"))?.and_then(|d| d.get(master_key::FIELD).cloned());
    let ring_text = merge_rings(live.as_deref().map(String::from_utf8_lossy).as_deref(), &String::from_utf8_lossy(&archived))?;
    let ring = KeyRing::parse(&ring_text).map_err(|e| BackupError::Refused(format!("the master key ring: {e}")))?;
    let mut keys = match &live {
        Some(_) => tenant_keys::load(secrets, ns, &ring).await?,
        None => BTreeMap::new(),
    };
    keys.extend(escrowed.iter().map(|(t, k)| (t.clone(), k.clone())));
    let (items, shredded) = open_sections(header, payload, &keys)?;
    let own = |i: &Item| is(i, "Secret", ns, master_key::SECRET_NAME) || is(i, "Secret", ns, master_key::AUDIT_SECRET_NAME);
    let mut occupied = Vec::new();
    for item in items.iter().filter(|i| !own(i)) {
        if exists(client, item).await? {
            occupied.push(format!("{} {}/{}", item.kind, item.namespace(), item.name()));
        }
    }
    if !occupied.is_empty() {
        return Err(BackupError::Refused(format!("restore needs an empty cluster; these exist: {}", occupied.join(", "))));
    }
    // Writes start here.
    let labels = crate::labels::managed(&[]);
    if live.as_deref() != Some(ring_text.as_bytes()) {
        secrets.apply(ns, master_key::SECRET_NAME, &[(master_key::FIELD.to_string(), ring_text.into_bytes())].into(), labels.clone(), None).await.map_err(kube("writing the master key"))?;
    }
    if let Some(audit) = items.iter().find(|i| is(i, "Secret", ns, master_key::AUDIT_SECRET_NAME)) {
        let data: BTreeMap<String, Vec<u8>> = ["audit.key"].iter().filter_map(|f| Some((f.to_string(), secret_field(audit, f)?))).collect();
        secrets.create(ns, master_key::AUDIT_SECRET_NAME, &data, labels).await.map_err(kube("writing the audit key"))?;
    }
    // The keys that opened a section stay live, so older archives keep opening until erased.
    let restored_keys: BTreeMap<String, TenantKey> = keys.into_iter().filter(|(t, k)| payload.tenants.get(t).is_some_and(|s| s.key_id == k.id)).collect();
    tenant_keys::put(secrets, ns, &ring, &restored_keys).await?;
    let mut report = Report { manifest: payload.manifest.clone(), shredded, ..Default::default() };
    let mut created = Created::new();
    for kind in KINDS.iter().filter(|k| **k != "Secret") {
        let mut of_kind: Vec<&Item> = items.iter().filter(|i| i.kind == *kind).collect();
        of_kind.sort_by_key(|i| i.object["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_string());
        for item in of_kind {
            let obj = on_kind(client, item, Op::Create(owner_ref(item, &created))).await?.unwrap_or_default();
            report.created.push(format!("{kind} {}/{}", item.namespace(), item.name()));
            created.insert((kind.to_string(), item.namespace().into(), item.name().into()), obj);
        }
    }
    for item in items.iter().filter(|i| i.kind == "Secret" && !own(i)) {
        create_secret(client, &ring, item, &created).await?;
        report.created.push(format!("Secret {}/{}", item.namespace(), item.name()));
    }
    Ok(report)
}

async fn exists(client: &kube::Client, item: &Item) -> Result<bool, BackupError> {
    Ok(on_kind(client, item, Op::Get).await?.is_some())
}

/// What [`on_kind`] does with an item.
enum Op {
    /// The live object, if any.
    Get,
    /// Created (a custom resource, its status too when it carries state), with this owner.
    Create(Option<OwnerReference>),
}

/// `op` on `item` through its kind's typed API: the one list of the kinds restore writes.
async fn on_kind(client: &kube::Client, item: &Item, op: Op) -> Result<Option<serde_json::Value>, BackupError> {
    match item.kind.as_str() {
        "RelayPool" => typed::<RelayPool>(client, item, op).await,
        "SendingDomain" => typed::<SendingDomain>(client, item, op).await,
        "DkimKey" => typed::<DkimKey>(client, item, op).await,
        "ApiKey" => typed::<ApiKey>(client, item, op).await,
        "WebhookEndpoint" => typed::<WebhookEndpoint>(client, item, op).await,
        "SuppressionShard" => typed::<SuppressionShard>(client, item, op).await,
        // Secrets are created by create_secret (owners re-linked, credentials re-marked).
        "Secret" if matches!(op, Op::Get) => typed::<Secret>(client, item, op).await,
        other => Err(BackupError::Refused(format!("the archive holds an unknown kind {other}"))),
    }
}

async fn typed<K>(client: &kube::Client, item: &Item, op: Op) -> Result<Option<serde_json::Value>, BackupError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match op {
        Op::Get => {
            let what = format!("checking {} {}/{}", item.kind, item.namespace(), item.name());
            let live = Api::<K>::namespaced(client.clone(), item.namespace()).get_opt(item.name()).await.map_err(kube(what))?;
            Ok(live.map(|_| serde_json::Value::Null))
        }
        Op::Create(owner) => create::<K>(client, item, owner).await.map(Some),
    }
}

type Created = BTreeMap<(String, String, String), serde_json::Value>;

/// The owner reference to the new incarnation of `item`'s controller, when it was restored.
fn owner_ref(item: &Item, created: &Created) -> Option<OwnerReference> {
    let o = item.owner.as_ref()?;
    let obj = created.get(&(o.kind.clone(), item.namespace().to_string(), o.name.clone()))?;
    let (api_version, uid) = (obj["apiVersion"].as_str()?.to_string(), obj["metadata"]["uid"].as_str()?.to_string());
    Some(OwnerReference { api_version, kind: o.kind.clone(), name: o.name.clone(), uid, controller: Some(true), block_owner_deletion: Some(true) })
}

async fn create<K>(client: &kube::Client, item: &Item, owner: Option<OwnerReference>) -> Result<serde_json::Value, BackupError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let mut obj = item.object.clone();
    let status = obj.as_object_mut().and_then(|o| o.remove("status"));
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("creationTimestamp");
        if let Some(owner) = owner {
            meta.insert("ownerReferences".into(), serde_json::json!([owner]));
        }
    }
    let what = format!("creating {} {}/{}", item.kind, item.namespace(), item.name());
    let typed: K = serde_json::from_value(obj).map_err(|e| BackupError::Refused(format!("{what}: {e}")))?;
    let api = Api::<K>::namespaced(client.clone(), item.namespace());
    let made = api.create(&PostParams::default(), &typed).await.map_err(kube(what.clone()))?;
    if let Some(status) = status.filter(|_| STATEFUL.contains(&item.kind.as_str())) {
        let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status });
        api.patch_status(item.name(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await.map_err(kube(format!("{what} (status)")))?;
    }
    serde_json::to_value(made).map_err(|e| BackupError::Refused(format!("{what}: {e}")))
}

/// A Secret, owned by its owner's new incarnation; API-key credentials marked for it.
async fn create_secret(client: &kube::Client, ring: &KeyRing, item: &Item, created: &Created) -> Result<(), BackupError> {
    let what = format!("creating Secret {}/{}", item.namespace(), item.name());
    let mut secret: Secret = serde_json::from_value(item.object.clone()).map_err(|e| BackupError::Refused(format!("{what}: {e}")))?;
    secret.metadata.creation_timestamp = None;
    let owner = owner_ref(item, created);
    if let Some(o) = owner.clone() {
        let obj = &created[&(o.kind.clone(), item.namespace().to_string(), o.name.clone())];
        secret.metadata.owner_references = Some(vec![o.clone()]);
        if o.kind == "ApiKey" && item.object["data"].get(crate::credentials::MARK).is_some() {
            let key: ApiKey = serde_json::from_value(obj.clone()).map_err(|e| BackupError::Refused(format!("{what}: {e}")))?;
            let field = |f: &str| secret_field(item, f).and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
            let creds = cascade_core::secret::Credentials { username: field("username"), password: field("password") };
            let data = crate::credentials::data(ring, &key, &creds).map_err(|e| BackupError::Refused(format!("{what}: marking the credentials: {e}")))?;
            let entries = secret.data.get_or_insert_with(Default::default);
            for (k, v) in data {
                entries.insert(k, k8s_openapi::ByteString(v));
            }
        }
    }
    Api::<Secret>::namespaced(client.clone(), item.namespace()).create(&PostParams::default(), &secret).await.map_err(kube(what))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archived_ring_joins_the_live_one_which_stays_active() {
        assert_eq!(merge_rings(None, "m1 AAAA\n").unwrap(), "m1 AAAA\n");
        assert_eq!(merge_rings(Some("m9 BBBB\n"), "m1 AAAA\n# note\n").unwrap(), "m9 BBBB\nm1 AAAA\n");
        assert_eq!(merge_rings(Some("m1 AAAA\n"), "m1 AAAA\n").unwrap(), "m1 AAAA\n");
        let clash = merge_rings(Some("m1 BBBB\n"), "m1 AAAA\n").unwrap_err();
        assert_eq!(clash.to_string(), "master key \"m1\" exists in the cluster with other key material");
    }
}
