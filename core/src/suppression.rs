//! Suppression lists shared by every relay of a pool, with Kubernetes as the shared store.
//!
//! Each relay keeps its own changes (an address suppressed on a hard bounce, a complaint, an API
//! call; an address released) in a durable **change log** numbered per relay volume, and serves
//! the unconfirmed part to the operator (`GET /suppressions/changes` on the admin listener). The
//! operator merges them into up to [`SHARDS`] `SuppressionShard` objects per tenant in the pool's
//! namespace (an address's shard is [`shard_of`]), each a [`Shard`] document compressed and
//! sealed under the pool's spool key ring; every relay watches them and serves the union. Each
//! shard records, per relay log, the last change merged into it ([`Shard::cursors`]): a relay
//! keeps applying its own later changes on top of a shard until the shard shows them merged,
//! then drops them from its log. Concurrent changes to one address resolve last-writer-wins by
//! change time (then by relay), removals kept as tombstones for [`TOMBSTONE_SECS`] so a late
//! add from a slow relay cannot bring an address back.
//!
//! The document is JSON (serde) in gzip (flate2) sealed with [`crate::seal::seal_blob`]; the
//! merge is written here because it is this format's own rule, not a general protocol.

use crate::seal::{FormatError, KeyRing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The label naming the pool a `SuppressionShard` is for (the relays select on it).
pub const POOL_LABEL: &str = "cascade-mail.com/suppressions-of";
/// Shards per tenant (an address's shard: the first byte of SHA-256 of `tenant\0address`).
pub const SHARDS: u8 = 16;
/// How long a removal is remembered, and a relay's unconfirmed change kept (longer than the
/// log, so no add a log still holds is older than a tombstone dropped).
pub const TOMBSTONE_SECS: u64 = 8 * 86_400;
/// A relay's change log keeps an unconfirmed change at most this long.
pub const LOG_SECS: u64 = 7 * 86_400;
/// The largest sealed shard written (a Kubernetes object holds about 1.5 MiB).
pub const MAX_SEALED: usize = 900 * 1024;
/// The largest shard document opened (decompressed).
const MAX_DOCUMENT: u64 = 64 << 20;

/// One suppressed address, as the relay's list keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub address: String,
    pub reason: String,
    /// Unix seconds.
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The reply that caused it, or the note given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Entry {
    pub fn live(&self, now: u64) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// One change in a relay's log: `entry` set (added or replaced) or `None` (released).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub seq: u64,
    /// Unix milliseconds, the relay's clock.
    pub time: u64,
    pub tenant: String,
    /// Normalized (lower case).
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
}

/// A relay's answer to `GET /suppressions/changes?after=N`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// The log's identity: random, made when the relay's volume was first used.
    pub log: String,
    /// In `seq` order.
    pub changes: Vec<Change>,
    /// More follow the last one.
    pub more: bool,
}

/// Per relay log: the last change merged, and when that log was last heard from (Unix s).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Cursor {
    pub seq: u64,
    pub seen: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stamped {
    #[serde(flatten)]
    pub entry: Entry,
    /// The change that wrote it: Unix ms and its log.
    pub changed: u64,
    pub origin: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    pub address: String,
    pub changed: u64,
    pub origin: String,
}

/// One shard of a tenant's list as the operator writes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    pub tenant: String,
    pub index: u8,
    /// By relay log.
    #[serde(default)]
    pub cursors: BTreeMap<String, Cursor>,
    /// By address.
    #[serde(default)]
    pub entries: BTreeMap<String, Stamped>,
    /// By address.
    #[serde(default)]
    pub tombstones: BTreeMap<String, Tombstone>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("sealing: {0}")]
    Seal(#[from] FormatError),
    #[error("document: {0}")]
    Document(String),
    #[error("sealed shard of {0} bytes exceeds {MAX_SEALED}")]
    TooLarge(usize),
}

/// The shard of `address` (normalized) in `tenant`'s list.
pub fn shard_of(tenant: &str, address: &str) -> u8 {
    let mut input = Vec::with_capacity(tenant.len() + address.len() + 1);
    input.extend_from_slice(tenant.as_bytes());
    input.push(0);
    input.extend_from_slice(address.as_bytes());
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input).as_ref()[0] % SHARDS
}

/// The `SuppressionShard` object's name.
pub fn object_name(pool: &str, tenant: &str, index: u8) -> String {
    format!("{pool}-{tenant}-{index:02}")
}

/// What a sealed shard is bound to: moved to another pool, tenant or index it does not open.
pub fn context(pool: &str, tenant: &str, index: u8) -> String {
    format!("cascade-suppressions-v1:{pool}/{tenant}/{index}")
}

impl Shard {
    pub fn new(tenant: &str, index: u8) -> Self {
        Self { tenant: tenant.into(), index, ..Default::default() }
    }

