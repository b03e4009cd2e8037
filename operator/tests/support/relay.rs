//! A real `cascade-relay serve` process for operator tests, running the bundle `render` makes
//! from `examples/cascade.yaml` on loopback ports with a spool of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The workspace's `cascade-relay` binary, next to this test's directory (`target/debug`).
pub fn relay_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("cascade-relay");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first (test.sh does)", bin.display());
    bin
}

/// The pool `main`'s bundle Secret and the shard Secrets its `relay.yaml` lists, merged as a
/// relay merges them (`None` until the bundle exists).
pub async fn bundle_files(secrets: &cascade_operator::secrets::SecretStore) -> Option<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut files = secrets.get("cascade-system", "main-relay-config").await.ok()??;
    let config: cascade_crds::RelayConfig = serde_saphyr::from_str(std::str::from_utf8(files.get("relay.yaml")?).ok()?).ok()?;
    for shard in config.shards.iter().filter_map(|s| s.secret.as_deref()) {
        for (k, v) in secrets.get("cascade-system", shard).await.ok()?? {
            files.entry(k).or_insert(v);
        }
    }
    Some(files)
}

/// The pool `main`'s configuration text as its relays assemble it: `relay.yaml`, then each shard
/// file it lists (for assertions on what the relays get).
pub async fn assembled(secrets: &cascade_operator::secrets::SecretStore) -> Option<String> {
    let files = bundle_files(secrets).await?;
    let mut text = String::from_utf8_lossy(files.get("relay.yaml")?).into_owned();
    for (name, bytes) in files.iter().filter(|(n, _)| n.starts_with("tenant-") && n.ends_with(".yaml")) {
        text.push_str(&format!("---\n# {name}\n{}", String::from_utf8_lossy(bytes)));
    }
    Some(text)
}

