//! `kubectl cascade`: the operator's view of a cluster for the people who run it, as a kubectl
//! plugin (the binary `kubectl-cascade` on the `PATH`). It reads and annotates Cascade's custom
//! resources with the user's own kubeconfig and RBAC; it never needs the operator's rights.
//!
//! Commands: [`status`] (one screen: pools, domains with DNS verdicts, DKIM keys, API keys,
//! queues), [`dns`] (the records to publish, as zone-file lines and a DNSEndpoint, and the live
//! check), `rotate dkim` and `credentials` ([`actions`]), [`keys`] (`--unused 90d`: the access
//! review) and `check` (the offline render and DNS check on files). Tables by default, `-o
//! json|yaml` for scripts.
//!
//! Exit codes: 0 done and healthy; 1 done, and something reported is not (an object not Ready,
//! a DNS check failing, a file object not served); 2 a usage error; 3 the cluster could not be
//! asked or the object does not exist.

pub mod actions;
pub mod dns;
pub mod keys;
pub mod output;
pub mod status;

use clap::{Parser, Subcommand};
use output::Format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kubectl cascade", bin_name = "kubectl cascade", version, about = "Operate Cascade, the Kubernetes-native outbound mail platform")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(clap::Args, Clone)]
pub struct Global {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Every namespace (`status`, `keys`).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Output: a table, or the same as JSON or YAML.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Pools, domains with their SPF/DKIM/DMARC verdicts, DKIM keys, API keys and the queue per
    /// tenant, on one screen. Exit 1 when anything shown is not Ready.
    Status,
    /// The DNS records a SendingDomain needs (zone-file lines and an external-dns DNSEndpoint)
    /// and the live check against DNS. Exit 1 when a check does not pass.
    Dns {
        /// NAMESPACE/DOMAIN (the domain name or the SendingDomain's name); DOMAIN alone uses -n.
        target: String,
        /// DNS server to ask (IP:PORT; repeatable); default: the system resolver.
        #[arg(long = "nameserver")]
        nameservers: Vec<std::net::SocketAddr>,
        /// Skip the live check: print the records only.
        #[arg(long)]
        no_check: bool,
    },
    /// Tenant lockdown: every API key of NAMESPACE refused and its queued mail held on every
    /// relay (recorded in each RelayPool's `spec.lockdown`); `--rotate` also rotates all its DKIM
    /// keys and API key secrets.
    Lockdown(crate::lockdown::Args),
    /// Lift a tenant's lockdown: its keys work again and its held mail is delivered.
    Unlock { tenant: String },
    /// Ask the operator for something now.
    Rotate {
        #[command(subcommand)]
        what: Rotate,
    },
    /// An ApiKey's credentials and where to send: printed, or written as an env file.
    Credentials {
        /// The ApiKey's name (in -n).
        api_key: String,
        /// Write `CASCADE_*` variables to this file (mode 0600) instead of printing them.
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// API keys with their state and last use; `--unused 90d` lists those to revoke.
    Keys {
        /// Only keys not used for this long (e.g. 90d, 12h): never used ones count from their
        /// creation.
        #[arg(long)]
        unused: Option<cascade_crds::units::HumanDuration>,
    },
    /// The offline render and DNS check on resource files (no cluster): which objects would be
    /// served and, with --nameserver, whether DNS has their records. Exit 1 when not.
    Check {
        /// YAML files with RelayPool, SendingDomain, DkimKey, ApiKey (and Namespace) objects.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// DNS server to check the records at (IP:PORT; repeatable).
        #[arg(long = "nameserver")]
        nameservers: Vec<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
pub enum Rotate {
    /// Rotate a DkimKey now (annotates it `cascade-mail.com/rotate`; the operator generates the
    /// next selector, which takes over once DNS shows its record).
    Dkim {
        /// The DkimKey's name (in -n).
        name: String,
        /// Wait until the operator has acted on the request.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "60s")]
        timeout: cascade_crds::units::HumanDuration,
    },
}

/// Why a command could not answer (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("connecting to the cluster: {0}")]
    Connect(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("{0}")]
    Other(String),
}

impl PluginError {
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| match &source {
            kube::Error::Api(e) if e.code == 404 => Self::NotFound(format!("{what}: not found")),
            _ => Self::Api { what, source },
        }
    }
}

/// The outcome of a command that answered: healthy or not.
pub type Outcome = Result<bool, PluginError>;

/// The client and namespace the kubeconfig (and `--context`, `-n`) give.
pub async fn client(g: &Global) -> Result<(kube::Client, String), PluginError> {
    let options = kube::config::KubeConfigOptions { context: g.context.clone(), ..Default::default() };
    let config = match kube::Config::from_kubeconfig(&options).await {
        Ok(c) => c,
        Err(e) if g.context.is_none() => kube::Config::infer().await.map_err(|e2| PluginError::Connect(format!("{e}; {e2}")))?,
        Err(e) => return Err(PluginError::Connect(e.to_string())),
    };
    let namespace = g.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| PluginError::Connect(e.to_string()))?;
    Ok((client, namespace))
}

