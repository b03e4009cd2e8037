//! `cascade-relay dev`: a complete relay with no files to write and no cluster. It prepares a data
//! directory (self-signed certificate, spool key, tenant `dev` with domain `example.test`, an
//! RSA-2048 DKIM key, an API key), writes an ordinary configuration file there, and serves it.
//! Keys and credentials are kept across restarts; the configuration is rewritten from the flags.

use anyhow::Context;
use cascade_core::dkim_key;
use cascade_core::seal::KeyRing;
use cascade_core::secret::{format_secret_hash, hash_secret};
pub use cascade_core::secret::{new_api_key, Credentials};
use cascade_crds::relay_config::*;
use cascade_crds::units::HumanDuration;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const DEV_DOMAIN: &str = "example.test";
pub const DEV_SELECTOR: &str = "cascade1";

#[derive(Clone)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    pub submission: String,
    pub submissions: String,
    pub http: String,
    pub admin: String,
    pub smarthost: Option<String>,
    /// Where every event of the dev tenant goes.
    pub webhook: Option<String>,
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// The keys, certificate and credentials in the data directory, created when missing: returns
/// the DKIM key's file name and the credentials.
fn material(dir: &Path) -> anyhow::Result<(String, Credentials)> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    if !cert.exists() || !key.exists() {
        let (c, k) = cascade_core::certificate::self_signed(&["localhost", "127.0.0.1"])?;
        write_private(&key, k.as_bytes())?;
        write_private(&cert, c.as_bytes())?;
    }
    admin_material(dir)?;
    let audit_key = dir.join("audit.key");
    if !audit_key.exists() {
        write_private(&audit_key, cascade_core::audit::new_key_file()?.as_bytes())?;
    }
    let spool_key = dir.join("spool.key");
    if !spool_key.exists() {
        write_private(&spool_key, KeyRing::generate_line("dev1")?.as_bytes())?;
    }
    let dkim_key = dir.join(format!("dkim-{DEV_DOMAIN}-{DEV_SELECTOR}.pem"));
    let dkim_pub = dir.join(format!("dkim-{DEV_DOMAIN}-{DEV_SELECTOR}.pub"));
    if !dkim_key.exists() || !dkim_pub.exists() {
        let (pem, public) = dkim_key::generate(DkimAlgorithm::RsaSha256)?;
        write_private(&dkim_key, pem.as_bytes())?;
        write_private(&dkim_pub, public.as_bytes())?;
    }
    let creds_path = dir.join("credentials.json");
    let creds: Credentials = match fs::read(&creds_path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", creds_path.display()))?,
        Err(_) => {
            let c = new_api_key()?;
            write_private(&creds_path, &serde_json::to_vec_pretty(&c)?)?;
            c
        }
    };
    let public = fs::read_to_string(&dkim_pub)?;
    write_private(&dir.join("dns.zone"), zone_lines(DEV_DOMAIN, DEV_SELECTOR, public.trim()).as_bytes())?;
    Ok((dkim_key.file_name().unwrap_or_default().to_string_lossy().into(), creds))
}

/// The name in the dev relay's admin certificate (with `localhost` and `127.0.0.1`).
pub const DEV_RELAY_NAME: &str = "dev.relays.cascade.internal";

/// The admin channel's authority and certificates, as the operator makes them for a pool: the
/// relay's (`admin.crt`) and a client's (`admin-client.crt`, for curl and tests). The
/// authority's key is kept in `admin-ca.key` only to issue more.
fn admin_material(dir: &Path) -> anyhow::Result<()> {
    let files = ["admin-ca.crt", "admin-ca.key", "admin.crt", "admin.key", "admin-client.crt", "admin-client.key"];
    if files.iter().all(|f| dir.join(f).exists()) {
        return Ok(());
    }
    let a = cascade_core::certificate::admin_files("Cascade dev admin authority", &[DEV_RELAY_NAME, "localhost", "127.0.0.1"], cascade_core::time::now_unix())?;
    for (file, contents) in files.iter().zip([a.ca_cert, a.ca_key, a.relay_cert, a.relay_key, a.client_cert, a.client_key]) {
        write_private(&dir.join(file), contents.as_bytes())?;
    }
    Ok(())
}

