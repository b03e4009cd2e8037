//! Fair shares of the delivery slots: at most `concurrencyPerTenant` attempts of one tenant and
//! `concurrencyPerDestination` of one recipient domain run at once, so a tenant sending to a
//! tarpit MX, or one slow destination, cannot hold the slots every other tenant needs. The
//! scheduler asks [`Running::admits`] before it starts an attempt and parks what must wait. Pure.

use crate::spool::{Envelope, RcptStatus};
use std::collections::HashMap;

/// What one running attempt holds: its tenant and the recipient domains it delivers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub tenant: String,
    pub destinations: Vec<String>,
}

impl Claim {
    /// The claim of an attempt of `env`: the domains of its pending recipients, unless delivery
    /// has only one route (`per_destination` off: smarthost or capture).
    pub fn of(env: &Envelope, per_destination: bool) -> Self {
        let mut destinations: Vec<String> = if per_destination {
            env.recipients.iter().filter(|r| r.status == RcptStatus::Pending).filter_map(|r| r.address.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase()).collect()
        } else {
            Vec::new()
        };
        destinations.sort();
        destinations.dedup();
        Self { tenant: env.tenant.clone(), destinations }
    }
}

#[derive(Debug, Default)]
pub struct Running {
    tenants: HashMap<String, usize>,
    destinations: HashMap<String, usize>,
}

impl Running {
    pub fn admits(&self, claim: &Claim, per_tenant: usize, per_destination: usize) -> bool {
        self.tenants.get(&claim.tenant).copied().unwrap_or(0) < per_tenant && claim.destinations.iter().all(|d| self.destinations.get(d).copied().unwrap_or(0) < per_destination)
    }

    pub fn start(&mut self, claim: &Claim) {
        *self.tenants.entry(claim.tenant.clone()).or_default() += 1;
        for d in &claim.destinations {
            *self.destinations.entry(d.clone()).or_default() += 1;
        }
    }

    pub fn finish(&mut self, claim: &Claim) {
        release(&mut self.tenants, &claim.tenant);
        for d in &claim.destinations {
            release(&mut self.destinations, d);
        }
    }
}

fn release(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Recipient;

    fn env(tenant: &str, rcpts: &[&str]) -> Envelope {
        Envelope {
            id: "q".into(),
            sender: "s@x.test".into(),
            recipients: rcpts.iter().map(|r| Recipient::pending(r)).collect(),
            tenant: tenant.into(),
            key: String::new(),
            created: 0,
            next_attempt: 0,
            attempts: 0,
        }
    }

    #[test]
    fn a_tenant_and_a_destination_each_get_at_most_their_share() {
        let mut running = Running::default();
        let tarpit = Claim::of(&env("a", &["x@Tarpit.test", "y@tarpit.test"]), true);
        assert_eq!(tarpit.destinations, ["tarpit.test"]);
        for _ in 0..2 {
            assert!(running.admits(&tarpit, 3, 2));
            running.start(&tarpit);
        }
        assert!(!running.admits(&tarpit, 3, 2), "the destination is at its share");
        let other_domain = Claim::of(&env("a", &["z@fine.test"]), true);
        assert!(running.admits(&other_domain, 3, 2));
        running.start(&other_domain);
        assert!(!running.admits(&Claim::of(&env("a", &["w@else.test"]), true), 3, 2), "the tenant is at its share");
        let b = Claim::of(&env("b", &["r@fine.test"]), true);
        assert!(running.admits(&b, 3, 2), "another tenant is served");
        running.finish(&tarpit);
        assert!(running.admits(&tarpit, 3, 2));
        running.finish(&tarpit);
        running.finish(&other_domain);
        assert!(running.tenants.is_empty() && running.destinations.is_empty());
    }

    #[test]
    fn one_route_means_no_destination_share() {
        let c = Claim::of(&env("a", &["x@a.test", "y@b.test"]), false);
        assert!(c.destinations.is_empty());
        let mut done = env("a", &["x@a.test", "y@b.test"]);
        done.recipients[0].status = RcptStatus::Delivered;
        assert_eq!(Claim::of(&done, true).destinations, ["b.test"]);
    }
}
