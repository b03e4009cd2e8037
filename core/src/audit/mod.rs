//! The audit trail: JSON lines, one record per authentication, policy rejection, configuration
//! change, accepted message and final outcome, chained with HMAC-SHA256 under the audit key
//! ([`chain`]); addresses are masked and secrets never written. Files rotate by day and size and
//! are kept `retainDays`; the chain runs across them.
//!
//! Anchoring: every `checkpointEvery` records or `checkpointInterval` (whichever comes first,
//! when anything was written) an `audit.checkpoint` record is appended and the file fsynced; that
//! record's sequence and mac are the [`Anchor`], kept outside the file (the admin API's
//! `GET /audit/anchor`, which the operator collects, and the log). `audit verify --anchor SEQ:MAC`
//! then reports a trail cut short of the anchor, which the chain alone cannot show.
//!
//! A torn last line (a crash mid-write) is moved to `quarantine/` with a log line, and the chain
//! continues from the last whole record with an `audit.recovery` record saying what was set aside.

pub mod chain;
pub mod watch;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The latest durable checkpoint: the sequence and mac of an `audit.checkpoint` record on disk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub mac: String,
    pub time: String,
}

impl std::str::FromStr for Anchor {
    type Err = String;
    /// `SEQ:MAC`, or the JSON of `GET /audit/anchor`.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = serde_json::from_str::<Anchor>(s) {
            return Ok(a);
        }
        let (seq, mac) = s.trim().split_once(':').ok_or("expected SEQ:MAC or the JSON of GET /audit/anchor")?;
        let seq = seq.parse().map_err(|_| format!("{seq:?} is not a sequence number"))?;
        if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{mac:?} is not a 64-digit hex mac"));
        }
        Ok(Anchor { seq, mac: mac.to_ascii_lowercase(), time: String::new() })
    }
}

/// When checkpoints are written.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoints {
    pub every: u64,
    pub interval: Duration,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Self { every: 100, interval: Duration::from_secs(10) }
    }
}

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
    checkpoints: Checkpoints,
    /// Records since the last checkpoint, and when that was.
    since_checkpoint: u64,
    last_checkpoint: std::time::Instant,
    anchor: Option<Anchor>,
}

/// The relay's audit log; a disabled one records nothing.
#[derive(Default)]
pub struct Audit(Mutex<Option<Writer>>);

/// What opening the newest file found at its end.
struct Tail {
    seq: u64,
    prev: String,
    /// Bytes of a torn last line, moved aside: (quarantine file, length).
    torn: Option<(PathBuf, usize)>,
}

/// Reads the chain's end from the newest file; a torn last line is cut off (the file truncated to
/// its last whole record) and saved under `quarantine/`.
fn read_tail(dir: &Path, last: &Path) -> std::io::Result<Tail> {
    let bytes = std::fs::read(last)?;
    let parse = |line: &[u8]| -> Option<(u64, String)> {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        Some((v["seq"].as_u64()?, v["mac"].as_str()?.to_string()))
    };
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let cut = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let last_line = &body[cut..];
    if last_line.is_empty() {
        return Ok(Tail { seq: 0, prev: chain::GENESIS.into(), torn: None });
    }
    if let Some((seq, prev)) = parse(last_line) {
        if !bytes.ends_with(b"\n") {
            // The record is whole; only its newline was lost.
            open_append(last)?.write_all(b"\n")?;
        }
        return Ok(Tail { seq, prev, torn: None });
    }
    // Torn: keep it aside, cut the file back to its last whole record, chain on from that.
    let quarantine = dir.join("quarantine");
    std::fs::create_dir_all(&quarantine)?;
    let name = last.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
    let aside = quarantine.join(format!("{name}.torn-{}", crate::time::now_unix()));
    std::fs::write(&aside, last_line)?;
    let f = OpenOptions::new().write(true).open(last)?;
    f.set_len(cut as u64)?;
    f.sync_all()?;
    let (seq, prev) = match body[..cut].strip_suffix(b"\n").map(|b| b.rsplit(|&c| c == b'\n').next().unwrap_or(b)) {
        Some(line) => parse(line).ok_or_else(|| std::io::Error::other(format!("{}: the record before the torn line is unreadable too", last.display())))?,
        None => (0, chain::GENESIS.into()),
    };
    Ok(Tail { seq, prev, torn: Some((aside, last_line.len())) })
}

