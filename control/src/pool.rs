//! The client address pool: dynamic addresses from ranges and lists, fixed per-user
//! addresses from chap-secrets, each address leased to at most one session at a time.
//!
//! # Allocation order: round robin, oldest released first
//!
//! Free dynamic addresses wait in a FIFO: a lease takes the address that has been free the
//! longest, and a released address goes to the back. An address is therefore not handed out
//! again until every other free address has been, which keeps a departed client's late
//! packets, a neighbour or conntrack entry still pointing at it, and the operator's logs
//! ("who had 10.0.0.7 at 14:02?") from being attributed to the next session straight away.
//! Lowest-free would reuse the same few addresses all day and maximise that confusion. At
//! start the FIFO holds the pool in configuration order, so the first sessions get the
//! addresses in the order the operator wrote them.
//!
//! Allocation and release are O(1) (amortised: an address reserved while queued is skipped
//! once when it reaches the front); a lookup from address to slot is one hash probe.
//!
//! # Fixed addresses
//!
//! A user whose chap-secrets entry lists host addresses gets the first of them not in use,
//! and only those ([`AddressRule::Fixed`]). Every address some user lists is *reserved*: it
//! is never handed out dynamically, even while its owner is offline, so the owner always
//! finds it free (unless the owner, or a second user listing the same address, holds it).
//! A fixed address may lie outside the dynamic ranges. [`AddressPool::set_reserved`] swaps
//! the reserved set when the secrets are reloaded: a newly reserved address that is leased
//! dynamically stays with its session and leaves the dynamic FIFO when released.
//!
//! # Local addresses
//!
//! Each lease carries our end of the tunnel too: the one local address shared by every
//! session, or, as Poptop does with a `localip` list, the local address paired with the
//! client address's position in the pool. Fixed addresses outside the pool use the first
//! local address.

use core::net::Ipv4Addr;
use std::collections::{HashMap, HashSet, VecDeque};

use tracing::warn;

/// The most addresses a pool holds: one per possible PPTP call ID.
pub const MAX_POOL_SIZE: usize = 65_535;

/// Which addresses a user may be given (the fourth column of chap-secrets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressRule {
    /// Any dynamic address (`*`).
    Pool,
    /// One of these addresses, first free first (host addresses in the column).
    Fixed(Vec<Ipv4Addr>),
    /// No address at all (`-`, or an empty column: pppd then refuses every address to an
    /// authenticated peer). The session cannot come up.
    Refused,
}

/// A client address with our end of the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The client's address (IPCP, peer side).
    pub peer: Ipv4Addr,
    /// Our address (IPCP, local side).
    pub local: Ipv4Addr,
}

/// Why no address was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every dynamic address is leased.
    #[error(
        "address pool exhausted: all {size} dynamic addresses are in use; widen the pool \
         (remoteip, or [addresses] pool) or lower the session limit to match"
    )]
    Exhausted {
        /// Dynamic addresses in the pool.
        size: usize,
    },
    /// Every fixed address of the user is leased (a second session of the same user, or
    /// another user listing the same address).
    #[error(
        "every fixed address of the user is in use ({addresses:?}); end the other session or \
         give the user another address in chap-secrets"
    )]
    FixedInUse {
        /// The user's addresses.
        addresses: Vec<Ipv4Addr>,
    },
    /// The user may have no address (`-` or an empty address column).
    #[error(
        "the user may have no address (`-` or an empty address column in chap-secrets); \
         write `*` there for a pool address"
    )]
    Refused,
}

/// Where an address of the pool stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Free for dynamic leases.
    Free,
    /// Leased (dynamically or as someone's fixed address).
    Leased,
    /// Free but kept for the users who list it.
    Reserved,
}

