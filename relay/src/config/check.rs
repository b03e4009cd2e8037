//! The semantic check of a relay configuration, section by section: every problem is collected
//! with the field it names (`tenants[0].domains[1].dkim[0].keyFile: ...`). A problem confined to
//! one tenant's domain or one API key drops that entry alone (reported in `Runtime::dropped`),
//! so one tenant's bad entry never costs the others their configuration; any other problem
//! refuses the configuration as a whole (the relay keeps the last good one).

use super::{resolve, ConfigErrors, DomainPolicy, KeyPolicy, Problem, Runtime, KNOWN_SCOPES};
use crate::delivery::destination::DestinationFilter;
use crate::dkim::Signer;
use crate::smtp::command::valid_domain;
use cascade_core::cidr::Cidr;
use cascade_core::seal::KeyRing;
use cascade_crds::relay_config::{Delivery, DeliveryMode, Limits, Listeners, OutboundTls, RelayConfig, TlsFiles};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where referenced files come from: the directory of the configuration file, or the other
/// entries of a bundle held in memory (a watched Secret: `relay.yaml` and the files it names).
pub(super) enum Files<'a> {
    Dir(PathBuf),
    Bundle(&'a BTreeMap<String, Vec<u8>>),
}

pub(super) struct Checker<'a> {
    file: String,
    files: Files<'a>,
    pub(super) problems: Vec<Problem>,
    /// Problems of entries left out (a domain, an API key).
    dropped: Vec<Problem>,
}

impl Checker<'_> {
    /// Whether the entry whose checks began when there were `before` problems is clean; if
    /// not, its problems move to `dropped` and the entry must be left out.
    pub(super) fn entry_ok(&mut self, before: usize) -> bool {
        let found: Vec<Problem> = self.problems.drain(before..).collect();
        let ok = found.is_empty();
        self.dropped.extend(found);
        ok
    }

    pub(super) fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem { file: self.file.clone(), field: field.into(), reason: reason.into() });
    }

    pub(super) fn read(&mut self, field: &str, path: &str) -> Option<Vec<u8>> {
        let found = match &self.files {
            Files::Dir(base) => {
                let full = resolve(base, path);
                std::fs::read(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
            }
            // Absolute paths name files on disk (mounted keys, the spool), the rest bundle entries.
            Files::Bundle(_) if Path::new(path).is_absolute() => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}")),
            Files::Bundle(files) => files.get(path).cloned().ok_or_else(|| format!("the bundle has no entry {path:?}")),
        };
        found.map_err(|e| self.fail(field, e)).ok()
    }
}

/// A DKIM key file as read; one named `*.sealed` is decrypted with the sealing key ring, bound to
/// its file name.
pub(super) fn unseal(c: &mut Checker<'_>, field: &str, name: &str, ring: Option<&KeyRing>, bytes: Vec<u8>) -> Option<Vec<u8>> {
    if !name.ends_with(".sealed") {
        return Some(bytes);
    }
    let Some(ring) = ring else {
        c.fail(field, "a .sealed key file needs sealingKeyFile");
        return None;
    };
    cascade_core::seal::open_blob(ring, name, &bytes).map_err(|e| c.fail(field, format!("cannot decrypt with sealingKeyFile: {e}"))).ok()
}

/// Only `bounce` and `complaint` add entries by themselves.
fn suppressed_reasons(c: &mut Checker<'_>, field: &str, reasons: &[String]) {
    for (i, r) in reasons.iter().enumerate() {
        if r != "bounce" && r != "complaint" {
            c.fail(format!("{field}[{i}]"), format!("{r:?} is not bounce or complaint"));
        }
    }
}

fn networks(c: &mut Checker<'_>, field: &str, texts: &[String]) -> Vec<Cidr> {
    let mut out = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match text.parse::<Cidr>() {
            Ok(n) => out.push(n),
            Err(e) => c.fail(format!("{field}[{i}]"), e),
        }
    }
    out
}

/// Listener addresses; returns the client and proxy networks.
fn listeners(c: &mut Checker<'_>, l: &Listeners) -> (Vec<Cidr>, Vec<Cidr>) {
    for (name, list) in [("submission", &l.submission), ("submissions", &l.submissions)] {
        for (i, a) in list.iter().enumerate() {
            if a.parse::<SocketAddr>().is_err() {
                c.fail(format!("listeners.{name}[{i}]"), format!("{a:?} is not IP:PORT"));
            }
        }
    }
    for (name, addr) in [("http", &l.http), ("admin", &l.admin)] {
        if !addr.is_empty() && addr.parse::<SocketAddr>().is_err() {
            c.fail(format!("listeners.{name}"), format!("{addr:?} is not IP:PORT"));
        }
    }
    if !l.http.is_empty() && l.http == l.admin {
        c.fail("listeners.admin", "must differ from listeners.http: tenants reach http, only the platform reaches admin");
    }
    (networks(c, "listeners.allowedClientCidrs", &l.allowed_client_cidrs), networks(c, "listeners.trustedProxyCidrs", &l.trusted_proxy_cidrs))
}

