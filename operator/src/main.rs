//! The `cascade-operator` binary: parse arguments and hand over to the library.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cascade-operator", version, about = "Cascade's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (YAML).
    Crds,
    /// Run the controllers in a cluster (DkimKey, ApiKey, RelayPool; SendingDomain status comes from RelayPool).
    Run {
        /// The operator's own namespace, holding the master key Secret.
        #[arg(long, env = "CASCADE_NAMESPACE", default_value = "cascade-system")]
        namespace: String,
        /// The namespaces RelayPools may live in (comma-separated; default: --namespace). The
        /// operator writes a pool's workloads, Roles and Secrets only there (the chart's
        /// `relayPoolNamespaces` grants it exactly these).
        #[arg(long, env = "CASCADE_POOL_NAMESPACES", value_delimiter = ',')]
        pool_namespaces: Vec<String>,
        /// HTTP listener for /metrics, /healthz and /readyz.
        #[arg(long, env = "CASCADE_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
        http: String,
        /// DNS server for the SendingDomain checks (IP:PORT; repeatable); default: the system resolver.
        #[arg(long = "nameserver")]
        nameservers: Vec<std::net::SocketAddr>,
        /// The image relay pods (and spool drain Jobs) run; default cascade-relay:<version>.
        #[arg(long, env = "CASCADE_RELAY_IMAGE")]
        relay_image: Option<String>,
        /// Image pull Secrets (names, comma-separated) for the relay pods and drain Jobs of pools
        /// whose `spec.pod.imagePullSecrets` is empty (the chart passes its `imagePullSecrets`).
        #[arg(long, env = "CASCADE_RELAY_IMAGE_PULL_SECRETS", value_delimiter = ',')]
        relay_image_pull_secrets: Vec<String>,
        #[command(flatten)]
        audit: AuditArgs,
    },
    /// The operator's audit trail.
    Audit {
        #[command(subcommand)]
        command: cascade_core::audit::AuditCommand,
    },
    /// Write an encrypted backup of the cluster's Cascade objects and keys (see README "Backup and restore").
    Backup {
        /// The operator's namespace (the master key lives there).
        #[arg(long, env = "CASCADE_NAMESPACE", default_value = "cascade-system")]
        namespace: String,
        /// The archive to write; a directory: `cascade-<UTC time>.backup` in it.
        #[arg(short = 'o', long = "output")]
        out: PathBuf,
        /// With a directory: keep only the newest N archives in it.
        #[arg(long)]
        keep: Option<usize>,
        /// The key escrow to write: the tenants' data keys, under the backup key. Keep only the
        /// latest; a restore into an empty cluster needs it.
        #[arg(long)]
        escrow: PathBuf,
        #[command(flatten)]
        key: cascade_operator::backup::cli::KeyArgs,
    },
    /// Restore a backup into a cluster without those objects, with the operator scaled to 0.
    Restore {
        file: PathBuf,
        #[arg(long, env = "CASCADE_NAMESPACE", default_value = "cascade-system")]
        namespace: String,
        /// The key escrow (needed when the cluster no longer holds the tenants' data keys).
        #[arg(long)]
        escrow: Option<PathBuf>,
        #[command(flatten)]
        key: cascade_operator::backup::cli::KeyArgs,
    },
    /// Erase data. `--tenant NS --address ADDR`: an ErasureRequest (the address leaves every
    /// relay's queue, statuses and suppression list; the tenant's backups are shredded), waited
    /// for. `--tenant NS` alone: destroy the tenant's backup data key (crypto-shredding).
    Erase {
        #[arg(long, env = "CASCADE_NAMESPACE", default_value = "cascade-system")]
        namespace: String,
        /// The tenant (namespace).
        #[arg(long)]
        tenant: String,
        /// The address to erase from the tenant's data.
        #[arg(long)]
        address: Option<String>,
    },
    /// Tenant lockdown (every API key refused, queued mail held on every relay), `--rotate`: and
    /// an emergency rotation of all its DKIM keys and API key secrets. Also `kubectl cascade lockdown`.
    Lockdown(cascade_operator::lockdown::Args),
    /// Lift a tenant's lockdown.
    Unlock { tenant: String },
    /// Check the DNS records of SendingDomains (SPF, DKIM, DMARC) and print the conditions;
    /// exit 1 unless every check passes.
    CheckDns {
        /// YAML files with SendingDomains and DkimKeys (with status, as `kubectl get -o yaml` prints them).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// DNS server to ask (IP:PORT; repeatable); default: the system resolver.
        #[arg(long = "nameserver")]
        nameservers: Vec<std::net::SocketAddr>,
    },
    /// Render a relay bundle, credentials and DNS records from resource files, without a cluster.
    Render {
        /// YAML files with RelayPool, SendingDomain, DkimKey, ApiKey (and Namespace) objects.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Output directory (existing keys and credentials in it are kept).
        #[arg(short = 'o', long = "output")]
        out: PathBuf,
        /// SendingDomains whose ownership challenge passed: lines `NAMESPACE/NAME`, earliest
        /// first. Without it (or --nameserver) only domains the pool assigns are served.
        #[arg(long = "verified-claims", conflicts_with = "nameservers")]
        verified_claims: Option<PathBuf>,
        /// Check the ownership challenges in DNS at this server (IP:PORT; repeatable).
        #[arg(long = "nameserver")]
        nameservers: Vec<std::net::SocketAddr>,
        /// Exit 1 when any object is not served (each is reported either way).
        #[arg(long)]
        strict: bool,
    },
}

