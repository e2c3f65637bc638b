//! The refresher: one thread that keeps [`Routes`] in step with the kernel over rtnetlink.
//!
//! A thread rather than an async task: the datapath has no async runtime, the work is a
//! handful of blocking netlink exchanges, and the thread sleeps in `epoll` (mio) on two
//! things only: the notification socket and a waker the workers ring when they queue a
//! resolution request.
//!
//! Its loop:
//! * Notifications (RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR)
//!   are applied to its [`KernelState`] as they come; a new [`Snapshot`] is built and
//!   published `debounce` after the first change of a burst (a burst cannot postpone it
//!   further). An address change or lost notifications (ENOBUFS) trigger a full re-dump.
//! * Every `full_refresh`, routes, neighbours and links are dumped afresh and replace the
//!   state: a safety net against anything missed.
//! * Queued [`ResolveRequest`]s become RTM_NEWNEIGH with NTF_USE (what
//!   `ip neigh replace ADDR dev IF use` sends): the kernel creates the entry if needed and
//!   starts resolving it (ARP request), exactly as if it had a packet to send there.
//!
//! The notification socket subscribes before the first dump, so no change between the dump
//! and the subscription is lost (replaying one twice is harmless).

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
    NeighbourState as NudState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHopFlags, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::lpm::Prefix;
use super::snapshot::RouteKey;
use super::{
    Hop, KernelState, Link, Neighbour, NeighbourState, OutputFilter, ResolveRequest, Route,
    RouteCounters, RouteKind, Routes, Snapshot, Table,
};

const NOTIFICATIONS: Token = Token(0);
const WAKER: Token = Token(1);
/// The longest the thread sleeps, so a stop or a request whose wake was lost waits no more.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Receive buffer of the notification socket: a burst of route changes (a routing daemon
/// installing a table) must not overflow it before we read; the kernel caps it at
/// net.core.rmem_max.
const NOTIFY_RCVBUF: usize = 4 << 20;
const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;

/// How the refresher behaves.
#[derive(Debug, Clone)]
pub struct RefresherConfig {
    /// Interfaces forwarded packets may leave through.
    pub filter: OutputFilter,
    /// How long after the first change of a burst the new snapshot is published.
    pub debounce: Duration,
    /// How often everything is dumped afresh.
    pub full_refresh: Duration,
    /// Pending resolution requests at most (more are dropped and counted).
    pub queue: usize,
    /// Least time between two resolution requests for one address.
    pub request_interval: Duration,
}

impl Default for RefresherConfig {
    fn default() -> RefresherConfig {
        RefresherConfig {
            filter: OutputFilter::Any,
            debounce: Duration::from_millis(20),
            full_refresh: Duration::from_secs(60),
            queue: 1024,
            request_interval: Duration::from_secs(1),
        }
    }
}

