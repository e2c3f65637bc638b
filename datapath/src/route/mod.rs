//! Next hops for forwarded packets, from the kernel's IPv4 route and neighbour tables.
//!
//! * [`Routes`] is shared by the workers and the refresher. Workers call
//!   [`Routes::lookup`] (or [`RouteReader::lookup`], cheaper, one reader per worker) per
//!   packet: a search of the current immutable [`Snapshot`], published through `arc-swap`, so
//!   a lookup takes no lock, makes no system call and never waits for the refresher.
//! * [`Refresher`] (in [`refresher`]) is one thread: it dumps routes, neighbours and links
//!   over rtnetlink at start, follows the kernel's change notifications, rebuilds and
//!   publishes a new snapshot after a short debounce, and re-dumps everything periodically
//!   and whenever notifications were lost.
//! * When a next hop has no MAC yet ([`NextHop::Unresolved`]), or the kernel's entry is
//!   stale, a worker calls [`Routes::request`]: rate-limited per address, queued (bounded,
//!   lock-free), and the refresher asks the kernel to resolve it (RTM_NEWNEIGH with
//!   NTF_USE: the kernel sends the ARP request itself, no packet of ours is involved). The
//!   answer arrives as a neighbour notification and the next snapshot has the MAC.
//!
//! Which routes count: the `local` table first, then `main` (the kernel's default rules;
//! policy routing rules and other tables are not followed). Longest prefix wins, then the
//! lowest metric. Unicast routes forward (on-link or through a gateway, multipath spread by
//! destination); local, broadcast, anycast and multicast routes are [`NextHop::Local`];
//! blackhole, unreachable, prohibit and throw routes are [`NextHop::NoRoute`], as is a route
//! out of a non-Ethernet interface or one outside the [`OutputFilter`].
//!
//! Counting lookups by outcome is the worker's job; [`RouteCounters`] counts the refresher's
//! work and the resolution requests.

mod lpm;
pub mod refresher;
mod snapshot;

use std::net::Ipv4Addr;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Cache};
use crossbeam_queue::ArrayQueue;

pub use lpm::{Prefix, RangeTable};
pub use refresher::{Refresher, RefresherConfig, RouteError};
pub use snapshot::{
    Hop, KernelState, Link, Neighbour, NeighbourState, NextHop, OutputFilter, Route, RouteKind,
    Snapshot, Table,
};

/// Rate-limit slots (a hash of the address picks one; a collision only means an extra or a
/// delayed request, never a lost one for long).
const LIMITER_SLOTS: usize = 1024;

/// A next hop to resolve, from a worker to the refresher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveRequest {
    pub addr: Ipv4Addr,
    pub ifindex: u32,
}

/// What [`Routes::request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Handed to the refresher.
    Queued,
    /// This address was asked for less than the interval ago: nothing to do.
    RateLimited,
    /// The queue was full: dropped and counted.
    Dropped,
}

/// The refresher's and the requests' counters (monotonic; readers diff).
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Snapshots published.
    pub refreshes: AtomicU64,
    /// Full dumps of routes, neighbours and links.
    pub full_dumps: AtomicU64,
    /// Notifications applied.
    pub notifications: AtomicU64,
    /// Netlink failures: sends, receives, error replies, notifications lost (ENOBUFS),
    /// messages that did not parse.
    pub netlink_errors: AtomicU64,
    /// Resolution requests sent to the kernel.
    pub requests_sent: AtomicU64,
    /// Resolution requests dropped because the queue was full.
    pub requests_dropped: AtomicU64,
}

/// A copy of [`RouteCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub refreshes: u64,
    pub full_dumps: u64,
    pub notifications: u64,
    pub netlink_errors: u64,
    pub requests_sent: u64,
    pub requests_dropped: u64,
}