    /// Merges `changes` of log `log` (those of this shard), last writer winning; records the
    /// log's cursor at `through` (every change of that log up to it is in). Returns whether
    /// the entries changed.
    pub fn merge(&mut self, log: &str, changes: &[&Change], through: u64, now: u64) -> bool {
        let mut changed = false;
        for c in changes.iter().filter(|c| c.tenant == self.tenant && shard_of(&c.tenant, &c.address) == self.index) {
            let newer = |t: u64, o: &str| (c.time, log) > (t, o);
            let current = self.entries.get(&c.address).map(|s| (s.changed, s.origin.as_str())).or_else(|| self.tombstones.get(&c.address).map(|t| (t.changed, t.origin.as_str())));
            if current.is_some_and(|(t, o)| !newer(t, o)) {
                continue;
            }
            match &c.entry {
                Some(e) => {
                    self.tombstones.remove(&c.address);
                    self.entries.insert(c.address.clone(), Stamped { entry: Entry { address: c.address.clone(), ..e.clone() }, changed: c.time, origin: log.into() });
                }
                None => {
                    self.entries.remove(&c.address);
                    self.tombstones.insert(c.address.clone(), Tombstone { address: c.address.clone(), changed: c.time, origin: log.into() });
                }
            }
            changed = true;
        }
        let cursor = self.cursors.entry(log.into()).or_default();
        cursor.seq = cursor.seq.max(through);
        cursor.seen = now;
        changed
    }

    /// Drops expired entries, old tombstones and the cursors of logs not heard from within
    /// [`TOMBSTONE_SECS`] (`now` in Unix s).
    pub fn prune(&mut self, now: u64) {
        let horizon_ms = now.saturating_sub(TOMBSTONE_SECS) * 1000;
        self.entries.retain(|_, s| s.entry.live(now));
        self.tombstones.retain(|_, t| t.changed > horizon_ms);
        self.cursors.retain(|_, c| c.seen + TOMBSTONE_SECS > now);
    }

    /// The cursor of log `log`: the last of its changes this shard holds (0: none).
    pub fn cursor(&self, log: &str) -> u64 {
        self.cursors.get(log).map_or(0, |c| c.seq)
    }