/// The address pool. Not thread-safe by itself: the daemon owns it in one task.
#[derive(Debug)]
pub struct AddressPool {
    /// Dynamic addresses, in configuration order.
    addresses: Vec<Ipv4Addr>,
    /// Local address per slot (`len() == addresses.len()`), or one shared.
    locals: Vec<Ipv4Addr>,
    /// Address -> slot.
    index: HashMap<Ipv4Addr, usize>,
    slots: Vec<Slot>,
    /// Whether the slot is in `free` (it may be there while no longer `Free`: skipped).
    queued: Vec<bool>,
    free: VecDeque<usize>,
    /// Addresses some user lists as fixed.
    reserved: HashSet<Ipv4Addr>,
    /// Leased fixed addresses outside the dynamic ranges.
    outside_leased: HashSet<Ipv4Addr>,
    /// Dynamic slots not reserved (the exhaustion message's size).
    dynamic_size: usize,
}

/// A pool that cannot be built (duplicate addresses, bad local address count).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolBuildError {
    /// No address at all.
    #[error("the pool has no address; give at least one client address range")]
    Empty,
    /// More than [`MAX_POOL_SIZE`] addresses.
    #[error(
        "the pool has {0} addresses, more than the {MAX_POOL_SIZE} sessions PPTP call IDs allow; \
         narrow the ranges"
    )]
    TooLarge(usize),
    /// An address appears twice.
    #[error("{0} appears twice in the pool; list every address once")]
    Duplicate(Ipv4Addr),
    /// The local address count is neither 1 nor the pool size.
    #[error(
        "{locals} local addresses for {pool} client addresses; give one local address shared \
         by all sessions, or exactly one per client address"
    )]
    LocalCount {
        /// Local addresses given.
        locals: usize,
        /// Pool addresses.
        pool: usize,
    },
}

