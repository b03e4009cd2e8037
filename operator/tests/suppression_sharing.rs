//! Pool-wide suppression lists against a real API server with the operator's controllers and two
//! real relays: relay A delivers to a real SMTP sink (aiosmtpd) that answers `550 5.1.1` at RCPT;
//! the bounce suppresses the address on A, the operator merges A's change into a sealed
//! SuppressionShard, and relay B refuses RCPT to it within 10 s. A release through B's API
//! reaches A the same way; relay A restarted on an empty volume (its pod and volume lost) gets
//! the list back from the shards; a tenant leaving the pool takes its shards with it.

mod support;

use cascade_crds::relay_config::{DeliveryMode, SharedSuppressions, Smarthost};
use cascade_crds::v1alpha1::{SendingDomain, SuppressionShard};
use kube::api::{Api, ListParams};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::operator::until;

/// A real SMTP receiver on loopback that refuses `gone@dest.test` at RCPT with `550 5.1.1`.
struct Sink(Child);

impl Sink {
    fn start(port: u16) -> Self {
        let script = r#"
import asyncio, sys
from aiosmtpd.controller import Controller
class H:
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.lower() == "gone@dest.test":
            return "550 5.1.1 <gone@dest.test>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
import time
time.sleep(600)
"#;
        Self(Command::new("/usr/bin/python3").args(["-c", script, &port.to_string()]).stdout(Stdio::null()).spawn().expect("/usr/bin/python3 with aiosmtpd (test.sh installs python3-aiosmtpd)"))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// swaks through `port` up to RCPT (or the whole message with `send`): its transcript and whether
/// it succeeded.
fn swaks(port: u16, user: &str, password: &str, to: &str, send: bool) -> (bool, String) {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password, "--from", "a@shop.example", "--to", to, "--timeout", "10"]);
    if !send {
        cmd.args(["--quit-after", "RCPT"]);
    }
    let out = cmd.output().expect("swaks (test.sh installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn suppressed_at(port: u16, user: &str, password: &str) -> bool {
    let (ok, text) = swaks(port, user, password, "gone@dest.test", false);
    assert!(ok || text.contains("550 5.1.1"), "swaks failed for another reason:\n{text}");
    !ok && text.contains("recipient suppressed (")
}

/// A relay of the pool: the rendered example with smarthost delivery to the sink, the pool's
/// shared suppression lists and the operator's spool key.
fn relay(tag: &str, sink: u16, spool_key: &[u8]) -> support::relay::Bundle {
    let b = support::relay::Bundle::render(tag, |yaml| {
        let mut c: cascade_crds::RelayConfig = serde_saphyr::from_str(&yaml).unwrap();
        c.delivery.mode = DeliveryMode::Smarthost;
        c.delivery.smarthost = Some(Smarthost { address: format!("127.0.0.1:{sink}"), tls: Default::default(), ca_file: None, username: None, password_file: None });
        c.suppressions = Some(SharedSuppressions { pool: "main".into() });
        c.api_keys[0].scopes.push("suppressions:manage".into());
        serde_saphyr::to_string(&c).unwrap()
    });
    // The pool's key, mounted as in a pod (outside the watched bundle, at an absolute path).
    let key = b.dir.join("spool.key");
    std::fs::write(&key, spool_key).unwrap();
    let mut c: cascade_crds::RelayConfig = serde_saphyr::from_str(&b.yaml).unwrap();
    c.spool.key_file = key.display().to_string();
    std::fs::write(b.dir.join("relay/relay.yaml"), serde_saphyr::to_string(&c).unwrap()).unwrap();
    b
}

#[tokio::test]
async fn a_hard_bounce_on_one_relay_is_refused_on_another_within_ten_seconds() {
    let sink_port = free_port();
    let _sink = Sink::start(sink_port);
    let (admin_a, admin_b) = (free_port(), free_port());
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin_a).into(), ([127, 0, 0, 1], admin_b).into()])).await else { return };
    support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let keys = until("the pool's spool key", || async { op.secrets.get("cascade-system", "main-keys").await.ok().flatten() }).await;
    let proxy = support::proxy::Proxy::start(&op.kubeconfig()).await;

    let mut relays = Vec::new();
    let mut bundles = Vec::new();
    for (tag, admin) in [("share-a", admin_a), ("share-b", admin_b)] {
        let b = relay(tag, sink_port, &keys["spool.key"]);
        // The operator asks each relay on the admin port it was told of.
        let yaml = std::fs::read_to_string(b.dir.join("relay/relay.yaml")).unwrap().replace(&format!("127.0.0.1:{}", b.admin), &format!("127.0.0.1:{admin}"));
        std::fs::write(b.dir.join("relay/relay.yaml"), yaml).unwrap();
        b.adopt_admin_authority(&op.secrets).await;
        let secret = format!("{tag}-config");
        op.secrets.apply("cascade-system", &secret, &b.files(), Default::default(), None).await.unwrap();
        relays.push(b.serve(&["--watch-secret", &format!("cascade-system/{secret}")], &[("KUBECONFIG", &proxy.kubeconfig(&b.dir))]));
        bundles.push(b);
    }
    let (a, b) = (&bundles[0], &bundles[1]);
    until("the sink", || async { tokio::net::TcpStream::connect(("127.0.0.1", sink_port)).await.ok() }).await;
    for r in [a, b] {
        until("the relay's submission port", || async { tokio::net::TcpStream::connect(("127.0.0.1", r.submission)).await.ok() }).await;
    }
    assert!(!suppressed_at(b.submission, &b.user, &b.password), "nothing is suppressed yet");

    // Relay A delivers; the sink refuses the address: A suppresses it at once.
    let (sent, text) = swaks(a.submission, &a.user, &a.password, "gone@dest.test", true);
    assert!(sent, "{text}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !suppressed_at(a.submission, &a.user, &a.password) {
        assert!(Instant::now() < deadline, "relay A never suppressed the hard-bounced address; its log:\n{}", std::fs::read_to_string(a.log()).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(swaks(a.submission, &a.user, &a.password, "gone@dest.test", false).1.contains("recipient suppressed (bounced"), "the reason is the bounce");
    let bounced = Instant::now();
    while !suppressed_at(b.submission, &b.user, &b.password) {
        assert!(bounced.elapsed() < Duration::from_secs(10), "relay B still takes the address {:?} after relay A suppressed it", bounced.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("the suppression reached relay B in {:?}", bounced.elapsed());

    // The shard is sealed: the address is nowhere in the object.
    let shards: Api<SuppressionShard> = Api::namespaced(op.client.clone(), "cascade-system");
    let listed = shards.list(&ListParams::default().labels("cascade-mail.com/suppressions-of=main")).await.unwrap().items;
    assert_eq!(listed.len(), 1, "one shard holds the one entry");
    assert_eq!((listed[0].spec.tenant.as_str(), listed[0].spec.entries), ("shop", 1));
    assert!(!serde_json::to_string(&listed[0]).unwrap().contains("gone@dest.test"));

    // A release through relay B's API reaches relay A.
    let http = curl(b, "DELETE", "gone@dest.test", None);
    assert_eq!(http, 204, "DELETE on relay B");
    let released = Instant::now();
    while suppressed_at(a.submission, &a.user, &a.password) {
        assert!(released.elapsed() < Duration::from_secs(10), "relay A still refuses the released address after {:?}", released.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Suppressed again (by B's API), then relay A loses its pod and volume: restarted empty, it
    // refuses the address from the shards alone.
    let put = curl(b, "PUT", "gone@dest.test", Some(r#"{"reason":"manual"}"#));
    assert!(put == 201 || put == 200, "PUT on relay B: {put}");
    until("the PUT in the shard", || async {
        let listed = shards.list(&ListParams::default().labels("cascade-mail.com/suppressions-of=main")).await.ok()?.items;
        listed.iter().any(|s| s.spec.entries == 1).then_some(())
    })
    .await;
    drop(relays.remove(0));
    std::fs::remove_dir_all(a.dir.join("spool")).unwrap();
    relays.insert(0, a.serve(&["--watch-secret", "cascade-system/share-a-config"], &[("KUBECONFIG", &proxy.kubeconfig(&a.dir))]));
    until("relay A back", || async { tokio::net::TcpStream::connect(("127.0.0.1", a.submission)).await.ok() }).await;
    let restarted = Instant::now();
    while !suppressed_at(a.submission, &a.user, &a.password) {
        assert!(restarted.elapsed() < Duration::from_secs(20), "relay A restarted empty does not refuse the address from the shards");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(a.log()).unwrap();
    assert!(!log.contains("gone@dest.test"), "no address in the relay's log");

    // The tenant leaves the pool (its one SendingDomain deleted): its shards are deleted.
    Api::<SendingDomain>::namespaced(op.client.clone(), "shop").delete("shop", &Default::default()).await.unwrap();
    until("the departed tenant's shards deleted", || async { shards.list(&ListParams::default().labels("cascade-mail.com/suppressions-of=main")).await.ok()?.items.is_empty().then_some(()) }).await;
}

/// `curl` over the relay's HTTPS API for `/v1/suppressions/{address}`: the status code.
/// The certificate names the relay's hostname: curl resolves it to loopback and verifies it.
fn curl(relay: &support::relay::Bundle, method: &str, address: &str, body: Option<&str>) -> u16 {
    let host = serde_saphyr::from_str::<cascade_crds::RelayConfig>(&relay.yaml).unwrap().hostname;
    let port = relay.http;
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", &format!("{host}:{port}:127.0.0.1"), "--cacert"]).arg(relay.dir.join("relay/tls.crt"));
    cmd.args(["-u", &format!("{}:{}", relay.user, relay.password), "-X", method, &format!("https://{host}:{port}/v1/suppressions/{address}")]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data", b]);
    }
    let out = cmd.output().expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}
