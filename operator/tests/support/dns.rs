//! A real DNS server (Knot, from Debian) on a loopback port serving test zones; zones can be
//! replaced (the server restarts on the same port).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Knot {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TXT value as zone-file character strings of at most 255 bytes.
pub fn txt(value: &str) -> String {
    value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect::<Vec<_>>().join(" ")
}

impl Knot {
    /// Serves `zones` (origin, zone-file lines with names relative to the origin).
    pub fn start(zones: &[(&str, Vec<String>)]) -> Self {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("cascade-knot-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let mut knot = Self { port, dir, child: None };
        knot.serve(zones);
        knot
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Replaces the zones (restarting the server) and waits until it answers.
    pub fn serve(&mut self, zones: &[(&str, Vec<String>)]) {
        self.stop();
        let mut conf = format!(
            "server:\n  listen: 127.0.0.1@{}\n  rundir: {d}\ndatabase:\n  storage: {d}/db\ntemplate:\n  - id: default\n    storage: {d}\n    file: \"%s.zone\"\nzone:\n",
            self.port,
            d = self.dir.display()
        );
        for (origin, lines) in zones {
            let body = format!("$ORIGIN {origin}.\n$TTL 1\n@ IN SOA ns.{origin}. admin.{origin}. 1 60 60 600 1\n@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n{}\n", lines.join("\n"));
            std::fs::write(self.dir.join(format!("{origin}.zone")), body).unwrap();
            conf.push_str(&format!("  - domain: {origin}\n"));
        }
        std::fs::write(self.dir.join("knot.conf"), conf).unwrap();
        let log = std::fs::File::create(self.dir.join("knot.log")).unwrap();
        let child = Command::new("knotd").arg("-c").arg(self.dir.join("knot.conf")).stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null()).spawn().expect("knotd (test.sh installs knot)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // Listening on TCP, and every zone loaded.
            let log = std::fs::read_to_string(self.dir.join("knot.log")).unwrap_or_default();
            let loaded = zones.iter().all(|(o, _)| log.contains(&format!("[{o}.] zone file loaded")) || log.contains(&format!("[{o}.] loaded")));
            if loaded && std::net::TcpStream::connect(self.addr()).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "knotd did not answer; see {}", self.dir.join("knot.log").display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