fn destinations(c: &mut Checker<'_>, d: &Delivery) -> DestinationFilter {
    DestinationFilter { denied: networks(c, "delivery.deniedDestinationCidrs", &d.denied_destination_cidrs), allowed: networks(c, "delivery.allowedDestinationCidrs", &d.allowed_destination_cidrs) }
}

/// The certificate and key PEM, when they read and parse.
fn tls(c: &mut Checker<'_>, tls: &TlsFiles) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let cert_pem = c.read("tls.certFile", &tls.cert_file);
    if let Some(Err(e)) = cert_pem.as_deref().map(crate::tls::parse_certs) {
        c.fail("tls.certFile", e);
    }
    let key_pem = c.read("tls.keyFile", &tls.key_file);
    if let Some(Err(e)) = key_pem.as_deref().map(crate::tls::parse_key) {
        c.fail("tls.keyFile", e);
    }

    (cert_pem, key_pem)
}

/// The admin channel's mutual TLS. Without it the admin listener is plaintext, so it must be on
/// loopback: a platform network carries metrics, summaries and handovers only under TLS.
fn admin_tls(c: &mut Checker<'_>, config: &RelayConfig) -> Option<crate::tls::AdminChannel> {
    let Some(a) = &config.admin_tls else {
        if config.listeners.admin.parse::<SocketAddr>().is_ok_and(|a| !a.ip().is_loopback()) {
            c.fail("adminTls", "required when listeners.admin is not a loopback address");
        }
        return None;
    };
    let (cert, key, ca) = (c.read("adminTls.certFile", &a.cert_file), c.read("adminTls.keyFile", &a.key_file), c.read("adminTls.caFile", &a.ca_file));
    let (cert, key, ca) = (cert?, key?, ca?);
    let required = a.metrics_client_cert == cascade_crds::relay_config::ClientCertificate::Required;
    crate::tls::admin_channel(&cert, &key, &ca, &a.relay_name, required).map_err(|e| c.fail("adminTls", e)).ok()
}

/// Tenants and their domains (DKIM keys loaded, sealed ones opened with the sealing key);
/// returns the domain policies and each tenant's domains.
/// Appends each listed shard's tenants and API keys. A shard that is missing, does not match
/// its digest or does not parse is dropped (its tenants are not served); the rest loads.
fn shards(c: &mut Checker<'_>, config: &mut RelayConfig) {
    for (i, s) in std::mem::take(&mut config.shards).into_iter().enumerate() {
        let field = format!("shards[{i}]");
        let before = c.problems.len();
        let shard = c.read(&format!("{field}.file"), &s.file).and_then(|bytes| match super::parse_shard(&bytes) {
            Ok(shard) => Some((bytes, shard)),
            Err(e) => {
                c.fail(format!("{field}.file"), format!("{}: {}", s.file, e.trim().replace('\n', " ")));
                None
            }
        });
        if let Some((bytes, shard)) = shard {
            let keys: Vec<Vec<u8>> = shard.key_files().iter().map(|f| c.read(&format!("{field}: {f}"), f).unwrap_or_default()).collect();
            if cascade_core::shard::digest(&bytes, &keys.iter().map(Vec::as_slice).collect::<Vec<_>>()) != s.digest {
                c.fail(format!("{field}.digest"), format!("does not match {} and its key files (a newer version is on its way, or it was altered)", s.file));
            }
            if c.entry_ok(before) {
                config.tenants.extend(shard.tenants);
                config.api_keys.extend(shard.api_keys);
            }
        }
        c.entry_ok(before);
        config.shards.push(s);
    }
}

