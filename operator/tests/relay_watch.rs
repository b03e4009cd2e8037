//! The relay's configuration watch against a real API server: a real `cascade-relay serve`
//! process watches its bundle Secret; swaks authenticates with the rendered credentials; a
//! refused version leaves the last good one in force; a revocation written to the Secret stops
//! AUTH within 5 seconds (the operator's half, ApiKey → bundle, is in relay_pool_controller).

mod support;

use cascade_operator::secrets::{SecretData, SecretStore};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The workspace's `cascade-relay` binary, next to this test's directory (`target/debug`).
fn relay_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("cascade-relay");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first (test.sh does)", bin.display());
    bin
}

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs swaks up to AUTH; true when the relay accepted the credentials.
fn authenticates(port: u16, user: &str, password: &str) -> bool {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password])
        .args(["--quit-after", "AUTH", "--timeout", "10"])
        .output()
        .expect("swaks (test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() || text.contains("535"), "swaks failed for another reason:\n{text}");
    out.status.success()
}

#[tokio::test]
async fn a_revocation_written_to_the_secret_stops_auth_within_five_seconds() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    let resource = support::crds::install_secret_stand_in(&server.client).await;
    let secrets = SecretStore::with_resource(server.client.clone(), resource);

    // The bundle, as the operator renders it, on loopback ports with a spool of its own.
    let dir = std::env::temp_dir().join(format!("cascade-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cascade.yaml");
    cascade_operator::render::render(&[example], &dir).unwrap();
    let creds: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("credentials/shop.web.json")).unwrap()).unwrap();
    let (user, password) = (creds["username"].as_str().unwrap(), creds["password"].as_str().unwrap());
    let (submission, submissions, http) = (free_port(), free_port(), free_port());
    let yaml = std::fs::read_to_string(dir.join("relay/relay.yaml")).unwrap();
    let yaml = yaml
        .replace("0.0.0.0:587", &format!("127.0.0.1:{submission}"))
        .replace("0.0.0.0:465", &format!("127.0.0.1:{submissions}"))
        .replace("0.0.0.0:9587", &format!("127.0.0.1:{http}"))
        .replace("dir: spool", &format!("dir: {}", dir.join("spool").display()));
    std::fs::write(dir.join("relay/relay.yaml"), &yaml).unwrap();
    let mut bundle: SecretData = Default::default();
    for entry in std::fs::read_dir(dir.join("relay")).unwrap() {
        let p = entry.unwrap().path();
        bundle.insert(p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
    }
    let (ns, name) = ("mail", "main-relay-config");
    secrets.apply(ns, name, &bundle, Default::default(), None).await.unwrap();

    let log = dir.join("relay.log");
    let relay = Relay(
        Command::new(relay_binary())
            .args(["serve", "--config"])
            .arg(dir.join("relay/relay.yaml"))
            .args(["--watch-secret", &format!("{ns}/{name}"), "--secret-resource", "core.test.local/v1/Secret/secrets"])
            .env("KUBECONFIG", server.kubeconfig())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let reloads = || std::fs::read_to_string(&log).unwrap_or_default().matches("configuration reloaded").count();
    support::operator::until("the watch to deliver the bundle", || async { (reloads() >= 1).then_some(()) }).await;
    assert!(authenticates(submission, user, password));

    // A version the relay's check refuses changes nothing.
    let mut broken = bundle.clone();
    broken.remove("tls.key");
    secrets.apply(ns, name, &broken, Default::default(), None).await.unwrap();
    support::operator::until("the refusal", || async { std::fs::read_to_string(&log).unwrap().contains("the bundle has no entry \\\"tls.key\\\"").then_some(()) }).await;
    assert!(authenticates(submission, user, password));

    // Revoke: AUTH stops within 5 seconds of the write.
    let mut revoked = bundle.clone();
    revoked.insert("relay.yaml".into(), yaml.replace("revoked: false", "revoked: true").into_bytes());
    let written = Instant::now();
    secrets.apply(ns, name, &revoked, Default::default(), None).await.unwrap();
    while authenticates(submission, user, password) {
        assert!(written.elapsed() < Duration::from_secs(5), "the revoked key still authenticates after {:?}", written.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("revocation reached the relay in {:?}", written.elapsed());
    assert!(written.elapsed() < Duration::from_secs(5));
    // The secret never appears in the relay's log.
    assert!(!std::fs::read_to_string(&log).unwrap().contains(password));
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
