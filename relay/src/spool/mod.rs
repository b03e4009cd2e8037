//! The durable queue: one encrypted file per message (see [`format`]), written to a temporary
//! name, fsynced, renamed into place, and the directory fsynced, before the client hears `250`.
//! On start every `*.msg` file is opened again; one that cannot be read is moved to
//! `quarantine/` with a log line and never stops the others. Functions here block: call them
//! from `spawn_blocking`.

pub mod finished;
pub mod seals;
pub mod usage;

use cascade_core::seal::{self as format, FormatError, KeyRing};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub id: String,
    /// Reverse path; empty for the null sender (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub tenant: String,
    /// The API key id that submitted it (none for bounces).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Unix seconds when the message was accepted.
    pub created: u64,
    /// Unix seconds of the next delivery attempt.
    pub next_attempt: u64,
    pub attempts: u32,
    /// The sender's tags (the send API's `tags`), kept for its status and events.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Recipient {
    pub address: String,
    pub status: RcptStatus,
    /// The last reply or error seen for this recipient.
    #[serde(default)]
    pub last_reply: Option<String>,
    /// A bounce for this (failed) recipient has been queued.
    #[serde(default)]
    pub bounced: bool,
}

impl Recipient {
    pub fn pending(address: &str) -> Self {
        Self { address: address.into(), status: RcptStatus::Pending, last_reply: None, bounced: false }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    Pending,
    Delivered,
    Failed,
}

impl Envelope {
    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| r.status == RcptStatus::Pending)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool task failed: {0}")]
    Task(String),
    #[error("spool file {path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error("spool file {path}: envelope is not valid: {reason}")]
    Envelope { path: PathBuf, reason: String },
}

/// Runs `f` on the spool on the blocking pool: spool work is file I/O, fsync and decryption, and
/// must not hold up the async workers that serve every session.
pub async fn blocking<T: Send + 'static>(spool: &Arc<Spool>, f: impl FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static) -> Result<T, SpoolError> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || f(&spool)).await.unwrap_or_else(|e| Err(SpoolError::Task(e.to_string())))
}

pub struct Spool {
    dir: PathBuf,
    keys: RwLock<Arc<KeyRing>>,
    usage: std::sync::Mutex<usage::Usage>,
    seals: std::sync::Mutex<seals::Seals>,
    finished: std::sync::Mutex<finished::Finished>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// A new queue id: time-ordered (milliseconds) plus 32 random bits, 20 hex digits.
pub fn new_queue_id() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut r = [0u8; 4];
    let _ = SystemRandom::new().fill(&mut r);
    format!("{:012x}{:08x}", cascade_core::time::now_unix_ms(), u32::from_be_bytes(r))
}

pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Spool {
    /// Opens (creating, mode 0700) the spool directory and removes temporary files left by a crash
    /// (they were never acknowledged to anyone).
    pub fn open(dir: &Path, keys: Arc<KeyRing>) -> Result<Self, SpoolError> {
        for d in [dir.to_path_buf(), dir.join("quarantine")] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&d).map_err(io_err(&d))?;
        }
        for entry in fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        let finished = finished::Finished::load(dir, cascade_core::time::now_unix());
        Ok(Self { dir: dir.to_path_buf(), keys: RwLock::new(keys), usage: Default::default(), seals: std::sync::Mutex::new(seals::Seals::load(dir)), finished: std::sync::Mutex::new(finished) })
    }

    pub fn set_keys(&self, keys: Arc<KeyRing>) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, usage::Usage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seals per spool key id on this relay (see [`seals`]).
    pub fn seal_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.seals.lock().unwrap_or_else(|e| e.into_inner()).counts().clone()
    }

    /// Saves the seal counts (at shutdown).
    pub fn save_seal_counts(&self) {
        self.seals.lock().unwrap_or_else(|e| e.into_inner()).save();
    }

    /// (messages, bytes) `tenant` has queued in this spool.
    pub fn tenant_usage(&self, tenant: &str) -> (u64, u64) {
        self.usage().of(tenant)
    }

    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    /// Writes (or atomically replaces) a message durably.
    pub fn store(&self, env: &Envelope, message: &[&[u8]]) -> Result<(), SpoolError> {
        let json = serde_json::to_vec(env).map_err(|e| SpoolError::Envelope { path: self.path_of(&env.id), reason: e.to_string() })?;
        let path = self.path_of(&env.id);
        let keys = self.keys();
        let bytes = format::seal(&keys, &env.id, &json, message).map_err(|source| SpoolError::Format { path: path.clone(), source })?;
        if let Some(n) = self.seals.lock().unwrap_or_else(|e| e.into_inner()).add(keys.active()) {
            tracing::warn!(key = keys.active(), seals = n, limit = 1u64 << 32, "spool key has sealed many files (random nonces are safe up to 2^32 per key): rotate the spool key");
        }
        self.write_durably(&env.id, &bytes)?;
        self.usage().put(&env.id, &env.tenant, bytes.len() as u64);
        Ok(())
    }

    fn write_durably(&self, id: &str, bytes: &[u8]) -> Result<(), SpoolError> {
        let path = self.path_of(id);
        let tmp = self.dir.join(format!("{id}.tmp"));
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))
    }

    /// Whether queue `id` is in this spool now, or finished here recently (see [`finished`]).
    pub fn holds_or_finished(&self, id: &str) -> bool {
        self.path_of(id).exists() || self.finished.lock().unwrap_or_else(|e| e.into_inner()).contains(id, cascade_core::time::now_unix())
    }

    /// Seals `claim` under the active spool key, bound to `context` (an AES-GCM tag only a
    /// holder of the pool's spool key can make), counted like every seal.
    pub fn seal_claim(&self, context: &str, claim: &[u8]) -> Result<Vec<u8>, FormatError> {
        let keys = self.keys();
        let sealed = format::seal_blob(&keys, context, claim)?;
        self.seals.lock().unwrap_or_else(|e| e.into_inner()).add(keys.active());
        Ok(sealed)
    }

    /// Opens a claim [`Spool::seal_claim`] made (under any key of the ring).
    pub fn open_claim(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, FormatError> {
        format::open_blob(&self.keys(), context, sealed)
    }

    /// A queued message's file as it is on disk (encrypted), for handing it to a peer.
    pub fn export(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        let path = self.path_of(id);
        fs::read(&path).map_err(io_err(&path))
    }

    /// Takes a peer's spool file as is, once it opens under this spool's keys as queue `id`
    /// (AES-GCM: only a holder of the pool's spool key can make one), and stores it durably.
    pub fn import(&self, id: &str, bytes: Vec<u8>) -> Result<Envelope, SpoolError> {
        let path = self.path_of(id);
        if !valid_id(id) {
            return Err(SpoolError::Envelope { path, reason: "not a queue id".into() });
        }
        let (json, _) = format::open(&self.keys(), id, bytes.clone()).map_err(|source| SpoolError::Format { path: path.clone(), source })?;
        let env: Envelope = serde_json::from_slice(&json).map_err(|e| SpoolError::Envelope { path: path.clone(), reason: e.to_string() })?;
        if env.id != id {
            return Err(SpoolError::Envelope { path, reason: format!("envelope id {:?} does not match", env.id) });
        }
        self.write_durably(id, &bytes)?;
        self.usage().put(id, &env.tenant, bytes.len() as u64);
        Ok(env)
    }

    pub fn load(&self, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        let path = self.path_of(id);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let (json, message) = format::open(&self.keys(), id, bytes).map_err(|source| SpoolError::Format { path: path.clone(), source })?;
        let env: Envelope = serde_json::from_slice(&json).map_err(|e| SpoolError::Envelope { path: path.clone(), reason: e.to_string() })?;
        if env.id != id {
            return Err(SpoolError::Envelope { path, reason: format!("envelope id {:?} does not match the file name", env.id) });
        }
        Ok((env, message))
    }

    /// Deletes a finished message. A crash before the directory reaches the disk can bring it back
    /// and deliver it twice; never lose it.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        let path = self.path_of(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => {
                self.usage().remove(id);
                self.finished.lock().unwrap_or_else(|e| e.into_inner()).add(id, cascade_core::time::now_unix());
                Ok(())
            }
        }
    }

    /// Moves an unreadable file aside so it never blocks the queue, and says so in the log.
    fn quarantine(&self, path: &Path, reason: &dyn std::fmt::Display) {
        let name = path.file_name().unwrap_or_default();
        let dest = self.dir.join("quarantine").join(name);
        match fs::rename(path, &dest) {
            Ok(()) => tracing::error!(file = %path.display(), moved_to = %dest.display(), %reason, "spool file unreadable; set aside"),
            Err(e) => tracing::error!(file = %path.display(), %reason, error = %e, "spool file unreadable and could not be set aside"),
        }
    }

    /// Every readable queued message's envelope; unreadable files are quarantined.
    pub fn recover(&self) -> Result<Vec<Envelope>, SpoolError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))?.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "msg") {
                continue;
            }
            let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            if !valid_id(&id) {
                self.quarantine(&path, &"file name is not a queue id");
                continue;
            }
            match self.load(&id) {
                Ok((env, _)) => {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or_default();
                    self.usage().put(&id, &env.tenant, size);
                    found.push(env);
                }
                Err(e) => self.quarantine(&path, &e),
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cascade-test-{tag}-{}", new_queue_id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn keys() -> Arc<KeyRing> {
        Arc::new(KeyRing::parse(&KeyRing::generate_line("k1").unwrap()).unwrap())
    }

    pub fn envelope(id: &str) -> Envelope {
        Envelope {
            id: id.into(),
            sender: "a@example.test".into(),
            recipients: vec![Recipient::pending("b@dest.test")],
            tenant: "t".into(),
            key: String::new(),
            created: 1,
            next_attempt: 1,
            attempts: 0,
            tags: Default::default(),
        }
    }

    #[test]
    fn stores_loads_and_recovers() {
        let dir = temp_dir("spool");
        let spool = Spool::open(&dir, keys()).unwrap();
        let id = new_queue_id();
        spool.store(&envelope(&id), &[b"Subject: MARKER\r\n\r\nMARKER\r\n"]).unwrap();
        let (env, msg) = spool.load(&id).unwrap();
        assert_eq!(env, envelope(&id));
        assert_eq!(msg, b"Subject: MARKER\r\n\r\nMARKER\r\n");
        assert!(!String::from_utf8_lossy(&fs::read(spool.path_of(&id)).unwrap()).contains("MARKER"));
        assert_eq!(spool.recover().unwrap(), vec![envelope(&id)]);
        spool.remove(&id).unwrap();
        spool.remove(&id).unwrap();
        assert!(spool.recover().unwrap().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_and_truncated_files_are_set_aside_and_the_rest_recovered() {
        let dir = temp_dir("corrupt");
        let key_line = KeyRing::generate_line("k1").unwrap();
        let spool = Spool::open(&dir, Arc::new(KeyRing::parse(&key_line).unwrap())).unwrap();
        let (good, bad, short) = ("0000000000aa00000001", "0000000000aa00000002", "0000000000aa00000003");
        for id in [good, bad, short] {
            spool.store(&envelope(id), &[b"body"]).unwrap();
        }
        let mut bytes = fs::read(spool.path_of(bad)).unwrap();
        bytes[40] ^= 0xff;
        fs::write(spool.path_of(bad), bytes).unwrap();
        let bytes = fs::read(spool.path_of(short)).unwrap();
        fs::write(spool.path_of(short), &bytes[..bytes.len() / 2]).unwrap();
        fs::write(dir.join("not-an-id!.msg"), b"x").unwrap();
        fs::write(dir.join(format!("{good}x.tmp")), b"partial").unwrap();
        let spool = Spool::open(&dir, Arc::new(KeyRing::parse(&key_line).unwrap())).unwrap();
        assert_eq!(spool.recover().unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec![good]);
        let mut aside: Vec<_> = fs::read_dir(dir.join("quarantine")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        aside.sort();
        assert_eq!(aside, vec![format!("{bad}.msg"), format!("{short}.msg"), "not-an-id!.msg".to_string()]);
        assert!(!dir.join(format!("{good}x.tmp")).exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
