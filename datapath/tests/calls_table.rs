//! The call table's writer operations, capacity and the agreement of its two indexes.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use xpptp_datapath::calls::{CallTable, MAX_CALLS, TableError};

fn pool(call_id: u16) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000 + u32::from(call_id))
}

#[test]
fn establish_get_remove() {
    let (table, mut writer) = CallTable::<&'static str>::new();
    let call = writer.establish(7, pool(7), "seven").expect("establish");
    assert_eq!(call.call_id(), 7);
    assert_eq!(call.client_address(), pool(7));
    assert_eq!(*call.state(), "seven");
    assert_eq!(table.len(), 1);

    let by_id = table.get(7);
    assert_eq!(by_id.as_ref().map(|c| *c.state()), Some("seven"));
    let by_address = table.get_by_address(pool(7));
    assert_eq!(by_address.as_ref().map(|c| c.call_id()), Some(7));
    assert!(table.get(8).is_none());
    assert!(table.get_by_address(pool(8)).is_none());

    let removed = writer.remove(7).expect("removed");
    assert_eq!(removed.generation(), call.generation());
    assert!(table.get(7).is_none());
    assert!(table.get_by_address(pool(7)).is_none());
    assert!(table.is_empty());
    assert!(writer.remove(7).is_none(), "second remove finds nothing");
}

#[test]
fn refusals_give_the_state_back() {
    let (table, mut writer) = CallTable::<u32>::new();
    let zero = writer.establish(0, pool(1), 1).expect_err("call ID 0");
    assert_eq!((zero.error, zero.state), (TableError::CallIdZero, 1));

    writer.establish(5, pool(5), 5).expect("establish");
    let again = writer.establish(5, pool(6), 6).expect_err("same ID");
    assert_eq!((again.error, again.state), (TableError::CallIdInUse(5), 6));

    let taken = writer.establish(6, pool(5), 6).expect_err("same address");
    assert_eq!(
        taken.error,
        TableError::AddressInUse {
            address: pool(5),
            call_id: 5
        }
    );
    let missing = writer.replace(9, pool(9), 9).expect_err("no call 9");
    assert_eq!(missing.error, TableError::NoSuchCall(9));

    writer.establish(6, pool(6), 6).expect("establish 6");
    let steal = writer.replace(6, pool(5), 60).expect_err("address of 5");
    assert_eq!(steal.state, 60);
    // Nothing changed by the refusals.
    assert_eq!(table.len(), 2);
    assert_eq!(
        table.get_by_address(pool(5)).as_ref().map(|c| *c.state()),
        Some(5)
    );
    assert_eq!(
        table.get_by_address(pool(6)).as_ref().map(|c| *c.state()),
        Some(6)
    );
}

#[test]
fn replace_publishes_a_new_generation_and_moves_the_address() {
    let (table, mut writer) = CallTable::<u32>::new();
    let first = writer.establish(3, pool(3), 1).expect("establish");
    let old = writer
        .replace(3, pool(3), 2)
        .expect("replace, same address");
    assert_eq!(old.generation(), first.generation());
    let second = table.get_full(3).expect("call 3");
    assert_eq!(*second.state(), 2);
    assert_ne!(second.generation(), first.generation());

    writer
        .replace(3, pool(30), 3)
        .expect("replace, new address");
    assert!(table.get_by_address(pool(3)).is_none(), "old address gone");
    assert_eq!(
        table.get_by_address(pool(30)).as_ref().map(|c| *c.state()),
        Some(3)
    );
    assert_eq!(table.len(), 1);
    // The old address is free again.
    writer
        .establish(4, pool(3), 4)
        .expect("reuse the old address");
}

/// A state that records when it is freed.
struct Tracked(Arc<AtomicBool>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_held_guard_keeps_a_removed_call_alive() {
    let (table, mut writer) = CallTable::<Tracked>::new();
    let freed = Arc::new(AtomicBool::new(false));
    drop(writer.establish(1, pool(1), Tracked(Arc::clone(&freed))));

    let guard = table.get(1);
    drop(writer.remove(1));
    assert!(table.get(1).is_none(), "new readers miss it");
    let held = guard.as_ref().expect("the guard still has the call");
    assert_eq!(held.call_id(), 1);
    assert!(
        !freed.load(Ordering::SeqCst),
        "not freed while a reader holds it"
    );
    drop(guard);
    assert!(
        freed.load(Ordering::SeqCst),
        "freed when the last reader lets go"
    );
}

#[test]
fn replace_frees_the_old_entry_once_unreferenced() {
    let (table, mut writer) = CallTable::<Tracked>::new();
    let freed_old = Arc::new(AtomicBool::new(false));
    let freed_new = Arc::new(AtomicBool::new(false));
    drop(writer.establish(2, pool(2), Tracked(Arc::clone(&freed_old))));
    let guard = table.get_by_address(pool(2));
    let old = writer.replace(2, pool(2), Tracked(Arc::clone(&freed_new)));
    drop(old);
    assert!(!freed_old.load(Ordering::SeqCst));
    drop(guard);
    assert!(freed_old.load(Ordering::SeqCst));
    drop(writer);
    assert!(
        !freed_new.load(Ordering::SeqCst),
        "the table still holds it"
    );
    drop(table);
    assert!(
        freed_new.load(Ordering::SeqCst),
        "dropping the table frees every call"
    );
}

#[test]
fn capacity_is_65535_calls() {
    let (table, mut writer) = CallTable::<u16>::new();
    for id in 1..=u16::MAX {
        if let Err(e) = writer.establish(id, pool(id), id) {
            panic!("establish {id}: {e}");
        }
    }
    assert_eq!(table.len(), MAX_CALLS);
    assert_eq!(MAX_CALLS, 65_535);
    assert!(writer.establish(0, Ipv4Addr::new(192, 0, 2, 1), 0).is_err());

    // Both indexes agree on every call.
    for id in 1..=u16::MAX {
        let by_id = table.get(id);
        let call = by_id.as_ref().expect("every ID has its call");
        assert_eq!((call.call_id(), *call.state()), (id, id));
        let by_address = table.get_by_address(pool(id));
        assert_eq!(by_address.as_ref().map(|c| c.call_id()), Some(id));
    }
    assert_eq!(table.calls().count(), MAX_CALLS);

    for id in 1..=u16::MAX {
        assert!(writer.remove(id).is_some());
    }
    assert!(table.is_empty());
    assert!(table.get_by_address(pool(1)).is_none());
    assert_eq!(table.calls().count(), 0);
}
