//! Memory of the call table, measured with a counting allocator: the fixed part, and what
//! each established call adds on top of its own state `T`. Run with `--nocapture` to see
//! the figures; the assertions bound them so that a change that grows them is noticed.
//!
//! One test in this binary, so no other test allocates while it measures.

use std::alloc::System;
use std::mem::size_of;
use std::net::Ipv4Addr;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use xpptp_datapath::calls::{CALL_SLOTS, Call, CallTable, MAX_CALLS};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes still allocated since the region began.
fn net(region: &Region<'_, System>) -> usize {
    let change = region.change();
    change
        .bytes_allocated
        .saturating_sub(change.bytes_deallocated)
}

/// glibc malloc's chunk for a request of `n` bytes on 64-bit: 8 bytes of header, 16-byte
/// alignment, 32 bytes at least.
fn glibc_chunk(n: usize) -> usize {
    ((n + 8 + 15) & !15).max(32)
}

/// Resident set size in bytes, from /proc/self/statm (pages of 4 KiB).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn measure<T: Send + Sync>(name: &str, make: impl Fn(u16) -> T) -> usize {
    let region = Region::new(GLOBAL);
    let (table, mut writer) = CallTable::<T>::new();
    let fixed = net(&region);

    let region = Region::new(GLOBAL);
    let rss_before = rss();
    for id in 1..=u16::MAX {
        let address = Ipv4Addr::from(0x0a40_0000 + u32::from(id));
        assert!(writer.establish(id, address, make(id)).is_ok());
    }
    let calls = net(&region);
    let change = region.change();
    let kept_allocations = change.allocations - change.deallocations;
    let per_call = calls / MAX_CALLS;
    let rss_after = rss();

    // What each call's allocations are: the Arc<Call<T>> (two counts + the call) and its
    // address bucket.
    let call_alloc = 16 + size_of::<Call<T>>();
    let bucket_alloc = per_call.saturating_sub(call_alloc);
    let glibc = glibc_chunk(call_alloc) + glibc_chunk(bucket_alloc);
    println!(
        "{name}: fixed {fixed} B ({} KiB); per call {per_call} B requested in {} allocations \
         (call {call_alloc} B + address bucket {bucket_alloc} B; glibc chunks {glibc} B), \
         of which T is {} B; {} calls: {} KiB requested, RSS grew {} KiB ({} B per call)",
        fixed / 1024,
        kept_allocations / MAX_CALLS,
        size_of::<T>(),
        MAX_CALLS,
        calls / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        rss_after.saturating_sub(rss_before) / MAX_CALLS,
    );
    // Two per call, plus arc-swap's per-thread debt list node on this thread's first load.
    assert!(
        (2 * MAX_CALLS..=2 * MAX_CALLS + 1).contains(&kept_allocations),
        "two allocations per call: {kept_allocations}"
    );
    // Slots and buckets: one pointer each.
    assert!((2 * CALL_SLOTS * 8..=2 * CALL_SLOTS * 8 + 4096).contains(&fixed));
    drop(writer);
    drop(table);
    per_call
}

#[test]
fn memory_per_call() {
    // The table's own overhead (T of no size), then a state of the size of a call's
    // published fast-path state (peer, numbering, two directions' keys, counters).
    let overhead = measure("T = ()", |_| ());
    assert!(overhead <= 80, "table overhead per call {overhead} B");
    let with_state = measure("T = [u8; 256]", |id| [id as u8; 256]);
    assert_eq!(with_state, overhead + 256);
}