fn tenants<'a>(c: &mut Checker<'_>, config: &'a RelayConfig) -> (HashMap<String, DomainPolicy>, HashMap<&'a str, HashSet<&'a str>>) {
    let sealing = config.sealing_key_file.clone().and_then(|f| c.read("sealingKeyFile", &f)).and_then(|b| match KeyRing::parse(&String::from_utf8_lossy(&b)) {
        Ok(k) => Some(k),
        Err(e) => {
            c.fail("sealingKeyFile", e);
            None
        }
    });
    let mut domains = HashMap::new();
    let mut tenant_domains: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (ti, tenant) in config.tenants.iter().enumerate() {
        let tf = format!("tenants[{ti}]");
        if tenant.name.is_empty() {
            c.fail(format!("{tf}.name"), "must not be empty");
        }
        if tenant_domains.insert(&tenant.name, HashSet::new()).is_some() {
            c.fail(format!("{tf}.name"), format!("tenant {:?} is listed twice", tenant.name));
        }
        suppressed_reasons(c, &format!("{tf}.suppressedReasons"), &tenant.suppressed_reasons);
        for (di, domain) in tenant.domains.iter().enumerate() {
            let df = format!("{tf}.domains[{di}]");
            let before = c.problems.len();
            suppressed_reasons(c, &format!("{df}.suppressedReasons"), domain.suppressed_reasons.as_deref().unwrap_or_default());
            if !valid_domain(&domain.name) || domain.name != domain.name.to_ascii_lowercase() {
                c.fail(format!("{df}.name"), format!("{:?} is not a lower-case domain name", domain.name));
            }
            let mut signers = Vec::new();
            for (ki, key) in domain.dkim.iter().enumerate() {
                let kf = format!("{df}.dkim[{ki}]");
                if key.selector.is_empty() || !key.selector.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
                    c.fail(format!("{kf}.selector"), format!("{:?} is not a valid selector", key.selector));
                }
                let pem = c.read(&format!("{kf}.keyFile"), &key.key_file).and_then(|b| unseal(c, &format!("{kf}.keyFile"), &key.key_file, sealing.as_ref(), b));
                if let Some(pem) = pem {
                    match Signer::from_pem(&domain.name, &key.selector, key.algorithm, &pem) {
                        Ok(s) => signers.push(s),
                        Err(e) => c.fail(format!("{kf}.keyFile"), e.to_string()),
                    }
                }
            }
            if domains.contains_key(&domain.name) {
                c.fail(format!("{df}.name"), format!("domain {:?} is claimed more than once", domain.name));
            }
            if !c.entry_ok(before) {
                continue;
            }
            tenant_domains.entry(&tenant.name).or_default().insert(&domain.name);
            domains.insert(domain.name.clone(), DomainPolicy { tenant: tenant.name.clone(), signers, refuse: domain.refuse.clone() });
        }
    }

    (domains, tenant_domains)
}

fn api_keys(c: &mut Checker<'_>, config: &RelayConfig, tenant_domains: &HashMap<&str, HashSet<&str>>) -> HashMap<String, KeyPolicy> {
    let mut keys = HashMap::new();
    for (i, key) in config.api_keys.iter().enumerate() {
        let kf = format!("apiKeys[{i}]");
        let before = c.problems.len();
        if !cascade_crds::relay_config::valid_key_id(&key.id) {
            c.fail(format!("{kf}.id"), "must be 3-128 characters of letters, digits, '-', '_' or '.'");
        }
        let tenant_set = tenant_domains.get(key.tenant.as_str());
        if tenant_set.is_none() {
            c.fail(format!("{kf}.tenant"), format!("no tenant named {:?}", key.tenant));
        }
        let secret_hash = match cascade_core::secret::parse_secret_hash(&key.secret_hash) {
            Some(h) => h,
            None => {
                c.fail(format!("{kf}.secretHash"), "expected sha256:<64 hex digits>");
                [0; 32]
            }
        };
        for (si, scope) in key.scopes.iter().enumerate() {
            if !KNOWN_SCOPES.contains(&scope.as_str()) {
                c.fail(format!("{kf}.scopes[{si}]"), format!("unknown scope {scope:?}; known: {}", KNOWN_SCOPES.join(", ")));
            }
        }
        for (di, d) in key.allowed_domains.iter().enumerate() {
            if tenant_set.is_some_and(|s| !s.contains(d.as_str())) {
                c.fail(format!("{kf}.allowedDomains[{di}]"), format!("{d:?} is not a domain of tenant {:?}", key.tenant));
            }
        }
        let mut cidrs = Vec::new();
        for (ci, text) in key.allowed_cidrs.iter().enumerate() {
            match text.parse::<Cidr>() {
                Ok(n) => cidrs.push(n),
                Err(e) => c.fail(format!("{kf}.allowedCidrs[{ci}]"), e),
            }
        }
        if key.recipients_per_minute == Some(0) {
            c.fail(format!("{kf}.recipientsPerMinute"), "must be at least 1 (use revoked: true to stop a key)");
        }
        if key.messages_per_minute == Some(0) {
            c.fail(format!("{kf}.messagesPerMinute"), "must be at least 1 (use revoked: true to stop a key)");
        }
        let expires_at = key.expires_at.as_ref().and_then(|t| {
            let parsed = cascade_core::time::parse_rfc3339(t);
            if parsed.is_none() {
                c.fail(format!("{kf}.expiresAt"), format!("{t:?} is not an RFC 3339 time like 2027-01-01T00:00:00Z"));
            }
            parsed
        });
        let policy = KeyPolicy {
            tenant: key.tenant.clone(),
            secret_hash,
            scopes: key.scopes.clone(),
            allowed_domains: key.allowed_domains.iter().cloned().collect(),
            allowed_cidrs: cidrs,
            messages_per_minute: key.messages_per_minute,
            recipients_per_minute: key.recipients_per_minute,
            expires_at,
            revoked: key.revoked,
            anomalies: key.anomalies.clone(),
            generation: key.generation,
        };
        if keys.contains_key(&key.id) {
            c.fail(format!("{kf}.id"), format!("key id {:?} is listed twice", key.id));
        }
        if c.entry_ok(before) {
            keys.insert(key.id.clone(), policy);
        }
    }

    keys
}