/// The audit key file: base64 of at least 32 random bytes.
/// `d***@example.test`: enough to follow a message in logs and audit records without exposing
/// the address (relays and the operator mask alike); `<>` for the null sender.
pub fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None if address.is_empty() => "<>".into(),
        None => "***".into(),
    }
}

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
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl")))
        .collect();
    v.sort();
    v
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// A fresh audit key file: base64 of 32 random bytes, newline-terminated.
pub fn new_key_file() -> Result<String, crate::secret::RngFailed> {
    use base64::Engine;
    Ok(format!("{}\n", base64::engine::general_purpose::STANDARD.encode(crate::secret::random_key()?)))
}

impl Audit {
    /// Opens the trail in `dir`, continuing the chain of the newest file there.
    pub fn open(dir: &Path, key: &[u8], retain_days: u32, rotate_bytes: u64, checkpoints: Checkpoints) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let tail = match files(dir).last() {
            Some(last) => read_tail(dir, last)?,
            None => Tail { seq: 0, prev: chain::GENESIS.into(), torn: None },
        };
        let now = crate::time::rfc3339_utc(crate::time::now_unix());
        let path = dir.join(format!("audit-{}-{:010}.jsonl", now.replace([':', '-'], ""), tail.seq + 1));
        let mut w = Writer {
            dir: dir.into(),
            key: chain::key(key),
            file: open_append(&path)?,
            path,
            day: day_of(&now),
            size: 0,
            seq: tail.seq,
            prev: tail.prev,
            retain: Duration::from_secs(u64::from(retain_days) * 86_400),
            rotate_bytes,
            checkpoints,
            since_checkpoint: 0,
            last_checkpoint: std::time::Instant::now(),
            anchor: None,
        };
        if let Some((aside, len)) = tail.torn {
            tracing::error!(quarantined_to = %aside.display(), bytes = len, "the audit trail ended in a torn record (a crash mid-write); set aside, the chain continues");
            w.append("audit.recovery", serde_json::json!({ "torn_bytes": len, "quarantined_to": aside.display().to_string(), "after_seq": w.seq }), &now)?;
        }
        w.checkpoint(&now, "start")?;
        Ok(Self(Mutex::new(Some(w))))
    }

    /// Appends a record. A write failure is logged loudly (the relay keeps serving).
    pub fn record(&self, event: &str, data: serde_json::Value) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = guard.as_mut() else { return };
        let now = crate::time::rfc3339_utc(crate::time::now_unix());
        let result = w.append(event, data, &now).and_then(|()| if w.since_checkpoint >= w.checkpoints.every { w.checkpoint(&now, "records") } else { Ok(()) });
        if let Err(e) = result {
            tracing::error!(error = %e, event, "writing the audit trail failed");
        }
    }

    /// Writes a checkpoint when records were written and `checkpointInterval` has passed (`force`:
    /// whenever records were written, as at shutdown). Called on a timer.
    pub fn tick(&self, force: bool) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = guard.as_mut() else { return };
        if w.since_checkpoint > 0 && (force || w.last_checkpoint.elapsed() >= w.checkpoints.interval) {
            let now = crate::time::rfc3339_utc(crate::time::now_unix());
            if let Err(e) = w.checkpoint(&now, if force { "shutdown" } else { "interval" }) {
                tracing::error!(error = %e, "writing an audit checkpoint failed");
            }
        }
    }

    /// A run-time check of this trail ([`watch`]); `None` when the trail is off.
    pub fn watch(&self) -> Option<watch::Watch> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|w| watch::Watch::new(&w.dir, w.key.clone()))
    }

    /// The latest durable checkpoint (`None` when the trail is off).
    pub fn anchor(&self) -> Option<Anchor> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|w| w.anchor.clone())
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
        self.since_checkpoint += 1;
        Ok(())
    }

    /// Appends an `audit.checkpoint` record, fsyncs the file and makes that record the anchor.
    fn checkpoint(&mut self, now: &str, why: &str) -> std::io::Result<()> {
        self.append("audit.checkpoint", serde_json::json!({ "reason": why, "file": self.path.file_name().and_then(|n| n.to_str()) }), now)?;
        self.file.sync_data()?;
        self.since_checkpoint = 0;
        self.last_checkpoint = std::time::Instant::now();
        self.anchor = Some(Anchor { seq: self.seq, mac: self.prev.clone(), time: now.to_string() });
        tracing::info!(audit_seq = self.seq, audit_mac = %self.prev, file = %self.path.display(), reason = why, "audit checkpoint");
        Ok(())
    }

    fn rotate(&mut self, now: &str) -> std::io::Result<()> {
        self.file.sync_all()?;
        self.path = self.dir.join(format!("audit-{}-{:010}.jsonl", now.replace([':', '-'], ""), self.seq + 1));
        self.file = open_append(&self.path)?;
        self.day = day_of(now);
        self.size = 0;
        tracing::info!(audit_seq = self.seq, audit_mac = %self.prev, file = %self.path.display(), "audit file rotated");
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
pub fn verify_files(key: &[u8], paths: &[PathBuf], anchor: Option<&Anchor>) -> Result<chain::Verdict, String> {
    let mut sorted = paths.to_vec();
    sorted.sort();
    let mut texts = Vec::new();
    for p in &sorted {
        texts.push((p.display().to_string(), std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?));
    }
    Ok(chain::verify(&chain::key(key), &texts, anchor.map(|a| (a.seq, a.mac.as_str()))))
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
        /// The latest checkpoint as kept outside the files: `SEQ:MAC`, or the JSON of the relay's
        /// `GET /audit/anchor` (as the RelayPool's `status.auditAnchors` holds it). With it, a
        /// trail cut short of the anchor or rewritten before it is reported.
        #[arg(long)]
        anchor: Option<Anchor>,
        /// Audit files (`audit-*.jsonl`), checked in name order.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
}

/// Why `audit verify` failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("reading the audit key {path}: {source}")]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("audit key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("reading the audit files: {0}")]
    Files(String),
    #[error("the audit trail does not verify: {0} break(s)")]
    Breaks(usize),
}

