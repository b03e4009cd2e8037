//! `cascade-relay serve`: load and check the configuration, open the spool and requeue what it
//! holds, bind the listeners, run the delivery scheduler, reload configuration and certificates
//! when their files change or on SIGHUP, and shut down cleanly on SIGTERM/SIGINT.

use crate::config::{self, Runtime};
use crate::delivery::queue::{self, QueueHandle};
use crate::relay::Relay;
use crate::smtp::{conn::Stream, Session};
use crate::spool::Spool;
use crate::tls::CertStore;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// STARTTLS submission (587).
    Submission,
    /// Implicit TLS (465).
    Submissions,
}

/// Runs the relay from `config_path`; with `watch`, later configurations come from that Secret
/// through the Kubernetes API (see [`crate::watch`]).
pub async fn serve(config_path: &Path, watch: Option<crate::watch::Target>) -> anyhow::Result<()> {
    let rt = config::load(config_path).map_err(|e| anyhow::anyhow!("configuration refused:\n{e}"))?;
    let certs = CertStore::load(rt.resolve(&rt.config.tls.cert_file), rt.resolve(&rt.config.tls.key_file)).map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    let spool_dir = rt.resolve(&rt.config.spool.dir);
    let spool = Spool::open(&spool_dir, rt.spool_keys.clone()).context("opening the spool")?;
    let store = crate::store::Store::open(&spool_dir).context("opening the state database")?;
    let (events, events_rx) = crate::events::Events::open(&spool_dir).context("opening the events queue")?;
    let suppressions = crate::suppression::Suppressions::load(&store, &spool, rt.config.suppressions.as_ref().map(|s| s.pool.as_str())).context("reading the suppression lists")?;
    let (queue_handle, queue_rx) = QueueHandle::channel();
    let audit = match (&rt.config.audit, &rt.audit_key) {
        (Some(a), Some(key)) => {
            let checkpoints = cascade_core::audit::Checkpoints { every: a.checkpoint_every.max(1), interval: a.checkpoint_interval.0 };
            cascade_core::audit::Audit::open(&rt.resolve(&a.dir), key, a.retain_days, a.rotate_size.0, checkpoints).context("opening the audit trail")?
        }
        _ => cascade_core::audit::Audit::default(),
    };
    let relay = Relay::new(rt.clone(), crate::relay::Volume { spool, store, events, suppressions }, certs, queue_handle.clone(), audit);
    relay.note_dropped(&rt);

    requeue_recovered(&relay, &queue_handle)?;

    let limits = rt.config.limits.clone();
    let sessions = Arc::new(Semaphore::new(limits.max_sessions));
    let mut accept_tasks = Vec::new();
    let l = &rt.config.listeners;
    for (kind, addrs) in [(Kind::Submission, &l.submission), (Kind::Submissions, &l.submissions)] {
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
            tracing::info!(address = %listener.local_addr()?, tls = if kind == Kind::Submission { "starttls" } else { "implicit" }, "SMTP listener ready");
            accept_tasks.push(tokio::spawn(accept_loop(listener, kind, relay.clone(), sessions.clone())));
        }
    }
    if !l.http.is_empty() {
        let listener = TcpListener::bind(&l.http).await.with_context(|| format!("binding {}", l.http))?;
        tracing::info!(address = %listener.local_addr()?, "tenant HTTPS listener ready (POST /dmarc/reports, /healthz, /readyz)");
        tokio::spawn(crate::http::serve(listener, Arc::new(crate::http::Tenant::new(relay.clone())), Default::default()));
    }
    if !l.admin.is_empty() {
        let listener = TcpListener::bind(&l.admin).await.with_context(|| format!("binding {}", l.admin))?;
        let tls = if rt.admin_tls.is_some() { "mutual TLS" } else { "plaintext, loopback" };
        tracing::info!(address = %listener.local_addr()?, tls, "admin listener ready (/metrics, /dmarc/summary, /anomalies, /audit/anchor, /handover, /healthz, /readyz)");
        tokio::spawn(crate::http::serve(listener, Arc::new(crate::http::Admin(relay.clone())), Default::default()));
    }
    let queue_task = tokio::spawn(queue::run(relay.clone(), queue_rx, limits.shutdown_grace.0));
    tokio::spawn(reload_loop(config_path.to_path_buf(), relay.clone()));
    tokio::spawn(store_loop(relay.clone()));
    tokio::spawn(crate::audit_check::run(relay.clone()));
    tokio::spawn(crate::events::sender::run(relay.clone(), events_rx));
    let watching = watch.is_some();
    if let Some(target) = watch {
        let client = kube::Client::try_default().await.context("connecting to the Kubernetes API for the configuration watch")?;
        tracing::info!(source = %target.describe(), "watching the configuration Secret");
        tokio::spawn(crate::watch::run(client, target, relay.clone()));
    }
    // Tenants in shards come from the watch (the pod mounts only the bundle Secret): ready once
    // it delivered them.
    if !(watching && relay.runtime().config.shards.iter().any(|s| s.secret.is_some())) {
        relay.set_ready(true);
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    relay.begin_shutdown();
    for t in accept_tasks {
        t.abort();
    }
    let all = u32::try_from(limits.max_sessions).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace.0, sessions.acquire_many(all)).await.is_err() {
        tracing::warn!("sessions still open after the grace period; closing them (their messages were not acknowledged)");
    }
    let _ = tokio::time::timeout(limits.shutdown_grace.0 + Duration::from_secs(1), queue_task).await;
    crate::handover::at_shutdown(&relay).await;
    relay.audit.tick(true);
    relay.spool.save_seal_counts();
    if let Err(e) = relay.store.flush() {
        tracing::warn!(error = %e, "the state database could not be flushed at shutdown");
    }
    Ok(())
}

