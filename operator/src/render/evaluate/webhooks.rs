//! A pool's tenants' webhook endpoints: which WebhookEndpoints are served (those whose signing
//! Secret is usable) and the secret files the relays get. Pure.

use crate::secrets::SecretData;
use cascade_crds::relay_config as rc;
use cascade_crds::v1alpha1::WebhookEndpoint;
use kube::ResourceExt;

/// The Secret key holding the signing secret(s), one per line.
pub const SECRET_KEY: &str = "secret";

pub fn secret_name(ep: &WebhookEndpoint) -> String {
    ep.spec.secret_name.clone().unwrap_or_else(|| format!("{}-webhook", ep.name_any()))
}

/// Why the signing Secret's data cannot be used, if it cannot.
pub fn secret_problem(data: Option<&SecretData>) -> Option<String> {
    let Some(text) = data.and_then(|d| d.get(SECRET_KEY)) else { return Some(format!("the Secret has no key {SECRET_KEY:?}")) };
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() || lines.iter().any(|l| cascade_core::secret::parse_webhook_secret(l).is_none()) {
        return Some(format!("{SECRET_KEY:?} must hold whsec_<base64 of at least 16 bytes> lines"));
    }
    None
}

/// The relay file name of an endpoint's signing secret.
pub fn secret_file(ns: &str, name: &str) -> String {
    format!("webhook-{ns}-{name}.secret")
}

/// The relay configuration entries for the endpoints of `ns` whose Secrets are usable, and
/// their secret files (by file name). Pure.
pub fn endpoints(ns: &str, all: &[WebhookEndpoint], secrets: &std::collections::BTreeMap<(String, String), SecretData>) -> (Vec<rc::Webhook>, SecretData) {
    let (mut hooks, mut files) = (Vec::new(), SecretData::new());
    let mut mine: Vec<&WebhookEndpoint> = all.iter().filter(|e| e.namespace().as_deref() == Some(ns) && e.metadata.deletion_timestamp.is_none()).collect();
    mine.sort_by_key(|e| e.name_any());
    for e in mine {
        let data = secrets.get(&(ns.to_string(), secret_name(e)));
        if secret_problem(data).is_some() {
            continue;
        }
        let file = secret_file(ns, &e.name_any());
        files.insert(file.clone(), data.and_then(|d| d.get(SECRET_KEY)).cloned().unwrap_or_default());
        hooks.push(rc::Webhook { name: e.name_any(), url: e.spec.url.clone(), events: e.spec.events.clone(), secret_file: file, batch: e.spec.batch });
    }
    (hooks, files)
}

/// What one relay reports of one endpoint (its admin `GET /webhooks`).
pub use cascade_crds::relay_config::EndpointReport as Reported;

/// Each endpoint's status with every relay's reports folded in (the latest success and failure,
/// disabled when a relay got `410` at the URL it has now), for those whose status changes.
pub fn fold(all: &[WebhookEndpoint], reports: &[Reported]) -> Vec<(WebhookEndpoint, cascade_crds::v1alpha1::WebhookEndpointStatus)> {
    let time = |t: Option<u64>| t.map(cascade_core::time::rfc3339_utc);
    let mut out = Vec::new();
    for e in all {
        let ns = e.namespace().unwrap_or_default();
        let mine: Vec<&Reported> = reports.iter().filter(|r| r.tenant == ns && r.name == e.name_any()).collect();
        if mine.is_empty() {
            continue;
        }
        let old = e.status.clone().unwrap_or_default();
        let last_failure = mine.iter().filter_map(|r| r.last_failure.map(|t| (t, r.last_error.clone()))).max_by_key(|(t, _)| *t);
        let disabled = mine.iter().filter(|r| r.disabled_url.as_deref() == Some(e.spec.url.as_str())).filter_map(|r| r.disabled_at).min();
        let new = cascade_crds::v1alpha1::WebhookEndpointStatus {
            last_success: time(mine.iter().filter_map(|r| r.last_success).max()).or(old.last_success.clone()),
            last_failure: time(last_failure.as_ref().map(|(t, _)| *t)).or(old.last_failure.clone()),
            last_error: last_failure.and_then(|(_, e)| e).map(|e| e.chars().take(512).collect()).or(old.last_error.clone()),
            disabled_at: time(disabled),
            ..old.clone()
        };
        if new != old {
            out.push((e.clone(), new));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(ns: &str, name: &str, secret: Option<&str>) -> WebhookEndpoint {
        let mut e = WebhookEndpoint::new(name, serde_json::from_value(serde_json::json!({"url": "https://hooks.example.com/x", "events": ["message.bounced"]})).unwrap());
        e.metadata.namespace = Some(ns.into());
        e.spec.secret_name = secret.map(str::to_string);
        e
    }

    #[test]
    fn only_endpoints_with_a_usable_secret_of_their_own_namespace_are_served() {
        let good: SecretData = [(SECRET_KEY.to_string(), b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".to_vec())].into();
        let bad: SecretData = [(SECRET_KEY.to_string(), b"not a secret".to_vec())].into();
        let secrets = [(("shop".to_string(), "a-webhook".to_string()), good.clone()), (("shop".to_string(), "mine".to_string()), bad), (("blog".to_string(), "c-webhook".to_string()), good)].into();
        let all = [endpoint("shop", "a", None), endpoint("shop", "b", Some("mine")), endpoint("shop", "d", None), endpoint("blog", "c", None)];
        let (hooks, files) = endpoints("shop", &all, &secrets);
        assert_eq!(hooks.len(), 1, "b's Secret is not usable, d has none yet, c is another tenant's");
        assert_eq!((hooks[0].name.as_str(), hooks[0].secret_file.as_str(), hooks[0].events.as_slice()), ("a", "webhook-shop-a.secret", &["message.bounced".to_string()][..]));
        assert!(files["webhook-shop-a.secret"].starts_with(b"whsec_") && files.len() == 1);
        assert!(secret_problem(None).is_some() && secret_problem(secrets.get(&("shop".to_string(), "mine".to_string()))).is_some());
    }

    #[test]
    fn reports_fold_to_the_latest_times_and_a_410_at_the_current_url() {
        let e = endpoint("shop", "a", None);
        let r = |t: &str, s, f, url: Option<&str>| Reported {
            tenant: t.into(),
            name: "a".into(),
            last_success: s,
            last_failure: f,
            last_error: f.map(|_| "answered 503".into()),
            disabled_at: url.map(|_| 50),
            disabled_url: url.map(str::to_string),
        };
        let folded = fold(std::slice::from_ref(&e), &[r("shop", Some(10), None, None), r("shop", Some(30), Some(20), None), r("blog", Some(99), None, None)]);
        let st = &folded[0].1;
        assert_eq!(
            (st.last_success.as_deref(), st.last_failure.as_deref(), st.last_error.as_deref(), st.disabled_at.as_deref()),
            (Some("1970-01-01T00:00:30Z"), Some("1970-01-01T00:00:20Z"), Some("answered 503"), None)
        );
        let gone = fold(std::slice::from_ref(&e), &[r("shop", None, Some(50), Some("https://hooks.example.com/x"))]);
        assert_eq!(gone[0].1.disabled_at.as_deref(), Some("1970-01-01T00:00:50Z"));
        assert!(fold(std::slice::from_ref(&e), &[r("shop", None, Some(50), Some("https://old.example.com/"))])[0].1.disabled_at.is_none(), "a 410 at an older URL does not count");
        assert!(fold(&[e], &[]).is_empty(), "no report, no write");
    }
}
