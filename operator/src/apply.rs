//! The one write path for the children the controllers own: server-side apply with the
//! operator's field manager, skipped when the live object already carries the desired spec's
//! hash (annotation `cascade-mail.com/spec-hash`), so an unchanged world writes nothing.

use crate::labels::FIELD_MANAGER;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

pub const SPEC_HASH: &str = "cascade-mail.com/spec-hash";

/// What [`apply`] did.
pub enum Outcome<K> {
    Unchanged(K),
    Created(K),
    Updated(K),
}

impl<K> Outcome<K> {
    pub fn object(&self) -> &K {
        match self {
            Self::Unchanged(k) | Self::Created(k) | Self::Updated(k) => k,
        }
    }
}

/// The first 8 bytes of SHA-256 in hex.
pub fn short_hash(bytes: &[u8]) -> String {
    cascade_core::shard::config_hash(bytes)
}

/// `desired` with its spec hash annotation set.
pub fn with_hash<K: Resource + Serialize>(mut desired: K) -> (K, String) {
    let hash = short_hash(serde_json::to_string(&desired).unwrap_or_default().as_bytes());
    desired.meta_mut().annotations.get_or_insert_with(Default::default).insert(SPEC_HASH.into(), hash.clone());
    (desired, hash)
}

/// Server-side applies `desired` (forcing our ownership) unless the live object has its hash.
pub async fn apply<K>(api: &Api<K>, desired: K) -> Result<Outcome<K>, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let (desired, hash) = with_hash(desired);
    let name = desired.name_any();
    match api.get_opt(&name).await? {
        Some(live) if live.annotations().get(SPEC_HASH) == Some(&hash) => Ok(Outcome::Unchanged(live)),
        live => {
            let applied = force(api, &desired).await?;
            Ok(if live.is_some() { Outcome::Updated(applied) } else { Outcome::Created(applied) })
        }
    }
}

/// Server-side apply of the whole object, our field manager taking ownership.
pub async fn force<K>(api: &Api<K>, desired: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    api.patch(&desired.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired)).await
}