/// The report address, the audit trail (returns its key) and retired domains (returns those
/// no longer served).
fn audit_and_retired(c: &mut Checker<'_>, config: &RelayConfig, domains: &HashMap<String, DomainPolicy>) -> (Option<Vec<u8>>, HashSet<(String, String)>) {
    for (field, address) in [("dmarcReportAddress", &config.dmarc_report_address), ("feedbackAddress", &config.feedback_address)] {
        let Some(a) = address else { continue };
        let valid = a.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && l.len() <= 64 && !l.contains(['<', '>', ' ']) && valid_domain(d));
        if !valid {
            c.fail(field, format!("{a:?} is not a mail address"));
        }
    }
    if config.feedback_address.is_some() && config.feedback_address.as_deref().map(str::to_ascii_lowercase) == config.dmarc_report_address.as_deref().map(str::to_ascii_lowercase) {
        c.fail("feedbackAddress", "must differ from dmarcReportAddress");
    }
    let audit_key = config.audit.clone().and_then(|a| {
        if a.retain_days == 0 {
            c.fail("audit.retainDays", "must be at least 1");
        }
        let bytes = c.read("audit.keyFile", &a.key_file)?;
        cascade_core::audit::parse_key(&String::from_utf8_lossy(&bytes)).map_err(|e| c.fail("audit.keyFile", e)).ok()
    });
    let mut retired = HashSet::new();
    for (i, r) in config.retired_domains.iter().enumerate() {
        if !valid_domain(&r.name) {
            c.fail(format!("retiredDomains[{i}].name"), format!("{:?} is not a domain name", r.name));
        }
        let served = domains.get(&r.name).is_some_and(|d: &DomainPolicy| d.tenant == r.tenant);
        if !served {
            retired.insert((r.tenant.clone(), r.name.to_ascii_lowercase()));
        }
    }

    (audit_key, retired)
}

/// The route; returns the smarthost's password and TLS client, and the nameservers.
fn delivery(c: &mut Checker<'_>, d: &Delivery) -> (Option<String>, Option<Arc<rustls::ClientConfig>>, Vec<SocketAddr>) {
    let mut smarthost_password = None;
    let mut smarthost_tls = None;
    match d.mode {
        DeliveryMode::Smarthost => match &d.smarthost {
            None => c.fail("delivery.smarthost", "required when mode is smarthost"),
            Some(s) => {
                if crate::delivery::route::split_host_port(&s.address).is_none() {
                    c.fail("delivery.smarthost.address", format!("{:?} is not host:port", s.address));
                }
                if s.username.is_some() != s.password_file.is_some() {
                    c.fail("delivery.smarthost", "username and passwordFile go together");
                }
                if s.username.is_some() && s.tls != OutboundTls::Required {
                    // Opportunistic TLS is not verified: a man in the middle would collect the password.
                    c.fail("delivery.smarthost.tls", "must be required (verified TLS) when username and passwordFile are set");
                }
                if let Some(pf) = &s.password_file {
                    smarthost_password = c.read("delivery.smarthost.passwordFile", pf).map(|b| String::from_utf8_lossy(&b).trim().to_string());
                }
                let ca = s.ca_file.as_ref().and_then(|ca| c.read("delivery.smarthost.caFile", ca));
                if s.ca_file.is_none() || ca.is_some() {
                    match crate::tls::client_config(s.tls == OutboundTls::Required, ca.as_deref()) {
                        Ok(cfg) => smarthost_tls = Some(cfg),
                        Err(e) => c.fail("delivery.smarthost.caFile", e),
                    }
                }
            }
        },
        DeliveryMode::Capture if d.capture_dir.is_none() => c.fail("delivery.captureDir", "required when mode is capture"),
        _ => {}
    }
    let mut nameservers = Vec::new();
    for (i, ns) in d.nameservers.iter().enumerate() {
        match ns.parse::<SocketAddr>() {
            Ok(a) => nameservers.push(a),
            Err(_) => c.fail(format!("delivery.nameservers[{i}]"), format!("{ns:?} is not IP:PORT")),
        }
    }
    if d.concurrency == 0 || d.concurrency_per_tenant == 0 || d.concurrency_per_destination == 0 {
        c.fail("delivery.concurrency", "concurrency, concurrencyPerTenant and concurrencyPerDestination must be at least 1");
    }
    if d.retry.initial.0.is_zero() || d.retry.initial > d.retry.max_delay {
        c.fail("delivery.retry", "initial must be above zero and not above maxDelay");
    }

    (smarthost_password, smarthost_tls, nameservers)
}

