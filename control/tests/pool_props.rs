//! Pool properties under random operation sequences, against a plain model: no address is
//! ever leased twice, every lease comes from the user's allowed addresses, a release
//! returns the address, and the pool is exhausted exactly when the model says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use xpptp_control::pool::{AddressPool, AddressRule, MAX_POOL_SIZE, PoolError};

#[derive(Debug, Clone)]
enum Op {
    Dynamic,
    Fixed(u8),
    Release(u8),
    Reserve(Vec<u8>),
}

fn a(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Dynamic),
        2 => (0u8..24).prop_map(Op::Fixed),
        4 => (0u8..24).prop_map(Op::Release),
        1 => proptest::collection::vec(0u8..24, 0..4).prop_map(Op::Reserve),
    ]
}

proptest! {
    #[test]
    fn never_double_allocated_and_release_returns(
        size in 1u8..16,
        reserved in proptest::collection::vec(0u8..24, 0..4),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        // Pool 10.0.0.1..=size; fixed addresses may lie inside or outside it (up to .23).
        let addresses: Vec<Ipv4Addr> = (1..=size).map(a).collect();
        let mut reserved: HashSet<Ipv4Addr> = reserved.into_iter().map(|n| a(n + 1)).collect();
        let mut pool = AddressPool::new(&addresses, &[a(254)], reserved.iter().copied()).unwrap();
        let mut leased: HashSet<Ipv4Addr> = HashSet::new();
        for op in ops {
            match op {
                Op::Dynamic => match pool.allocate(&AddressRule::Pool) {
                    Ok(lease) => {
                        prop_assert!(addresses.contains(&lease.peer));
                        prop_assert!(!reserved.contains(&lease.peer), "reserved {} leased dynamically", lease.peer);
                        prop_assert!(leased.insert(lease.peer), "{} leased twice", lease.peer);
                        prop_assert_eq!(lease.local, a(254));
                    }
                    Err(PoolError::Exhausted { .. }) => {
                        let free = addresses.iter().filter(|x| !leased.contains(x) && !reserved.contains(x)).count();
                        prop_assert_eq!(free, 0, "exhausted with free addresses");
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                },
                Op::Fixed(n) => {
                    let wanted = a(n + 1);
                    match pool.allocate(&AddressRule::Fixed(vec![wanted])) {
                        Ok(lease) => {
                            prop_assert_eq!(lease.peer, wanted);
                            prop_assert!(leased.insert(wanted), "{} leased twice", wanted);
                        }
                        Err(PoolError::FixedInUse { .. }) => prop_assert!(leased.contains(&wanted)),
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Release(n) => {
                    let address = a(n + 1);
                    prop_assert_eq!(pool.release(address), leased.remove(&address));
                    prop_assert!(!pool.is_leased(address));
                }
                Op::Reserve(list) => {
                    reserved = list.into_iter().map(|n| a(n + 1)).collect();
                    pool.set_reserved(reserved.iter().copied());
                }
            }
            prop_assert_eq!(pool.leased(), leased.len());
            for address in &leased {
                prop_assert!(pool.is_leased(*address));
            }
        }
        // Everything released: every unreserved pool address can be leased again, once.
        for address in leased.drain() {
            prop_assert!(pool.release(address));
        }
        let mut again = HashSet::new();
        while let Ok(lease) = pool.allocate(&AddressRule::Pool) {
            prop_assert!(again.insert(lease.peer));
        }
        let unreserved = addresses.iter().filter(|x| !reserved.contains(x)).count();
        prop_assert_eq!(again.len(), unreserved);
    }
}

#[test]
fn a_full_size_pool_leases_every_address_once() {
    let addresses: Vec<Ipv4Addr> = (0..MAX_POOL_SIZE as u32)
        .map(|i| Ipv4Addr::from(0x0a00_0001 + i))
        .collect();
    let mut pool = AddressPool::new(&addresses, &[Ipv4Addr::new(10, 255, 255, 254)], []).unwrap();
    let mut seen = HashSet::new();
    for _ in 0..MAX_POOL_SIZE {
        assert!(seen.insert(pool.allocate(&AddressRule::Pool).unwrap().peer));
    }
    assert_eq!(
        pool.allocate(&AddressRule::Pool),
        Err(PoolError::Exhausted {
            size: MAX_POOL_SIZE
        })
    );
    assert!(pool.release(addresses[777]));
    assert_eq!(
        pool.allocate(&AddressRule::Pool).unwrap().peer,
        addresses[777]
    );
}