/// Writes the pool `main`'s bundle Secret `bundle_secret` and its keys to a temporary directory
/// and has the relay itself check it (`cascade-relay check-config`); fails the test when the
/// relay refuses it.
pub async fn check_config(secrets: &cascade_operator::secrets::SecretStore, bundle_secret: &str) {
    assert_eq!(bundle_secret, "main-relay-config");
    let bundle = bundle_files(secrets).await.expect("the bundle and its shards");
    let dir = std::env::temp_dir().join(format!("cascade-bundle-{}-{bundle_secret}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for (file, bytes) in secrets.get("cascade-system", "main-keys").await.unwrap().expect("the pool's keys") {
        std::fs::write(dir.join("keys").join(file), bytes).unwrap();
    }
    for (file, bytes) in &bundle {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    let yaml = String::from_utf8_lossy(&bundle["relay.yaml"]).replace("/etc/cascade-keys", &dir.join("keys").display().to_string());
    std::fs::write(dir.join("relay.yaml"), yaml).unwrap();
    let check = Command::new(relay_binary()).args(["check-config", &dir.join("relay.yaml").display().to_string()]).output().unwrap();
    assert!(check.status.success(), "the relay refuses the rendered bundle:\n{}", String::from_utf8_lossy(&check.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `relay.yaml` with the shards it lists folded back in (tenants and keys inline, which the relay
/// reads the same), so tests can edit one file.
fn inline_shards(dir: &Path, yaml: &str) -> String {
    let mut config: cascade_crds::RelayConfig = serde_saphyr::from_str(yaml).unwrap();
    for s in std::mem::take(&mut config.shards) {
        let shard: cascade_crds::relay_config::Shard = serde_saphyr::from_str(&std::fs::read_to_string(dir.join(&s.file)).unwrap()).unwrap();
        config.tenants.extend(shard.tenants);
        config.api_keys.extend(shard.api_keys);
        std::fs::remove_file(dir.join(&s.file)).unwrap();
    }
    serde_saphyr::to_string(&config).unwrap()
}

/// The rendered example on loopback ports: its files, credentials and ports.
pub struct Bundle {
    pub dir: PathBuf,
    pub user: String,
    pub password: String,
    pub submission: u16,
    pub submissions: u16,
    pub http: u16,
    /// The platform listener (metrics, DMARC summaries).
    pub admin: u16,
    /// `relay.yaml` as the relay runs it.
    pub yaml: String,
}

impl Bundle {
    /// Renders `examples/cascade.yaml` into a fresh directory; `edit` adjusts `relay.yaml`.
    pub fn render(tag: &str, edit: impl FnOnce(String) -> String) -> Self {
        let dir = std::env::temp_dir().join(format!("cascade-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cascade.yaml");
        cascade_operator::render::render(&[example], &dir, Default::default()).unwrap();
        let creds: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("credentials/shop.web.json")).unwrap()).unwrap();
        let (submission, submissions, http, admin) = (free_port(), free_port(), free_port(), free_port());
        let yaml = inline_shards(&dir.join("relay"), &std::fs::read_to_string(dir.join("relay/relay.yaml")).unwrap());
        let yaml = edit(
            yaml.replace("0.0.0.0:587", &format!("127.0.0.1:{submission}"))
                .replace("0.0.0.0:465", &format!("127.0.0.1:{submissions}"))
                .replace("0.0.0.0:9587", &format!("127.0.0.1:{http}"))
                .replace("0.0.0.0:9588", &format!("127.0.0.1:{admin}"))
                .replace("dir: spool", &format!("dir: {}", dir.join("spool").display())),
        );
        std::fs::write(dir.join("relay/relay.yaml"), &yaml).unwrap();
        let (user, password) = (creds["username"].as_str().unwrap().to_string(), creds["password"].as_str().unwrap().to_string());
        Self { dir, user, password, submission, submissions, http, admin, yaml }
    }

    /// The pool `main`'s bundle exactly as the operator wrote it to the API server (relay.yaml,
    /// shards, sealed DKIM keys, and the pool's keys Secret), run on loopback ports with the
    /// spool and audit trail in a fresh directory and delivery captured to `outbox/`; `edit`
    /// adjusts the configuration after that.
    pub async fn from_operator(tag: &str, secrets: &cascade_operator::secrets::SecretStore, edit: impl FnOnce(&mut cascade_crds::RelayConfig)) -> Self {
        let dir = std::env::temp_dir().join(format!("cascade-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut b = Self { dir, user: String::new(), password: String::new(), submission: free_port(), submissions: free_port(), http: free_port(), admin: free_port(), yaml: String::new() };
        b.sync(secrets, edit).await;
        b
    }

    /// Writes the operator's current bundle over this one's files (same ports and directories),
    /// as the relay's Secret watch would deliver it; the running relay reloads it.
    pub async fn sync(&mut self, secrets: &cascade_operator::secrets::SecretStore, edit: impl FnOnce(&mut cascade_crds::RelayConfig)) {
        let dir = &self.dir;
        std::fs::create_dir_all(dir.join("relay")).unwrap();
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let files = bundle_files(secrets).await.expect("the bundle and its shards");
        for (file, bytes) in files.iter().filter(|(f, _)| *f != "relay.yaml") {
            std::fs::write(dir.join("relay").join(file), bytes).unwrap();
        }
        for (file, bytes) in secrets.get("cascade-system", "main-keys").await.unwrap().expect("the pool's keys") {
            std::fs::write(dir.join("keys").join(file), bytes).unwrap();
        }
        let text = String::from_utf8_lossy(&files["relay.yaml"]).replace("/etc/cascade-keys", &dir.join("keys").display().to_string());
        let mut config: cascade_crds::RelayConfig = serde_saphyr::from_str(&text).unwrap();
        config.listeners.submission = vec![format!("127.0.0.1:{}", self.submission)];
        config.listeners.submissions = vec![format!("127.0.0.1:{}", self.submissions)];
        config.listeners.http = format!("127.0.0.1:{}", self.http);
        config.listeners.admin = format!("127.0.0.1:{}", self.admin);
        config.spool.dir = dir.join("spool").display().to_string();
        if let Some(audit) = config.audit.as_mut() {
            audit.dir = dir.join("audit").display().to_string();
        }
        config.delivery.mode = cascade_crds::relay_config::DeliveryMode::Capture;
        config.delivery.capture_dir = Some(dir.join("outbox").display().to_string());
        edit(&mut config);
        self.yaml = serde_saphyr::to_string(&config).unwrap();
        let tmp = dir.join("relay/relay.yaml.tmp");
        std::fs::write(&tmp, &self.yaml).unwrap();
        std::fs::rename(&tmp, dir.join("relay/relay.yaml")).unwrap();
    }

    /// Every file of the relay directory, as a bundle Secret holds them.
    pub fn files(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.dir.join("relay"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect()
    }

    /// Takes the admin channel's files (certificate, key, authority) from the pool `main`'s
    /// bundle Secret once the operator wrote it, so the relay answers the operator's mutual TLS.
    pub async fn adopt_admin_authority(&self, secrets: &cascade_operator::secrets::SecretStore) {
        use cascade_operator::admin_authority::{CA_FILE, CERT_FILE, KEY_FILE};
        let files = super::operator::until("the admin certificates in the bundle", || async { bundle_files(secrets).await.filter(|f| f.contains_key(CERT_FILE)) }).await;
        for name in [CERT_FILE, KEY_FILE, CA_FILE] {
            std::fs::write(self.dir.join("relay").join(name), &files[name]).unwrap();
        }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("relay.log")
    }

    /// Starts `cascade-relay serve` on the bundle with `extra` arguments and environment.
    pub fn serve(&self, extra: &[&str], env: &[(&str, &Path)]) -> Relay {
        let mut cmd = Command::new(relay_binary());
        cmd.args(["serve", "--config"]).arg(self.dir.join("relay/relay.yaml")).args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Relay(cmd.stderr(std::fs::File::create(self.log()).unwrap()).stdout(Stdio::null()).spawn().unwrap())
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