fn limits(c: &mut Checker<'_>, lim: &Limits) {
    if lim.max_line_length < 1000 {
        c.fail("limits.maxLineLength", "RFC 5321 requires at least 1000");
    }
    if lim.max_recipients == 0 || lim.max_sessions == 0 || lim.max_commands == 0 || lim.max_sessions_per_client == 0 {
        c.fail("limits", "maxRecipients, maxSessions, maxSessionsPerClient and maxCommands must be at least 1");
    }
    if lim.api_requests_per_minute == 0 {
        c.fail("limits.apiRequestsPerMinute", "must be at least 1");
    }
    if lim.tenant_messages_per_minute == Some(0) {
        c.fail("limits.tenantMessagesPerMinute", "must be at least 1");
    }
    if lim.tenant_queued_messages == 0 || lim.tenant_queued_bytes.0 == 0 {
        c.fail("limits", "tenantQueuedMessages and tenantQueuedBytes must be at least 1");
    }
    if lim.max_message_size.0 < 1024 {
        c.fail("limits.maxMessageSize", "must be at least 1KiB");
    }
}

pub(super) fn check_with(mut config: RelayConfig, file: &str, files: Files<'_>) -> Result<Runtime, ConfigErrors> {
    let base = match &files {
        Files::Dir(b) => b.clone(),
        Files::Bundle(_) => PathBuf::from("/"),
    };
    let mut c = Checker { file: file.into(), files, problems: vec![], dropped: vec![] };
    if !valid_domain(&config.hostname) && config.hostname != "localhost" {
        c.fail("hostname", format!("{:?} is not a valid host name", config.hostname));
    }
    let (client_networks, proxy_networks) = listeners(&mut c, &config.listeners);
    let destinations = destinations(&mut c, &config.delivery);
    let (cert_pem, key_pem) = tls(&mut c, &config.tls);
    let admin_tls = admin_tls(&mut c, &config);
    shards(&mut c, &mut config);
    let (domains, tenant_domains) = tenants(&mut c, &config);
    let keys = api_keys(&mut c, &config, &tenant_domains);
    let (webhooks, webhook_tls) = super::webhooks::check(&mut c, &config);
    drop(tenant_domains);
    let (audit_key, retired) = audit_and_retired(&mut c, &config, &domains);
    let (smarthost_password, smarthost_tls, nameservers) = delivery(&mut c, &config.delivery);
    let spool_keys = c.read("spool.keyFile", &config.spool.key_file).and_then(|b| match KeyRing::parse(&String::from_utf8_lossy(&b)) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            c.fail("spool.keyFile", e);
            None
        }
    });
    limits(&mut c, &config.limits);
    match spool_keys {
        Some(spool_keys) if c.problems.is_empty() && webhook_tls.is_some() => {
            let tls_pem = (cert_pem.unwrap_or_default(), key_pem.unwrap_or_default());
            let held = config.tenants.iter().filter(|t| t.held).map(|t| t.name.clone()).collect();
            Ok(Runtime {
                config,
                base_dir: base,
                domains,
                keys,
                spool_keys,
                smarthost_tls,
                smarthost_password,
                nameservers,
                client_networks,
                proxy_networks,
                destinations,
                tls_pem,
                admin_tls,
                retired,
                held,
                audit_key,
                webhooks,
                webhook_tls: webhook_tls.expect("checked above"),
                dropped: c.dropped,
                config_hash: String::new(),
            })
        }
        // Refused: every problem is reported, the dropped entries' too.
        _ => Err(ConfigErrors(c.problems.into_iter().chain(c.dropped).collect())),
    }
}
