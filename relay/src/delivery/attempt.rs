//! One delivery attempt of one queued message: group its pending recipients by destination, run
//! a transaction per destination (reusing idle connections), record each recipient's outcome,
//! bounce permanent failures, and either remove the message or reschedule it. The bounce is
//! spooled before the original is updated, so nothing is lost between the two.

use super::client::{Client, Outcome, SessionFailure, Timeouts, TlsPolicy};
use super::queue::QueueItem;
use super::{destination, dsn, retry, route};
use crate::config::Runtime;
use crate::relay::{mask, Relay};
use crate::spool::{Envelope, RcptStatus, Recipient};
use cascade_crds::relay_config::{DeliveryMode, OutboundTls};
use hickory_resolver::TokioResolver;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why no session to a host could be had.
enum Unreachable {
    /// Its addresses are all where delivery may not connect.
    Denied,
    Failed(SessionFailure),
}

type Pool = Mutex<HashMap<String, Vec<(Client, Instant)>>>;

/// Long-lived delivery state: resolver, outbound TLS configurations, idle connections.
pub struct Engine {
    relay: Arc<Relay>,
    shared: Arc<Shared>,
}

struct Shared {
    resolver: Option<TokioResolver>,
    nameservers: Vec<SocketAddr>,
    pool: Pool,
    opportunistic: Arc<rustls::ClientConfig>,
    verified: Arc<rustls::ClientConfig>,
}

#[derive(Clone)]
pub struct Job {
    relay: Arc<Relay>,
    shared: Arc<Shared>,
}

impl Engine {
    pub fn new(relay: Arc<Relay>) -> Self {
        let shared = Arc::new(Shared::build(&relay.runtime()));
        Self { relay, shared }
    }

    /// Rebuilds the resolver when the configured nameservers changed.
    pub fn refresh(&mut self) {
        let rt = self.relay.runtime();
        if rt.nameservers != self.shared.nameservers {
            self.shared = Arc::new(Shared::build(&rt));
        }
    }

    pub fn job(&self) -> Job {
        Job { relay: self.relay.clone(), shared: self.shared.clone() }
    }
}

impl Shared {
    fn build(rt: &Runtime) -> Self {
        let resolver = match route::resolver(&rt.nameservers) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "no DNS resolver; MX delivery will be deferred");
                None
            }
        };
        Self {
            resolver,
            nameservers: rt.nameservers.clone(),
            pool: Mutex::new(HashMap::new()),
            opportunistic: crate::tls::client_config(false, None).expect("TLS client configuration"),
            verified: crate::tls::client_config(true, None).expect("TLS client configuration"),
        }
    }
}

/// Where one group of recipients goes.
enum Destination {
    Mx(String),
    Smarthost,
}

fn timeouts(rt: &Runtime) -> Timeouts {
    let t = &rt.config.delivery.timeouts;
    Timeouts { connect: t.connect.0, command: t.command.0, data_end: t.data_end.0 }
}