/// Why the refresher could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "cannot open a netlink route socket: {0} (the datapath needs Linux rtnetlink; inside a \
         container, check that NETLINK_ROUTE sockets are allowed)"
    )]
    Socket(#[source] io::Error),
    #[error("cannot subscribe to the kernel's {what} notifications: {source}")]
    Subscribe {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot dump the kernel's {what} over rtnetlink: {source}")]
    Dump {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up the refresher's event loop (epoll/eventfd): {0}")]
    Poll(#[source] io::Error),
    #[error("cannot start the route refresher thread: {0}")]
    Spawn(#[source] io::Error),
}

/// The running refresher; dropping it stops the thread.
#[derive(Debug)]
pub struct Refresher {
    stop: Arc<AtomicBool>,
    routes: Arc<Routes>,
    thread: Option<JoinHandle<()>>,
}

impl Refresher {
    /// Dumps the kernel's tables, publishes the first snapshot and starts the thread. The
    /// returned [`Routes`] is what the workers read.
    pub fn start(config: RefresherConfig) -> Result<(Arc<Routes>, Refresher), RouteError> {
        let mut notify = Socket::new(NETLINK_ROUTE).map_err(RouteError::Socket)?;
        notify.bind_auto().map_err(RouteError::Socket)?;
        for (group, what) in [
            (libc::RTNLGRP_IPV4_ROUTE, "IPv4 route"),
            (libc::RTNLGRP_NEIGH, "neighbour"),
            (libc::RTNLGRP_LINK, "link"),
            (libc::RTNLGRP_IPV4_IFADDR, "IPv4 address"),
        ] {
            notify
                .add_membership(group)
                .map_err(|source| RouteError::Subscribe { what, source })?;
        }
        if let Err(err) = notify.set_rx_buf_sz(NOTIFY_RCVBUF) {
            tracing::warn!(%err, "cannot enlarge the netlink notification buffer");
        }
        notify.set_non_blocking(true).map_err(RouteError::Socket)?;
        let poll = Poll::new().map_err(RouteError::Poll)?;
        poll.registry()
            .register(&mut notify, NOTIFICATIONS, Interest::READABLE)
            .map_err(RouteError::Poll)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(RouteError::Poll)?;

        let mut query = Query::open()?;
        let state = query.dump_all()?;
        let snapshot = Snapshot::build(&state, &config.filter, 1);
        tracing::info!(
            routes = snapshot.routes(),
            neighbours = state.neighbours.len(),
            links = state.links.len(),
            "route table loaded"
        );
        let routes = Arc::new(Routes::new(
            snapshot,
            config.queue,
            config.request_interval,
            Some(waker),
        ));
        RouteCounters::bump(&routes.counters.full_dumps);
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Loop {
            config,
            routes: Arc::clone(&routes),
            stop: Arc::clone(&stop),
            poll,
            notify,
            query,
            state,
            generation: 1,
            buf: vec![0; 64 << 10],
        };
        let thread = std::thread::Builder::new()
            .name("xpptp-routes".into())
            .spawn(move || worker.run())
            .map_err(RouteError::Spawn)?;
        Ok((
            Arc::clone(&routes),
            Refresher {
                stop,
                routes,
                thread: Some(thread),
            },
        ))
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(waker) = &self.routes.waker {
            let _ = waker.wake();
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the route refresher thread panicked");
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The socket for dumps and requests (replies only, no notifications).
struct Query {
    socket: Socket,
    sequence: u32,
    buf: Vec<u8>,
}

impl Query {
    fn open() -> Result<Query, RouteError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(RouteError::Socket)?;
        socket.bind_auto().map_err(RouteError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(RouteError::Socket)?;
        Ok(Query {
            socket,
            sequence: 0,
            buf: vec![0; 64 << 10],
        })
    }

    fn send(&mut self, flags: u16, message: RouteNetlinkMessage) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.sequence)
    }

    /// Sends a dump request and hands each reply to `each`. Returns whether the kernel
    /// flagged the dump as interrupted by a concurrent change (NLM_F_DUMP_INTR).
    fn dump(
        &mut self,
        message: RouteNetlinkMessage,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<bool> {
        let sequence = self.send(NLM_F_REQUEST | NLM_F_DUMP, message)?;
        let mut interrupted = false;
        loop {
            let len = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut done = false;
            for_each_message(self.buf.get(..len).unwrap_or(&[]), |msg| {
                if msg.header.sequence_number != sequence {
                    return Ok(());
                }
                interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                match msg.payload {
                    NetlinkPayload::Done(_) => done = true,
                    NetlinkPayload::Error(err) if err.code.is_some() => return Err(err.to_io()),
                    NetlinkPayload::InnerMessage(inner) => each(inner),
                    _ => {}
                }
                Ok(())
            })?;
            if done {
                return Ok(interrupted);
            }
        }
    }

    /// Sends a request and waits for the kernel's acknowledgement.
    fn request(&mut self, flags: u16, message: RouteNetlinkMessage) -> io::Result<()> {
        let sequence = self.send(NLM_F_REQUEST | NLM_F_ACK | flags, message)?;
        loop {
            let len = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut acked = None;
            for_each_message(self.buf.get(..len).unwrap_or(&[]), |msg| {
                if msg.header.sequence_number == sequence
                    && let NetlinkPayload::Error(err) = msg.payload
                {
                    acked = Some(match err.code {
                        None => Ok(()),
                        Some(_) => Err(err.to_io()),
                    });
                }
                Ok(())
            })?;
            if let Some(result) = acked {
                return result;
            }
        }
    }

    /// Dumps routes, neighbours and links, again while the kernel says a dump was
    /// interrupted (at most a few times).
    fn dump_all(&mut self) -> Result<KernelState, RouteError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut state = KernelState::default();
            let mut interrupted = false;
            let mut links = LinkMessage::default();
            links.header.interface_family = AddressFamily::Unspec;
            interrupted |= self
                .dump(RouteNetlinkMessage::GetLink(links), |m| {
                    if let RouteNetlinkMessage::NewLink(m) = m {
                        let (ifindex, link) = parse_link(&m);
                        state.add_link(ifindex, link);
                    }
                })
                .map_err(|source| RouteError::Dump {
                    what: "links",
                    source,
                })?;
            let mut routes = RouteMessage::default();
            routes.header.address_family = AddressFamily::Inet;
            interrupted |= self
                .dump(RouteNetlinkMessage::GetRoute(routes), |m| {
                    if let RouteNetlinkMessage::NewRoute(m) = m
                        && let Some(route) = parse_route(&m)
                    {
                        state.add_route(route);
                    }
                })
                .map_err(|source| RouteError::Dump {
                    what: "IPv4 routes",
                    source,
                })?;
            let mut neighbours = NeighbourMessage::default();
            neighbours.header.family = AddressFamily::Inet;
            interrupted |= self
                .dump(RouteNetlinkMessage::GetNeighbour(neighbours), |m| {
                    if let RouteNetlinkMessage::NewNeighbour(m) = m
                        && let Some((ifindex, addr, n)) = parse_neighbour(&m)
                    {
                        state.add_neighbour(ifindex, addr, n);
                    }
                })
                .map_err(|source| RouteError::Dump {
                    what: "IPv4 neighbours",
                    source,
                })?;
            if !interrupted || attempts >= 3 {
                return Ok(state);
            }
        }
    }

    /// Asks the kernel to resolve `addr` on `ifindex` (RTM_NEWNEIGH, NTF_USE).
    fn resolve(&mut self, request: ResolveRequest) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = request.ifindex;
        // NUD_NONE: a new entry starts unresolved and is garbage-collected like any other
        // (iproute2 defaults to PERMANENT, which would exempt it from collection).
        msg.header.state = NudState::None;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                request.addr,
            )));
        self.request(
            NLM_F_CREATE | NLM_F_REPLACE,
            RouteNetlinkMessage::NewNeighbour(msg),
        )
    }
}

