//! The PROXY protocol v2 (HAProxy's `proxy-protocol.txt`) in front of connections from trusted
//! load balancers, so limits, allowed networks, logs and audit see the real client behind SNAT.
//! Only the header is read, byte-exact (the 16-byte fixed part, then the advertised length), so
//! what follows — SMTP or a TLS handshake — is untouched. Parsing is the `ppp` crate's; this
//! module only frames the read and decides which address counts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (section 2.2).
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The largest address block plus TLVs taken; real balancers send well under 1 KiB.
const MAX_BODY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY v2 header within {0:?}")]
    Timeout(Duration),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a PROXY v2 header (wrong signature)")]
    Signature,
    #[error("PROXY header of {0} bytes is over the {MAX_BODY}-byte limit")]
    TooLong(usize),
    #[error("malformed PROXY v2 header: {0}")]
    Malformed(String),
}

/// Reads one PROXY v2 header. Returns the client's address, or `None` for a `LOCAL` command or
/// an unspecified or UNIX address family (the balancer's own health checks): then the peer
/// itself is the client.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S, timeout: Duration) -> Result<Option<IpAddr>, ProxyError> {
    tokio::time::timeout(timeout, read(stream)).await.map_err(|_| ProxyError::Timeout(timeout))?
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<IpAddr>, ProxyError> {
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed).await?;
    if &fixed[..12] != SIGNATURE {
        return Err(ProxyError::Signature);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_BODY {
        return Err(ProxyError::TooLong(len));
    }
    let mut header = Vec::with_capacity(16 + len);
    header.extend_from_slice(&fixed);
    header.resize(16 + len, 0);
    stream.read_exact(&mut header[16..]).await?;
    client_of(&header)
}

/// The client address a complete header names (pure).
pub fn client_of(header: &[u8]) -> Result<Option<IpAddr>, ProxyError> {
    use ppp::v2::{Addresses, Command, Header};
    let parsed = Header::try_from(header).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    if parsed.command == Command::Local {
        return Ok(None);
    }
    Ok(match parsed.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port)).ip()),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port)).ip()),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Command, Protocol, Version};

    fn header(source: &str, command: Command) -> Vec<u8> {
        let src: SocketAddr = source.parse().unwrap();
        let dst: SocketAddr = if src.is_ipv4() { "10.0.0.1:587".parse().unwrap() } else { "[fd00::1]:587".parse().unwrap() };
        Builder::with_addresses(Version::Two | command, Protocol::Stream, (src, dst)).build().unwrap()
    }

    #[tokio::test]
    async fn reads_exactly_the_header_and_names_the_client() {
        for source in ["203.0.113.7:40000", "[2001:db8::7]:40000"] {
            let mut input = header(source, Command::Proxy);
            input.extend_from_slice(b"EHLO client\r\n");
            let mut stream = input.as_slice();
            let client = read_header(&mut stream, Duration::from_secs(1)).await.unwrap();
            assert_eq!(client, Some(source.parse::<SocketAddr>().unwrap().ip()));
            assert_eq!(stream, b"EHLO client\r\n", "what follows the header is left unread");
        }
    }

    #[tokio::test]
    async fn local_means_the_peer_itself() {
        let input = header("203.0.113.7:40000", Command::Local);
        assert_eq!(read_header(&mut input.as_slice(), Duration::from_secs(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_v2_header() {
        let mut v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 587\r\n".to_vec();
        v1.resize(64, b' ');
        assert!(matches!(read_header(&mut v1.as_slice(), Duration::from_secs(1)).await, Err(ProxyError::Signature)));
        let smtp = b"EHLO client.test\r\nMAIL FROM:<a@b>\r\n".to_vec();
        assert!(matches!(read_header(&mut smtp.as_slice(), Duration::from_secs(1)).await, Err(ProxyError::Signature)));
        let mut long = header("203.0.113.7:40000", Command::Proxy);
        long[14..16].copy_from_slice(&60000u16.to_be_bytes());
        assert!(matches!(read_header(&mut long.as_slice(), Duration::from_secs(1)).await, Err(ProxyError::TooLong(60000))));
        let mut bad = header("203.0.113.7:40000", Command::Proxy);
        bad[12] = 0x2f; // version 2, command 15
        assert!(matches!(read_header(&mut bad.as_slice(), Duration::from_secs(1)).await, Err(ProxyError::Malformed(_))));
        let short = header("203.0.113.7:40000", Command::Proxy);
        assert!(matches!(read_header(&mut &short[..20], Duration::from_secs(1)).await, Err(ProxyError::Io(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out() {
        let (_client, mut server) = tokio::io::duplex(64);
        assert!(matches!(read_header(&mut server, Duration::from_secs(5)).await, Err(ProxyError::Timeout(_))));
    }
}
