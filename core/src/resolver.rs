//! Building the hickory resolver both programs use: the system configuration, or the given
//! nameservers (`IP:PORT`, UDP and TCP) so tests can point at a DNS server on loopback.

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("reading the system resolver configuration: {0}")]
    System(String),
    #[error("building the resolver: {0}")]
    Build(String),
}

pub fn build(nameservers: &[SocketAddr], opts: ResolverOpts) -> Result<TokioResolver, ResolverError> {
    let builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| ResolverError::System(e.to_string()))?
    } else {
        let servers = nameservers
            .iter()
            .map(|a| {
                let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                for c in &mut ns.connections {
                    c.port = a.port();
                }
                ns
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), Default::default())
    };
    builder.with_options(opts).build().map_err(|e| ResolverError::Build(e.to_string()))
}
