//! The tamper-evident format: one JSON object per line,
//! `{"seq":N,"time":"…","event":"…","data":{…},"prev":"<hex>","mac":"<hex>"}`, where `mac` is
//! HMAC-SHA256 under the audit key of everything before `,"mac":` and `prev` is the previous
//! record's `mac` (64 zeros before the first). Editing, inserting, removing or reordering any
//! record breaks the chain at that place, across rotated files too.

use aws_lc_rs::hmac;
use serde::Deserialize;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAC_FIELD: &str = ",\"mac\":\"";

pub fn key(bytes: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The line for a record (without the newline) and its mac.
pub fn seal(key: &hmac::Key, seq: u64, time: &str, event: &str, data: &serde_json::Value, prev: &str) -> (String, String) {
    let body = serde_json::json!({ "seq": seq, "time": time, "event": event, "data": data, "prev": prev }).to_string();
    let body = &body[..body.len() - 1]; // without the closing brace
    let mac = hex(hmac::sign(key, body.as_bytes()).as_ref());
    (format!("{body}{MAC_FIELD}{mac}\"}}"), mac)
}

#[derive(Deserialize)]
struct Head {
    seq: u64,
    prev: String,
}

/// Where a chain breaks: `file:line: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: String,
    pub line: usize,
    pub what: String,
}

/// What a verification found: the records checked, the first sequence number, and the breaks.
#[derive(Debug, Default)]
pub struct Verdict {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_mac: Option<String>,
    pub breaks: Vec<Break>,
}

/// A verification fed one record at a time, in order, that can go on where it stopped (the
/// relay's run-time check, [`super::watch`]). The first record's `prev` is trusted (earlier
/// files may have been removed by retention); everything after must chain.
#[derive(Debug, Default)]
pub struct Checker {
    pub verdict: Verdict,
    /// The next record's sequence number and `prev`.
    expect: Option<(u64, String)>,
    /// Whether the anchor's record was seen.
    anchored: bool,
}

impl Checker {
    /// The sequence number of the last record checked.
    pub fn last_seq(&self) -> Option<u64> {
        self.expect.as_ref().map(|(next, _)| next - 1)
    }

    /// Checks one line (`file`, 1-based `line`); with an `anchor`, the record of its sequence must
    /// carry its mac.
    pub fn line(&mut self, key: &hmac::Key, file: &str, line: usize, text: &str, anchor: Option<(u64, &str)>) {
        let v = &mut self.verdict;
        let at = |what: String| Break { file: file.to_string(), line, what };
        let Some(pos) = text.rfind(MAC_FIELD) else {
            v.breaks.push(at("not an audit record (no mac)".into()));
            return;
        };
        let (body, tail) = (&text[..pos], &text[pos + MAC_FIELD.len()..]);
        let mac = tail.trim_end_matches("\"}");
        if hmac::verify(key, body.as_bytes(), &(0..mac.len() / 2).filter_map(|j| u8::from_str_radix(mac.get(2 * j..2 * j + 2)?, 16).ok()).collect::<Vec<_>>()).is_err() {
            v.breaks.push(at("the record does not match its mac: edited, or not written with this key".into()));
        }
        let head: Head = match serde_json::from_str(&format!("{body}}}")) {
            Ok(h) => h,
            Err(e) => {
                v.breaks.push(at(format!("unreadable record: {e}")));
                return;
            }
        };
        match &self.expect {
            None => v.first_seq = Some(head.seq),
            Some((seq, prev)) => {
                if head.seq != *seq {
                    v.breaks.push(at(format!("sequence {} where {seq} was expected: records removed, inserted or reordered", head.seq)));
                } else if head.prev != *prev {
                    v.breaks.push(at("does not chain to the record before it: records removed, inserted or reordered".into()));
                }
            }
        }
        if let Some((seq, anchor_mac)) = anchor.filter(|(seq, _)| *seq == head.seq) {
            self.anchored = true;
            if mac != anchor_mac {
                v.breaks.push(at(format!("record {seq} does not match the anchor: the trail was rewritten up to here")));
            }
        }
        self.expect = Some((head.seq + 1, mac.to_string()));
        v.records += 1;
        v.last_mac = Some(mac.to_string());
    }

