//! Who may do what: API key authentication ([`auth`]), limiters ([`limits`]), unusual sending
//! per key ([`anomaly`]) and the sender rule
//! (below): a key may send only as the domains of its own tenant, narrowed by its allowed list.

pub mod anomaly;
pub mod auth;
pub mod limits;
pub mod sender;

use crate::config::Runtime;

/// Whether `key_id` may use `domain` as a sender domain (envelope or `From:`).
pub fn may_send_as(rt: &Runtime, key_id: &str, domain: &str) -> bool {
    let (Some(key), Some(dom)) = (rt.keys.get(key_id), rt.domains.get(domain)) else {
        return false;
    };
    dom.tenant == key.tenant && (key.allowed_domains.is_empty() || key.allowed_domains.contains(domain))
}
