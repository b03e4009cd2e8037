//! The queue ids this relay finished (delivered, bounced, expired or purged) in the last
//! [`KEEP_SECS`], so a handover of one of them, replayed within the freshness window of a
//! handover claim (see `handover`), is recognised and not queued again.
//!
//! An append-only `finished.log` in the spool directory, one `<unix seconds> <id>` line per id,
//! compacted to the window when the spool opens. Not fsynced: like the removal it records, a
//! crash may forget the newest lines, which costs at most one redelivery of a replay (the
//! spool's documented at-least-once), never a lost message. Small by design: a handover claim is
//! refused after [`KEEP_SECS`], so older ids need not be remembered.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Twice a handover claim's freshness window.
pub const KEEP_SECS: u64 = 600;

#[derive(Debug, Default)]
pub struct Finished {
    ids: HashMap<String, u64>,
    log: Option<File>,
}

impl Finished {
    /// The ids finished within the window before `now`, from `dir/finished.log` (rewritten
    /// without the older ones).
    pub fn load(dir: &Path, now: u64) -> Self {
        let path = dir.join("finished.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let ids: HashMap<String, u64> = text
            .lines()
            .filter_map(|l| {
                let (t, id) = l.split_once(' ')?;
                Some((id.to_string(), t.parse::<u64>().ok()?))
            })
            .filter(|(id, t)| now.saturating_sub(*t) < KEEP_SECS && super::valid_id(id))
            .collect();
        let compacted: String = ids.iter().map(|(id, t)| format!("{t} {id}\n")).collect();
        let tmp = dir.join("finished.log.tmp");
        let log = std::fs::write(&tmp, compacted).and_then(|()| std::fs::rename(&tmp, &path)).and_then(|()| OpenOptions::new().append(true).open(&path));
        if let Err(e) = &log {
            tracing::warn!(error = %e, "the spool's finished.log cannot be written; replayed handovers are recognised only until a restart");
        }
        Self { ids, log: log.ok() }
    }

    /// Records `id` as finished at `now`; forgets ids older than the window.
    pub fn add(&mut self, id: &str, now: u64) {
        if self.ids.len() > 4096 {
            self.ids.retain(|_, t| now.saturating_sub(*t) < KEEP_SECS);
        }
        self.ids.insert(id.to_string(), now);
        if let Some(log) = self.log.as_mut() {
            let _ = log.write_all(format!("{now} {id}\n").as_bytes());
        }
    }

    /// Whether `id` finished here within the window before `now`.
    pub fn contains(&self, id: &str, now: u64) -> bool {
        self.ids.get(id).is_some_and(|t| now.saturating_sub(*t) < KEEP_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_ids_survive_a_restart_within_the_window_only() {
        let dir = std::env::temp_dir().join(format!("cascade-finished-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = Finished::load(&dir, 1000);
        f.add("aaa1", 1000);
        f.add("bbb2", 1300);
        assert!(f.contains("aaa1", 1100) && !f.contains("ccc3", 1100));
        drop(f);
        let f = Finished::load(&dir, 1700);
        assert!(!f.contains("aaa1", 1700), "older than the window: forgotten");
        assert!(f.contains("bbb2", 1700), "within the window: remembered across a restart");
        assert_eq!(std::fs::read_to_string(dir.join("finished.log")).unwrap(), "1300 bbb2\n", "compacted");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
