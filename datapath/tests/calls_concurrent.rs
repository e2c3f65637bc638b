//! Readers on several threads while the one writer establishes, removes and replaces calls:
//! no reader ever sees a torn entry, another call's entry, or a freed one. Bounded loops,
//! no timing assertions.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread;

use xpptp_datapath::calls::{CallGuard, CallTable};

/// Call IDs the writer uses.
const IDS: u16 = 48;
/// Addresses the writer hands out (more than IDs, so replace can move a call).
const ADDRESSES: u32 = 96;
const WRITES: u32 = 20_000;
const READERS: usize = 3;

static LIVE: AtomicI64 = AtomicI64::new(0);

/// A state whose every word must agree: a reader seeing a mixture of two publications, or
/// freed memory, would find them different.
struct Payload {
    call_id: u16,
    address: Ipv4Addr,
    words: [u64; 8],
    freed: Arc<AtomicBool>,
}

impl Payload {
    fn new(call_id: u16, address: Ipv4Addr, tag: u64) -> Payload {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Payload {
            call_id,
            address,
            words: [tag; 8],
            freed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.words = [u64::MAX; 8];
        self.freed.store(true, Ordering::SeqCst);
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000 + n)
}

/// Checks one call a reader holds; `expected_address` when it was found by address.
fn check(guard: &CallGuard<Payload>, expected_id: Option<u16>, expected_address: Option<Ipv4Addr>) {
    let Some(call) = guard.as_ref() else {
        return;
    };
    let state = call.state();
    assert!(
        !state.freed.load(Ordering::SeqCst),
        "reader holds a freed entry"
    );
    assert!(
        state.words.iter().all(|&w| w == state.words[0]) && state.words[0] != u64::MAX,
        "torn entry: {:?}",
        state.words
    );
    assert_eq!(state.call_id, call.call_id());
    assert_eq!(state.address, call.client_address());
    if let Some(id) = expected_id {
        assert_eq!(call.call_id(), id, "slot holds another call");
    }
    if let Some(a) = expected_address {
        assert_eq!(
            call.client_address(),
            a,
            "address index gave another client's call"
        );
    }
}

/// A small deterministic generator (no dependency, same run every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

#[test]
fn readers_never_see_torn_or_freed_entries() {
    let (table, mut writer) = CallTable::<Payload>::new();
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let table = Arc::clone(&table);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut hits = 0u64;
                let mut held: Option<CallGuard<Payload>> = None;
                // Keep going until the writer is done, then one more full pass.
                let mut last_pass = false;
                loop {
                    for id in 1..=IDS {
                        let guard = table.get(id);
                        check(&guard, Some(id), None);
                        hits += u64::from(guard.is_some());
                        // Now and then hold a call across many writes, then re-check it.
                        if (id as usize + r).is_multiple_of(17) {
                            if let Some(old) = held.take() {
                                check(&old, None, None);
                            }
                            held = Some(guard);
                        }
                    }
                    for n in 0..ADDRESSES {
                        let guard = table.get_by_address(address(n));
                        check(&guard, None, Some(address(n)));
                        hits += u64::from(guard.is_some());
                    }
                    if last_pass {
                        break;
                    }
                    last_pass = done.load(Ordering::SeqCst);
                }
                if let Some(old) = held.take() {
                    check(&old, None, None);
                }
                hits
            })
        })
        .collect();

    // The writer, with a model of what the table should hold.
    let mut model: Vec<Option<u32>> = vec![None; usize::from(IDS) + 1];
    let mut rng = Lcg(0x5eed);
    let mut tag = 0u64;
    for _ in 0..WRITES {
        let id = (rng.next() % u32::from(IDS)) as u16 + 1;
        let n = rng.next() % ADDRESSES;
        let address_free = !model.contains(&Some(n));
        let slot = usize::from(id);
        tag += 1;
        match (model[slot], rng.next() % 3) {
            (None, _) => {
                let result = writer.establish(id, address(n), Payload::new(id, address(n), tag));
                match result {
                    Ok(_) => {
                        assert!(address_free);
                        model[slot] = Some(n);
                    }
                    Err(rejected) => assert!(!address_free, "{}", rejected.error),
                }
            }
            (Some(_), 0) => {
                assert!(writer.remove(id).is_some());
                model[slot] = None;
            }
            (Some(current), _) => {
                let free = address_free || current == n;
                match writer.replace(id, address(n), Payload::new(id, address(n), tag)) {
                    Ok(old) => {
                        assert!(free);
                        assert_eq!(old.client_address(), address(current));
                        model[slot] = Some(n);
                    }
                    Err(rejected) => assert!(!free, "{}", rejected.error),
                }
            }
        }
        // The writer's own view matches the model at once.
        let now = writer.table().get(id);
        assert_eq!(
            now.as_ref().map(|c| c.client_address()),
            model[slot].map(address)
        );
    }
    done.store(true, Ordering::SeqCst);
    let hits: u64 = readers
        .into_iter()
        .map(|r| r.join().expect("reader panicked"))
        .sum();
    assert!(hits > 0, "readers saw calls");

    let live = model.iter().filter(|m| m.is_some()).count();
    assert_eq!(table.len(), live);
    drop(writer);
    drop(table);
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        0,
        "every entry freed, none leaked"
    );
}