impl Job {
    pub async fn attempt(&self, item: QueueItem) -> Option<Envelope> {
        let rt = self.relay.runtime();
        let QueueItem { mut env, message } = item;
        if self.relay.purge_if_retired(&env) {
            return None;
        }
        let message = match message {
            Some(m) => m,
            // The envelope in memory is never older than the one on disk; only the body is read.
            None => match crate::spool::blocking(&self.relay.spool, {
                let id = env.id.clone();
                move |s| s.load(&id)
            })
            .await
            {
                Ok((_, m)) => Arc::new(m),
                Err(e) => {
                    tracing::error!(queue_id = %env.id, error = %e, "cannot read queued message; it stays in the spool for inspection");
                    return None;
                }
            },
        };
        env.attempts += 1;
        let pending: Vec<usize> = env.recipients.iter().enumerate().filter(|(_, r)| r.status == RcptStatus::Pending).map(|(i, _)| i).collect();
        match rt.config.delivery.mode {
            DeliveryMode::Capture => {
                let dir = rt.resolve(rt.config.delivery.capture_dir.as_deref().unwrap_or("outbox"));
                let (id, body) = (env.id.clone(), message.clone());
                let written = tokio::task::spawn_blocking(move || capture(&dir, &id, &body)).await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
                let outcome = match written {
                    Ok(path) => Outcome::Delivered(format!("captured to {}", path.display())),
                    Err(e) => Outcome::Deferred(format!("capture: {e}")),
                };
                for &i in &pending {
                    self.record(&env.tenant, &env.key, &mut env.recipients[i], &outcome, &env.id, false);
                }
            }
            mode => {
                let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for &i in &pending {
                    let key = match mode {
                        DeliveryMode::Smarthost => String::new(),
                        _ => env.recipients[i].address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default(),
                    };
                    groups.entry(key).or_default().push(i);
                }
                for (domain, idx) in groups {
                    let dest = if matches!(mode, DeliveryMode::Smarthost) { Destination::Smarthost } else { Destination::Mx(domain) };
                    let rcpts: Vec<String> = idx.iter().map(|&i| env.recipients[i].address.clone()).collect();
                    let (outcomes, tls) = self.deliver(&rt, &dest, &env.sender, &rcpts, &message).await;
                    for (&i, o) in idx.iter().zip(outcomes.iter()) {
                        self.record(&env.tenant, &env.key, &mut env.recipients[i], o, &env.id, tls);
                    }
                }
            }
        }
        // Bounces, rewrites and removals are spool file I/O with fsync: off the async workers.
        let job = self.clone();
        let id = env.id.clone();
        match tokio::task::spawn_blocking(move || job.finish(&rt, env, &message, &pending)).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "finishing a delivery attempt failed; the spool copy stays for the next start");
                None
            }
        }
    }

    fn record(&self, tenant: &str, key: &str, r: &mut Recipient, outcome: &Outcome, queue_id: &str, tls: bool) {
        let m = &self.relay.metrics;
        let (status, text, label) = match outcome {
            Outcome::Delivered(t) => (RcptStatus::Delivered, t, "delivered"),
            Outcome::Deferred(t) => (RcptStatus::Pending, t, "deferred"),
            Outcome::Failed(t) => (RcptStatus::Failed, t, "failed"),
        };
        match status {
            RcptStatus::Delivered => m.delivered.with_label_values(&[tenant]).inc(),
            RcptStatus::Pending => m.deferred.with_label_values(&[tenant]).inc(),
            RcptStatus::Failed => {
                m.bounced.with_label_values(&[tenant]).inc();
                self.relay.key_failed(key);
            }
        }
        tracing::info!(queue_id, recipient = %mask(&r.address), result = label, tls, reply = %text, "delivery attempt");
        if status != RcptStatus::Pending {
            self.relay.audit.record("message.outcome", serde_json::json!({ "queue_id": queue_id, "recipient": mask(&r.address), "result": label, "tls": tls }));
        }
        r.status = status;
        r.last_reply = Some(text.clone());
    }

    /// Runs one transaction for `rcpts`; returns one outcome each and whether TLS was used.
    /// The hosts to try for a destination, their port, whether TLS is required and the TLS
    /// client; an outcome for every recipient when there is nowhere to go.
    async fn next_hops(&self, rt: &Runtime, dest: &Destination) -> Result<(Vec<String>, u16, bool, Arc<rustls::ClientConfig>), Outcome> {
        let d = &rt.config.delivery;
        match dest {
            Destination::Smarthost => {
                let (Some(s), Some(config)) = (d.smarthost.as_ref(), rt.smarthost_tls.clone()) else {
                    return Err(Outcome::Deferred("no smarthost configured".into()));
                };
                let Some((host, port)) = route::split_host_port(&s.address) else { return Err(Outcome::Deferred("bad smarthost address".into())) };
                Ok((vec![host], port, s.tls == OutboundTls::Required, config))
            }
            Destination::Mx(domain) => {
                let Some(resolver) = &self.shared.resolver else { return Err(Outcome::Deferred("no DNS resolver".into())) };
                let required = d.tls == OutboundTls::Required;
                let config = if required { self.shared.verified.clone() } else { self.shared.opportunistic.clone() };
                match route::mx_hosts(resolver, domain).await {
                    Ok(h) => Ok((h, d.mx_port, required, config)),
                    Err(route::RouteError::Temporary(e)) => Err(Outcome::Deferred(format!("DNS: {e}"))),
                    Err(route::RouteError::Permanent(e)) => Err(Outcome::Failed(format!("DNS: {e}"))),
                }
            }
        }
    }

    /// A new connection to `host`: its addresses (for an MX host only those the destination
    /// filter allows), then the SMTP session up to the transaction.
    async fn connect(&self, rt: &Runtime, dest: &Destination, host: &str, port: u16, tls: &TlsPolicy, auth: Option<&(String, String)>) -> Result<Client, Unreachable> {
        let addrs = match self.shared.resolver.as_ref() {
            Some(r) => route::addresses(r, host, port).await,
            None => host.parse().map(|ip| vec![SocketAddr::new(ip, port)]).map_err(|_| route::RouteError::Temporary("no resolver".into())),
        };
        let addrs = match addrs {
            Ok(a) if matches!(dest, Destination::Smarthost) => a,
            Ok(a) => {
                let allowed: Vec<SocketAddr> = a.iter().copied().filter(|a| rt.destinations.allows(a.ip())).collect();
                if allowed.is_empty() {
                    self.relay.metrics.rejected.with_label_values(&["destination_not_allowed"]).inc();
                    tracing::warn!(host = %host, "MX host resolves only to addresses delivery may not connect to");
                    return Err(Unreachable::Denied);
                }
                allowed
            }
            Err(route::RouteError::Temporary(reason)) => return Err(Unreachable::Failed(SessionFailure { permanent: false, reason })),
            Err(route::RouteError::Permanent(reason)) => return Err(Unreachable::Failed(SessionFailure { permanent: true, reason })),
        };
        let client = Client::connect(&addrs, &rt.config.hostname, tls, auth.map(|(u, p)| (u.as_str(), p.as_str())), timeouts(rt)).await.map_err(Unreachable::Failed)?;
        self.relay.metrics.outbound_connections.with_label_values(&[if client.tls { "true" } else { "false" }]).inc();
        Ok(client)
    }

    async fn deliver(&self, rt: &Runtime, dest: &Destination, sender: &str, rcpts: &[String], message: &[u8]) -> (Vec<Outcome>, bool) {
        let all = |o: Outcome| (vec![o; rcpts.len()], false);
        let d = &rt.config.delivery;
        let (hosts, port, tls_required, config) = match self.next_hops(rt, dest).await {
            Ok(hops) => hops,
            Err(outcome) => return all(outcome),
        };
        let auth = match (dest, d.smarthost.as_ref()) {
            (Destination::Smarthost, Some(s)) => s.username.clone().zip(rt.smarthost_password.clone()),
            _ => None,
        };
        let mut last = SessionFailure { permanent: false, reason: "no destination".into() };
        let mut denied_hosts = 0;
        for host in &hosts {
            let tls = TlsPolicy { required: tls_required, config: config.clone(), server_name: host.clone() };
            let pool_key = format!("{host}:{port}:{tls_required}");
            // A pooled connection may have been closed by the server: one fresh retry.
            for fresh in [false, true] {
                let pooled = if fresh { None } else { self.take_idle(&pool_key, d.timeouts.idle.0) };
                let was_pooled = pooled.is_some();
                let mut client = match pooled {
                    Some(c) => c,
                    None => match self.connect(rt, dest, host, port, &tls, auth.as_ref()).await {
                        Ok(c) => c,
                        Err(Unreachable::Denied) => {
                            denied_hosts += 1;
                            break;
                        }
                        Err(Unreachable::Failed(e)) => {
                            last = e;
                            break;
                        }
                    },
                };
                match client.transaction(sender, rcpts, message).await {
                    Ok(outcomes) => {
                        let tls_used = client.tls;
                        self.put_idle(pool_key, client);
                        return (outcomes, tls_used);
                    }
                    Err(e) if was_pooled => last = e,
                    Err(e) => {
                        last = e;
                        break;
                    }
                }
            }
        }
        if denied_hosts > 0 && denied_hosts == hosts.len() {
            // Every MX points where delivery may not go: permanent, and the DSN says only that.
            return all(Outcome::Failed(destination::NOT_ALLOWED.into()));
        }
        let reason = last.reason;
        all(if last.permanent { Outcome::Failed(reason) } else { Outcome::Deferred(reason) })
    }

    fn take_idle(&self, key: &str, idle: Duration) -> Option<Client> {
        let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.get_mut(key)?;
        while let Some((c, since)) = list.pop() {
            if since.elapsed() < idle {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, key: String, client: Client) {
        let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.entry(key).or_default();
        if list.len() < 64 {
            list.push((client, Instant::now()));
        }
    }

    /// Bounces what failed, reports this attempt's outcomes for `attempted` (indexes of the
    /// recipients tried) as events, then removes or reschedules the message.
    fn finish(&self, rt: &Runtime, mut env: Envelope, message: &[u8], attempted: &[usize]) -> Option<Envelope> {
        let now = cascade_core::time::now_unix();
        let d = &rt.config.delivery;
        let mut expired = Vec::new();
        if env.pending().next().is_some() && retry::expired(env.created, now, d.retry.max_age.0) {
            for (i, r) in env.recipients.iter_mut().enumerate().filter(|(_, r)| r.status == RcptStatus::Pending) {
                let last = r.last_reply.clone().unwrap_or_default();
                r.status = RcptStatus::Failed;
                r.last_reply = Some(format!("gave up after {}: {last}", d.retry.max_age));
                self.relay.metrics.bounced.with_label_values(&[&env.tenant]).inc();
                expired.push(i);
            }
        }
        if !env.key.is_empty() {
            for r in attempted.iter().filter(|i| !expired.contains(i)).map(|&i| &env.recipients[i]).filter(|r| r.status == RcptStatus::Failed) {
                self.relay.suppress_bounce(&env.tenant, &env.sender, &r.address, r.last_reply.as_deref().unwrap_or_default(), &env.id);
            }
        }
        self.report(rt, &env, attempted, &expired);
        let unbounced: Vec<&Recipient> = env.recipients.iter().filter(|r| r.status == RcptStatus::Failed && !r.bounced).collect();
        if !unbounced.is_empty() {
            if env.sender.is_empty() {
                tracing::warn!(queue_id = %env.id, failed = unbounced.len(), "bounce undeliverable (null sender); dropped after logging");
            } else if let Err(e) = self.bounce(rt, &env, &unbounced, message) {
                tracing::error!(queue_id = %env.id, error = %e, "could not queue bounce; will retry");
                env.next_attempt = now + 60;
                self.persist(&env, message);
                return Some(env);
            }
            for r in env.recipients.iter_mut().filter(|r| r.status == RcptStatus::Failed) {
                r.bounced = true;
            }
        }
        if env.pending().next().is_none() {
            let latency = now.saturating_sub(env.created) as f64;
            self.relay.metrics.delivery_latency.observe(latency);
            self.relay.record_finished(&env);
            if let Err(e) = self.relay.spool.remove(&env.id) {
                tracing::error!(queue_id = %env.id, error = %e, "could not remove finished message");
            }
            return None;
        }
        let delay = retry::next_delay(env.attempts, d.retry.initial.0, d.retry.max_delay.0, retry::jitter_sample());
        env.next_attempt = now + delay.as_secs().max(1);
        self.persist(&env, message);
        tracing::info!(queue_id = %env.id, retry_in_s = delay.as_secs(), attempts = env.attempts, "message deferred");
        Some(env)
    }

    /// The attempt's events, written before the spool records the states they report: each tried
    /// recipient delivered, deferred or bounced (hard), and the expired ones bounced (soft).
    /// Bounces the relay generated (no API key) are not reported.
    fn report(&self, rt: &Runtime, env: &Envelope, attempted: &[usize], expired: &[usize]) {
        if env.key.is_empty() || !rt.webhooks.contains_key(&env.tenant) {
            return;
        }
        use crate::events::message::outcome;
        for &i in attempted {
            let r = &env.recipients[i];
            let (kind, data) = match r.status {
                RcptStatus::Delivered => ("message.delivered", outcome(env, r, None)),
                RcptStatus::Failed if expired.contains(&i) => ("message.bounced", outcome(env, r, Some("soft"))),
                RcptStatus::Failed => ("message.bounced", outcome(env, r, Some("hard"))),
                RcptStatus::Pending => ("message.deferred", outcome(env, r, None)),
            };
            if crate::events::Events::wanted(rt, &env.tenant, kind) {
                self.relay.events.emit(rt, &self.relay.spool, &env.tenant, kind, data);
            }
        }
        for &i in expired.iter().filter(|i| !attempted.contains(i)) {
            if crate::events::Events::wanted(rt, &env.tenant, "message.bounced") {
                self.relay.events.emit(rt, &self.relay.spool, &env.tenant, "message.bounced", outcome(env, &env.recipients[i], Some("soft")));
            }
        }
    }

    /// Rewrites the queued copy with the new recipient states. On failure the older copy stays:
    /// a restart may then deliver some recipients twice, never lose one.
    fn persist(&self, env: &Envelope, message: &[u8]) {
        if let Err(e) = self.relay.spool.store(env, &[message]) {
            tracing::error!(queue_id = %env.id, error = %e, "could not update queued message; an older copy stays on disk");
        }
    }

    fn bounce(&self, rt: &Runtime, env: &Envelope, failed: &[&Recipient], message: &[u8]) -> Result<(), crate::spool::SpoolError> {
        let id = crate::spool::new_queue_id();
        let now = cascade_core::time::now_unix();
        let list: Vec<dsn::Failed<'_>> = failed.iter().map(|r| dsn::Failed { recipient: &r.address, reason: r.last_reply.as_deref().unwrap_or("failed") }).collect();
        let report = dsn::Report { hostname: &rt.config.hostname, queue_id: &env.id, bounce_id: &id, sender: &env.sender, arrival: env.created, now };
        let body = dsn::build(&report, &list, message);
        let bounce = Envelope {
            id: id.clone(),
            sender: String::new(),
            recipients: vec![Recipient::pending(&env.sender)],
            tenant: env.tenant.clone(),
            key: String::new(),
            created: now,
            next_attempt: 0,
            attempts: 0,
            tags: Default::default(),
        };
        self.relay.spool.store(&bounce, &[&body])?;
        tracing::info!(queue_id = %env.id, bounce_id = %id, to = %mask(&env.sender), "bounce queued");
        self.relay.queue.submit(bounce, Some(Arc::new(body)));
        Ok(())
    }
}

/// Writes `<dir>/<id>.eml` durably (temporary name, fsync, rename).
fn capture(dir: &Path, id: &str, message: &[u8]) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{id}.tmp"));
    let path = dir.join(format!("{id}.eml"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(message)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