impl AuditCommand {
    pub fn run(self) -> Result<(), VerifyError> {
        match self {
            AuditCommand::Verify { key, anchor, files } => verify_command(&key, &files, anchor.as_ref()),
        }
    }
}

/// `audit verify`: prints every break as `file:line: what` and a summary; fails when anything
/// breaks.
pub fn verify_command(key_file: &Path, files: &[PathBuf], anchor: Option<&Anchor>) -> Result<(), VerifyError> {
    let key = read_key(key_file)?;
    let v = verify_files(&key, files, anchor).map_err(VerifyError::Files)?;
    for b in &v.breaks {
        println!("{}:{}: {}", b.file, b.line, b.what);
    }
    let first = v.first_seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let last = v.last_mac.clone().unwrap_or_default();
    println!("{} record(s) from sequence {first}; last mac {last}; {} break(s)", v.records, v.breaks.len());
    if !v.breaks.is_empty() {
        return Err(VerifyError::Breaks(v.breaks.len()));
    }
    Ok(())
}

/// Reads and checks an audit key file.
pub fn read_key(key_file: &Path) -> Result<Vec<u8>, VerifyError> {
    let text = std::fs::read_to_string(key_file).map_err(|source| VerifyError::ReadKey { path: key_file.into(), source })?;
    parse_key(&text).map_err(|reason| VerifyError::Key { path: key_file.into(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_trail_continues_the_chain_and_verifies() {
        let dir = crate::temp_dir("audit");
        let key = [7u8; 32];
        let a = Audit::open(&dir, &key, 90, 1 << 20, Checkpoints::default()).unwrap();
        a.record("auth.success", serde_json::json!({"client": "192.0.2.1", "key": "ck_1"}));
        a.record("message.accepted", serde_json::json!({"queue_id": "q1", "sender": "d***@example.test"}));
        drop(a);
        let a = Audit::open(&dir, &key, 90, 200, Checkpoints::default()).unwrap(); // small files: every record rotates
        for i in 0..3 {
            a.record("auth.failure", serde_json::json!({"client": "192.0.2.1", "n": i}));
        }
        let paths = files(&dir);
        assert!(paths.len() >= 3, "{paths:?}");
        let v = verify_files(&key, &paths, None).unwrap();
        // Five records and a checkpoint at each of the two starts.
        assert_eq!((v.records, v.first_seq, v.breaks.len()), (7, Some(1), 0), "{:?}", v.breaks);
        // Removing a middle file breaks the chain there.
        let without: Vec<PathBuf> = paths.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, p)| p.clone()).collect();
        assert!(!verify_files(&key, &without, None).unwrap().breaks.is_empty());
    }

    #[test]
    fn checkpoints_anchor_the_trail_so_a_cut_tail_shows() {
        let dir = crate::temp_dir("audit-anchor");
        let key = [3u8; 32];
        let a = Audit::open(&dir, &key, 90, 1 << 20, Checkpoints { every: 3, interval: Duration::from_secs(3600) }).unwrap();
        let start = a.anchor().unwrap();
        assert_eq!(start.seq, 1, "the start checkpoint is the first record");
        for i in 0..3 {
            a.record("auth.success", serde_json::json!({ "n": i }));
        }
        let anchor = a.anchor().unwrap();
        assert_eq!(anchor.seq, 5, "three records, then a checkpoint");
        a.record("auth.failure", serde_json::json!({}));
        a.tick(true);
        assert_eq!(a.anchor().unwrap().seq, 7);
        a.tick(true);
        assert_eq!(a.anchor().unwrap().seq, 7, "no records since: no checkpoint");
        drop(a);
        let paths = files(&dir);
        let text = std::fs::read_to_string(&paths[0]).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("\"event\":\"audit.checkpoint\"")).count(), 3);
        let anchor: Anchor = serde_json::to_string(&anchor).unwrap().parse().unwrap();
        assert!(verify_files(&key, &paths, Some(&anchor)).unwrap().breaks.is_empty());
        // Cut the last three records: the chain alone still verifies, the anchor does not.
        let kept: Vec<&str> = text.lines().take(4).collect();
        std::fs::write(&paths[0], format!("{}\n", kept.join("\n"))).unwrap();
        assert!(verify_files(&key, &paths, None).unwrap().breaks.is_empty());
        let breaks = verify_files(&key, &paths, Some(&anchor)).unwrap().breaks;
        assert_eq!(breaks[0].what, "truncated: the trail ends at sequence 4 but the anchor is at 5");
        assert!(format!("5:{}", anchor.mac).parse::<Anchor>().is_ok() && "5:xyz".parse::<Anchor>().is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_last_line_is_set_aside_and_the_chain_continues_with_a_recovery_record() {
        let dir = crate::temp_dir("audit-torn");
        let key = [5u8; 32];
        let a = Audit::open(&dir, &key, 90, 1 << 20, Checkpoints::default()).unwrap();
        a.record("auth.success", serde_json::json!({ "n": 1 }));
        drop(a);
        let first = files(&dir)[0].clone();
        // A crash mid-write: half a record, no newline.
        let mut f = OpenOptions::new().append(true).open(&first).unwrap();
        f.write_all(b"{\"seq\":3,\"time\":\"2027-01-").unwrap();
        drop(f);
        let a = Audit::open(&dir, &key, 90, 1 << 20, Checkpoints::default()).unwrap();
        a.record("auth.success", serde_json::json!({ "n": 2 }));
        drop(a);
        let torn: Vec<_> = std::fs::read_dir(dir.join("quarantine")).unwrap().flatten().collect();
        assert_eq!(torn.len(), 1);
        assert_eq!(std::fs::read(torn[0].path()).unwrap(), b"{\"seq\":3,\"time\":\"2027-01-");
        let v = verify_files(&key, &files(&dir), None).unwrap();
        assert!(v.breaks.is_empty(), "{:?}", v.breaks);
        let all: String = files(&dir).iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
        let recovery = all.lines().find(|l| l.contains("\"event\":\"audit.recovery\"")).expect("a recovery record");
        assert!(recovery.contains("\"torn_bytes\":25") && recovery.contains("\"after_seq\":2"), "{recovery}");
        // A whole last record that lost only its newline is kept as it is.
        let last = files(&dir).last().unwrap().clone();
        let text = std::fs::read_to_string(&last).unwrap();
        std::fs::write(&last, text.trim_end()).unwrap();
        drop(Audit::open(&dir, &key, 90, 1 << 20, Checkpoints::default()).unwrap());
        assert!(verify_files(&key, &files(&dir), None).unwrap().breaks.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