/// Queues what the spool holds from before (a restart or a crash), but mail of retired domains.
fn requeue_recovered(relay: &Relay, queue: &QueueHandle) -> anyhow::Result<()> {
    let recovered = relay.spool.recover().context("reading the spool")?;
    if !recovered.is_empty() {
        tracing::info!(messages = recovered.len(), "requeued messages found in the spool");
    }
    for env in recovered {
        if !relay.purge_if_retired(&env) {
            queue.submit(env, None);
        }
    }
    Ok(())
}

/// Makes the state database's recent writes durable every second and drops expired records
/// every hour (and once at start).
async fn store_loop(relay: Arc<Relay>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        tick.tick().await;
        let relay = relay.clone();
        let sweep = n % 3600 == 0;
        let done = tokio::task::spawn_blocking(move || if sweep { relay.store.sweep(cascade_core::time::now_unix()).map(|_| ()) } else { relay.store.flush() });
        if let Ok(Err(e)) = done.await {
            tracing::warn!(error = %e, "state database maintenance failed");
        }
    }
}

async fn accept_loop(listener: TcpListener, kind: Kind, relay: Arc<Relay>, sessions: Arc<Semaphore>) {
    let mut shutdown = relay.shutdown_signal();
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::relay::Relay::stopped(&mut shutdown) => return,
        };
        let _ = stream.set_nodelay(true);
        // The global cap first: it needs no address, so a flood cannot make us read headers.
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            relay.metrics.rejected.with_label_values(&["too_many_sessions"]).inc();
            tokio::spawn(refuse(stream, "421 4.7.0 Too many connections, try again later\r\n".into()));
            continue;
        };
        // A direct client takes its slot here, in accept order; a proxied one once its header
        // names it.
        let rt = relay.runtime();
        let per_client = rt.config.limits.max_sessions_per_client;
        let proxied = rt.behind_proxy(peer.ip());
        let direct_slot = (!proxied).then(|| relay.client_sessions.enter(peer.ip(), per_client));
        drop(rt);
        let relay = relay.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let rt = relay.runtime();
            let timeout = rt.config.limits.command_timeout.0;
            let mut ip = peer.ip();
            if proxied {
                match crate::proxy::read_header(&mut stream, timeout).await {
                    Ok(client) => ip = client.unwrap_or(ip),
                    Err(e) => {
                        relay.metrics.rejected.with_label_values(&["proxy_header"]).inc();
                        tracing::warn!(proxy = %peer.ip(), error = %e, "connection from a trusted proxy without a valid PROXY v2 header; closed");
                        return;
                    }
                }
            }
            let Some(slot) = direct_slot.unwrap_or_else(|| relay.client_sessions.enter(ip, per_client)) else {
                relay.metrics.rejected.with_label_values(&["too_many_sessions_per_client"]).inc();
                refuse(stream, format!("421 4.7.0 Too many connections from your address (limit {per_client}); try again later\r\n")).await;
                return;
            };
            let stream = match kind {
                Kind::Submission => Stream::Plain(stream),
                Kind::Submissions => {
                    let accept = tokio_rustls::TlsAcceptor::from(relay.tls.clone()).accept(stream);
                    match tokio::time::timeout(timeout, accept).await {
                        Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                        _ => {
                            tracing::debug!(client = %ip, "implicit TLS handshake failed");
                            return;
                        }
                    }
                }
            };
            drop(rt);
            Session::new(relay, stream, ip).with_client_slot(slot).run().await;
            drop(permit);
        });
    }
}

