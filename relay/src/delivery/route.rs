//! Where a recipient domain's mail goes: its MX hosts by preference (RFC 5321 section 5.1), the
//! domain itself when it has no MX (implicit MX, A/AAAA), nowhere for a null MX (RFC 7505), or
//! the configured smarthost.

use hickory_resolver::config::ResolverOpts;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Why a destination could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Try later (DNS timeout, SERVFAIL).
    Temporary(String),
    /// Never deliverable (NXDOMAIN, null MX).
    Permanent(String),
}

pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

pub fn resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(5);
    opts.attempts = 2;
    resolver_with(nameservers, opts)
}

fn resolver_with(nameservers: &[SocketAddr], opts: ResolverOpts) -> Result<TokioResolver, String> {
    cascade_core::resolver::build(nameservers, opts).map_err(|e| e.to_string())
}

/// What a failed lookup means for delivery.
enum LookupFailure {
    /// NXDOMAIN: the name does not exist.
    NoDomain,
    /// The name exists but has no records of the type asked.
    NoRecords,
    /// Timeout, SERVFAIL, network: try later.
    Other(String),
}

fn classify(e: &NetError) -> LookupFailure {
    if e.is_nx_domain() {
        LookupFailure::NoDomain
    } else if e.is_no_records_found() {
        LookupFailure::NoRecords
    } else {
        LookupFailure::Other(e.to_string())
    }
}

/// MX hosts of `domain`, best first (implicit MX when there is none).
pub async fn mx_hosts(resolver: &TokioResolver, domain: &str) -> Result<Vec<String>, RouteError> {
    let fqdn = format!("{domain}.");
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut mx: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii().trim_end_matches('.').to_ascii_lowercase())),
                    _ => None,
                })
                .collect();
            if mx.iter().any(|(_, host)| host.is_empty()) {
                return Err(RouteError::Permanent(format!("{domain} publishes a null MX and accepts no mail (RFC 7505)")));
            }
            if mx.is_empty() {
                return Ok(vec![domain.to_string()]);
            }
            mx.sort();
            Ok(mx.into_iter().map(|(_, h)| h).collect())
        }
        Err(e) => match classify(&e) {
            // No MX records but the name exists: implicit MX (RFC 5321 section 5.1).
            LookupFailure::NoRecords => Ok(vec![domain.to_string()]),
            LookupFailure::NoDomain => Err(RouteError::Permanent(format!("{domain}: domain does not exist"))),
            LookupFailure::Other(e) => Err(RouteError::Temporary(format!("{domain}: {e}"))),
        },
    }
}

/// Addresses of a host (an IP literal is its own address).
pub async fn addresses(resolver: &TokioResolver, host: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = resolver.lookup_ip(format!("{host}.").as_str()).await.map_err(|e| match classify(&e) {
        LookupFailure::NoDomain => RouteError::Permanent(format!("{host}: domain does not exist")),
        LookupFailure::NoRecords => RouteError::Permanent(format!("{host}: no addresses")),
        LookupFailure::Other(e) => RouteError::Temporary(format!("{host}: {e}")),
    })?;
    let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
    if addrs.is_empty() {
        return Err(RouteError::Permanent(format!("{host}: no addresses")));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("mx.test:25"), Some(("mx.test".into(), 25)));
        assert_eq!(split_host_port("[::1]:2525"), Some(("::1".into(), 2525)));
        assert_eq!(split_host_port("mx.test"), None);
        assert_eq!(split_host_port(":25"), None);
        assert_eq!(split_host_port("mx.test:port"), None);
    }
}