/// Calls `each` for every netlink message in one datagram; stops at the first malformed one.
fn for_each_message(
    mut bytes: &[u8],
    mut each: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> io::Result<()>,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
        // Messages are 4-byte aligned in a datagram.
        let len = (msg.header.length as usize).checked_add(3).map(|l| l & !3);
        each(msg)?;
        match len {
            Some(len) if len > 0 && len <= bytes.len() => bytes = bytes.get(len..).unwrap_or(&[]),
            _ => break,
        }
    }
    Ok(())
}

/// The refresher thread's state.
struct Loop {
    config: RefresherConfig,
    routes: Arc<Routes>,
    stop: Arc<AtomicBool>,
    poll: Poll,
    notify: Socket,
    query: Query,
    state: KernelState,
    generation: u64,
    buf: Vec<u8>,
}

/// What reading the notifications found.
#[derive(Debug, Default)]
struct Changes {
    changed: bool,
    /// Notifications were lost, or an address changed: dump everything.
    full: bool,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(8);
        let mut pending: Option<Instant> = None;
        let mut next_full = Instant::now() + self.config.full_refresh;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut sleep = next_full.saturating_duration_since(now).min(MAX_SLEEP);
            if let Some(since) = pending {
                sleep = sleep.min((since + self.config.debounce).saturating_duration_since(now));
            }
            if let Err(err) = self.poll.poll(&mut events, Some(sleep))
                && err.kind() != io::ErrorKind::Interrupted
            {
                self.error("epoll", &err);
                std::thread::sleep(MAX_SLEEP);
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let changes = self.read_notifications();
            self.serve_requests();
            let now = Instant::now();
            if changes.changed {
                pending.get_or_insert(now);
            }
            if changes.full || now >= next_full {
                match self.query.dump_all() {
                    Ok(state) => {
                        self.state = state;
                        RouteCounters::bump(&self.routes.counters.full_dumps);
                        pending.get_or_insert(now);
                        next_full = now + self.config.full_refresh;
                    }
                    Err(err) => {
                        self.error("full dump", &err);
                        // Retry soon, not a whole period later.
                        next_full = now + MAX_SLEEP;
                    }
                }
            }
            if let Some(since) = pending
                && now >= since + self.config.debounce
            {
                self.generation += 1;
                self.routes.publish(Snapshot::build(
                    &self.state,
                    &self.config.filter,
                    self.generation,
                ));
                pending = None;
            }
        }
    }

    fn error(&self, what: &str, err: &dyn std::fmt::Display) {
        RouteCounters::bump(&self.routes.counters.netlink_errors);
        tracing::warn!(%err, "route refresher: {what} failed");
    }

    /// Reads and applies every pending notification.
    fn read_notifications(&mut self) -> Changes {
        let mut changes = Changes::default();
        loop {
            let len = match self.notify.recv(&mut &mut self.buf[..], 0) {
                Ok(len) => len,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return changes,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    // ENOBUFS: the kernel dropped notifications; only a dump can catch up.
                    self.error("reading notifications", &err);
                    changes.full = true;
                    if err.raw_os_error() == Some(libc::ENOBUFS) {
                        continue;
                    }
                    return changes;
                }
            };
            let mut messages = Vec::new();
            let parsed = for_each_message(self.buf.get(..len).unwrap_or(&[]), |msg| {
                if let NetlinkPayload::InnerMessage(inner) = msg.payload {
                    messages.push(inner);
                }
                Ok(())
            });
            if let Err(err) = parsed {
                self.error("parsing a notification", &err);
                changes.full = true;
            }
            for message in messages {
                RouteCounters::bump(&self.routes.counters.notifications);
                self.apply(message, &mut changes);
            }
        }
    }

    fn apply(&mut self, message: RouteNetlinkMessage, changes: &mut Changes) {
        let state = &mut self.state;
        match message {
            RouteNetlinkMessage::NewRoute(m) => {
                if let Some(route) = parse_route(&m) {
                    state.add_route(route);
                    changes.changed = true;
                }
            }
            RouteNetlinkMessage::DelRoute(m) => {
                if let Some(key) = route_key(&m) {
                    changes.changed |= state.routes.remove(&key).is_some();
                }
            }
            RouteNetlinkMessage::NewNeighbour(m) => {
                if let Some((ifindex, addr, n)) = parse_neighbour(&m) {
                    changes.changed |= state.neighbours.insert((ifindex, addr), n) != Some(n);
                }
            }
            RouteNetlinkMessage::DelNeighbour(m) => {
                if let Some((ifindex, addr, _)) = parse_neighbour(&m) {
                    changes.changed |= state.neighbours.remove(&(ifindex, addr)).is_some();
                }
            }
            RouteNetlinkMessage::NewLink(m) => {
                let (ifindex, link) = parse_link(&m);
                let old = state.links.insert(ifindex, link.clone());
                changes.changed |= old.as_ref() != Some(&link);
                // The kernel flushes a downed link's IPv4 routes without telling anyone
                // (no RTM_DELROUTE): after a transition only a dump is right.
                changes.full |= old.is_some_and(|old| old.up != link.up);
            }
            RouteNetlinkMessage::DelLink(m) => {
                let ifindex = m.header.index;
                state.links.remove(&ifindex);
                state.neighbours.retain(|&(i, _), _| i != ifindex);
                changes.changed = true;
                changes.full = true;
            }
            // Rare, and they change local and prefix routes in ways notifications of their
            // own describe only in part: take it all again.
            RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
                changes.full = true;
            }
            _ => {}
        }
    }

    fn serve_requests(&mut self) {
        while let Some(request) = self.routes.next_request() {
            match self.query.resolve(request) {
                Ok(()) => RouteCounters::bump(&self.routes.counters.requests_sent),
                Err(err) => {
                    let hint = if err.raw_os_error() == Some(libc::EPERM) {
                        " (needs CAP_NET_ADMIN)"
                    } else {
                        ""
                    };
                    self.error(
                        "asking the kernel to resolve a next hop",
                        &format_args!(
                            "{} on ifindex {}: {err}{hint}",
                            request.addr, request.ifindex
                        ),
                    );
                }
            }
        }
    }
}

