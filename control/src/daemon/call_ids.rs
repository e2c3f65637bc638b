//! Local Call IDs: unique among the live calls of the whole concentrator (the datapath's
//! call table is indexed by them) and not predictable (a peer that could guess another
//! call's ID could aim spoofed GRE at it; the datapath also checks the source address).
//!
//! Each allocation starts its search at a random ID and takes the first free one after it,
//! skipping 0 (reserved by the datapath). An ID is held by a [`CallIdLease`] and returns to
//! the free set when the lease is dropped, which the session task does only after the call
//! has left the datapath.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The shared allocator.
#[derive(Debug, Default)]
pub struct CallIds {
    live: Mutex<HashSet<u16>>,
}

/// One allocated Call ID, freed on drop.
#[derive(Debug)]
pub struct CallIdLease {
    id: u16,
    owner: Arc<CallIds>,
}

impl CallIdLease {
    /// The Call ID.
    pub fn id(&self) -> u16 {
        self.id
    }
}

impl Drop for CallIdLease {
    fn drop(&mut self) {
        self.owner.lock().remove(&self.id);
    }
}

impl CallIds {
    /// No call yet.
    pub fn new() -> Arc<CallIds> {
        Arc::new(CallIds::default())
    }

    /// Call IDs in use.
    pub fn live(&self) -> usize {
        self.lock().len()
    }

    /// A free Call ID, searching from `random_start`; `None` when all 65,535 are taken.
    pub fn allocate(self: &Arc<Self>, random_start: u16) -> Option<CallIdLease> {
        let mut live = self.lock();
        let id = (0..=u16::MAX)
            .map(|offset| random_start.wrapping_add(offset))
            .find(|id| *id != 0 && !live.contains(id))?;
        live.insert(id);
        Some(CallIdLease {
            id,
            owner: Arc::clone(self),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<u16>> {
        // Inserts and removes are single operations: a poisoned set is still consistent.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn ids_are_unique_skip_zero_and_come_back_on_drop() {
        let ids = CallIds::new();
        let a = ids.allocate(u16::MAX).expect("free");
        assert_eq!(a.id(), u16::MAX);
        // The search wraps past 0, which is reserved.
        let b = ids.allocate(u16::MAX).expect("free");
        assert_eq!(b.id(), 1);
        let c = ids.allocate(1).expect("free");
        assert_eq!(c.id(), 2);
        assert_eq!(ids.live(), 3);
        drop(b);
        assert_eq!(ids.live(), 2);
        assert_eq!(ids.allocate(1).map(|l| l.id()), Some(1));
    }

    #[test]
    fn exhaustion_is_reported() {
        let ids = CallIds::new();
        // Each search starts where a free ID is, so filling the space stays quick.
        let leases: Vec<_> = (1..=u16::MAX).filter_map(|id| ids.allocate(id)).collect();
        assert_eq!(leases.len(), usize::from(u16::MAX));
        assert!(ids.allocate(7).is_none());
    }
}
