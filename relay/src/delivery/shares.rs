//! Fair shares of the delivery slots: at most `concurrencyPerTenant` attempts of one tenant and
//! `concurrencyPerDestination` of one recipient domain run at once, so a tenant sending to a
//! tarpit MX, or one slow destination, cannot hold the slots every other tenant needs. The
//! scheduler asks [`Running::blocked_by`] before it starts an attempt and parks what must wait
//! under the share that blocks it ([`Parked`]); when an attempt ends, one message parked under
//! each share it held goes back to the scheduler, so a deep queue of one tenant costs nothing
//! per completion beyond the slot it frees. Pure.

use crate::spool::{Envelope, RcptStatus};
use std::collections::{HashMap, VecDeque};

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

/// A share of the slots: one tenant's, or one destination's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Share {
    Tenant(String),
    Destination(String),
}

impl Running {
    /// The share that is full for `claim`, if any.
    pub fn blocked_by(&self, claim: &Claim, per_tenant: usize, per_destination: usize) -> Option<Share> {
        if self.tenants.get(&claim.tenant).copied().unwrap_or(0) >= per_tenant {
            return Some(Share::Tenant(claim.tenant.clone()));
        }
        claim.destinations.iter().find(|d| self.destinations.get(*d).copied().unwrap_or(0) >= per_destination).map(|d| Share::Destination(d.clone()))
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

/// Messages waiting for a full share, in the order they came due.
#[derive(Debug)]
pub struct Parked<T> {
    by_share: HashMap<Share, VecDeque<T>>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Self { by_share: HashMap::new() }
    }
}

impl<T> Parked<T> {
    pub fn park(&mut self, share: Share, item: T) {
        self.by_share.entry(share).or_default().push_back(item);
    }

    /// What `claim`'s end makes room for: the first message parked under each share it held.
    pub fn release(&mut self, claim: &Claim) -> Vec<T> {
        let shares = std::iter::once(Share::Tenant(claim.tenant.clone())).chain(claim.destinations.iter().cloned().map(Share::Destination));
        let mut out = Vec::new();
        for share in shares {
            if let Some(queue) = self.by_share.get_mut(&share) {
                out.extend(queue.pop_front());
                if queue.is_empty() {
                    self.by_share.remove(&share);
                }
            }
        }
        out
    }

    /// Everything parked (the shares changed).
    pub fn drain(&mut self) -> Vec<T> {
        self.by_share.drain().flat_map(|(_, q)| q).collect()
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
            tags: Default::default(),
        }
    }

    #[test]
    fn a_tenant_and_a_destination_each_get_at_most_their_share() {
        let mut running = Running::default();
        let tarpit = Claim::of(&env("a", &["x@Tarpit.test", "y@tarpit.test"]), true);
        assert_eq!(tarpit.destinations, ["tarpit.test"]);
        for _ in 0..2 {
            assert!(running.blocked_by(&tarpit, 3, 2).is_none());
            running.start(&tarpit);
        }
        assert!(running.blocked_by(&tarpit, 3, 2).is_some(), "the destination is at its share");
        let other_domain = Claim::of(&env("a", &["z@fine.test"]), true);
        assert!(running.blocked_by(&other_domain, 3, 2).is_none());
        running.start(&other_domain);
        assert!(running.blocked_by(&Claim::of(&env("a", &["w@else.test"]), true), 3, 2).is_some(), "the tenant is at its share");
        let b = Claim::of(&env("b", &["r@fine.test"]), true);
        assert!(running.blocked_by(&b, 3, 2).is_none(), "another tenant is served");
        running.finish(&tarpit);
        assert!(running.blocked_by(&tarpit, 3, 2).is_none());
        running.finish(&tarpit);
        running.finish(&other_domain);
        assert!(running.tenants.is_empty() && running.destinations.is_empty());
    }

    #[test]
    fn an_ended_attempt_releases_one_message_per_share_it_held() {
        let mut parked = Parked::default();
        for i in 0..1000 {
            parked.park(Share::Tenant("a".into()), i);
        }
        parked.park(Share::Destination("slow.test".into()), 5000);
        let claim = Claim { tenant: "a".into(), destinations: vec!["slow.test".into()] };
        assert_eq!(parked.release(&claim), [0, 5000]);
        assert_eq!(parked.release(&claim), [1]);
        assert_eq!(parked.release(&Claim { tenant: "b".into(), destinations: vec![] }), Vec::<i32>::new());
        assert_eq!(parked.drain().len(), 998);
        let running = Running::default();
        assert_eq!(running.blocked_by(&claim, 0, 5), Some(Share::Tenant("a".into())));
        assert_eq!(running.blocked_by(&claim, 5, 0), Some(Share::Destination("slow.test".into())));
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