/// Where the audit trail of admin-visible actions goes (every Event is also a record there).
#[derive(clap::Args)]
struct AuditArgs {
    /// Directory for the audit trail (a writable volume); none: Events only.
    #[arg(long, env = "CASCADE_AUDIT_DIR")]
    audit_dir: Option<PathBuf>,
    /// The audit key file (base64 of at least 32 random bytes); without it, the key is the
    /// Secret `cascade-audit-key` in the operator's namespace (created on first start).
    #[arg(long, env = "CASCADE_AUDIT_KEY_FILE", requires = "audit_dir")]
    audit_key_file: Option<PathBuf>,
    /// Days audit files are kept.
    #[arg(long, env = "CASCADE_AUDIT_RETAIN_DAYS", default_value_t = 90)]
    audit_retain_days: u32,
}

impl AuditArgs {
    async fn open(&self, secrets: &cascade_operator::secrets::SecretStore, namespace: &str) -> anyhow::Result<cascade_core::audit::Audit> {
        let Some(dir) = &self.audit_dir else { return Ok(Default::default()) };
        let key = match &self.audit_key_file {
            Some(file) => cascade_core::audit::read_key(file)?,
            None => cascade_operator::master_key::ensure_audit_key(secrets, namespace).await?,
        };
        cascade_core::audit::Audit::open(dir, &key, self.audit_retain_days, 64 << 20, Default::default()).map_err(|e| anyhow::anyhow!("opening the audit trail in {}: {e}", dir.display()))
    }
}

fn run(
    namespace: String,
    pool_namespaces: Vec<String>,
    http: String,
    nameservers: Vec<std::net::SocketAddr>,
    relay_image: Option<String>,
    pull_secrets: Vec<String>,
    audit: AuditArgs,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt().json().with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let metrics = std::sync::Arc::new(cascade_operator::metrics::Metrics::default());
        let listener = tokio::net::TcpListener::bind(&http).await.map_err(|e| anyhow::anyhow!("binding {http}: {e}"))?;
        tracing::info!(address = %listener.local_addr()?, "HTTP listener ready (/metrics, /healthz, /readyz)");
        tokio::spawn(cascade_operator::probes::serve(listener, metrics.clone()));
        let client = kube::Client::try_default().await?;
        let secrets = cascade_operator::secrets::SecretStore::new(client.clone());
        let master = cascade_operator::master_key::ensure(&secrets, &namespace).await?;
        metrics.set_ready();
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("cascade-operator-{}", std::process::id()));
        let elector = cascade_operator::leader::Elector::new(client.clone(), &namespace, "cascade-operator", &identity, std::time::Duration::from_secs(15));
        let dns = cascade_operator::dns::Dns::new(&nameservers).map_err(|e| anyhow::anyhow!("DNS: {e}"))?;
        let audit = std::sync::Arc::new(audit.open(&secrets, &namespace).await?);
        // Checkpoints (fsynced, the anchor) also when records trickle in.
        tokio::spawn({
            let audit = audit.clone();
            async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    audit.tick(false);
                }
            }
        });
        let mut ctx = cascade_operator::Context::new(client, master, dns);
        ctx.events = ctx.events.clone().with_audit(audit);
        if let Some(image) = relay_image {
            ctx.relay_image = image;
        }
        ctx.relay_pull_secrets = pull_secrets.into_iter().filter(|s| !s.is_empty()).collect();
        ctx.metrics = metrics.clone();
        ctx.namespace = namespace.clone();
        ctx.pool_namespaces = if pool_namespaces.is_empty() { vec![namespace.clone()] } else { pool_namespaces.clone() };
        let ctx = std::sync::Arc::new(ctx);
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tracing::info!(namespace, identity, "waiting for leadership");
        tokio::select! {
            _ = elector.acquire() => {}
            _ = terminate.recv() => return Ok(()),
        }
        metrics.leader.set(1);
        tracing::info!(namespace, identity, "leading; controllers starting");
        tokio::select! {
            _ = cascade_operator::controller::run(ctx) => Ok(()),
            _ = elector.hold() => Err(anyhow::anyhow!("lost leadership; exiting so a replica can take over")),
            _ = terminate.recv() => {
                // An upgrade's new replica takes over at once instead of waiting the lease out.
                elector.release().await.map_err(|e| anyhow::anyhow!("releasing the lease: {e}"))?;
                tracing::info!(namespace, identity, "SIGTERM: lease released; exiting");
                Ok(())
            }
        }
    })
}

