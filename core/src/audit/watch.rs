//! The run-time check of a trail on its volume, so a break shows as a metric and an alert, not
//! only when someone runs `audit verify`: every `audit.verifyInterval` the records appended
//! since the last look are checked ([`super::chain::Checker`], going on where it stopped), the
//! latest checkpoint must be there with its mac, a file must not be shorter than what was
//! already read, and a file read to its end (a rotated one) must not change afterwards. A
//! rewrite of already-read bytes in the file being written is found by `audit verify` with the
//! anchor the operator keeps, not here (that would mean re-reading the trail every time).

use super::chain::{Break, Checker};
use super::Anchor;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the check stands: the file being read and how far, and the files read to their end.
pub struct Watch {
    key: aws_lc_rs::hmac::Key,
    dir: PathBuf,
    checker: Checker,
    /// The file read last, the bytes of it checked and its lines.
    at: Option<(PathBuf, u64, usize)>,
    /// Files read to their end: their length and modification time then.
    done: BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
}

fn stamp(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

impl Watch {
    pub fn new(dir: &Path, key: aws_lc_rs::hmac::Key) -> Self {
        Self { key, dir: dir.into(), checker: Checker::default(), at: None, done: BTreeMap::new() }
    }

    /// Records checked so far.
    pub fn records(&self) -> u64 {
        self.checker.verdict.records
    }

    /// Checks what was appended since the last call; returns the breaks found now.
    pub fn check(&mut self, anchor: Option<&Anchor>) -> Vec<Break> {
        let mut breaks = Vec::new();
        let name = |p: &Path| p.display().to_string();
        self.done.retain(|path, then| match stamp(path) {
            None => false, // removed by retention
            Some(now) if now != *then => {
                breaks.push(Break { file: name(path), line: 0, what: "changed after it was checked (it had been rotated away)".into() });
                *then = now;
                true
            }
            Some(_) => true,
        });
        let files = super::files(&self.dir);
        let anchor = anchor.map(|a| (a.seq, a.mac.as_str()));
        for (i, path) in files.iter().enumerate() {
            if self.done.contains_key(path) {
                continue;
            }
            let (offset, lines) = match &self.at {
                Some((p, offset, lines)) if p == path => (*offset, *lines),
                _ => (0, 0),
            };
            match self.read(path, offset, lines, anchor) {
                Ok((offset, lines)) => self.at = Some((path.clone(), offset, lines)),
                Err(b) => breaks.push(b),
            }
            if i + 1 < files.len() {
                if let Some(s) = stamp(path) {
                    self.done.insert(path.clone(), s);
                }
            }
        }
        breaks.append(&mut self.checker.verdict.breaks);
        if let (Some((seq, _)), Some(last)) = (anchor, self.checker.last_seq()) {
            if last < seq {
                let file = self.at.as_ref().map(|(p, ..)| name(p)).unwrap_or_default();
                breaks.push(Break { file, line: 0, what: format!("truncated: the trail ends at sequence {last} but the latest checkpoint is at {seq}") });
            }
        }
        breaks
    }

    /// Checks the whole lines of `path` after `offset`; the new offset and line count.
    fn read(&mut self, path: &Path, offset: u64, lines: usize, anchor: Option<(u64, &str)>) -> Result<(u64, usize), Break> {
        let file = path.display().to_string();
        let fail = |what: String| Break { file: file.clone(), line: lines, what };
        let mut f = std::fs::File::open(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
        let len = f.metadata().map_err(|e| fail(format!("cannot be read: {e}")))?.len();
        if len < offset {
            // Go on from its end: what was cut is gone, what comes next is checked.
            self.at = Some((path.into(), len, lines));
            return Err(fail(format!("{} bytes long, shorter than the {offset} already checked: truncated", len)));
        }
        let mut bytes = Vec::new();
        f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_to_end(&mut bytes)).map_err(|e| fail(format!("cannot be read: {e}")))?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let text = String::from_utf8_lossy(&bytes[..whole]);
        let mut n = lines;
        for line in text.lines() {
            n += 1;
            self.checker.line(&self.key, &file, n, line, anchor);
        }
        Ok((offset + whole as u64, n))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{files, Audit, Checkpoints};
    use super::*;

    #[test]
    fn appended_records_are_checked_as_they_come_and_tampering_shows() {
        let dir = crate::temp_dir("audit-watch");
        let key = [9u8; 32];
        let a = Audit::open(&dir, &key, 90, 1 << 20, Checkpoints { every: 2, interval: std::time::Duration::from_secs(3600) }).unwrap();
        let mut w = Watch::new(&dir, super::super::chain::key(&key));
        assert!(w.check(a.anchor().as_ref()).is_empty());
        for n in 0..5 {
            a.record("auth.success", serde_json::json!({ "n": n }));
        }
        assert!(w.check(a.anchor().as_ref()).is_empty());
        let checked = w.records();
        assert!(checked >= 6, "{checked}");
        // An appended record that does not chain (written by someone without the key).
        let path = files(&dir).last().unwrap().clone();
        let forged = r#"{"seq":99,"time":"2027-01-01T00:00:00Z","event":"auth.success","data":{},"prev":"00","mac":"00"}"#;
        std::fs::write(&path, format!("{}{forged}\n", std::fs::read_to_string(&path).unwrap())).unwrap();
        let breaks = w.check(a.anchor().as_ref());
        assert!(breaks.iter().any(|b| b.what.contains("does not match its mac")), "{breaks:?}");
        assert!(w.check(a.anchor().as_ref()).is_empty(), "a break is reported once");
        // Cut back: shorter than what was checked.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let breaks = w.check(a.anchor().as_ref());
        assert!(breaks.iter().any(|b| b.what.contains("truncated")), "{breaks:?}");
        drop(a);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_rotated_file_that_changes_afterwards_shows() {
        let dir = crate::temp_dir("audit-watch-rotated");
        let key = [8u8; 32];
        let a = Audit::open(&dir, &key, 90, 200, Checkpoints::default()).unwrap(); // every record rotates
        for n in 0..3 {
            a.record("auth.failure", serde_json::json!({ "n": n }));
        }
        let mut w = Watch::new(&dir, super::super::chain::key(&key));
        assert!(w.check(a.anchor().as_ref()).is_empty());
        let all = files(&dir);
        let first = all.iter().find(|p| std::fs::read_to_string(p).unwrap().contains("\"n\":0")).unwrap().clone();
        assert_ne!(Some(&first), all.last(), "rotated away");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = std::fs::read_to_string(&first).unwrap().replace("\"n\":0", "\"n\":7");
        std::fs::write(&first, text).unwrap();
        let breaks = w.check(a.anchor().as_ref());
        assert!(breaks.iter().any(|b| b.what.starts_with("changed after it was checked")), "{breaks:?}");
        drop(a);
        let _ = std::fs::remove_dir_all(dir);
    }
}
