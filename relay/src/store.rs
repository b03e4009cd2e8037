//! What the relay remembers beside its queue, in a crash-safe embedded database (redb, one file
//! `state.redb` in the spool directory, on the relay's volume):
//!
//! - **message status**: the final per-recipient state of every message this relay finished
//!   (delivered, bounced, expired, purged), so `GET /v1/messages/{id}` can answer after the spool
//!   file is gone; kept for the configured retention (default 7 days). A message still queued is
//!   answered from its spool file instead.
//! - **idempotency keys** of the send API: per API key, the request's digest, the queue id it was
//!   given and the answer, for [`IDEMPOTENCY_SECS`].
//!
//! Values are sealed (AES-256-GCM) under the spool's key ring with the record's name as
//! associated data, as the spool seals messages: recipient addresses are at rest only encrypted.
//! Each value carries its expiry in the clear so [`Store::sweep`] can drop old ones unopened.
//! Status writes are not fsynced one by one (they would serialize delivery on the disk): they
//! reach the disk with the next durable commit (an idempotency record, the [`Store::flush`] the
//! relay runs every second, and shutdown). Blocking: call from the blocking pool.

use crate::spool::{Envelope, Spool};
use cascade_core::suppression::{Change, LOG_SECS};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

/// The database's page cache.
const CACHE_BYTES: usize = 8 << 20;

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_SECS: u64 = 24 * 3600;

/// Queue id → (expiry, sealed envelope as finished).
const STATUS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("status");
/// Hex SHA-256 of (key id, idempotency key) → (expiry, sealed [`Remembered`]).
const IDEMPOTENCY: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("idempotency");
/// Hex SHA-256 of `<tenant>\0<address>` → (expiry, `u64::MAX` for none; sealed
/// `<tenant>\0<entry JSON>`): no address in the clear.
const SUPPRESSIONS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("suppressions");
/// This relay's suppression changes not yet confirmed merged by the operator: seq → (expiry,
/// sealed [`Change`] JSON). See [`cascade_core::suppression`].
const SUPPRESSION_LOG: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("suppression_log");
/// Small facts: `suppression-log` → the change log's random identity.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {0}")]
    Db(#[from] redb::Error),
    #[error("state record {name}: {reason}")]
    Record { name: String, reason: String },
}

macro_rules! db_errors {
    ($($t:ty),*) => { $(impl From<$t> for StoreError { fn from(e: $t) -> Self { Self::Db(e.into()) } })* };
}
db_errors!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::SetDurabilityError);

/// A send remembered under its idempotency key: what the request was and what it was answered.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// Hex SHA-256 of the request body.
    pub digest: String,
    pub queue_id: String,
    /// The `202` body given (and given again to a replay).
    pub answer: String,
    /// The message reached the spool: the answer stands.
    pub queued: bool,
    /// Unix seconds when the first request took the key.
    pub started: u64,
}

pub struct Store {
    db: Database,
    /// A write not yet durable (a status record) awaits [`Store::flush`].
    dirty: std::sync::atomic::AtomicBool,
}

fn status_context(id: &str) -> String {
    format!("cascade-status-v1:{id}")
}

fn suppression_name(tenant: &str, address: &str) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{tenant}\0{address}").as_bytes()).as_ref())
}

fn suppression_context(name: &str) -> String {
    format!("cascade-suppression-v1:{name}")
}

fn log_context(seq: u64) -> String {
    format!("cascade-suppression-log-v1:{seq}")
}

/// A tenant's suppression entries to write: (address, expiry, the entry JSON).
pub type Rows<'a> = [(&'a str, Option<u64>, Vec<u8>)];

fn idempotency_context(name: &str) -> String {
    format!("cascade-idempotency-v1:{name}")
}

