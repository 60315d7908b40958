//! Connection limits at accept time: sessions in all, per client address, and per
//! tenant (on the listeners that name one with a `max_connections`); connections and
//! commands per client address a minute. Loopback and the trusted networks are exempt
//! from the per-address limits (Postfix exempts `$mynetworks` the same way): a local test
//! suite or a benchmark sends in parallel from one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::address_range::AddressRange;
use crate::rate::{CommandBudget, RateLimiter, SharedRates};

/// The window of the per-address rates.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Counts open sessions; a [`Permit`] is one session and gives its place back when dropped.
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
    connection_rate: Option<Arc<RateLimiter>>,
    command_rate: Option<Arc<RateLimiter>>,
    /// Addresses the per-address limits do not apply to, loopback besides.
    trusted: Vec<AddressRange>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_tenant: HashMap<Arc<str>, usize>,
}

/// The tenant a connection is for, and how many sessions it may have at once.
pub struct TenantCap {
    pub name: Arc<str>,
    pub max: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyInAll,
    TooManyFromAddress,
    TooManyForTenant,
    TooFastFromAddress,
}

pub struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
    tenant: Option<Arc<str>>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Admission> {
        Admission::with_rates(max_total, max_per_ip, 0, 0, None)
    }

    /// Also limits connections and commands per client address a minute (0: no limit),
    /// with the other nodes that share `shared`, if given.
    pub fn with_rates(
        max_total: usize,
        max_per_ip: usize,
        connections_a_minute: u32,
        commands_a_minute: u32,
        shared: Option<Arc<SharedRates>>,
    ) -> Arc<Admission> {
        let rate =
            |name, max: u32| (max > 0).then(|| Arc::new(RateLimiter::sharing(name, max, RATE_WINDOW, shared.clone())));
        Arc::new(Admission {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
            connection_rate: rate("connections", connections_a_minute),
            command_rate: rate("commands", commands_a_minute),
            trusted: Vec::new(),
        })
    }

    /// Exempts these networks (as well as loopback) from the per-address limits.
    pub fn trusting(mut self: Arc<Self>, trusted: Vec<AddressRange>) -> Arc<Admission> {
        Arc::get_mut(&mut self)
            .expect("trusted networks are set before sharing")
            .trusted = trusted;
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        ip.to_canonical().is_loopback() || self.trusted.iter().any(|range| range.contains(ip))
    }

    /// The command rate the session of a client at `ip` is held to, if there is one.
    pub fn command_budget(&self, ip: IpAddr) -> Option<CommandBudget> {
        if self.is_trusted(ip) {
            return None;
        }
        self.command_rate.as_ref().map(|limiter| CommandBudget {
            limiter: Arc::clone(limiter),
            ip,
        })
    }

    /// Counts a new connection from `ip` against its address's rate: false if it is one
    /// too many. Asks the shared store when this node's lease is used up.
    pub async fn connection_allowed(&self, ip: IpAddr) -> bool {
        match &self.connection_rate {
            Some(rate) if !self.is_trusted(ip) => rate.allow(ip).await,
            _ => true,
        }
    }

    /// Takes a place for a session from `ip` (the per-address rate is
    /// [`Admission::connection_allowed`]'s).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, tenant: Option<&TenantCap>) -> Result<Permit, Refusal> {
        let trusted = self.is_trusted(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(Refusal::TooManyInAll);
        }
        if !trusted && open.per_ip.get(&ip).is_some_and(|&n| n >= self.max_per_ip) {
            return Err(Refusal::TooManyFromAddress);
        }
        if let Some(cap) = tenant
            && open.per_tenant.get(&cap.name).is_some_and(|&n| n >= cap.max)
        {
            return Err(Refusal::TooManyForTenant);
        }
        *open.per_ip.entry(ip).or_insert(0) += 1;
        if let Some(cap) = tenant {
            *open.per_tenant.entry(Arc::clone(&cap.name)).or_insert(0) += 1;
        }
        open.total += 1;
        Ok(Permit {
            admission: Arc::clone(self),
            ip,
            tenant: tenant.map(|cap| Arc::clone(&cap.name)),
        })
    }

    pub fn open_sessions(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
        if let Some(tenant) = &self.tenant
            && let Some(n) = open.per_tenant.get_mut(tenant)
        {
            *n -= 1;
            if *n == 0 {
                open.per_tenant.remove(tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_all_and_per_address_and_places_come_back() {
        let a = Admission::new(3, 2);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = a.admit(one, None).unwrap();
        let _p2 = a.admit(one, None).unwrap();
        assert_eq!(a.admit(one, None).err(), Some(Refusal::TooManyFromAddress));
        let _p3 = a.admit(two, None).unwrap();
        assert_eq!(a.admit(two, None).err(), Some(Refusal::TooManyInAll));
        drop(p1);
        assert_eq!(a.open_sessions(), 2);
        assert!(a.admit(one, None).is_ok());
    }

    #[test]
    fn a_tenant_has_its_own_cap_across_addresses() {
        let a = Admission::new(10, 10);
        let cap = TenantCap {
            name: "a".into(),
            max: 2,
        };
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = a.admit(one, Some(&cap)).unwrap();
        let _p2 = a.admit(two, Some(&cap)).unwrap();
        assert_eq!(a.admit(two, Some(&cap)).err(), Some(Refusal::TooManyForTenant));
        // Other tenants and tenant-less listeners are not counted against it.
        assert!(a.admit(two, None).is_ok());
        drop(p1);
        assert!(a.admit(one, Some(&cap)).is_ok());
    }

    #[tokio::test]
    async fn connections_a_minute_per_address() {
        let a = Admission::with_rates(10, 10, 2, 0, None);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(a.connection_allowed(one).await);
        assert!(a.connection_allowed(one).await);
        assert!(!a.connection_allowed(one).await);
        assert!(a.connection_allowed("192.0.2.2".parse().unwrap()).await);
        assert!(a.command_budget(one).is_none());
    }

    #[tokio::test]
    async fn loopback_and_trusted_networks_have_no_per_address_limits() {
        let a = Admission::with_rates(100, 1, 1, 1, None).trusting(vec!["10.0.0.0/8".parse().unwrap()]);
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3"] {
            let ip: IpAddr = ip.parse().unwrap();
            let _held: Vec<Permit> = (0..3).map(|_| a.admit(ip, None).unwrap()).collect();
            for _ in 0..3 {
                assert!(a.connection_allowed(ip).await, "{ip}");
            }
            assert!(a.command_budget(ip).is_none(), "{ip}");
        }
        // Other addresses keep them, and everybody counts toward the total.
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let _one = a.admit(other, None).unwrap();
        assert_eq!(a.admit(other, None).err(), Some(Refusal::TooManyFromAddress));
        assert!(a.connection_allowed(other).await);
        assert!(!a.connection_allowed(other).await);
        assert!(a.command_budget(other).is_some());
        let b = Admission::new(2, 10);
        let _p = (
            b.admit("127.0.0.1".parse().unwrap(), None).unwrap(),
            b.admit("::1".parse().unwrap(), None).unwrap(),
        );
        assert_eq!(b.admit("::1".parse().unwrap(), None).err(), Some(Refusal::TooManyInAll));
    }
}