impl AddressPool {
    /// A pool of `addresses` (in lease order) with `locals` (one shared, or one per
    /// address, paired by position), keeping `reserved` for the users who list them.
    pub fn new(
        addresses: &[Ipv4Addr],
        locals: &[Ipv4Addr],
        reserved: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Result<AddressPool, PoolBuildError> {
        if addresses.is_empty() || locals.is_empty() {
            return Err(PoolBuildError::Empty);
        }
        if addresses.len() > MAX_POOL_SIZE {
            return Err(PoolBuildError::TooLarge(addresses.len()));
        }
        if locals.len() != 1 && locals.len() != addresses.len() {
            return Err(PoolBuildError::LocalCount {
                locals: locals.len(),
                pool: addresses.len(),
            });
        }
        let mut index = HashMap::with_capacity(addresses.len());
        for (slot, &address) in addresses.iter().enumerate() {
            if index.insert(address, slot).is_some() {
                return Err(PoolBuildError::Duplicate(address));
            }
        }
        let mut pool = AddressPool {
            addresses: addresses.to_vec(),
            locals: locals.to_vec(),
            index,
            slots: vec![Slot::Free; addresses.len()],
            queued: vec![true; addresses.len()],
            free: (0..addresses.len()).collect(),
            reserved: HashSet::new(),
            outside_leased: HashSet::new(),
            dynamic_size: addresses.len(),
        };
        pool.set_reserved(reserved);
        Ok(pool)
    }

    /// Replaces the set of fixed addresses (after the secrets are reloaded). Leases stand;
    /// a newly reserved address leased dynamically is kept out of the FIFO once released.
    pub fn set_reserved(&mut self, reserved: impl IntoIterator<Item = Ipv4Addr>) {
        let reserved: HashSet<Ipv4Addr> = reserved.into_iter().collect();
        // Freed in pool order, so that the FIFO stays deterministic.
        let mut released: Vec<usize> = self
            .reserved
            .difference(&reserved)
            .filter_map(|a| self.index.get(a).copied())
            .collect();
        released.sort_unstable();
        for slot in released {
            if self.slots.get(slot) == Some(&Slot::Reserved) {
                self.make_free(slot);
            }
        }
        for &address in &reserved {
            if let Some(&slot) = self.index.get(&address)
                && let Some(state) = self.slots.get_mut(slot)
                && *state == Slot::Free
            {
                *state = Slot::Reserved;
            }
        }
        self.dynamic_size = self
            .addresses
            .iter()
            .filter(|a| !reserved.contains(a))
            .count();
        self.reserved = reserved;
    }

    /// An address for a user whose chap-secrets entry says `rule`. Exhaustion is logged.
    pub fn allocate(&mut self, rule: &AddressRule) -> Result<Lease, PoolError> {
        match rule {
            AddressRule::Refused => Err(PoolError::Refused),
            AddressRule::Pool => self.allocate_dynamic(),
            AddressRule::Fixed(addresses) => {
                for &address in addresses {
                    if let Some(lease) = self.take_fixed(address) {
                        return Ok(lease);
                    }
                }
                warn!(?addresses, "every fixed address of the user is in use");
                Err(PoolError::FixedInUse {
                    addresses: addresses.clone(),
                })
            }
        }
    }

    /// Gives `peer` back (session teardown). Returns whether it was leased: a second release
    /// of the same address, or of one never leased, changes nothing.
    pub fn release(&mut self, peer: Ipv4Addr) -> bool {
        if self.outside_leased.remove(&peer) {
            return true;
        }
        let Some(&slot) = self.index.get(&peer) else {
            return false;
        };
        if self.slots.get(slot) != Some(&Slot::Leased) {
            return false;
        }
        if self.reserved.contains(&peer) {
            if let Some(state) = self.slots.get_mut(slot) {
                *state = Slot::Reserved;
            }
        } else {
            self.make_free(slot);
        }
        true
    }

    /// Whether `peer` is leased now.
    pub fn is_leased(&self, peer: Ipv4Addr) -> bool {
        self.outside_leased.contains(&peer)
            || self
                .index
                .get(&peer)
                .is_some_and(|&slot| self.slots.get(slot) == Some(&Slot::Leased))
    }

    /// Addresses leased now.
    pub fn leased(&self) -> usize {
        self.slots.iter().filter(|s| **s == Slot::Leased).count() + self.outside_leased.len()
    }

    /// Dynamic addresses (the pool minus the reserved ones).
    pub fn dynamic_size(&self) -> usize {
        self.dynamic_size
    }

    /// Dynamic addresses free now.
    pub fn dynamic_free(&self) -> usize {
        self.slots.iter().filter(|s| **s == Slot::Free).count()
    }

    fn allocate_dynamic(&mut self) -> Result<Lease, PoolError> {
        while let Some(slot) = self.free.pop_front() {
            if let Some(queued) = self.queued.get_mut(slot) {
                *queued = false;
            }
            if let Some(state) = self.slots.get_mut(slot)
                && *state == Slot::Free
            {
                *state = Slot::Leased;
                if let Some(lease) = self.lease_of(slot) {
                    return Ok(lease);
                }
            }
        }
        warn!(size = self.dynamic_size, "address pool exhausted");
        Err(PoolError::Exhausted {
            size: self.dynamic_size,
        })
    }

    fn take_fixed(&mut self, address: Ipv4Addr) -> Option<Lease> {
        match self.index.get(&address) {
            Some(&slot) => {
                let state = self.slots.get_mut(slot)?;
                if *state == Slot::Leased {
                    return None;
                }
                // A fixed address is reserved, so normally `Reserved`; `Free` only when the
                // rule names an address the reserved set does not (a caller's own rule).
                *state = Slot::Leased;
                self.lease_of(slot)
            }
            None => {
                if !self.outside_leased.insert(address) {
                    return None;
                }
                Some(Lease {
                    peer: address,
                    local: *self.locals.first()?,
                })
            }
        }
    }

    fn lease_of(&self, slot: usize) -> Option<Lease> {
        let peer = *self.addresses.get(slot)?;
        let local = if self.locals.len() == 1 {
            *self.locals.first()?
        } else {
            *self.locals.get(slot)?
        };
        Some(Lease { peer, local })
    }

    fn make_free(&mut self, slot: usize) {
        if let Some(state) = self.slots.get_mut(slot) {
            *state = Slot::Free;
        }
        if let Some(queued) = self.queued.get_mut(slot)
            && !*queued
        {
            *queued = true;
            self.free.push_back(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn pool(n: u8, reserved: &[Ipv4Addr]) -> AddressPool {
        let addresses: Vec<_> = (1..=n).map(a).collect();
        AddressPool::new(&addresses, &[a(254)], reserved.iter().copied()).unwrap()
    }

    #[test]
    fn round_robin_hands_out_the_longest_free_first() {
        let mut p = pool(3, &[]);
        let first = p.allocate(&AddressRule::Pool).unwrap();
        assert_eq!(
            first,
            Lease {
                peer: a(1),
                local: a(254)
            }
        );
        assert!(p.release(a(1)));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(2));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(3));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(1));
    }

    #[test]
    fn exhaustion_is_an_error_and_release_recovers() {
        let mut p = pool(2, &[]);
        p.allocate(&AddressRule::Pool).unwrap();
        p.allocate(&AddressRule::Pool).unwrap();
        assert_eq!(
            p.allocate(&AddressRule::Pool),
            Err(PoolError::Exhausted { size: 2 })
        );
        assert!(p.release(a(2)));
        assert!(!p.release(a(2)), "a second release is refused");
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(2));
    }