/// The dev relay's configuration: one tenant `dev` with one domain and one key, captured or
/// sent to a smarthost.
fn config(opts: &DevOptions, dkim_file: String, creds: &Credentials) -> RelayConfig {
    RelayConfig {
        config_generation: None,
        hostname: "localhost".into(),
        listeners: Listeners {
            submission: vec![opts.submission.clone()],
            submissions: vec![opts.submissions.clone()],
            http: opts.http.clone(),
            admin: opts.admin.clone(),
            allowed_client_cidrs: vec![],
            trusted_proxy_cidrs: vec![],
        },
        tls: TlsFiles { cert_file: "tls.crt".into(), key_file: "tls.key".into() },
        tenants: vec![Tenant {
            name: "dev".into(),
            domains: vec![SendingDomain {
                name: DEV_DOMAIN.into(),
                dkim: vec![DkimKeyRef { selector: DEV_SELECTOR.into(), algorithm: DkimAlgorithm::RsaSha256, key_file: dkim_file }],
                refuse: None,
                suppressed_reasons: None,
            }],
            suppressed_reasons: default_suppressed_reasons(),
            held: false,
            webhooks: opts.webhook.iter().map(|url| Webhook { name: "dev".into(), url: url.clone(), events: vec![], secret_file: WEBHOOK_SECRET.into(), batch: false }).collect(),
        }],
        shards: vec![],
        api_keys: vec![ApiKey {
            id: creds.username.clone(),
            tenant: "dev".into(),
            secret_hash: format_secret_hash(&hash_secret(&creds.password)),
            // The dev key may do everything a key can.
            scopes: crate::config::KNOWN_SCOPES.iter().map(|s| s.to_string()).collect(),
            allowed_domains: vec![],
            allowed_cidrs: vec![],
            messages_per_minute: None,
            recipients_per_minute: None,
            expires_at: None,
            revoked: false,
            anomalies: Default::default(),
            generation: 0,
        }],
        delivery: match &opts.smarthost {
            Some(addr) => Delivery {
                mode: DeliveryMode::Smarthost,
                smarthost: Some(Smarthost { address: addr.clone(), tls: OutboundTls::Opportunistic, ca_file: None, username: None, password_file: None }),
                ..Delivery::default()
            },
            None => Delivery { mode: DeliveryMode::Capture, capture_dir: Some("outbox".into()), ..Delivery::default() },
        },
        spool: Spool { dir: "spool".into(), key_file: "spool.key".into(), status_retention: HumanDuration::days(7) },
        sealing_key_file: None,
        retired_domains: vec![],
        dmarc_report_address: None,
        feedback_address: None,
        audit: Some(cascade_crds::relay_config::AuditConfig::at("audit", "audit.key")),
        handover: None,
        admin_tls: Some(AdminTls {
            cert_file: "admin.crt".into(),
            key_file: "admin.key".into(),
            ca_file: "admin-ca.crt".into(),
            relay_name: DEV_RELAY_NAME.into(),
            metrics_client_cert: ClientCertificate::Optional,
        }),
        limits: Limits::default(),
        webhooks: WebhookSettings { allow_plain_loopback: true, ..Default::default() },
        suppressions: None,
    }
}

/// The dev tenant's webhook signing secret, in the data directory.
pub const WEBHOOK_SECRET: &str = "webhook.secret";

/// Creates what is missing in the data directory and (re)writes `relay.yaml`. Returns the
/// config path and the credentials.
pub fn prepare(opts: &DevOptions) -> anyhow::Result<(PathBuf, Credentials)> {
    let dir = &opts.data_dir;
    let (dkim_file, creds) = material(dir)?;
    let secret = dir.join(WEBHOOK_SECRET);
    if opts.webhook.is_some() && !secret.exists() {
        write_private(&secret, format!("{}\n", crate::events::sign::new_secret()).as_bytes())?;
    }
    let config = config(opts, dkim_file, &creds);
    let yaml = serde_saphyr::to_string(&config).context("rendering relay.yaml")?;
    let path = dir.join("relay.yaml");
    write_private(&path, format!("# Written by `cascade-relay dev`; rewritten at every start.\n{yaml}").as_bytes())?;
    Ok((path, creds))
}

