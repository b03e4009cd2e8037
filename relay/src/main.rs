//! The `cascade-relay` binary: install the crypto provider, set up JSON logs, parse arguments,
//! and hand over to the library.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cascade-relay", version, about = "Cascade's secure outbound mail relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a complete relay with generated keys and credentials: no files, no cluster.
    Dev {
        /// Where keys, credentials, the spool and captured mail live.
        #[arg(long, env = "CASCADE_DEV_DATA_DIR", default_value = ".cascade-dev")]
        data_dir: PathBuf,
        /// STARTTLS submission listener.
        #[arg(long, env = "CASCADE_DEV_SUBMISSION", default_value = "127.0.0.1:2587")]
        submission: String,
        /// Implicit-TLS submission listener.
        #[arg(long, env = "CASCADE_DEV_SUBMISSIONS", default_value = "127.0.0.1:2465")]
        submissions: String,
        /// Tenant-facing HTTPS listener: the send API (/v1/messages), POST /dmarc/reports, /healthz and /readyz.
        #[arg(long, env = "CASCADE_DEV_HTTP", default_value = "127.0.0.1:9587")]
        http: String,
        /// Platform HTTPS listener (mutual TLS): /metrics, /dmarc/summary, /healthz and /readyz.
        #[arg(long, env = "CASCADE_DEV_ADMIN", default_value = "127.0.0.1:9588")]
        admin: String,
        /// Deliver everything to this host:port instead of writing it to DATA_DIR/outbox.
        #[arg(long, env = "CASCADE_DEV_SMARTHOST")]
        smarthost: Option<String>,
        /// Send every event of the dev tenant to this URL (Standard Webhooks; `http://` allowed
        /// on loopback); the signing secret is written to DATA_DIR/webhook.secret.
        #[arg(long, env = "CASCADE_DEV_WEBHOOK")]
        webhook: Option<String>,
    },
    /// Run the relay from a configuration file.
    Serve {
        /// The relay configuration (YAML).
        #[arg(long, env = "CASCADE_CONFIG")]
        config: PathBuf,
        /// Also watch this Secret (NAMESPACE/NAME) through the Kubernetes API and load each new
        /// version at once (entries: relay.yaml and the files it names). The pod's service
        /// account needs get/list/watch on that Secret only.
        #[arg(long, env = "CASCADE_WATCH_SECRET")]
        watch_secret: Option<String>,
    },
    /// Hand every message of a spool directory (one a relay left behind) to the peers of the
    /// configuration's `handover`; exit 1 if any is left.
    Drain {
        /// The relay configuration of the pool (its spool keys and `handover.peers`).
        #[arg(long, env = "CASCADE_CONFIG")]
        config: PathBuf,
        /// The spool directory to empty.
        #[arg(long)]
        spool: PathBuf,
        /// Give up after this long (e.g. 10m).
        #[arg(long, default_value = "10m")]
        timeout: cascade_crds::HumanDuration,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: cascade_core::audit::AuditCommand,
    },
    /// Check a configuration file and everything it references; print every problem.
    CheckConfig {
        /// The relay configuration (YAML).
        path: PathBuf,
    },
}

async fn drain(config: &std::path::Path, dir: &std::path::Path, timeout: std::time::Duration) -> anyhow::Result<()> {
    let rt = cascade_relay::config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let handover = rt.config.handover.as_ref().ok_or_else(|| anyhow::anyhow!("{}: no handover.peers to drain to", config.display()))?;
    let spool = std::sync::Arc::new(cascade_relay::spool::Spool::open(dir, rt.spool_keys.clone())?);
    let instance = cascade_relay::handover::new_instance();
    let (handed, left) = cascade_relay::handover::send_all(&spool, &handover.peers, rt.admin_tls.as_ref().map(|a| &a.client), &instance, timeout).await;
    println!("{}: {} message(s) handed over, {left} left", dir.display(), handed.len());
    anyhow::ensure!(left == 0, "{left} message(s) could not be handed over; they stay in {}", dir.display());
    Ok(())
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CASCADE_LOG").unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev { data_dir, submission, submissions, http, admin, smarthost, webhook } => {
                cascade_relay::dev::run(cascade_relay::dev::DevOptions { data_dir, submission, submissions, http, admin, smarthost, webhook }).await
            }
            Command::Serve { config, watch_secret } => {
                let watch = watch_secret.map(|s| cascade_relay::watch::Target::parse(&s)).transpose().map_err(|e| anyhow::anyhow!("--watch-secret: {e}"))?;
                cascade_relay::server::serve(&config, watch).await
            }
            Command::Audit { command } => Ok(command.run()?),
            Command::Drain { config, spool, timeout } => drain(&config, &spool, timeout.0).await,
            Command::CheckConfig { path } => match cascade_relay::config::load(&path) {
                Ok(rt) if rt.dropped.is_empty() => {
                    println!("{}: OK", path.display());
                    Ok(())
                }
                // What `serve` would leave out while serving the rest.
                Ok(rt) => {
                    for p in &rt.dropped {
                        println!("{p} (entry dropped)");
                    }
                    Err(anyhow::anyhow!("{} entry(ies) of {} would be dropped; the rest would be served", rt.dropped.len(), path.display()))
                }
                Err(e) => {
                    println!("{e}");
                    Err(anyhow::anyhow!("{} problem(s) in {}", e.0.len(), path.display()))
                }
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cascade-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