fn check_dns(files: &[PathBuf], nameservers: &[std::net::SocketAddr]) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cascade-operator: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cascade_operator::check_dns::check(files, nameservers)) {
        Ok(reports) => {
            let (text, all) = cascade_operator::check_dns::render(&reports);
            print!("{text}");
            if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cascade-operator: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn render(files: &[PathBuf], out: &std::path::Path, verified_claims: Option<&std::path::Path>, nameservers: &[std::net::SocketAddr], strict: bool) -> ExitCode {
    let verified = match (verified_claims, nameservers.is_empty()) {
        (Some(path), _) => cascade_operator::render::read_verified_claims(path),
        (None, false) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(anyhow::Error::from).and_then(|rt| rt.block_on(cascade_operator::check_dns::verified_claims(files, nameservers)))
        }
        (None, true) => Ok(Default::default()),
    };
    let plan = match verified.and_then(|v| cascade_operator::render::render(files, out, v)) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("cascade-operator: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let domains = plan.config.tenants.iter().map(|t| t.domains.len()).sum::<usize>();
    println!("rendered {} tenant(s), {domains} domain(s), {} API key(s) into {}", plan.config.tenants.len(), plan.config.api_keys.len(), out.display());
    println!("run: cascade-relay serve --config {}", out.join("relay/relay.yaml").display());
    let not_ready = plan.not_ready();
    for (kind, (ns, name), conditions) in &not_ready {
        let ready = conditions.iter().find(|c| c.type_ == "Ready");
        let why = ready.map_or_else(|| "no Ready condition".to_string(), |c| format!("{}: {}", c.reason, c.message));
        println!("not served: {kind} {ns}/{name}: {why}");
    }
    if strict && !not_ready.is_empty() {
        eprintln!("cascade-operator: {} object(s) not served (--strict)", not_ready.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn lockdown(tenant: &str, reason: Option<&str>, rotate: bool) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let client = kube::Client::try_default().await?;
        let format = cascade_operator::plugin::output::Format::Table;
        cascade_operator::plugin::actions::lockdown(&client, tenant, reason, rotate, format).await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e}"))
    })
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = match Cli::parse().command {
        Command::Run { namespace, pool_namespaces, http, nameservers, relay_image, relay_image_pull_secrets, audit } => {
            run(namespace, pool_namespaces, http, nameservers, relay_image, relay_image_pull_secrets, audit)
        }
        Command::Audit { command } => command.run().map_err(anyhow::Error::from),
        Command::Backup { namespace, out, keep, escrow, key } => cascade_operator::backup::cli::backup(&namespace, &key, &out, &escrow, keep),
        Command::Restore { file, namespace, escrow, key } => cascade_operator::backup::cli::restore(&namespace, &key, &file, escrow.as_deref()),
        Command::Erase { namespace, tenant, address } => match address {
            Some(address) => cascade_operator::erasure::request_and_wait(&tenant, &address),
            None => cascade_operator::backup::cli::erase_tenant(&namespace, &tenant),
        },
        Command::Lockdown(a) => lockdown(&a.tenant, Some(&a.reason), a.rotate),
        Command::Unlock { tenant } => lockdown(&tenant, None, false),
        Command::CheckDns { files, nameservers } => return check_dns(&files, &nameservers),
        Command::Crds => cascade_operator::crdgen::crds_yaml().map(|y| print!("{y}")).map_err(anyhow::Error::from),
        Command::Render { files, out, verified_claims, nameservers, strict } => return render(&files, &out, verified_claims.as_deref(), &nameservers, strict),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cascade-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
