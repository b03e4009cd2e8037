//! The connection Secret `<apikey>-connection` an application mounts to send through the pool
//! that serves its namespace: where the relays are (`host`, the name their certificate carries;
//! `serviceHost`, the in-cluster Service), `smtpPort` (STARTTLS) and `smtpsPort` (implicit TLS),
//! `apiUrl` (the send API), `ca.crt` (what verifies the relays: the certificate Secret's
//! `ca.crt`, else its `tls.crt`, as a self-signed certificate is its own anchor), `username` and
//! `password` (the key's credentials). [`data`] computes it; [`ensure`] writes it when it
//! differs. Owned by the ApiKey, so it goes with it.

use crate::error::ReconcileError;
use crate::secrets::SecretData;
use cascade_crds::v1alpha1::{ApiKey, RelayPool};
use kube::{Resource, ResourceExt};

/// The label on connection Secrets (value: the ApiKey's name).
pub const LABEL: &str = "cascade-mail.com/connection";

pub fn secret_name(key: &str) -> String {
    format!("{key}-connection")
}

/// The Secret holding `pool`'s server certificate.
pub fn certificate_secret(pool: &RelayPool) -> String {
    pool.spec.tls.secret_name.clone().unwrap_or_else(|| format!("{}-tls", pool.name_any()))
}

/// What the connection Secret holds, for `pool` with its certificate Secret `tls`; `None` while
/// that Secret has no certificate yet.
pub fn data(pool: &RelayPool, tls: &SecretData, username: &str, password: &[u8]) -> Option<SecretData> {
    let ca = tls.get("ca.crt").filter(|c| !c.is_empty()).or_else(|| tls.get("tls.crt").filter(|c| !c.is_empty()))?;
    let host = &pool.spec.hostname;
    let l = &pool.spec.listeners;
    let service = format!("{}.{}.svc", crate::labels::statefulset(&pool.name_any()), pool.namespace().unwrap_or_default());
    let text = |k: &str, v: String| (k.to_string(), v.into_bytes());
    Some(
        [
            text("host", host.clone()),
            text("serviceHost", service),
            text("smtpPort", l.submission_port.to_string()),
            text("smtpsPort", l.submissions_port.to_string()),
            text("apiUrl", format!("https://{host}:{}/v1", l.http_port)),
            text("username", username.to_string()),
            ("password".to_string(), password.to_vec()),
            ("ca.crt".to_string(), ca.clone()),
        ]
        .into(),
    )
}

/// Writes `key`'s connection Secret for `pool` (the first pool serving its namespace) when it is
/// missing or differs. Returns `false` while the pool has no certificate yet (try again soon).
pub async fn ensure(ctx: &crate::Context, key: &ApiKey, pool: Option<&RelayPool>, username: &str, password: &[u8]) -> Result<bool, ReconcileError> {
    let Some(pool) = pool else { return Ok(true) };
    let tls = ctx.secrets.get(&pool.namespace().unwrap_or_default(), &certificate_secret(pool)).await?.unwrap_or_default();
    let Some(want) = data(pool, &tls, username, password) else { return Ok(false) };
    let (ns, name) = (key.namespace().unwrap_or_default(), secret_name(&key.name_any()));
    if ctx.secrets.get(&ns, &name).await?.as_ref() != Some(&want) {
        let labels = crate::labels::managed(&[(LABEL, &key.name_any())]);
        ctx.secrets.apply(&ns, &name, &want, labels, key.controller_owner_ref(&())).await?;
        tracing::info!(namespace = %ns, api_key = %key.name_any(), pool = %pool.name_any(), "connection Secret written");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(tls_secret: Option<&str>) -> RelayPool {
        let mut p: RelayPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool",
            "metadata": {"name": "main", "namespace": "cascade-system"},
            "spec": {"hostname": "smtp.example.com", "tenants": {"matchNames": ["shop"]}}
        }))
        .unwrap();
        p.spec.tls.secret_name = tls_secret.map(str::to_string);
        p
    }

    #[test]
    fn the_connection_names_the_pool_its_ports_and_what_verifies_it() {
        let p = pool(None);
        assert_eq!(certificate_secret(&p), "main-tls");
        assert_eq!(certificate_secret(&pool(Some("cert-manager-made"))), "cert-manager-made");
        let tls: SecretData = [("tls.crt".to_string(), b"LEAF".to_vec()), ("tls.key".to_string(), b"KEY".to_vec())].into();
        let d = data(&p, &tls, "ck_0123456789abcdef", b"cascade_sk_x").unwrap();
        let s = |k: &str| String::from_utf8(d[k].clone()).unwrap();
        assert_eq!((s("host"), s("serviceHost"), s("smtpPort"), s("smtpsPort")), ("smtp.example.com".into(), "main-relay.cascade-system.svc".into(), "587".into(), "465".into()));
        assert_eq!(s("apiUrl"), format!("https://smtp.example.com:{}/v1", p.spec.listeners.http_port));
        assert_eq!((s("username"), s("password"), s("ca.crt")), ("ck_0123456789abcdef".into(), "cascade_sk_x".into(), "LEAF".into()));
        assert!(!d.contains_key("tls.key"), "never the private key");
        let mut issued = tls.clone();
        issued.insert("ca.crt".into(), b"ISSUER".to_vec());
        assert_eq!(data(&p, &issued, "u", b"p").unwrap()["ca.crt"], b"ISSUER", "an issuer's CA when the Secret has one");
        assert!(data(&p, &SecretData::new(), "u", b"p").is_none(), "no certificate yet");
    }
}
