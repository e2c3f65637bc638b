//! The index from client tunnel address to call ID, read per downstream packet.
//!
//! A fixed array of 65,536 buckets, each an `arc-swap` pointer to an immutable list of
//! (address, call ID) pairs. A read hashes the address, loads one bucket and scans it (one
//! entry in the common case: 65,535 calls over 65,536 buckets, and pool addresses are
//! consecutive, which the hash keeps apart). A write (establish, remove,
//! replace: rare next to packets) rebuilds only the bucket it touches and publishes it with
//! one store, so readers see the bucket before or after the change, never half of it.
//!
//! Why not the alternatives: an `arc-swap`'d `HashMap` rebuilt on every write copies every
//! entry per establish, quadratic when 65,535 clients reconnect after a restart; an
//! open-addressing table of atomics reads faster by one load but needs tombstones that only
//! a full rebuild clears, and that rebuild needs this same publication step anyway.
//!
//! Only the call table's writer calls [`AddressIndex::insert`] and [`AddressIndex::remove`]
//! (they are not atomic read-modify-writes: two concurrent writers could lose an update).

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

/// log2 of the number of buckets.
const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// The calls whose addresses hash to one bucket; never empty (an empty bucket is `None`).
#[derive(Debug)]
struct Bucket {
    first: (Ipv4Addr, u16),
    /// Collisions: empty (no allocation) almost always.
    rest: Box<[(Ipv4Addr, u16)]>,
}

impl Bucket {
    fn entries(&self) -> impl Iterator<Item = &(Ipv4Addr, u16)> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    /// A bucket of these entries, `None` if there are none.
    fn from_entries(mut entries: impl Iterator<Item = (Ipv4Addr, u16)>) -> Option<Bucket> {
        let first = entries.next()?;
        Some(Bucket {
            first,
            rest: entries.collect(),
        })
    }
}

/// Tunnel address to call ID; see the module documentation.
#[derive(Debug)]
pub struct AddressIndex {
    buckets: Box<[ArcSwapOption<Bucket>]>,
}

impl Default for AddressIndex {
    fn default() -> Self {
        AddressIndex::new()
    }
}

/// The low half of the address folded with the high half: every address of a pool inside
/// one /16 lands in its own bucket (measured: a multiplicative hash put a /16 pool in 53,187
/// buckets of 65,536), and scattered addresses still mix all 32 bits.
fn bucket_of(address: Ipv4Addr) -> usize {
    let a = u32::from(address);
    let hash = (a ^ (a >> BUCKET_BITS)) & (BUCKETS as u32 - 1);
    // u32 to usize is lossless on every target the datapath runs on.
    hash as usize
}

impl AddressIndex {
    /// An empty index (allocates its 65,536 empty buckets: 512 KiB).
    pub fn new() -> AddressIndex {
        AddressIndex {
            buckets: (0..BUCKETS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    fn bucket(&self, address: Ipv4Addr) -> Option<&ArcSwapOption<Bucket>> {
        self.buckets.get(bucket_of(address))
    }

    /// The call ID with this tunnel address. Lock-free, allocation-free.
    pub fn get(&self, address: Ipv4Addr) -> Option<u16> {
        let guard = self.bucket(address)?.load();
        let bucket = guard.as_ref()?;
        bucket
            .entries()
            .find(|(a, _)| *a == address)
            .map(|&(_, call_id)| call_id)
    }

    /// Maps `address` to `call_id`, replacing its previous call ID if it had one. Writer only.
    pub fn insert(&self, address: Ipv4Addr, call_id: u16) {
        let Some(slot) = self.bucket(address) else {
            return;
        };
        let current = slot.load_full();
        let others = current
            .iter()
            .flat_map(|bucket| bucket.entries())
            .filter(|(a, _)| *a != address)
            .copied();
        let bucket = Bucket::from_entries(std::iter::once((address, call_id)).chain(others));
        slot.store(bucket.map(Arc::new));
    }

    /// Removes `address` if it maps to `call_id` (a stale remove never takes away another
    /// call's address). Writer only.
    pub fn remove(&self, address: Ipv4Addr, call_id: u16) {
        let Some(slot) = self.bucket(address) else {
            return;
        };
        let Some(current) = slot.load_full() else {
            return;
        };
        if !current.entries().any(|&e| e == (address, call_id)) {
            return;
        }
        let rest = current
            .entries()
            .filter(|&&e| e != (address, call_id))
            .copied();
        slot.store(Bucket::from_entries(rest).map(Arc::new));
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn insert_get_remove() {
        let index = AddressIndex::new();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(index.get(a), None);
        index.insert(a, 7);
        assert_eq!(index.get(a), Some(7));
        index.remove(a, 8);
        assert_eq!(
            index.get(a),
            Some(7),
            "a remove for another call keeps the entry"
        );
        index.remove(a, 7);
        assert_eq!(index.get(a), None);
    }

    #[test]
    fn colliding_addresses_share_a_bucket() {
        let index = AddressIndex::new();
        // Find three addresses in one bucket.
        let target = bucket_of(Ipv4Addr::new(10, 0, 0, 1));
        let same: Vec<Ipv4Addr> = (0u32..)
            .map(|n| Ipv4Addr::from(0x0a00_0000 + n))
            .filter(|a| bucket_of(*a) == target)
            .take(3)
            .collect();
        for (i, a) in same.iter().enumerate() {
            index.insert(*a, i as u16 + 1);
        }
        for (i, a) in same.iter().enumerate() {
            assert_eq!(index.get(*a), Some(i as u16 + 1));
        }
        index.remove(same[1], 2);
        assert_eq!(index.get(same[0]), Some(1));
        assert_eq!(index.get(same[1]), None);
        assert_eq!(index.get(same[2]), Some(3));
    }

    #[test]
    fn a_pool_spreads_over_distinct_buckets() {
        // 65,535 consecutive addresses (a /16 pool, aligned or not): distinct buckets, so
        // every read scans one entry.
        for start in [0x0a40_0001u32, 0x0a40_8000] {
            let buckets: std::collections::HashSet<usize> = (0u32..65_535)
                .map(|n| bucket_of(Ipv4Addr::from(start + n)))
                .collect();
            assert_eq!(buckets.len(), 65_535, "pool from {}", Ipv4Addr::from(start));
        }
    }

    #[test]
    fn scattered_addresses_keep_buckets_short() {
        // 65,535 pseudo-random addresses (a fixed LCG): the longest bucket stays short.
        let mut counts = vec![0u32; BUCKETS];
        let mut x = 0x1234_5678u32;
        for _ in 0..65_535 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            counts[bucket_of(Ipv4Addr::from(x))] += 1;
        }
        let longest = counts.iter().copied().max().unwrap_or(0);
        assert!(longest <= 10, "longest bucket {longest}");
    }
}
