//! An operator audit trail in a temporary directory, for tests that read what it recorded.

use std::path::PathBuf;
use std::sync::Arc;

pub struct Trail {
    pub dir: PathBuf,
    pub key: [u8; 32],
    pub audit: Arc<cascade_core::audit::Audit>,
}

impl Trail {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cascade-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = [5u8; 32];
        let audit = Arc::new(cascade_core::audit::Audit::open(&dir, &key, 90, 1 << 20, Default::default()).unwrap());
        Self { dir, key, audit }
    }

    /// Makes the operator write here.
    pub fn attach(&self, ctx: &mut cascade_operator::Context) {
        ctx.events = ctx.events.clone().with_audit(self.audit.clone());
    }

    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
        files.sort();
        files
    }

    pub fn records(&self) -> Vec<serde_json::Value> {
        self.files().iter().flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<serde_json::Value>>()).collect()
    }

    /// The first record of `event`.
    pub fn find(&self, event: &str) -> Option<serde_json::Value> {
        self.records().into_iter().find(|r| r["event"] == event)
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