impl RouteCounters {
    pub fn snapshot(&self) -> RouteStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RouteStats {
            refreshes: get(&self.refreshes),
            full_dumps: get(&self.full_dumps),
            notifications: get(&self.notifications),
            netlink_errors: get(&self.netlink_errors),
            requests_sent: get(&self.requests_sent),
            requests_dropped: get(&self.requests_dropped),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The next-hop table shared by the workers (readers) and the refresher (the one writer).
#[derive(Debug)]
pub struct Routes {
    snapshot: ArcSwap<Snapshot>,
    requests: ArrayQueue<ResolveRequest>,
    /// Per slot: `address << 32 | time of the last request in ms since `epoch` (low 32 bits)`.
    limiter: Box<[AtomicU64]>,
    epoch: Instant,
    interval_ms: u32,
    /// Rung after queueing a request, so the refresher wakes at once.
    waker: Option<mio::Waker>,
    counters: RouteCounters,
}

impl Routes {
    /// A table that starts as `initial`. `queue` bounds the pending resolution requests;
    /// `interval` is the least time between two requests for one address. `waker`, if any,
    /// is woken after each queued request.
    pub fn new(
        initial: Snapshot,
        queue: usize,
        interval: Duration,
        waker: Option<mio::Waker>,
    ) -> Routes {
        Routes {
            snapshot: ArcSwap::from_pointee(initial),
            requests: ArrayQueue::new(queue.max(1)),
            limiter: (0..LIMITER_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            waker,
            counters: RouteCounters::default(),
        }
    }

    /// Where a packet to `dst` goes next, from the current snapshot. Wait-free apart from
    /// `arc-swap`'s load; a worker should prefer its own [`RouteReader`].
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> NextHop {
        self.snapshot.load().lookup(dst)
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot (the refresher's job; readers see the new one at their next
    /// lookup, the old one is freed when the last reader lets go of it).
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
        RouteCounters::bump(&self.counters.refreshes);
    }

    /// A reader for one worker: its lookups cost a pointer comparison over the snapshot's
    /// own search.
    pub fn reader(self: &Arc<Routes>) -> RouteReader {
        RouteReader {
            cache: Cache::new(SnapshotSource(Arc::clone(self))),
            routes: Arc::clone(self),
        }
    }

    pub fn counters(&self) -> &RouteCounters {
        &self.counters
    }

    /// Asks for next hop `addr` on `ifindex` to be resolved by the kernel. Never blocks:
    /// rate-limited per address (at most one request per interval), then queued for the
    /// refresher, or dropped and counted when the queue is full. Reads the clock (vDSO) and,
    /// when it queues, wakes the refresher (one eventfd write).
    pub fn request(&self, addr: Ipv4Addr, ifindex: u32) -> RequestOutcome {
        let a = u32::from(addr);
        let slot_index = (a.wrapping_mul(0x9E37_79B1) >> 22) as usize % LIMITER_SLOTS;
        let Some(slot) = self.limiter.get(slot_index) else {
            return RequestOutcome::RateLimited;
        };
        // Wraps after 49 days; only differences are used.
        let now = self.epoch.elapsed().as_millis() as u32;
        let previous = slot.load(Ordering::Relaxed);
        let (last_addr, last_time) = ((previous >> 32) as u32, previous as u32);
        if previous != 0 && last_addr == a && now.wrapping_sub(last_time) < self.interval_ms {
            return RequestOutcome::RateLimited;
        }
        let stamp = (u64::from(a) << 32) | u64::from(now);
        // Another worker asking for the same address at the same moment wins the slot.
        if slot
            .compare_exchange(previous, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return RequestOutcome::RateLimited;
        }
        if self
            .requests
            .push(ResolveRequest { addr, ifindex })
            .is_err()
        {
            RouteCounters::bump(&self.counters.requests_dropped);
            return RequestOutcome::Dropped;
        }
        if let Some(waker) = &self.waker {
            // A failed wake only delays the request to the refresher's next turn.
            let _ = waker.wake();
        }
        RequestOutcome::Queued
    }

    /// The next queued request (the refresher's side).
    pub fn next_request(&self) -> Option<ResolveRequest> {
        self.requests.pop()
    }
}

/// `Arc<Routes>` seen as its snapshot cell, for [`arc_swap::Cache`].
#[derive(Debug)]
struct SnapshotSource(Arc<Routes>);

impl Deref for SnapshotSource {
    type Target = ArcSwap<Snapshot>;

    fn deref(&self) -> &ArcSwap<Snapshot> {
        &self.0.snapshot
    }
}

/// One worker's handle on [`Routes`]: keeps the current snapshot and checks per lookup
/// whether a newer one was published (one atomic load and compare).
#[derive(Debug)]
pub struct RouteReader {
    cache: Cache<SnapshotSource, Arc<Snapshot>>,
    routes: Arc<Routes>,
}

impl RouteReader {
    /// Where a packet to `dst` goes next.
    #[inline]
    pub fn lookup(&mut self, dst: Ipv4Addr) -> NextHop {
        self.cache.load().lookup(dst)
    }

    /// See [`Routes::request`].
    pub fn request(&self, addr: Ipv4Addr, ifindex: u32) -> RequestOutcome {
        self.routes.request(addr, ifindex)
    }

    /// The shared table.
    pub fn routes(&self) -> &Arc<Routes> {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_rate_limited_per_address_and_dropped_when_full() {
        let routes = Routes::new(Snapshot::empty(), 2, Duration::from_secs(60), None);
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let c = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(routes.request(a, 2), RequestOutcome::Queued);
        assert_eq!(routes.request(a, 2), RequestOutcome::RateLimited);
        assert_eq!(routes.request(b, 2), RequestOutcome::Queued);
        assert_eq!(routes.request(c, 2), RequestOutcome::Dropped);
        assert_eq!(routes.counters().snapshot().requests_dropped, 1);
        assert_eq!(
            routes.next_request(),
            Some(ResolveRequest {
                addr: a,
                ifindex: 2
            })
        );
        assert_eq!(routes.next_request().map(|r| r.addr), Some(b));
        assert_eq!(routes.next_request(), None);
    }

    #[test]
    fn zero_interval_never_rate_limits() {
        let routes = Routes::new(Snapshot::empty(), 8, Duration::ZERO, None);
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(routes.request(a, 2), RequestOutcome::Queued);
        assert_eq!(routes.request(a, 2), RequestOutcome::Queued);
    }

    #[test]
    fn readers_see_published_snapshots() {
        let routes = Arc::new(Routes::new(Snapshot::empty(), 8, Duration::ZERO, None));
        let mut reader = routes.reader();
        let dst = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(reader.lookup(dst), NextHop::NoRoute);
        let mut state = KernelState::default();
        state.add_route(Route {
            table: Table::Local,
            prefix: Prefix::new(dst, 32),
            tos: 0,
            priority: 0,
            kind: RouteKind::Local,
        });
        routes.publish(Snapshot::build(&state, &OutputFilter::Any, 1));
        assert_eq!(reader.lookup(dst), NextHop::Local);
        assert_eq!(routes.counters().snapshot().refreshes, 1);
    }
}