/// The record name for an idempotency key: neither is stored in the clear.
pub fn idempotency_name(key_id: &str, idempotency_key: &str) -> String {
    let mut input = Vec::with_capacity(key_id.len() + idempotency_key.len() + 1);
    input.extend_from_slice(key_id.as_bytes());
    input.push(0);
    input.extend_from_slice(idempotency_key.as_bytes());
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input).as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Opens (creating) `dir/state.redb`, with both tables.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // A small page cache: the hot data (suppressions) is held in memory by its owner.
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(dir.join("state.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(STATUS)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(SUPPRESSIONS)?;
        txn.open_table(SUPPRESSION_LOG)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Self { db, dirty: false.into() })
    }

    /// Records a finished message's envelope (its recipients' final states) until `expires`.
    /// Not durable until the next durable commit (see the module documentation).
    pub fn finished(&self, spool: &Spool, env: &Envelope, expires: u64) -> Result<(), StoreError> {
        let json = serde_json::to_vec(env).map_err(|e| StoreError::Record { name: env.id.clone(), reason: e.to_string() })?;
        let sealed = spool.seal_claim(&status_context(&env.id), &json).map_err(|e| StoreError::Record { name: env.id.clone(), reason: e.to_string() })?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        txn.open_table(STATUS)?.insert(env.id.as_str(), (expires, sealed.as_slice()))?;
        txn.commit()?;
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// A finished message's envelope, if this relay finished it within the retention.
    pub fn status(&self, spool: &Spool, id: &str, now: u64) -> Result<Option<Envelope>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATUS)?;
        let Some(value) = table.get(id)? else { return Ok(None) };
        let (expires, sealed) = value.value();
        if expires <= now {
            return Ok(None);
        }
        let bad = |reason: String| StoreError::Record { name: id.to_string(), reason };
        let json = spool.open_claim(&status_context(id), sealed).map_err(|e| bad(e.to_string()))?;
        serde_json::from_slice(&json).map(Some).map_err(|e| bad(e.to_string()))
    }

    /// Rewrites every unexpired finished-message record `f` changes (an erasure), durably; how
    /// many it rewrote. Unreadable records are left as they are.
    pub fn rewrite_statuses(&self, spool: &Spool, now: u64, f: impl Fn(&mut Envelope) -> bool) -> Result<usize, StoreError> {
        let mut changed = Vec::new();
        {
            let txn = self.db.begin_read()?;
            for row in txn.open_table(STATUS)?.iter()? {
                let (k, v) = row?;
                let (expires, sealed) = v.value();
                let id = k.value().to_string();
                let Ok(json) = spool.open_claim(&status_context(&id), sealed) else { continue };
                let Ok(mut env) = serde_json::from_slice::<Envelope>(&json) else { continue };
                if expires > now && f(&mut env) {
                    changed.push((expires, env));
                }
            }
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(STATUS)?;
            for (expires, env) in &changed {
                let json = serde_json::to_vec(env).map_err(|e| StoreError::Record { name: env.id.clone(), reason: e.to_string() })?;
                let sealed = spool.seal_claim(&status_context(&env.id), &json).map_err(|e| StoreError::Record { name: env.id.clone(), reason: e.to_string() })?;
                table.insert(env.id.as_str(), (*expires, sealed.as_slice()))?;
            }
        }
        txn.commit()?;
        Ok(changed.len())
    }

    /// Looks `name` up and, if it is not there (or expired), remembers `fresh` under it, durably,
    /// in one write transaction: two concurrent requests with one key cannot both be the first.
    /// Returns what was there before, if anything.
    pub fn remember(&self, spool: &Spool, name: &str, fresh: &Remembered, now: u64) -> Result<Option<Remembered>, StoreError> {
        let bad = |reason: String| StoreError::Record { name: name.to_string(), reason };
        let txn = self.db.begin_write()?;
        let earlier = {
            let mut table = txn.open_table(IDEMPOTENCY)?;
            let earlier = match table.get(name)? {
                Some(v) if v.value().0 > now => {
                    let json = spool.open_claim(&idempotency_context(name), v.value().1).map_err(|e| bad(e.to_string()))?;
                    Some(serde_json::from_slice::<Remembered>(&json).map_err(|e| bad(e.to_string()))?)
                }
                _ => None,
            };
            if earlier.is_none() {
                let json = serde_json::to_vec(fresh).map_err(|e| bad(e.to_string()))?;
                let sealed = spool.seal_claim(&idempotency_context(name), &json).map_err(|e| bad(e.to_string()))?;
                table.insert(name, (now + IDEMPOTENCY_SECS, sealed.as_slice()))?;
            }
            earlier
        };
        txn.commit()?;
        Ok(earlier)
    }

    /// Replaces what `name` holds (keeping its expiry), or forgets it (`None`: the send failed
    /// and may be tried again with the same key).
    pub fn settle(&self, spool: &Spool, name: &str, outcome: Option<&Remembered>) -> Result<(), StoreError> {
        let bad = |reason: String| StoreError::Record { name: name.to_string(), reason };
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(IDEMPOTENCY)?;
            match outcome {
                None => {
                    table.remove(name)?;
                }
                Some(r) => {
                    let expires = table.get(name)?.map_or(cascade_core::time::now_unix() + IDEMPOTENCY_SECS, |v| v.value().0);
                    let json = serde_json::to_vec(r).map_err(|e| bad(e.to_string()))?;
                    let sealed = spool.seal_claim(&idempotency_context(name), &json).map_err(|e| bad(e.to_string()))?;
                    table.insert(name, (expires, sealed.as_slice()))?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Writes suppression entries of `tenant` — `puts` added or replaced, `removes` (addresses)
    /// dropped — and appends `log` to the change log, durably, in one transaction.
    pub fn suppress(&self, spool: &Spool, tenant: &str, puts: &Rows<'_>, removes: &[&str], log: &[Change]) -> Result<(), StoreError> {
        let bad = |name: String, e: String| StoreError::Record { name, reason: e };
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(SUPPRESSIONS)?;
            for (address, expires, json) in puts {
                let name = suppression_name(tenant, address);
                let mut plain = format!("{tenant}\0").into_bytes();
                plain.extend_from_slice(json);
                let sealed = spool.seal_claim(&suppression_context(&name), &plain).map_err(|e| bad(name.clone(), e.to_string()))?;
                table.insert(name.as_str(), (expires.unwrap_or(u64::MAX), sealed.as_slice()))?;
            }
            for address in removes {
                table.remove(suppression_name(tenant, address).as_str())?;
            }
            let mut changes = txn.open_table(SUPPRESSION_LOG)?;
            let expires = cascade_core::time::now_unix() + LOG_SECS;
            for c in log {
                let json = serde_json::to_vec(c).map_err(|e| bad(c.seq.to_string(), e.to_string()))?;
                let sealed = spool.seal_claim(&log_context(c.seq), &json).map_err(|e| bad(c.seq.to_string(), e.to_string()))?;
                changes.insert(c.seq, (expires, sealed.as_slice()))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The change log's identity, made on first use.
    pub fn log_id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.db.begin_read()?.open_table(META)?.get("suppression-log")? {
            return Ok(id.value().to_string());
        }
        let mut bytes = [0u8; 12];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::Record { name: "suppression-log".into(), reason: "random number generator failed".into() })?;
        let id = hex(&bytes);
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert("suppression-log", id.as_str())?;
        txn.commit()?;
        Ok(id)
    }

    /// The change log, in order (unreadable or expired changes skipped).
    pub fn logged(&self, spool: &Spool, now: u64) -> Result<Vec<Change>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in txn.open_table(SUPPRESSION_LOG)?.iter()? {
            let (k, v) = row?;
            let (expires, sealed) = v.value();
            let json = (expires > now).then(|| spool.open_claim(&log_context(k.value()), sealed).ok()).flatten();
            match json.and_then(|j| serde_json::from_slice::<Change>(&j).ok()) {
                Some(c) => out.push(c),
                None => tracing::warn!(seq = k.value(), "suppression change unreadable or expired; skipped"),
            }
        }
        Ok(out)
    }

    /// Drops changes the operator has merged.
    pub fn confirm(&self, seqs: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(SUPPRESSION_LOG)?;
            for seq in seqs {
                table.remove(*seq)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every unexpired suppression entry: (tenant, entry JSON). Unreadable ones are skipped.
    pub fn suppressions(&self, spool: &Spool, now: u64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in txn.open_table(SUPPRESSIONS)?.iter()? {
            let (k, v) = row?;
            let (expires, sealed) = v.value();
            let name = k.value().to_string();
            if expires <= now {
                continue;
            }
            match spool.open_claim(&suppression_context(&name), sealed) {
                Ok(plain) => match plain.iter().position(|b| *b == 0) {
                    Some(i) => out.push((String::from_utf8_lossy(&plain[..i]).into_owned(), plain[i + 1..].to_vec())),
                    None => tracing::warn!("suppression entry malformed; skipped"),
                },
                Err(e) => tracing::warn!(error = %e, "suppression entry unreadable; skipped"),
            }
        }
        Ok(out)
    }

    /// Makes every earlier write durable (one fsync), when there is one that is not.
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.db.begin_write()?.commit()?;
        }
        Ok(())
    }

    /// Drops every record expired at `now`; returns how many.
    pub fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let mut dropped = 0;
        for def in [STATUS, IDEMPOTENCY, SUPPRESSIONS] {
            let mut table = txn.open_table(def)?;
            table.retain(|_, (expires, _)| {
                let keep = expires > now;
                dropped += usize::from(!keep);
                keep
            })?;
        }
        txn.open_table(SUPPRESSION_LOG)?.retain(|_, (expires, _)| {
            let keep = expires > now;
            dropped += usize::from(!keep);
            keep
        })?;
        txn.commit()?;
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::tests::{envelope, keys, temp_dir};

    #[test]
    fn status_records_survive_reopening_are_sealed_and_expire() {
        let dir = temp_dir("store");
        let spool = Spool::open(&dir, keys()).unwrap();
        let mut env = envelope("abc123");
        env.recipients[0].status = crate::spool::RcptStatus::Delivered;
        {
            let store = Store::open(&dir).unwrap();
            store.finished(&spool, &env, 2000).unwrap();
            store.flush().unwrap();
        }
        let raw = std::fs::read(dir.join("state.redb")).unwrap();
        assert!(!raw.windows(env.recipients[0].address.len()).any(|w| w == env.recipients[0].address.as_bytes()), "addresses are sealed");
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.status(&spool, "abc123", 1000).unwrap(), Some(env.clone()));
        assert_eq!(store.status(&spool, "abc123", 2000).unwrap(), None, "expired");
        assert_eq!(store.status(&spool, "other", 1000).unwrap(), None);
        assert_eq!(store.sweep(2000).unwrap(), 1);
        let other = Spool::open(&temp_dir("store-other"), keys()).unwrap();
        assert_eq!(store.status(&other, "abc123", 1000).unwrap(), None, "swept");
        store.finished(&spool, &env, 5000).unwrap();
        assert!(store.status(&other, "abc123", 1000).is_err(), "another key ring cannot open it");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_idempotency_key_is_taken_once_until_it_is_settled_or_expires() {
        let dir = temp_dir("idem");
        let spool = Spool::open(&dir, keys()).unwrap();
        let store = Store::open(&dir).unwrap();
        let name = idempotency_name("ck_1", "order-42");
        assert_ne!(name, idempotency_name("ck_2", "order-42"), "per API key");
        let first = Remembered { digest: "d1".into(), queue_id: "q1".into(), answer: "{}".into(), queued: false, started: 100 };
        assert_eq!(store.remember(&spool, &name, &first, 100).unwrap(), None);
        let second = Remembered { digest: "d2".into(), ..first.clone() };
        assert_eq!(store.remember(&spool, &name, &second, 101).unwrap(), Some(first.clone()), "the first stays");
        let done = Remembered { queued: true, ..first.clone() };
        store.settle(&spool, &name, Some(&done)).unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.remember(&spool, &name, &second, 102).unwrap(), Some(done), "survives reopening");
        assert_eq!(store.remember(&spool, &name, &second, 100 + IDEMPOTENCY_SECS).unwrap(), None, "expired: taken anew");
        store.settle(&spool, &name, None).unwrap();
        assert_eq!(store.remember(&spool, &name, &first, 200).unwrap(), None, "forgotten after a failed send");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
