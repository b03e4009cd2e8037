//! Tenant lockdown against the real API server and two real relays running the operator's
//! bundle: `lockdown shop` makes every relay refuse shop's key within 5 s while blog's key keeps
//! working, and shop's queued mail is held on each (still queued, not delivered, though its
//! destination is up); `unlock` delivers it and the key works again. The emergency rotation issues new credentials and a DKIM rotation for every key.

mod support;

use cascade_crds::relay_config::{DeliveryMode, OutboundTls, RelayConfig, Smarthost};
use cascade_crds::v1alpha1::{DkimKey, RelayPool, SendingDomain};
use kube::api::{Api, PostParams};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::operator::until;
use support::world::obj;

/// A receiving MTA (aiosmtpd) writing each message it takes to `dir`.
struct Sink(Child);

impl Sink {
    fn start(port: u16, dir: &Path) -> Self {
        let script = "import sys,time,uuid\nfrom aiosmtpd.controller import Controller\nclass H:\n    async def handle_DATA(self, server, session, envelope):\n        open(sys.argv[2]+'/'+uuid.uuid4().hex+'.eml','wb').write(envelope.original_content)\n        return '250 OK'\nc=Controller(H(),hostname='127.0.0.1',port=int(sys.argv[1]))\nc.start()\ntime.sleep(600)\n";
        std::fs::create_dir_all(dir).unwrap();
        Self(Command::new("/usr/bin/python3").args(["-c", script, &port.to_string()]).arg(dir).stdout(Stdio::null()).spawn().expect("/usr/bin/python3 with aiosmtpd"))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn received(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect()).unwrap_or_default()
}

/// swaks: the whole message with `send`, else up to AUTH; whether it succeeded, and the transcript.
fn swaks(port: u16, (user, password): &(String, String), from: &str, send: bool) -> (bool, String) {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password]);
    cmd.args(["--from", from, "--to", "someone@dest.test", "--header", &format!("Subject: from {from}"), "--timeout", "10"]);
    if !send {
        cmd.args(["--quit-after", "AUTH"]);
    }
    let out = cmd.output().expect("swaks (test.sh installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn a_lockdown_refuses_the_tenants_keys_and_holds_its_mail_and_unlock_delivers_it() {
    let Some(op) = support::operator::start().await else { return };
    let spec = serde_json::json!({ "dnsVerification": "warn", "tenants": { "matchNames": ["shop", "blog"] }, "assignedDomains": { "shop": ["shop.example"], "blog": ["blog.example"] } });
    support::world::pool(&op.client, spec).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let blog: SendingDomain = obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": "blog" },
        "spec": { "domain": "blog.example", "relayPool": { "name": "main", "namespace": "cascade-system" } } }));
    Api::<SendingDomain>::namespaced(op.client.clone(), "blog").create(&PostParams::default(), &blog).await.unwrap();
    support::world::api_key(&op.client, "shop", "web", "shop.example").await;
    support::world::api_key(&op.client, "blog", "news", "blog.example").await;
    let (shop, news) = (support::world::credentials(&op.secrets, "shop", "web").await, support::world::credentials(&op.secrets, "blog", "news").await);
    until("both keys and domains in the bundle", || async { support::relay::assembled(&op.secrets).await.filter(|y| y.contains(&shop.0) && y.contains(&news.0) && y.contains("blog.example")) }).await;

    // The relay delivers through a smarthost that is down for now, retrying every second.
    let (sink_port, tmp) = (free_port(), std::env::temp_dir().join(format!("cascade-lockdown-sink-{}", std::process::id())));
    let inbox: PathBuf = tmp.join("inbox");
    let _ = std::fs::remove_dir_all(&tmp);
    let edit = move |c: &mut RelayConfig| {
        c.delivery.mode = DeliveryMode::Smarthost;
        c.delivery.smarthost = Some(Smarthost { address: format!("127.0.0.1:{sink_port}"), tls: OutboundTls::Opportunistic, ca_file: None, username: None, password_file: None });
        c.delivery.retry.initial = cascade_crds::HumanDuration::secs(1);
        c.delivery.retry.max_delay = cascade_crds::HumanDuration::secs(1);
    };
    let mut relay = support::relay::Bundle::from_operator("lockdown", &op.secrets, edit).await;
    let mut second = support::relay::Bundle::from_operator("lockdown-2", &op.secrets, edit).await;
    let _running = (relay.serve(&[], &[]), second.serve(&[], &[]));
    for r in [&relay, &second] {
        until("the relay's submission port", || async { tokio::net::TcpStream::connect(("127.0.0.1", r.submission)).await.ok() }).await;
        let (ok, log) = swaks(r.submission, &shop, "orders@shop.example", true);
        assert!(ok, "shop's message is accepted before the lockdown:\n{log}");
    }

    // Lockdown: recorded in the pool, and within 5 s the relay refuses shop's key.
    let locked = Instant::now();
    let pools = cascade_operator::lockdown::lockdown(&op.client, "shop", "leaked key", cascade_core::time::now_unix()).await.unwrap();
    assert_eq!(pools, vec!["cascade-system/main".to_string()]);
    let pool = Api::<RelayPool>::namespaced(op.client.clone(), "cascade-system").get("main").await.unwrap();
    assert!(pool.spec.lockdown["shop"].starts_with("leaked key at "), "{:?}", pool.spec.lockdown);
    loop {
        if let Some(yaml) = support::relay::assembled(&op.secrets).await.filter(|y| y.contains("held: true")) {
            assert!(!yaml.contains("held: false"), "held is written only when set");
            relay.sync(&op.secrets, edit).await;
            second.sync(&op.secrets, edit).await;
        }
        if [&relay, &second].iter().all(|r| !swaks(r.submission, &shop, "orders@shop.example", false).0) {
            break;
        }
        assert!(locked.elapsed() < Duration::from_secs(5), "shop's key still authenticates {:?} after the lockdown", locked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("lockdown reached both relays in {:?}", locked.elapsed());
    for r in [&relay, &second] {
        let (_, refused) = swaks(r.submission, &shop, "orders@shop.example", false);
        assert!(refused.contains("535"), "{refused}");
    }
    // The other tenant is untouched: blog sends, and its message arrives once the sink is up.
    let _sink = Sink::start(sink_port, &inbox);
    let (ok, log) = swaks(relay.submission, &news, "news@blog.example", true);
    assert!(ok, "blog's key works during shop's lockdown:\n{log}");
    until("blog's message at the sink", || async { received(&inbox).iter().any(|m| m.contains("from news@blog.example")).then_some(()) }).await;
    // shop's message is held: the sink is up, retries are every second, and still nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!received(&inbox).iter().any(|m| m.contains("from orders@shop.example")), "a held message was delivered");
    for r in [&relay, &second] {
        let spooled = std::fs::read_dir(r.dir.join("spool")).unwrap().filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "msg")).count();
        assert_eq!(spooled, 1, "the held message is still in each relay's spool");
    }

    // Unlock: the key works again and the held message is delivered.
    assert_eq!(cascade_operator::lockdown::unlock(&op.client, "shop").await.unwrap(), vec!["cascade-system/main".to_string()]);
    until("the bundle without the hold", || async { support::relay::assembled(&op.secrets).await.filter(|y| !y.contains("held: true")) }).await;
    relay.sync(&op.secrets, edit).await;
    second.sync(&op.secrets, edit).await;
    let both = || async { (received(&inbox).iter().filter(|m| m.contains("from orders@shop.example")).count() == 2).then_some(()) };
    until("shop's held messages from both relays at the sink", both).await;
    until("shop's key accepted again", || async { swaks(relay.submission, &shop, "orders@shop.example", false).0.then_some(()) }).await;

    // Emergency rotation: a new secret for every API key of the tenant and a DKIM rotation.
    let rotated = cascade_operator::lockdown::rotate_all(&op.client, "shop", cascade_core::time::now_unix()).await.unwrap();
    assert_eq!((rotated.api_keys.as_slice(), rotated.dkim_keys.as_slice()), (&["web".to_string()][..], &["shop-dkim".to_string()][..]));
    until("new credentials", || async { op.secrets.get("shop", "web-credentials").await.ok().flatten().filter(|c| c["password"] != shop.1.as_bytes()) }).await;
    let dkim: Api<DkimKey> = Api::namespaced(op.client.clone(), "shop");
    until("the DKIM rotation acted on", || async { dkim.get("shop-dkim").await.ok()?.status?.last_forced_rotation.filter(|v| v.starts_with("emergency-")) }).await;
    let _ = std::fs::remove_dir_all(&tmp);
}