fn table_of(m: &RouteMessage) -> Option<Table> {
    let id = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table));
    match id {
        RT_TABLE_MAIN => Some(Table::Main),
        RT_TABLE_LOCAL => Some(Table::Local),
        _ => None,
    }
}

fn ipv4(addr: &RouteAddress) -> Option<Ipv4Addr> {
    match addr {
        RouteAddress::Inet(a) => Some(*a),
        _ => None,
    }
}

/// The kernel's key of an IPv4 route in the main or local table.
fn route_key(m: &RouteMessage) -> Option<RouteKey> {
    if m.header.address_family != AddressFamily::Inet {
        return None;
    }
    let table = table_of(m)?;
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut priority = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ipv4(d)?,
            RouteAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    let prefix = Prefix::new(dst, m.header.destination_prefix_length);
    Some((table, prefix, m.header.tos, priority))
}

/// An IPv4 route of the main or local table, if it is one we use.
fn parse_route(m: &RouteMessage) -> Option<Route> {
    let (table, prefix, tos, priority) = route_key(m)?;
    // RFC 5549: an IPv6 gateway for IPv4 (RTA_VIA). ARP cannot resolve it; the kernel's.
    let ipv6_gateway = |attributes: &[RouteAttribute]| {
        attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Via(_)))
    };
    let kind = match m.header.kind {
        RouteType::Unicast
            if ipv6_gateway(&m.attributes)
                || m.attributes.iter().any(|a| match a {
                    RouteAttribute::MultiPath(hops) => {
                        hops.iter().any(|h| ipv6_gateway(&h.attributes))
                    }
                    _ => false,
                }) =>
        {
            RouteKind::Reject
        }
        RouteType::Unicast => {
            let dead = |f: RouteFlags| f.intersects(RouteFlags::Dead | RouteFlags::Linkdown);
            let mut oif = None;
            let mut gateway = None;
            let mut hops = Vec::new();
            for a in &m.attributes {
                match a {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(g) => gateway = ipv4(g),
                    RouteAttribute::MultiPath(list) => {
                        for nh in list {
                            hops.push(Hop {
                                ifindex: nh.interface_index,
                                gateway: nh.attributes.iter().find_map(|a| match a {
                                    RouteAttribute::Gateway(g) => ipv4(g),
                                    _ => None,
                                }),
                                dead: nh.flags.intersects(
                                    RouteNextHopFlags::Dead | RouteNextHopFlags::Linkdown,
                                ),
                            });
                        }
                    }
                    _ => {}
                }
            }
            if hops.is_empty()
                && let Some(ifindex) = oif
            {
                hops.push(Hop {
                    ifindex,
                    gateway,
                    dead: dead(m.header.flags),
                });
            }
            RouteKind::Unicast(hops)
        }
        RouteType::Local | RouteType::Broadcast | RouteType::Anycast | RouteType::Multicast => {
            RouteKind::Local
        }
        RouteType::BlackHole | RouteType::Unreachable | RouteType::Prohibit | RouteType::Throw => {
            RouteKind::Reject
        }
        _ => return None,
    };
    Some(Route {
        table,
        prefix,
        tos,
        priority,
        kind,
    })
}

