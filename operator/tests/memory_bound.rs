//! The operator's memory is bounded by what the CRD schemas allow, not by what a tenant writes:
//! a tenant fills its ApiKeys with the most metadata Kubernetes accepts (250 KB of annotations
//! each) and adds large Secrets carrying the operator's labels. The operator serves every key
//! while its process grows by a fraction of what the tenant wrote (it strips what it never reads,
//! pages every list, and keeps only the Secrets it derives the names of).

mod support;

use cascade_crds::v1alpha1::ApiKey;
use kube::api::{Api, PostParams};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::operator::until;
use support::world::obj;

/// Counts the bytes live on the heap and their peak: what the process holds, apart from what
/// the allocator keeps around.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEYS: usize = 240;
const ANNOTATION: usize = 250_000;
const JUNK_SECRETS: usize = 12;
const JUNK_BYTES: usize = 700_000;

/// The process's peak resident memory so far (VmHWM), in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

fn fat_key(i: usize) -> ApiKey {
    let annotations = serde_json::json!({ "tenant.example/blob": "x".repeat(ANNOTATION) });
    obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": format!("k{i}"), "annotations": annotations }, "spec": {} }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tenant_objects_do_not_grow_the_operator() {
    let Some(op) = support::operator::start().await else { return };
    support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    until("the first bundle", || support::relay::assembled(&op.secrets)).await;
    let before = peak_rss();
    let live_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(live_before, Ordering::Relaxed);

    // Large Secrets with the operator's labels, under names no ApiKey derives.
    for i in 0..JUNK_SECRETS {
        let data: cascade_operator::secrets::SecretData = [("blob".to_string(), vec![b'y'; JUNK_BYTES])].into();
        let labels = [("cascade-mail.com/api-key".to_string(), format!("junk{i}")), ("app.kubernetes.io/managed-by".to_string(), "cascade-operator".to_string())].into();
        op.secrets.apply("shop", &format!("junk{i}"), &data, labels, None).await.unwrap();
    }
    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    for i in 0..KEYS {
        keys.create(&PostParams::default(), &fat_key(i)).await.unwrap();
    }
    let written = KEYS * ANNOTATION + JUNK_SECRETS * JUNK_BYTES;

    // Every key is served (its id in the bundle), however much metadata it carries.
    let served = |bundle: &str| bundle.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').filter(|w| w.starts_with("ck_")).collect::<std::collections::BTreeSet<_>>().len();
    until("every key in the bundle", || async { support::relay::assembled(&op.secrets).await.filter(|b| served(b) == KEYS) }).await;

    let grown = peak_rss().saturating_sub(before);
    let heap_peak = PEAK.load(Ordering::Relaxed).saturating_sub(live_before);
    let heap_now = LIVE.load(Ordering::Relaxed).saturating_sub(live_before);
    eprintln!(
        "tenant wrote {} MiB; the test process (operator and test client) grew by {} MiB resident at peak; heap: {} MiB more at peak, {} MiB more now",
        written >> 20,
        grown >> 20,
        heap_peak >> 20,
        heap_now >> 20
    );
    assert!(heap_peak < written / 3, "the heap grew by {heap_peak} bytes at peak for {written} bytes of tenant metadata");
    assert!(grown < written / 2, "the process grew by {grown} bytes resident for {written} bytes of tenant metadata");
}