/// Zone-file lines for the DKIM, SPF and DMARC records (TXT strings split at 255 bytes).
pub fn zone_lines(domain: &str, selector: &str, public_b64: &str) -> String {
    [
        dkim_key::txt_zone_line(&format!("{selector}._domainkey.{domain}."), &dkim_key::txt_record(DkimAlgorithm::RsaSha256, public_b64)),
        dkim_key::txt_zone_line(&format!("{domain}."), "v=spf1 ip4:127.0.0.1 -all"),
        dkim_key::txt_zone_line(&format!("_dmarc.{domain}."), "v=DMARC1; p=reject; adkim=s; aspf=s"),
    ]
    .concat()
}

pub async fn run(opts: DevOptions) -> anyhow::Result<()> {
    let (config, creds) = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || prepare(&opts)
    })
    .await??;
    let (host, port) = opts.submission.rsplit_once(':').unwrap_or(("127.0.0.1", "2587"));
    let dir = opts.data_dir.display();
    println!("Cascade dev relay — data in {dir}");
    println!("  SMTP AUTH username: {}", creds.username);
    println!("  SMTP AUTH password: {}   (also in {dir}/credentials.json)", creds.password);
    println!("  DNS records to publish: {dir}/dns.zone");
    match &opts.smarthost {
        Some(s) => println!("  delivering through smarthost {s}"),
        None => println!("  delivered mail is written to {dir}/outbox/"),
    }
    if let Some(url) = &opts.webhook {
        println!("  every event of the dev tenant is sent to {url}, signed with the secret in {dir}/{WEBHOOK_SECRET}");
    }
    println!("Send a first message:");
    println!("  swaks --server {host}:{port} --tls --auth PLAIN --auth-user {} --auth-password '{}' --from dev@{DEV_DOMAIN} --to someone@example.net", creds.username, creds.password);
    if !opts.http.is_empty() {
        println!("Send one through the HTTP API, described in JSON:");
        println!(
            "  curl --cacert {dir}/tls.crt -u '{}:{}' -H 'content-type: application/json' -d '{{\"from\":\"dev@{DEV_DOMAIN}\",\"to\":[\"someone@example.net\"],\"subject\":\"hello\",\"text\":\"Hello from the API.\"}}' https://{}/v1/messages",
            creds.username, creds.password, opts.http
        );
        println!("or as an RFC 5322 message (base64 in \"content\"):");
        let content = "RnJvbTogZGV2QGV4YW1wbGUudGVzdA0KVG86IHNvbWVvbmVAZXhhbXBsZS5uZXQNClN1YmplY3Q6IGhlbGxvDQoNCkhlbGxvIGZyb20gdGhlIEFQSS4NCg==";
        println!(
            "  curl --cacert {dir}/tls.crt -u '{}:{}' -H 'content-type: application/json' -d '{{\"from\":\"dev@{DEV_DOMAIN}\",\"to\":[\"someone@example.net\"],\"content\":\"{content}\"}}' https://{}/v1/messages/raw",
            creds.username, creds.password, opts.http
        );
    }
    if !opts.admin.is_empty() {
        println!("Read the admin API (mutual TLS with the dev admin authority's client certificate):");
        println!("  curl --cacert {dir}/admin-ca.crt --cert {dir}/admin-client.crt --key {dir}/admin-client.key https://{}/dmarc/summary", opts.admin);
    }
    crate::server::serve(&config, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn api_keys_have_prefix_and_256_bits() {
        let k = new_api_key().unwrap();
        assert!(k.username.starts_with("ck_") && k.username.len() == 19);
        let secret = k.password.strip_prefix(cascade_core::secret::SECRET_PREFIX).unwrap();
        assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret).unwrap().len(), 32);
        assert_ne!(new_api_key().unwrap().password, k.password);
    }

    #[test]
    fn zone_lines_split_long_txt_strings() {
        let z = zone_lines("example.test", "s1", &"A".repeat(400));
        let first = z.lines().next().unwrap();
        assert!(first.starts_with("s1._domainkey.example.test. 300 IN TXT \"v=DKIM1; k=rsa; p="));
        assert!(first.split('"').filter(|s| !s.trim().is_empty()).skip(1).all(|s| s.len() <= 255));
        assert!(z.contains("_dmarc.example.test. 300 IN TXT \"v=DMARC1; p=reject"));
    }
}
