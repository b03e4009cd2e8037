//! The plugin's two commands that act: `rotate dkim` (the `cascade-mail.com/rotate` annotation,
//! and with `--wait` until the operator acted on it) and `credentials` (an ApiKey's username
//! and secret from the Secret the operator wrote, and where to send from its connection
//! Secret; printed, or written as an env file readable by its owner only).

use super::output::{self, Format, Table};
use super::{Outcome, PluginError};
use cascade_crds::v1alpha1::{ApiKey, DkimKey};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

pub async fn rotate_dkim(client: &kube::Client, ns: &str, name: &str, wait: Option<Duration>, format: Format) -> Outcome {
    let api: Api<DkimKey> = Api::namespaced(client.clone(), ns);
    let what = format!("DkimKey {ns}/{name}");
    let before = api.get(name).await.map_err(PluginError::api(what.clone()))?;
    let value = cascade_core::time::rfc3339_utc(cascade_core::time::now_unix());
    // A new value each time: the operator acts on a value it has not acted on yet.
    let value = if before.status.as_ref().and_then(|s| s.last_forced_rotation.as_deref()) == Some(value.as_str()) { format!("{value}-again") } else { value };
    let patch = json!({ "metadata": { "annotations": { crate::dkim_key::ROTATE_ANNOTATION: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(PluginError::api(format!("annotating {what}")))?;
    let mut acted = None;
    if let Some(limit) = wait {
        let start = Instant::now();
        while start.elapsed() < limit {
            let k = api.get(name).await.map_err(PluginError::api(what.clone()))?;
            let st = k.status.unwrap_or_default();
            if st.last_forced_rotation.as_deref() == Some(value.as_str()) {
                acted = st.generations.last().map(|g| g.selector.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if acted.is_none() {
            return Err(PluginError::Other(format!("{what}: rotation requested ({value}) but the operator had not acted within {} s", limit.as_secs())));
        }
    }
    let doc = json!({ "namespace": ns, "name": name, "requested": value, "newSelector": acted });
    output::print(format, &doc, || match &acted {
        Some(selector) => format!("{what}: rotated; the next key's selector is {selector} (it signs once DNS shows its record: kubectl cascade dns {ns}/{})\n", before.spec.domain),
        None => format!("{what}: rotation requested ({}={value})\n", crate::dkim_key::ROTATE_ANNOTATION),
    });
    Ok(true)
}

/// `lockdown` (with a reason) or `unlock` (without), and the emergency rotation.
pub async fn lockdown(client: &kube::Client, tenant: &str, reason: Option<&str>, rotate: bool, format: Format) -> Outcome {
    let now = cascade_core::time::now_unix();
    let pools = match reason {
        Some(r) => crate::lockdown::lockdown(client, tenant, r, now).await,
        None => crate::lockdown::unlock(client, tenant).await,
    }
    .map_err(PluginError::api(format!("recording the lockdown of {tenant} in the RelayPools")))?;
    let rotated = match rotate {
        true => Some(crate::lockdown::rotate_all(client, tenant, now).await.map_err(PluginError::api(format!("rotating the keys of {tenant}")))?),
        false => None,
    };
    let doc = json!({ "tenant": tenant, "locked": reason.is_some(), "pools": pools, "rotated": rotated });
    output::print(format, &doc, || {
        let verb = if reason.is_some() { "locked down: its API keys are refused and its queued mail held" } else { "unlocked: its API keys work and its held mail is delivered" };
        let mut out = format!(
            "tenant {tenant} {verb} (RelayPools: {})
",
            if pools.is_empty() { "none".to_string() } else { pools.join(", ") }
        );
        if let Some(r) = &rotated {
            out.push_str(&format!(
                "rotating DKIM keys: {}; new secrets for API keys: {}
",
                r.dkim_keys.join(", "),
                r.api_keys.join(", ")
            ));
        }
        out
    });
    Ok(true)
}

fn text(data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>, key: &str) -> Option<String> {
    data.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// The env file's lines (values single-quoted; a quote inside is closed, escaped, reopened).
pub fn env_lines(vars: &[(&str, String)]) -> String {
    vars.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', "'\\''"))).collect()
}

pub async fn credentials(client: &kube::Client, ns: &str, name: &str, env_file: Option<&Path>, format: Format) -> Outcome {
    let keys: Api<ApiKey> = Api::namespaced(client.clone(), ns);
    let key = keys.get(name).await.map_err(PluginError::api(format!("ApiKey {ns}/{name}")))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let creds_name = crate::render::evaluate::credentials_secret(name);
    let creds = secrets.get(&creds_name).await.map_err(PluginError::api(format!("Secret {ns}/{creds_name} (the ApiKey's credentials; issued once the key is Ready)")))?;
    let data = creds.data.unwrap_or_default();
    let conn_name = crate::connection::secret_name(name);
    let conn = secrets.get_opt(&conn_name).await.map_err(PluginError::api(format!("Secret {ns}/{conn_name}")))?.and_then(|s| s.data).unwrap_or_default();
    let get = |m: &std::collections::BTreeMap<String, k8s_openapi::ByteString>, k: &str| text(m, k).unwrap_or_default();
    let vars = [
        ("CASCADE_SMTP_HOST", get(&conn, "host")),
        ("CASCADE_SMTP_PORT", get(&conn, "smtpPort")),
        ("CASCADE_SMTPS_PORT", get(&conn, "smtpsPort")),
        ("CASCADE_API_URL", get(&conn, "apiUrl")),
        ("CASCADE_USERNAME", get(&data, "username")),
        ("CASCADE_PASSWORD", get(&data, "password")),
    ];
    let state = key.status.as_ref().and_then(|s| s.state).map(|s| format!("{s:?}"));
    if let Some(path) = env_file {
        write_private(path, &env_lines(&vars)).map_err(|e| PluginError::Other(format!("writing {}: {e}", path.display())))?;
        println!("ApiKey {ns}/{name}: credentials written to {} (mode 0600)", path.display());
        return Ok(true);
    }
    let doc = json!({ "namespace": ns, "name": name, "state": state, "env": vars.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>() });
    output::print(format, &doc, || {
        let mut t = Table::new(None, &["VARIABLE", "VALUE"]);
        for (k, v) in &vars {
            t.row(vec![k.to_string(), v.clone()]);
        }
        let mut out = String::new();
        t.render(&mut out);
        if conn.is_empty() {
            out.push_str("(no connection Secret yet: the pool serving this namespace has no certificate, or none serves it)\n");
        }
        out
    });
    Ok(true)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    // An existing file keeps its mode on open: narrow it before the secret goes in.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_quote_for_the_shell_and_skip_empty_values() {
        let lines = env_lines(&[("A", "x'y".into()), ("B", String::new()), ("C", "p$w d".into())]);
        assert_eq!(lines, "A='x'\\''y'\nC='p$w d'\n");
    }
}
