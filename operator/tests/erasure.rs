//! An ErasureRequest end to end, against the real API server and a real relay running the
//! operator's bundle: the operator asks the relay (mutual TLS, `POST /erase`) to erase the
//! address from tenant shop's queued mail and suppression list, adds up the counts in the
//! status, destroys shop's backup data key (so an earlier backup no longer yields shop), and
//! records it; the relay's trail records it masked. The address never reaches a log or trail.
//! A request made while the relay is down waits (`Pending`) and holds back the namespace's
//! next request (`Waiting`) until it is done.

mod support;

use base64::Engine;
use cascade_crds::relay_config::{DeliveryMode, OutboundTls, RelayConfig, Smarthost};
use cascade_crds::v1alpha1::ErasureRequest;
use cascade_operator::backup::{self, KeySource};
use kube::api::{Api, PostParams};
use std::process::Command;
use support::operator::until;

const GONE: &str = "gone@dest.test";

fn send(port: u16, (user, password): &(String, String), to: &[&str]) {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password, "--from", "orders@shop.example"]);
    cmd.args(["--to", &to.join(","), "--timeout", "10"]);
    let out = cmd.output().expect("swaks (test.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn an_erasure_request_reaches_every_relay_and_the_backups() {
    let admin = free_port();
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin).into()])).await else { return };
    support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    support::world::api_key(&op.client, "shop", "web", "shop.example").await;
    let creds = support::world::credentials(&op.secrets, "shop", "web").await;
    until("the key in the bundle", || async { support::relay::assembled(&op.secrets).await.filter(|y| y.contains(&creds.0)) }).await;
    // Delivery to a smarthost that never answers: the mail stays queued.
    let dead = free_port();
    let edit = move |c: &mut RelayConfig| {
        c.delivery.mode = DeliveryMode::Smarthost;
        c.delivery.smarthost = Some(Smarthost { address: format!("127.0.0.1:{dead}"), tls: OutboundTls::Opportunistic, ca_file: None, username: None, password_file: None });
    };
    let mut relay = support::relay::Bundle::from_operator("erasure", &op.secrets, edit).await;
    relay.admin = admin;
    relay.sync(&op.secrets, edit).await;
    let running = relay.serve(&[], &[]);
    until("the relay's submission port", || async { tokio::net::TcpStream::connect(("127.0.0.1", relay.submission)).await.ok() }).await;
    send(relay.submission, &creds, &[GONE]);
    send(relay.submission, &creds, &[GONE, "keep@dest.test"]);
    let spooled = || std::fs::read_dir(relay.dir.join("spool")).map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "msg")).count()).unwrap_or(0);
    assert_eq!(spooled(), 2);
    // A backup before: shop has a data key.
    let key = KeySource::key_file(&base64::engine::general_purpose::STANDARD.encode([3u8; 32])).unwrap();
    backup::backup(&op.client, "cascade-system", &key, cascade_core::time::now_unix()).await.unwrap();
    let ring = cascade_operator::master_key::ensure(&op.secrets, "cascade-system").await.unwrap();
    assert!(backup::tenant_keys::load(&op.secrets, "cascade-system", &ring).await.unwrap().contains_key("shop"));

    // The relay goes down: the first request waits for it, the second for the first.
    drop(running);
    let requests: Api<ErasureRequest> = Api::namespaced(op.client.clone(), "shop");
    let create = |name: &str, address: &str| {
        let req: ErasureRequest =
            support::world::obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ErasureRequest", "metadata": { "name": name }, "spec": { "address": address } }));
        let requests = requests.clone();
        async move { requests.create(&PostParams::default(), &req).await.unwrap() }
    };
    let phase = |name: &'static str, want: &'static str| {
        let requests = requests.clone();
        async move { requests.get(name).await.ok()?.status.filter(|s| s.phase.as_deref() == Some(want)) }
    };
    create("ticket-4711", "Gone@Dest.Test").await;
    let pending = until("the first request pending", || phase("ticket-4711", "Pending")).await;
    assert!(pending.conditions.iter().any(|c| c.reason == "RelaysUnreachable") && pending.relays == 0, "{pending:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // a later creation second
    create("ticket-4712", "other@dest.test").await;
    let waiting = until("the second request waiting", || phase("ticket-4712", "Waiting")).await;
    assert!(waiting.conditions.iter().any(|c| c.reason == "Waiting" && c.message.contains("ticket-4711")), "{waiting:?}");
    // Back up; a touch makes the operator retry now rather than in 30 s.
    let _running = relay.serve(&[], &[]);
    until("the relay's admin port", || async { tokio::net::TcpStream::connect(("127.0.0.1", relay.admin)).await.ok() }).await;
    let touch = |name: &'static str| {
        let requests = requests.clone();
        async move {
            let patch = serde_json::json!({ "metadata": { "annotations": { "test/touch": cascade_core::time::now_unix_ms().to_string() } } });
            requests.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
        }
    };
    touch("ticket-4711").await;
    let st = until("the erasure done", || phase("ticket-4711", "Done")).await;
    assert_eq!((st.relays, st.erased_on.len(), st.queued_messages_purged, st.queued_recipients_erased, st.backups_shredded), (1, 1, 1, 2, true), "{st:?}");
    assert!(st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Erased"), "{:?}", st.conditions);
    assert_eq!(spooled(), 1, "the message to the erased address alone is purged; the other waits for keep@");
    assert!(!backup::tenant_keys::load(&op.secrets, "cascade-system", &ring).await.unwrap().contains_key("shop"), "shop's backup data key is destroyed");
    touch("ticket-4712").await;
    let second = until("the second erasure done after the first", || phase("ticket-4712", "Done")).await;
    assert_eq!((second.relays, second.queued_recipients_erased), (1, 0), "{second:?}");
    let (kind, note) = support::operator::event(&op.client, "shop", "ticket-4711", "Erased").await;
    assert!(kind == "Normal" && !note.contains("gone@"), "{note}");
    let trail: String = std::fs::read_dir(relay.dir.join("audit")).unwrap().filter_map(Result::ok).map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect();
    assert!(trail.contains("\"erasure\"") && trail.contains("g***@dest.test") && !trail.to_lowercase().contains(GONE), "the relay's trail records it masked");
    assert!(!std::fs::read_to_string(relay.log()).unwrap().to_lowercase().contains(GONE), "the address in the relay's log");
}
