//! Records every API call the operator's own client makes during a controller test as
//! `(verb, group, resource, namespace)` — stand-in groups mapped back to the real ones, the
//! namespace empty for a cluster-wide call — into `target/debug/api-calls/<test binary>.jsonl`.
//! `tests/integration/test_chart.py` compares the union with the chart's ClusterRole and
//! namespaced Roles: nothing missing, nothing unused, nothing cluster-wide that a namespaced
//! Role could grant.

use std::collections::BTreeSet;
use std::sync::Mutex;

type Call = (String, String, String, String);

static SEEN: Mutex<BTreeSet<Call>> = Mutex::new(BTreeSet::new());

fn real_group(group: &str) -> String {
    match group.strip_suffix(".test.local") {
        Some("core") => String::new(),
        Some("rbac") => "rbac.authorization.k8s.io".into(),
        Some("networking") => "networking.k8s.io".into(),
        Some("coordination") => "coordination.k8s.io".into(),
        Some(other) => other.into(),
        None => group.into(),
    }
}

/// `(verb, group, resource, namespace)` of a request, as RBAC sees it (namespace empty: the
/// call is cluster-wide).
pub fn classify(method: &http::Method, uri: &http::Uri) -> Option<Call> {
    let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (real_group(group), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        other => (String::new(), other),
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((verb.into(), group, resource, namespace))
}

fn record(method: &http::Method, uri: &http::Uri) {
    let Some(call) = classify(method, uri) else { return };
    let mut seen = SEEN.lock().unwrap();
    if !seen.insert(call) {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(std::path::Path::parent).unwrap().join("api-calls");
    std::fs::create_dir_all(&dir).unwrap();
    let stem = exe.file_stem().unwrap().to_string_lossy().split('-').next().unwrap_or_default().to_string();
    let lines: String = seen.iter().map(|(v, g, r, n)| serde_json::json!({ "verb": v, "group": g, "resource": r, "namespace": n }).to_string() + "\n").collect();
    std::fs::write(dir.join(format!("{stem}.jsonl")), lines).unwrap();
}

static FAULTS: Mutex<Vec<(http::Method, String)>> = Mutex::new(Vec::new());

/// From now on, every request of the operator's client with this method whose path contains
/// `part` fails: it is sent to a path the server does not serve (404). One test per binary.
pub fn inject_fault(method: http::Method, part: &str) {
    FAULTS.lock().unwrap().push((method, part.to_string()));
}

/// Lifts every injected fault.
pub fn clear_faults() {
    FAULTS.lock().unwrap().clear();
}

/// Records a request (a tower `MapRequest` function) and passes it on, or sends it nowhere
/// when a fault was injected for it.
pub fn record_request(mut req: http::Request<kube::client::Body>) -> http::Request<kube::client::Body> {
    record(req.method(), req.uri());
    let faulty = FAULTS.lock().unwrap().iter().any(|(m, part)| m == req.method() && req.uri().path().contains(part.as_str()));
    if faulty {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/apis/faults.test.local/v1/injected"));
        *req.uri_mut() = http::Uri::from_parts(parts).unwrap();
    }
    req
}

/// A client for the test server (typed APIs reach the stand-ins) with every request recorded.
pub async fn recording_client(kubeconfig: &std::path::Path) -> kube::Client {
    super::rewrite::client(kubeconfig, true).await
}
