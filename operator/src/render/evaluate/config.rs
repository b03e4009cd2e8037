//! The relay configuration of a pool: its listeners, delivery, limits, audit and handover from the
//! RelayPool's spec, with the tenants and API keys [`super::evaluate`] decided to serve. Pure.

use super::{key_of, smarthost_files, Inputs, InvalidSpec, SMARTHOST_CA_FILE, SMARTHOST_PASSWORD_FILE};
use cascade_crds::relay_config::{self as rc, RelayConfig};
use cascade_crds::units::{ByteSize, HumanDuration};
use cascade_crds::v1alpha1::{PoolDeliveryMode, RelayPool};
use std::collections::BTreeMap;

pub fn relay_config(
    pool: &RelayPool,
    inputs: &Inputs,
    tenants: BTreeMap<String, Vec<rc::SendingDomain>>,
    mut webhooks: BTreeMap<String, Vec<rc::Webhook>>,
    api_keys: Vec<rc::ApiKey>,
) -> Result<RelayConfig, InvalidSpec> {
    let (pool_ns, pool_name) = key_of(pool);
    let spec = &pool.spec;
    let delivery = match spec.delivery.mode {
        PoolDeliveryMode::Mx => rc::Delivery {
            mode: rc::DeliveryMode::Mx,
            tls: spec.delivery.tls,
            denied_destination_cidrs: spec.delivery.denied_destination_cidrs.clone(),
            allowed_destination_cidrs: spec.delivery.allowed_destination_cidrs.clone(),
            ..Default::default()
        },
        PoolDeliveryMode::Smarthost => {
            let s = spec.delivery.smarthost.as_ref().ok_or_else(|| InvalidSpec::new("delivery.smarthost", "required when mode is smarthost"))?;
            let mut smarthost = rc::Smarthost { address: s.address.clone(), tls: s.tls, ca_file: None, username: None, password_file: None };
            if s.credentials_secret.is_some() && s.tls != rc::OutboundTls::Required {
                return Err(InvalidSpec::new("delivery.smarthost.tls", "must be required (verified TLS) when credentialsSecret is set"));
            }
            if let Some(secret) = &s.credentials_secret {
                let (username, files) = smarthost_files(secret, inputs.secrets.get(&(key_of(pool).0, secret.clone())))?;
                smarthost.username = Some(username);
                smarthost.password_file = Some(SMARTHOST_PASSWORD_FILE.into());
                smarthost.ca_file = files.contains_key(SMARTHOST_CA_FILE).then(|| SMARTHOST_CA_FILE.into());
            }
            rc::Delivery { mode: rc::DeliveryMode::Smarthost, smarthost: Some(smarthost), ..Default::default() }
        }
    };
    let max_message_size: ByteSize = spec.limits.max_message_size.parse().map_err(|e| InvalidSpec::new("limits.maxMessageSize", e))?;
    spec.spool.rotate_key_every.parse::<cascade_crds::HumanDuration>().map_err(|e| InvalidSpec::new("spool.rotateKeyEvery", e))?;
    let defaults = rc::Limits::default();
    let tenant_queued_bytes: ByteSize = match &spec.limits.tenant_queued_bytes {
        Some(text) => text.parse().map_err(|e| InvalidSpec::new("limits.tenantQueuedBytes", e))?,
        None => defaults.tenant_queued_bytes,
    };
    let l = &spec.listeners;
    Ok(RelayConfig {
        config_generation: None,
        hostname: spec.hostname.clone(),
        listeners: rc::Listeners {
            submission: vec![format!("0.0.0.0:{}", l.submission_port)],
            submissions: vec![format!("0.0.0.0:{}", l.submissions_port)],
            http: format!("0.0.0.0:{}", l.http_port),
            admin: format!("0.0.0.0:{}", l.admin_port),
            allowed_client_cidrs: spec.allowed_client_cidrs.clone(),
            trusted_proxy_cidrs: l.trusted_proxy_cidrs.clone(),
        },
        tls: rc::TlsFiles { cert_file: "tls.crt".into(), key_file: "tls.key".into() },
        tenants: tenant_entries(spec, tenants, &mut webhooks),
        // A tenant in lockdown: every key refused on every relay.
        api_keys: api_keys.into_iter().map(|k| rc::ApiKey { revoked: k.revoked || spec.lockdown.contains_key(&k.tenant), ..k }).collect(),
        shards: vec![],
        delivery,
        spool: rc::Spool { dir: "spool".into(), key_file: "spool.key".into(), status_retention: HumanDuration::days(7) },
        limits: rc::Limits {
            max_message_size,
            max_recipients: spec.limits.max_recipients as usize,
            max_sessions: spec.limits.max_sessions as usize,
            max_sessions_per_client: spec.limits.max_sessions_per_client as usize,
            tenant_messages_per_minute: spec.limits.tenant_messages_per_minute,
            api_requests_per_minute: spec.limits.api_requests_per_minute.unwrap_or(defaults.api_requests_per_minute),
            tenant_queued_messages: spec.limits.tenant_queued_messages.unwrap_or(defaults.tenant_queued_messages),
            tenant_queued_bytes,
            ..defaults
        },
        sealing_key_file: None,
        dmarc_report_address: pool.spec.dmarc_report_address.clone(),
        feedback_address: pool.spec.feedback_address.clone(),
        // Every relay keeps the chained audit trail; the controller puts it on the spool volume.
        audit: Some(rc::AuditConfig::at("audit", crate::bundle::AUDIT_KEY)),
        // Every relay of the pool, through the headless Service (a relay skips itself).
        handover: Some(rc::Handover { peers: vec![format!("{}:{}", crate::labels::headless_host(&pool_name, &pool_ns), l.admin_port)], timeout: cascade_crds::HumanDuration::secs(60) }),
        webhooks: Default::default(),
        suppressions: Some(rc::SharedSuppressions { pool: pool_name.clone() }), // the pool's SuppressionShards
        admin_tls: Some(rc::AdminTls {
            cert_file: crate::admin_authority::CERT_FILE.into(),
            key_file: crate::admin_authority::KEY_FILE.into(),
            ca_file: crate::admin_authority::CA_FILE.into(),
            relay_name: crate::admin_authority::relay_name(&pool_ns, &pool_name),
            metrics_client_cert: l.metrics_client_certificate,
        }),
        retired_domains: inputs.retired.iter().map(|r| rc::RetiredDomain { name: r.domain.clone(), tenant: r.namespace.clone() }).collect(),
    })
}

/// The tenants' entries: their domains and webhooks, held while in `spec.lockdown`.
fn tenant_entries(spec: &cascade_crds::v1alpha1::RelayPoolSpec, tenants: BTreeMap<String, Vec<rc::SendingDomain>>, webhooks: &mut BTreeMap<String, Vec<rc::Webhook>>) -> Vec<rc::Tenant> {
    tenants
        .into_iter()
        .map(|(name, domains)| rc::Tenant {
            webhooks: webhooks.remove(&name).unwrap_or_default(),
            held: spec.lockdown.contains_key(&name),
            name,
            domains,
            suppressed_reasons: rc::default_suppressed_reasons(),
        })
        .collect()
}
