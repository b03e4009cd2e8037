//! The audit trail: JSON lines, one record per authentication, policy rejection, configuration
//! change, accepted message and final outcome, chained with HMAC-SHA256 under the audit key
//! ([`chain`]); addresses are masked and secrets never written. Files rotate by day and size and
//! are kept `retainDays`; the chain runs across them, and a checkpoint (sequence and mac) goes
//! to the normal log at every start, rotation and thousandth record, so truncation shows too.
//! `cascade-relay audit verify` checks files.

pub mod chain;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

const CHECKPOINT_EVERY: u64 = 1000;

struct Writer {
    dir: PathBuf,
    key: aws_lc_rs::hmac::Key,
    file: File,
    path: PathBuf,
    day: String,
    size: u64,
    seq: u64,
    prev: String,
    retain: Duration,
    rotate_bytes: u64,
}

/// The relay's audit log; a disabled one records nothing.
#[derive(Default)]
pub struct Audit(Mutex<Option<Writer>>);

/// The audit key file: base64 of at least 32 random bytes.
pub fn parse_key(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| format!("not base64: {e}"))?;
    if key.len() < 32 {
        return Err(format!("{} bytes; at least 32 are needed", key.len()));
    }
    Ok(key)
}

fn day_of(time: &str) -> String {
    time.get(..10).unwrap_or_default().replace('-', "")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))).collect();
    v.sort();
    v
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

impl Audit {
    /// Opens the trail in `dir`, continuing the chain of the newest file there.
    pub fn open(dir: &Path, key: &[u8], retain_days: u32, rotate_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (mut seq, mut prev) = (0, chain::GENESIS.to_string());
        if let Some(last) = files(dir).last() {
            let line = BufReader::new(File::open(last)?).lines().map_while(Result::ok).last();
            if let Some(line) = line {
                let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| std::io::Error::other(format!("{}: last record unreadable: {e}", last.display())))?;
                seq = v["seq"].as_u64().unwrap_or(0);
                prev = v["mac"].as_str().unwrap_or(chain::GENESIS).to_string();
            }
        }
        let now = crate::time::rfc3339_utc(crate::time::now_unix());
        let path = dir.join(format!("audit-{}-{:010}.jsonl", now.replace([':', '-'], ""), seq + 1));
        let w = Writer { dir: dir.into(), key: chain::key(key), file: open_append(&path)?, path, day: day_of(&now), size: 0, seq, prev, retain: Duration::from_secs(u64::from(retain_days) * 86_400), rotate_bytes };
        tracing::info!(audit_seq = w.seq, audit_mac = %w.prev, file = %w.path.display(), "audit checkpoint (start)");
        Ok(Self(Mutex::new(Some(w))))
    }

    /// Appends a record. A write failure is logged loudly (the relay keeps serving).
    pub fn record(&self, event: &str, data: serde_json::Value) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = guard.as_mut() else { return };
        let now = crate::time::rfc3339_utc(crate::time::now_unix());
        if let Err(e) = w.append(event, data, &now) {
            tracing::error!(error = %e, event, "writing the audit trail failed");
        }
    }
}

impl Writer {
    fn append(&mut self, event: &str, data: serde_json::Value, now: &str) -> std::io::Result<()> {
        if day_of(now) != self.day || self.size >= self.rotate_bytes {
            self.rotate(now)?;
        }
        self.seq += 1;
        let (line, mac) = chain::seal(&self.key, self.seq, now, event, &data, &self.prev);
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.size += line.len() as u64 + 1;
        self.prev = mac;
        if self.seq % CHECKPOINT_EVERY == 0 {
            tracing::info!(audit_seq = self.seq, audit_mac = %self.prev, file = %self.path.display(), "audit checkpoint");
        }
        Ok(())
    }

    fn rotate(&mut self, now: &str) -> std::io::Result<()> {
        self.file.sync_all()?;
        self.path = self.dir.join(format!("audit-{}-{:010}.jsonl", now.replace([':', '-'], ""), self.seq + 1));
        self.file = open_append(&self.path)?;
        self.day = day_of(now);
        self.size = 0;
        tracing::info!(audit_seq = self.seq, audit_mac = %self.prev, file = %self.path.display(), "audit checkpoint (rotation)");
        let cutoff = SystemTime::now().checked_sub(self.retain).unwrap_or(SystemTime::UNIX_EPOCH);
        for old in files(&self.dir) {
            let expired = std::fs::metadata(&old).and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
            if expired && old != self.path {
                let _ = std::fs::remove_file(&old);
                tracing::info!(file = %old.display(), "audit file past retention removed");
            }
        }
        Ok(())
    }
}

/// `cascade-relay audit verify`: checks the files in name order; every break is reported as
/// `file:line: what`.
pub fn verify_files(key: &[u8], paths: &[PathBuf]) -> Result<chain::Verdict, String> {
    let mut sorted = paths.to_vec();
    sorted.sort();
    let mut texts = Vec::new();
    for p in &sorted {
        texts.push((p.display().to_string(), std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?));
    }
    Ok(chain::verify(&chain::key(key), &texts))
}

/// The `audit` subcommands of both programs (`cascade-relay audit`, `cascade-operator audit`).
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check that audit files chain and carry valid macs; print every break as file:line: what.
    Verify {
        /// The audit key file (base64 of at least 32 bytes: the relay configuration's
        /// audit.keyFile, or the operator's Secret cascade-audit-key).
        #[arg(long)]
        key: PathBuf,
        /// Audit files (`audit-*.jsonl`), checked in name order.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
}

impl AuditCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            AuditCommand::Verify { key, files } => verify_command(&key, &files),
        }
    }
}

/// `audit verify`: prints every break as `file:line: what` and a summary; fails when anything
/// breaks.
pub fn verify_command(key_file: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let key = read_key(key_file)?;
    let v = verify_files(&key, files).map_err(|e| anyhow::anyhow!(e))?;
    for b in &v.breaks {
        println!("{}:{}: {}", b.file, b.line, b.what);
    }
    let first = v.first_seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let last = v.last_mac.clone().unwrap_or_default();
    println!("{} record(s) from sequence {first}; last mac {last}; {} break(s)", v.records, v.breaks.len());
    anyhow::ensure!(v.breaks.is_empty(), "the audit trail does not verify");
    Ok(())
}

/// Reads and checks an audit key file.
pub fn read_key(key_file: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(key_file).map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
    parse_key(&text).map_err(|e| anyhow::anyhow!("audit key {}: {e}", key_file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_trail_continues_the_chain_and_verifies() {
        let dir = crate::spool::tests::temp_dir("audit");
        let key = [7u8; 32];
        let a = Audit::open(&dir, &key, 90, 1 << 20).unwrap();
        a.record("auth.success", serde_json::json!({"client": "192.0.2.1", "key": "ck_1"}));
        a.record("message.accepted", serde_json::json!({"queue_id": "q1", "sender": "d***@example.test"}));
        drop(a);
        let a = Audit::open(&dir, &key, 90, 200).unwrap(); // small files: every record rotates
        for i in 0..3 {
            a.record("auth.failure", serde_json::json!({"client": "192.0.2.1", "n": i}));
        }
        let paths = files(&dir);
        assert!(paths.len() >= 3, "{paths:?}");
        let v = verify_files(&key, &paths).unwrap();
        assert_eq!((v.records, v.first_seq, v.breaks.len()), (5, Some(1), 0), "{:?}", v.breaks);
        // Removing a middle file breaks the chain there.
        let without: Vec<PathBuf> = paths.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, p)| p.clone()).collect();
        assert!(!verify_files(&key, &without).unwrap().breaks.is_empty());
    }
}
