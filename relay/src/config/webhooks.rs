//! The tenants' webhook endpoints, checked at load: an `https://` URL (`http://` only to a
//! loopback address where `webhooks.allowPlainLoopback` is set), known event types, and at least
//! one `whsec_` secret in its file. A bad endpoint is left out alone, naming its field; the
//! tenant's mail and its other endpoints are served.

use super::check::Checker;
use cascade_core::seal::KeyRing;
use cascade_crds::relay_config::{RelayConfig, Webhook, EVENT_TYPES};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// One endpoint, ready to be sent to.
#[derive(Debug)]
pub struct Endpoint {
    pub tenant: String,
    pub name: String,
    pub url: String,
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    /// Empty: every event type.
    pub events: Vec<String>,
    /// Every request is signed with each.
    pub secrets: Vec<Vec<u8>>,
    /// The events due at once go in one request.
    pub batch: bool,
}

impl Endpoint {
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }

    /// A short stable name for (tenant, endpoint), for file names and the disabled list.
    pub fn key(&self) -> String {
        key_of(&self.tenant, &self.name)
    }
}

pub fn key_of(tenant: &str, name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{tenant}\0{name}").as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub use cascade_core::secret::parse_webhook_secret as parse_secret;

/// Where the URL points: (https, host, port, path and query), or why it may not be used.
fn target(url: &str, allow_plain_loopback: bool) -> Result<(bool, String, u16, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("the URL has no host")?.trim_matches(['[', ']']).to_string();
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("credentials in the URL are not allowed; the request is signed".into());
    }
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if allow_plain_loopback && host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) => false,
        Some("http") => return Err("must be https:// (http:// only to loopback in dev)".into()),
        _ => return Err("must be an https:// URL".into()),
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
    Ok((https, host, port, path))
}

fn endpoint(c: &mut Checker<'_>, field: &str, tenant: &str, w: &Webhook, allow_plain_loopback: bool, sealing: Option<&KeyRing>) -> Option<Endpoint> {
    let (https, host, port, path) = target(&w.url, allow_plain_loopback).map_err(|e| c.fail(format!("{field}.url"), e)).ok()?;
    if let Some(bad) = w.events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        c.fail(format!("{field}.events"), format!("unknown event type {bad:?} (known: {})", EVENT_TYPES.join(", ")));
        return None;
    }
    let read = c.read(&format!("{field}.secretFile"), &w.secret_file)?;
    let text = super::check::unseal(c, &format!("{field}.secretFile"), &w.secret_file, sealing, read)?;
    let secrets: Vec<Vec<u8>> = String::from_utf8_lossy(&text).lines().filter(|l| !l.trim().is_empty()).filter_map(parse_secret).collect();
    if secrets.is_empty() {
        c.fail(format!("{field}.secretFile"), "holds no whsec_<base64> secret of at least 16 bytes");
        return None;
    }
    Some(Endpoint { tenant: tenant.to_string(), name: w.name.clone(), url: w.url.clone(), https, host, port, path, events: w.events.clone(), secrets, batch: w.batch })
}

/// Each tenant's endpoints.
pub type ByTenant = HashMap<String, Vec<Arc<Endpoint>>>;

/// Every valid endpoint by tenant; the client TLS configuration for them.
pub(super) fn check(c: &mut Checker<'_>, config: &RelayConfig) -> (ByTenant, Option<Arc<rustls::ClientConfig>>) {
    let s = &config.webhooks;
    let extra = s.ca_file.as_deref().and_then(|f| c.read("webhooks.caFile", f));
    let tls = match crate::tls::verifying_client_config(extra.as_deref()) {
        Ok(t) => Some(t),
        Err(e) => {
            c.fail("webhooks.caFile", e);
            None
        }
    };
    // Sealed secret files (a pool's bundle) open with the sealing key ring; its own problems
    // are reported with the DKIM keys'.
    let sealed = config.tenants.iter().flat_map(|t| &t.webhooks).any(|w| w.secret_file.ends_with(".sealed"));
    let sealing = config.sealing_key_file.as_deref().filter(|_| sealed).and_then(|f| c.read("sealingKeyFile", f)).and_then(|b| KeyRing::parse(&String::from_utf8_lossy(&b)).ok());
    let mut out = ByTenant::new();
    for (t, tenant) in config.tenants.iter().enumerate() {
        let mut names = std::collections::HashSet::new();
        for (i, w) in tenant.webhooks.iter().enumerate() {
            let field = format!("tenants[{t}].webhooks[{i}]");
            let before = c.problems.len();
            if !names.insert(w.name.as_str()) {
                c.fail(format!("{field}.name"), format!("{:?} is listed twice in the tenant", w.name));
            }
            let found = endpoint(c, &field, &tenant.name, w, s.allow_plain_loopback, sealing.as_ref());
            if c.entry_ok(before) {
                out.entry(tenant.name.clone()).or_default().extend(found.map(Arc::new));
            }
        }
    }
    (out, tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_plain_loopback_in_dev_only() {
        assert_eq!(target("https://hooks.example.com/cascade?x=1", false).unwrap(), (true, "hooks.example.com".into(), 443, "/cascade?x=1".into()));
        assert_eq!(target("http://127.0.0.1:8080/h", true).unwrap(), (false, "127.0.0.1".into(), 8080, "/h".into()));
        assert!(target("http://127.0.0.1:8080/h", false).unwrap_err().contains("https"));
        assert!(target("http://hooks.example.com/h", true).unwrap_err().contains("https"));
        assert!(target("https://user:pw@hooks.example.com/", false).unwrap_err().contains("credentials"));
        assert!(target("ftp://x/", false).is_err() && target("not a url", false).is_err());
        assert_eq!(target("https://[::1]:9443/", false).unwrap().1, "::1");
    }

    #[test]
    fn secrets_are_whsec_base64_of_at_least_16_bytes() {
        assert_eq!(parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap().len(), 24);
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none() && parse_secret("whsec_c2hvcnQ=").is_none());
        assert_ne!(key_of("a", "b"), key_of("a\0b", ""), "tenant and name are kept apart");
    }
}