    #[test]
    fn reserved_addresses_go_only_to_their_owners() {
        let mut p = pool(3, &[a(2)]);
        assert_eq!(p.dynamic_size(), 2);
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(1));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(3));
        assert!(p.allocate(&AddressRule::Pool).is_err());
        let fixed = AddressRule::Fixed(vec![a(2)]);
        assert_eq!(p.allocate(&fixed).unwrap().peer, a(2));
        assert_eq!(
            p.allocate(&fixed),
            Err(PoolError::FixedInUse {
                addresses: vec![a(2)]
            })
        );
        assert!(p.release(a(2)));
        p.release(a(1));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(1));
        assert_eq!(p.allocate(&fixed).unwrap().peer, a(2));
    }

    #[test]
    fn fixed_addresses_outside_the_ranges_use_the_first_local() {
        let mut p = pool(1, &[a(100)]);
        let rule = AddressRule::Fixed(vec![a(100), a(101)]);
        assert_eq!(
            p.allocate(&rule).unwrap(),
            Lease {
                peer: a(100),
                local: a(254)
            }
        );
        assert_eq!(p.allocate(&rule).unwrap().peer, a(101));
        assert!(p.allocate(&rule).is_err());
        assert!(p.is_leased(a(100)));
        assert!(p.release(a(100)));
        assert!(!p.is_leased(a(100)));
        assert_eq!(p.leased(), 1);
    }

    #[test]
    fn refused_users_get_nothing() {
        let mut p = pool(1, &[]);
        assert_eq!(p.allocate(&AddressRule::Refused), Err(PoolError::Refused));
    }

    #[test]
    fn paired_local_addresses_follow_the_slot() {
        let mut p = AddressPool::new(&[a(1), a(2)], &[a(101), a(102)], []).unwrap();
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().local, a(101));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().local, a(102));
    }

    #[test]
    fn reloading_reservations_keeps_leases_and_moves_addresses() {
        let mut p = pool(3, &[]);
        let lease = p.allocate(&AddressRule::Pool).unwrap();
        p.set_reserved([a(1), a(2)]);
        assert!(p.is_leased(lease.peer));
        assert_eq!(p.dynamic_size(), 1);
        p.release(a(1));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(3));
        assert!(p.allocate(&AddressRule::Pool).is_err());
        p.set_reserved([]);
        assert_eq!(p.dynamic_free(), 2);
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(1));
        assert_eq!(p.allocate(&AddressRule::Pool).unwrap().peer, a(2));
    }

    #[test]
    fn bad_pools_are_refused() {
        assert_eq!(
            AddressPool::new(&[], &[a(1)], []).unwrap_err(),
            PoolBuildError::Empty
        );
        assert_eq!(
            AddressPool::new(&[a(1), a(1)], &[a(9)], []).unwrap_err(),
            PoolBuildError::Duplicate(a(1))
        );
        assert_eq!(
            AddressPool::new(&[a(1), a(2), a(3)], &[a(8), a(9)], []).unwrap_err(),
            PoolBuildError::LocalCount { locals: 2, pool: 3 }
        );
        let big: Vec<_> = (0..=MAX_POOL_SIZE as u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        assert_eq!(
            AddressPool::new(&big, &[a(9)], []).unwrap_err(),
            PoolBuildError::TooLarge(MAX_POOL_SIZE + 1)
        );
    }
}
