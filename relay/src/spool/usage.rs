//! What each tenant has queued: messages and bytes of spool files, kept beside the files so the
//! share check at acceptance needs no directory scan. The spool updates it on every store,
//! import, removal and recovery. Pure bookkeeping.

use std::collections::HashMap;

#[derive(Default, Debug)]
pub struct Usage {
    /// Queue id to (tenant, file size).
    files: HashMap<String, (String, u64)>,
    /// Tenant to (messages, bytes).
    tenants: HashMap<String, (u64, u64)>,
}

impl Usage {
    /// Records (or replaces) the file of `id`.
    pub fn put(&mut self, id: &str, tenant: &str, bytes: u64) {
        self.remove(id);
        self.files.insert(id.to_string(), (tenant.to_string(), bytes));
        let t = self.tenants.entry(tenant.to_string()).or_default();
        t.0 += 1;
        t.1 += bytes;
    }

    pub fn remove(&mut self, id: &str) {
        let Some((tenant, bytes)) = self.files.remove(id) else { return };
        if let Some(t) = self.tenants.get_mut(&tenant) {
            t.0 -= 1;
            t.1 -= bytes;
            if t.0 == 0 {
                self.tenants.remove(&tenant);
            }
        }
    }

    /// (messages, bytes) queued for `tenant`.
    pub fn of(&self, tenant: &str) -> (u64, u64) {
        self.tenants.get(tenant).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_per_tenant_across_rewrites_and_removals() {
        let mut u = Usage::default();
        u.put("a", "shop", 100);
        u.put("b", "shop", 50);
        u.put("c", "blog", 7);
        assert_eq!((u.of("shop"), u.of("blog"), u.of("none")), ((2, 150), (1, 7), (0, 0)));
        u.put("a", "shop", 120); // a rewrite replaces, never adds
        assert_eq!(u.of("shop"), (2, 170));
        u.remove("b");
        u.remove("b");
        u.remove("a");
        assert_eq!(u.of("shop"), (0, 0));
        assert!(!u.tenants.contains_key("shop"));
    }
}