    /// The break when the `anchor`'s record was not among those checked (`at`: the end, as
    /// file and line), if any.
    pub fn missing_anchor(&self, anchor: Option<(u64, &str)>, at: (String, usize)) -> Option<Break> {
        let (seq, _) = anchor.filter(|_| !self.anchored)?;
        let what = match (self.last_seq(), self.verdict.first_seq) {
            (Some(last), _) if last < seq => format!("truncated: the trail ends at sequence {last} but the anchor is at {seq}"),
            (_, Some(first)) if first > seq => format!("the anchor's sequence {seq} is before the first record given ({first}); give the older files"),
            _ => format!("no record with the anchor's sequence {seq}"),
        };
        Some(Break { file: at.0, line: at.1, what })
    }
}

/// Checks files in order (oldest first), as [`Checker`] does. With an `anchor` (a sequence and
/// mac kept outside the files), the record of that sequence must be there with that mac: a
/// trail that ends before it was cut short.
pub fn verify(key: &hmac::Key, files: &[(String, String)], anchor: Option<(u64, &str)>) -> Verdict {
    let mut c = Checker::default();
    for (name, text) in files {
        for (i, line) in text.lines().enumerate() {
            c.line(key, name, i + 1, line, anchor);
        }
    }
    let end = files.last().map(|(n, t)| (n.clone(), t.lines().count())).unwrap_or_default();
    if let Some(b) = c.missing_anchor(anchor, end) {
        c.verdict.breaks.push(b);
    }
    c.verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: &hmac::Key, n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let (line, mac) = seal(key, seq, "2027-01-15T08:00:00Z", "auth.success", &serde_json::json!({"client": "192.0.2.1", "n": seq}), &prev);
                prev = mac;
                line
            })
            .collect()
    }

    fn check(key: &hmac::Key, files: &[Vec<String>]) -> Vec<(usize, usize, String)> {
        let named: Vec<(String, String)> = files.iter().enumerate().map(|(i, l)| (format!("f{i}"), l.join("\n"))).collect();
        verify(key, &named, None).breaks.into_iter().map(|b| (b.file[1..].parse().unwrap(), b.line, b.what)).collect()
    }

    #[test]
    fn any_edit_insert_removal_or_reorder_is_found_where_it_happened() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let lines = chain(&k, 6);
        assert!(check(&k, std::slice::from_ref(&lines)).is_empty());
        // Rotation: the chain runs across files.
        assert!(check(&k, &[lines[..3].to_vec(), lines[3..].to_vec()]).is_empty());

        let mut edited = lines.clone();
        edited[2] = edited[2].replace("192.0.2.1", "192.0.2.9");
        assert_eq!(check(&k, &[edited]), [(0, 3, "the record does not match its mac: edited, or not written with this key".into())]);
        let mut removed = lines.clone();
        removed.remove(3);
        assert!(check(&k, &[removed])[0].2.starts_with("sequence 5 where 4 was expected"));
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&k, &[swapped])[0].1, 2);
        let mut inserted = lines.clone();
        inserted.insert(2, chain(&k, 3)[2].clone()); // a genuine record from another chain
        assert!(!check(&k, &[inserted]).is_empty());
        // A whole file missing in the middle.
        assert_eq!(check(&k, &[lines[..2].to_vec(), lines[4..].to_vec()])[0].0, 1);
        // With an anchor kept outside the files, a cut-off tail shows.
        let named = |l: &[String]| vec![("f0".to_string(), l.join("\n"))];
        let mac_of = |l: &str| l.rsplit("\"mac\":\"").next().unwrap().trim_end_matches("\"}").to_string();
        let anchor = mac_of(&lines[4]);
        assert!(verify(&k, &named(&lines), Some((5, &anchor))).breaks.is_empty());
        let cut = verify(&k, &named(&lines[..3]), Some((5, &anchor))).breaks;
        assert_eq!(cut[0].what, "truncated: the trail ends at sequence 3 but the anchor is at 5");
        let rewritten = chain(&key(b"0123456789abcdef0123456789abcdef"), 6);
        assert!(verify(&k, &named(&rewritten), Some((5, "00"))).breaks[0].what.contains("does not match the anchor"));
        // Another key: nothing verifies.
        assert_eq!(check(&key(b"another key another key another k"), &[lines]).len(), 6);
    }
}
