//! A real Kubernetes API server (k8s.io/apiextensions-apiserver + etcd) on 127.0.0.1 for
//! controller tests, built by `tests/apiserver/build.sh` from Debian packages and cached.
//!
//! When it cannot be built here the tests that need it print a loud SKIP line and pass, unless
//! `REQUIRE_REAL_API=1`, which turns that into a failure. Only `apiextensions.k8s.io` and custom
//! resources are served (no built-in kinds, no RBAC, no garbage collector).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ApiServer {
    children: Vec<Child>,
    dir: PathBuf,
    pub client: kube::Client,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The directory with `apiextensions-apiserver` and `etcd`, or why there is none.
fn binaries() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("CASCADE_APISERVER_BIN") {
        return Ok(dir.into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/apiserver/build.sh");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{} exited with {}", script.display(), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().into())
}

impl ApiServer {
    /// A kubeconfig for this server (for processes the test starts).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Starts etcd and the API server; `None` (after a loud message) when they are not available.
    pub async fn start() -> Option<Self> {
        Self::start_attempt(3).await
    }

    /// One start; when etcd or the API server exits before it is ready (a port another test
    /// took between choosing and binding it), another on new ports, `attempts` in all.
    async fn start_attempt(attempts: u32) -> Option<Self> {
        let bin = match binaries() {
            Ok(b) => b,
            Err(why) => {
                assert!(std::env::var("REQUIRE_REAL_API").as_deref() != Ok("1"), "REQUIRE_REAL_API=1 but no API server: {why}");
                eprintln!("\n*** SKIP: no real Kubernetes API server on this machine ({why}); set REQUIRE_REAL_API=1 to fail instead ***\n");
                return None;
            }
        };
        let dir = std::env::temp_dir().join(format!("cascade-apiserver-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
        run(Command::new("openssl").args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca", "-keyout", &p("ca.key"), "-out", &p("ca.crt")]));
        run(Command::new("openssl").args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=system:masters/CN=admin", "-keyout", &p("admin.key"), "-out", &p("admin.csr")]));
        // Extensions make it an X.509 v3 certificate, the only version rustls accepts.
        std::fs::write(dir.join("client.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
        run(Command::new("openssl").args([
            "x509",
            "-req",
            "-in",
            &p("admin.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p("client.ext"),
            "-out",
            &p("admin.crt"),
        ]));
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: https://127.0.0.1:{api_port}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: admin}}\ncurrent-context: t\n",
            p("admin.crt"),
            p("admin.key")
        );
        std::fs::write(dir.join("kubeconfig"), kubeconfig).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let etcd = Command::new(bin.join("etcd"))
            .args(["--data-dir", &p("etcd"), "--name", "default"])
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"))
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .expect("start etcd");
        let kc = p("kubeconfig");
        let api = Command::new(bin.join("apiextensions-apiserver"))
            .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .args(["--bind-address=127.0.0.1", &format!("--secure-port={api_port}"), &format!("--cert-dir={}", p("certs"))])
            .args([format!("--client-ca-file={}", p("ca.crt")), "--authentication-skip-lookup".into()])
            .args([format!("--kubeconfig={kc}"), format!("--authentication-kubeconfig={kc}"), format!("--authorization-kubeconfig={kc}")])
            .arg("--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy")
            .arg("--enable-priority-and-fairness=false")
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"))
            .spawn()
            .expect("start apiextensions-apiserver");
        // Typed clients reach the stand-ins for built-in kinds through the rewrite layer.
        let client = super::rewrite::client(&dir.join("kubeconfig"), false).await;
        let mut server = Self { children: vec![etcd, api], dir, client };
        // Generous: the tests of one binary start their servers at once on a small machine.
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let req = http::Request::get("/apis/apiextensions.k8s.io/v1").body(Vec::new()).unwrap();
            if server.client.request_text(req).await.is_ok() {
                return Some(server);
            }
            if attempts > 1 && server.children.iter_mut().any(|c| matches!(c.try_wait(), Ok(Some(_)))) {
                let tail = |f: &str| std::fs::read_to_string(server.dir.join(f)).unwrap_or_default().lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                eprintln!("etcd or the API server exited before it was ready; starting again on other ports (etcd: {}; apiserver: {})", tail("etcd.err"), tail("apiserver.err"));
                drop(server);
                return Box::pin(Self::start_attempt(attempts - 1)).await;
            }
            if Instant::now() >= deadline {
                let tail = |f: &str| std::fs::read_to_string(server.dir.join(f)).unwrap_or_default().lines().rev().take(5).collect::<Vec<_>>().join("\n  ");
                panic!("API server not ready within 150s\netcd.err:\n  {}\napiserver.err:\n  {}", tail("etcd.err"), tail("apiserver.err"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
