//! Which addresses outbound delivery may connect to. MX and A/AAAA answers come from whoever
//! controls the recipient domain, so a hostile domain could point the relay into the cluster
//! (`MX 10 10.0.0.5.`), at the node's metadata service or at loopback. Refused always, unless an
//! `allowedDestinationCidrs` entry lets it through: loopback, unspecified, RFC 1918 and IPv6
//! unique-local, link-local, CGNAT (RFC 6598), multicast, broadcast and reserved ranges, IETF and
//! benchmarking blocks, and the same addresses embedded in IPv6 (IPv4-mapped, IPv4-compatible,
//! NAT64, 6to4). `deniedDestinationCidrs` adds ranges (the cluster's pod and service networks
//! when they are public). The smarthost is the operator's own choice and never filtered. Pure.

use cascade_core::cidr::Cidr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the DSN and the log say; nothing about the address or the network it is in.
pub const NOT_ALLOWED: &str = "destination address not allowed";

#[derive(Clone, Debug, Default)]
pub struct DestinationFilter {
    pub denied: Vec<Cidr>,
    pub allowed: Vec<Cidr>,
}

impl DestinationFilter {
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.allowed.iter().any(|n| n.contains(ip)) {
            return true;
        }
        !(special(ip) || self.denied.iter().any(|n| n.contains(ip)))
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240 // reserved
}

fn special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated), `::` and `::1` included.
        return ip.is_unspecified() || ip.is_loopback() || special_v4(embedded(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return special_v4(embedded(s[6], s[7])); // NAT64, RFC 6052
    }
    if s[0] == 0x2002 {
        return special_v4(embedded(s[1], s[2])); // 6to4
    }
    ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only, RFC 6666
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allowed: &[&str], denied: &[&str]) -> DestinationFilter {
        DestinationFilter { allowed: allowed.iter().map(|s| s.parse().unwrap()).collect(), denied: denied.iter().map(|s| s.parse().unwrap()).collect() }
    }

    #[test]
    fn internal_and_special_addresses_are_refused() {
        let f = DestinationFilter::default();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.1.1.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.5",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:5",
            "2002:a00:5::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(!f.allows(ip.parse().unwrap()), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        let f = DestinationFilter::default();
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "192.0.2.1", "1.1.1.1", "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(f.allows(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn allow_entries_win_and_deny_entries_add() {
        let f = filter(&["127.0.0.1/32"], &["203.0.113.0/24"]);
        assert!(f.allows("127.0.0.1".parse().unwrap()));
        assert!(!f.allows("127.0.0.2".parse().unwrap()));
        assert!(!f.allows("203.0.113.7".parse().unwrap()));
        assert!(f.allows("198.51.100.7".parse().unwrap()));
        // An allowed IPv4 address is allowed in its IPv4-mapped form too.
        assert!(f.allows("::ffff:127.0.0.1".parse().unwrap()));
    }
}