async fn dispatch(cli: Cli) -> Outcome {
    let g = cli.global;
    if let Command::Check { files, nameservers } = &cli.command {
        return check(files, nameservers).await;
    }
    let (client, namespace) = client(&g).await?;
    let scope = if g.all_namespaces { None } else { Some(namespace.as_str()) };
    match cli.command {
        Command::Status => status::run(&client, scope, g.output).await,
        Command::Dns { target, nameservers, no_check } => dns::run(&client, &namespace, &target, &nameservers, no_check, g.output).await,
        Command::Rotate { what: Rotate::Dkim { name, wait, timeout } } => actions::rotate_dkim(&client, &namespace, &name, wait.then_some(timeout.0), g.output).await,
        Command::Credentials { api_key, env_file } => actions::credentials(&client, &namespace, &api_key, env_file.as_deref(), g.output).await,
        Command::Lockdown(a) => actions::lockdown(&client, &a.tenant, Some(&a.reason), a.rotate, g.output).await,
        Command::Unlock { tenant } => actions::lockdown(&client, &tenant, None, false, g.output).await,
        Command::Keys { unused } => keys::run(&client, scope, unused.map(|u| u.0), g.output).await,
        Command::Check { .. } => unreachable!("answered above"),
    }
}

/// `check`: `render` into a throwaway directory, then the DNS checks when a nameserver is given.
async fn check(files: &[PathBuf], nameservers: &[std::net::SocketAddr]) -> Outcome {
    let verified = match nameservers.is_empty() {
        true => Default::default(),
        false => crate::check_dns::verified_claims(files, nameservers).await.map_err(|e| PluginError::Other(format!("{e:#}")))?,
    };
    let out = std::env::temp_dir().join(format!("kubectl-cascade-check-{}", std::process::id()));
    let plan = crate::render::render(files, &out, verified);
    let _ = std::fs::remove_dir_all(&out);
    let plan = plan.map_err(|e| PluginError::Other(format!("{e:#}")))?;
    let mut healthy = true;
    for (kind, (ns, name), conditions) in plan.not_ready() {
        let (_, reason, message) = output::condition(conditions, "Ready");
        println!("not served: {kind} {ns}/{name}: {reason}: {message}");
        healthy = false;
    }
    if !nameservers.is_empty() {
        let reports = crate::check_dns::check(files, nameservers).await.map_err(|e| PluginError::Other(format!("{e:#}")))?;
        let (text, all) = crate::check_dns::render(&reports);
        print!("{text}");
        healthy &= all;
    }
    if healthy {
        println!("every object is served{}", if nameservers.is_empty() { "" } else { " and every DNS check passes" });
    }
    Ok(healthy)
}

/// The plugin's `main`.
pub fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubectl cascade: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kubectl cascade: {e}");
            ExitCode::from(3)
        }
    }
}