/// Answers a connection refused at accept with one line, then closes it.
async fn refuse(mut stream: tokio::net::TcpStream, line: String) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(line.as_bytes())).await;
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Files whose change triggers a reload: the config itself and everything it references.
fn watched(path: &Path, rt: &Runtime) -> Vec<(PathBuf, Option<SystemTime>)> {
    let c = &rt.config;
    let mut files = vec![path.to_path_buf(), rt.resolve(&c.spool.key_file)];
    for t in &c.tenants {
        for d in &t.domains {
            files.extend(d.dkim.iter().map(|k| rt.resolve(&k.key_file)));
        }
    }
    files.into_iter().map(|f| (f.clone(), mtime(&f))).collect()
}

/// Re-reads the spool key ring when its file changed (a rotation: a new first line seals, the
/// older lines still open what they sealed).
fn reload_spool_keys(relay: &Relay, seen: &mut Option<SystemTime>) {
    let rt = relay.runtime();
    let file = rt.resolve(&rt.config.spool.key_file);
    let now = mtime(&file);
    if now == *seen {
        return;
    }
    *seen = now;
    match std::fs::read_to_string(&file).map_err(|e| e.to_string()).and_then(|t| cascade_core::seal::KeyRing::parse(&t)) {
        Ok(ring) => {
            tracing::info!(active_key = ring.active(), "spool key ring reloaded");
            relay.spool.set_keys(Arc::new(ring));
        }
        Err(e) => tracing::error!(file = %file.display(), error = %e, "new spool key file refused; keeping the current keys"),
    }
}

async fn reload_loop(path: PathBuf, relay: Arc<Relay>) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP");
            return;
        }
    };
    let mut seen = watched(&path, &relay.runtime());
    let mut spool_key_seen = {
        let rt = relay.runtime();
        mtime(&rt.resolve(&rt.config.spool.key_file))
    };
    let mut shutdown = relay.shutdown_signal();
    loop {
        let forced = tokio::select! {
            _ = hup.recv() => true,
            _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            _ = crate::relay::Relay::stopped(&mut shutdown) => return,
        };
        relay.audit.tick(false);
        if relay.watch_delivered() {
            if forced {
                tracing::info!("SIGHUP ignored: the configuration comes from the watched Secret");
            }
            // The spool key file is mounted apart from the watched bundle: a rotation lands there.
            reload_spool_keys(&relay, &mut spool_key_seen);
            continue;
        }
        let rt = relay.runtime();
        match relay.certs.refresh(rt.resolve(&rt.config.tls.cert_file), rt.resolve(&rt.config.tls.key_file)) {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "new TLS certificate refused; keeping the current one"),
        }
        let now = watched(&path, &rt);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        match config::load(&path) {
            Ok(new) => {
                relay.swap_runtime(new);
                relay.metrics.config_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(config = %path.display(), "configuration reloaded");
                relay.audit.record("config.reload", serde_json::json!({ "source": path.display().to_string(), "result": "ok" }));
            }
            Err(e) => {
                relay.note_refused(std::fs::read(&path).ok().map(|t| config::generation_of(&t)), &e.0);
                relay.metrics.config_reloads.with_label_values(&["refused"]).inc();
                relay.audit.record("config.reload", serde_json::json!({ "source": path.display().to_string(), "result": "refused", "problems": e.0.len() }));
                for p in &e.0 {
                    tracing::error!(problem = %p, "configuration reload refused; keeping the last good one");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_spool_key_file_is_picked_up_in_watch_mode_too() {
        let f = crate::smtp::harness::fixture();
        let rt = f.relay.runtime();
        let file = rt.resolve(&rt.config.spool.key_file);
        let mut seen = mtime(&file);
        reload_spool_keys(&f.relay, &mut seen);
        let old = std::fs::read_to_string(&file).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, format!("{}{old}", cascade_core::seal::KeyRing::generate_line("rotated").unwrap())).unwrap();
        reload_spool_keys(&f.relay, &mut seen);
        let env = crate::spool::Envelope {
            id: "q1".into(),
            sender: "a@b.test".into(),
            recipients: vec![],
            tenant: "t".into(),
            key: String::new(),
            created: 0,
            next_attempt: 0,
            attempts: 0,
            tags: Default::default(),
        };
        f.relay.spool.store(&env, &[b"x"]).unwrap();
        let bytes = std::fs::read(f.relay.spool.path_of("q1")).unwrap();
        assert_eq!(&bytes[9..9 + bytes[8] as usize], b"rotated");
        assert_eq!(f.relay.spool.seal_counts()["rotated"], 1);
        // A broken file is refused and the ring kept.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, "not a key\n").unwrap();
        reload_spool_keys(&f.relay, &mut seen);
        f.relay.spool.store(&env, &[b"x"]).unwrap();
        assert_eq!(f.relay.spool.seal_counts()["rotated"], 2);
    }
}