    /// Serialized, compressed and sealed for `pool`; refused above [`MAX_SEALED`].
    pub fn seal(&self, ring: &KeyRing, pool: &str) -> Result<Vec<u8>, ShardError> {
        let json = serde_json::to_vec(self).map_err(|e| ShardError::Document(e.to_string()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json).and_then(|()| gz.flush()).map_err(|e| ShardError::Document(e.to_string()))?;
        let packed = gz.finish().map_err(|e| ShardError::Document(e.to_string()))?;
        let sealed = crate::seal::seal_blob(ring, &context(pool, &self.tenant, self.index), &packed)?;
        if sealed.len() > MAX_SEALED {
            return Err(ShardError::TooLarge(sealed.len()));
        }
        Ok(sealed)
    }

    /// Opens what [`Shard::seal`] made for `pool`, `tenant`, `index` (those it names must match).
    pub fn open(ring: &KeyRing, pool: &str, tenant: &str, index: u8, sealed: &[u8]) -> Result<Self, ShardError> {
        let packed = crate::seal::open_blob(ring, &context(pool, tenant, index), sealed)?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(packed.as_slice()).take(MAX_DOCUMENT).read_to_end(&mut json).map_err(|e| ShardError::Document(e.to_string()))?;
        let shard: Self = serde_json::from_slice(&json).map_err(|e| ShardError::Document(e.to_string()))?;
        if shard.tenant != tenant || shard.index != index {
            return Err(ShardError::Document(format!("names {}/{} inside", shard.tenant, shard.index)));
        }
        Ok(shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str) -> Entry {
        Entry { address: address.into(), reason: "bounce".into(), created: 1, message_id: None, expires: None, detail: None }
    }

    /// Addresses of `tenant` in shard `index`.
    fn in_shard(tenant: &str, index: u8, n: usize) -> Vec<String> {
        (0..10_000).map(|i| format!("user{i}@x.test")).filter(|a| shard_of(tenant, a) == index).take(n).collect()
    }

    fn change(seq: u64, time: u64, address: &str, add: bool) -> Change {
        Change { seq, time, tenant: "shop".into(), address: address.into(), entry: add.then(|| entry(address)) }
    }

    #[test]
    fn the_last_writer_wins_whatever_order_the_logs_are_merged_in() {
        let a = &in_shard("shop", 3, 1)[0];
        let add = change(1, 1000, a, true);
        let remove = change(7, 2000, a, false);
        let mut one = Shard::new("shop", 3);
        assert!(one.merge("relay-a", &[&add], 1, 10));
        assert!(one.merge("relay-b", &[&remove], 7, 10));
        let mut other = Shard::new("shop", 3);
        assert!(other.merge("relay-b", &[&remove], 7, 10));
        assert!(!other.merge("relay-a", &[&add], 1, 10), "the older add loses to the tombstone");
        assert_eq!((one.entries.len(), other.entries.len()), (0, 0));
        assert_eq!(one.tombstones, other.tombstones);
        assert_eq!((other.cursor("relay-a"), other.cursor("relay-b"), other.cursor("relay-c")), (1, 7, 0));
        // Re-merging what is in changes nothing; a newer add brings it back.
        assert!(!other.merge("relay-b", &[&remove], 7, 11));
        assert!(other.merge("relay-a", &[&change(2, 3000, a, true)], 2, 12));
        assert_eq!(other.entries[a.as_str()].origin, "relay-a");
    }

    #[test]
    fn changes_of_another_tenant_or_shard_are_not_taken() {
        let a = &in_shard("shop", 3, 1)[0];
        let mut wrong_tenant = change(1, 1000, a, true);
        wrong_tenant.tenant = "other".into();
        let b = &in_shard("shop", 4, 1)[0];
        let mut s = Shard::new("shop", 3);
        assert!(!s.merge("r", &[&wrong_tenant, &change(2, 1000, b, true)], 2, 10));
        assert!(s.entries.is_empty());
    }

    #[test]
    fn pruning_drops_expired_entries_old_tombstones_and_silent_logs() {
        let [a, b] = <[String; 2]>::try_from(in_shard("shop", 0, 2)).unwrap();
        let mut s = Shard::new("shop", 0);
        let mut expiring = change(1, 1000, &a, true);
        expiring.entry.as_mut().unwrap().expires = Some(50);
        s.merge("r", &[&expiring, &change(2, 1000, &b, false)], 2, 10);
        s.prune(49);
        assert_eq!((s.entries.len(), s.tombstones.len(), s.cursors.len()), (1, 1, 1));
        s.prune(TOMBSTONE_SECS + 11);
        assert_eq!((s.entries.len(), s.tombstones.len(), s.cursors.len()), (0, 0, 0));
    }

    #[test]
    fn sealed_shards_open_only_where_they_were_sealed_for() {
        let ring = KeyRing::parse(&KeyRing::generate_line("s1").unwrap()).unwrap();
        let mut s = Shard::new("shop", 5);
        let addrs = in_shard("shop", 5, 50);
        let changes: Vec<Change> = addrs.iter().enumerate().map(|(i, a)| change(i as u64 + 1, 1000, a, true)).collect();
        s.merge("r", &changes.iter().collect::<Vec<_>>(), 50, 10);
        let sealed = s.seal(&ring, "main").unwrap();
        assert_eq!(Shard::open(&ring, "main", "shop", 5, &sealed).unwrap(), s);
        assert!(Shard::open(&ring, "main", "shop", 6, &sealed).is_err(), "another index");
        assert!(Shard::open(&ring, "main", "other", 5, &sealed).is_err(), "another tenant");
        assert!(Shard::open(&ring, "edge", "shop", 5, &sealed).is_err(), "another pool");
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("x.test"), "addresses are sealed");
    }

    /// A full tenant list (100,000 entries with bounce details) fits its 16 shards, each well
    /// under the object limit (the README's sizing).
    #[test]
    fn a_full_tenant_list_fits_its_shards() {
        let ring = KeyRing::parse(&KeyRing::generate_line("s1").unwrap()).unwrap();
        let mut shards: Vec<Shard> = (0..SHARDS).map(|i| Shard::new("shop", i)).collect();
        let changes: Vec<Change> = (0..100_000u64)
            .map(|i| {
                let address = format!("firstname.lastname{i}@mail{}.example.com", i % 500);
                let detail = Some(format!("550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"));
                let e = Entry { address: address.clone(), reason: "bounce".into(), created: 1_780_000_000 + i, message_id: Some(format!("{:020x}", i * 7919)), expires: None, detail };
                Change { seq: i + 1, time: 1_780_000_000_000 + i, tenant: "shop".into(), address, entry: Some(e) }
            })
            .collect();
        for s in &mut shards {
            let of: Vec<&Change> = changes.iter().filter(|c| shard_of("shop", &c.address) == s.index).collect();
            s.merge("r", &of, 100_000, 10);
        }
        let sizes: Vec<usize> = shards.iter().map(|s| s.seal(&ring, "main").unwrap().len()).collect();
        let total: usize = sizes.iter().sum();
        eprintln!("100,000 entries: {total} bytes sealed in 16 shards, largest {}", sizes.iter().max().unwrap());
        assert!(sizes.iter().all(|n| *n < MAX_SEALED / 2), "{sizes:?}");
        assert_eq!(shards.iter().map(|s| s.entries.len()).sum::<usize>(), 100_000);
    }
}