/// An IPv4 neighbour entry: interface, address, MAC and state.
fn parse_neighbour(m: &NeighbourMessage) -> Option<(u32, Ipv4Addr, Neighbour)> {
    if m.header.family != AddressFamily::Inet {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => addr = Some(*d),
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(&l[..]).ok(),
            _ => {}
        }
    }
    let state = match m.header.state {
        NudState::Reachable | NudState::Permanent | NudState::Noarp => NeighbourState::Valid,
        NudState::Stale | NudState::Delay | NudState::Probe => NeighbourState::Stale,
        _ => NeighbourState::Invalid,
    };
    // An all-zero MAC is what a NOARP entry on a device without addresses carries.
    let mac = mac.filter(|m| m.iter().any(|&b| b != 0));
    Some((m.header.ifindex, addr?, Neighbour { mac, state }))
}

/// A link: its name, Ethernet MAC if it is Ethernet, and whether it is up.
fn parse_link(m: &LinkMessage) -> (u32, Link) {
    let mut name = String::new();
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(&a[..]).ok(),
            _ => {}
        }
    }
    let ethernet = m.header.link_layer_type == LinkLayerType::Ether;
    (
        m.header.index,
        Link {
            name,
            mac: mac.filter(|_| ethernet),
            up: m.header.flags.contains(LinkFlags::Up),
        },
    )
}
