//! The kernel's state as the refresher keeps it ([`KernelState`]), and the immutable
//! [`Snapshot`] built from it that the workers search.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use super::lpm::{Prefix, RangeTable};
use crate::packet::L2Header;

/// The routing table a route comes from. The kernel's default rules look in `local` first,
/// then `main`; other tables (policy routing) are not consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Local,
    Main,
}

/// What a route does with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// Forward through one of these next hops (more than one: multipath; none: a route we
    /// cannot follow, which counts as a reject route).
    Unicast(Vec<Hop>),
    /// Deliver to this host (local, broadcast, anycast and multicast routes): the kernel's.
    Local,
    /// Blackhole, unreachable, prohibit or throw.
    Reject,
}

/// One next hop of a unicast route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub ifindex: u32,
    /// `None`: the destination is on-link.
    pub gateway: Option<Ipv4Addr>,
    /// The kernel marked the hop dead or its link down (RTNH_F_DEAD / RTNH_F_LINKDOWN).
    pub dead: bool,
}

/// A route, keyed as the kernel keys it (table, prefix, TOS, metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub table: Table,
    pub prefix: Prefix,
    pub tos: u8,
    pub priority: u32,
    pub kind: RouteKind,
}

impl Route {
    pub fn key(&self) -> RouteKey {
        (self.table, self.prefix, self.tos, self.priority)
    }
}

pub type RouteKey = (Table, Prefix, u8, u32);

/// A neighbour entry's state, reduced to what forwarding needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourState {
    /// REACHABLE, PERMANENT, NOARP: use the MAC.
    Valid,
    /// STALE, DELAY, PROBE: use the MAC, and ask the kernel to confirm it (nobody else
    /// will: the kernel does not see the traffic we forward).
    Stale,
    /// INCOMPLETE, FAILED, NONE: no usable MAC.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: Option<[u8; 6]>,
    pub state: NeighbourState,
}

/// An interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// The interface's MAC: only Ethernet links (ARPHRD_ETHER with a 6-byte address) have one
    /// here; only they can carry forwarded packets.
    pub mac: Option<[u8; 6]>,
    /// Administratively up.
    pub up: bool,
}

/// Everything the refresher knows of the kernel's tables.
#[derive(Debug, Clone, Default)]
pub struct KernelState {
    pub routes: HashMap<RouteKey, Route>,
    pub neighbours: HashMap<(u32, Ipv4Addr), Neighbour>,
    pub links: HashMap<u32, Link>,
}

impl KernelState {
    pub fn add_route(&mut self, route: Route) {
        self.routes.insert(route.key(), route);
    }

    pub fn add_link(&mut self, ifindex: u32, link: Link) {
        self.links.insert(ifindex, link);
    }

    pub fn add_neighbour(&mut self, ifindex: u32, addr: Ipv4Addr, neighbour: Neighbour) {
        self.neighbours.insert((ifindex, addr), neighbour);
    }
}

/// Which interfaces forwarded packets may leave through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OutputFilter {
    /// Any Ethernet interface (one-armed mode).
    #[default]
    Any,
    /// Only these interface indexes (two-armed mode: the inside interface); a route out of
    /// any other interface counts as no route.
    Only(HashSet<u32>),
}

impl OutputFilter {
    fn allows(&self, ifindex: u32) -> bool {
        match self {
            OutputFilter::Any => true,
            OutputFilter::Only(set) => set.contains(&ifindex),
        }
    }
}

/// Where a packet goes next, as [`Snapshot::lookup`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Send it out of `ifindex` behind `l2` (next hop's MAC to, the interface's MAC from).
    Resolved {
        ifindex: u32,
        l2: L2Header,
        /// The snapshot's generation (changes with every rebuild).
        generation: u64,
        /// The kernel's entry is stale: use it, and call
        /// [`Routes::request`](super::Routes::request) for `addr` so the kernel confirms it.
        refresh: bool,
        /// The neighbour's address (the gateway, or the destination when on-link).
        addr: Ipv4Addr,
    },
    /// The next hop `addr` on `ifindex` has no MAC yet: count the packet, hand it to the
    /// kernel or drop it, and call [`Routes::request`](super::Routes::request).
    Unresolved { ifindex: u32, addr: Ipv4Addr },
    /// An address of this host (or broadcast/multicast): the kernel's.
    Local,
    /// No route, a reject route, or a route out of an interface we may not use.
    NoRoute,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Local,
    Reject,
    /// `count` hops from `first` in [`Snapshot::hops`].
    Forward {
        first: u32,
        count: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct HopEntry {
    ifindex: u32,
    gateway: Option<Ipv4Addr>,
    /// The output interface's MAC.
    src: [u8; 6],
}

/// An immutable view of the tables, searched per packet.
#[derive(Debug)]
pub struct Snapshot {
    local: RangeTable<Target>,
    main: RangeTable<Target>,
    hops: Vec<HopEntry>,
    /// Sorted by key (`ifindex << 32 | address`), usable entries only.
    neighbour_keys: Vec<u64>,
    neighbours: Vec<([u8; 6], bool)>,
    generation: u64,
}

fn neighbour_key(ifindex: u32, addr: Ipv4Addr) -> u64 {
    (u64::from(ifindex) << 32) | u64::from(u32::from(addr))
}

impl Snapshot {
    /// An empty snapshot: every lookup is `NoRoute`.
    pub fn empty() -> Snapshot {
        Snapshot::build(&KernelState::default(), &OutputFilter::Any, 0)
    }

    /// Builds the searchable view of `state`. Routes with a TOS are left out (the fast path
    /// looks up by destination only); among routes for one prefix the lowest metric wins. A
    /// unicast route's hops that are dead or whose link is down or gone are left out, and a
    /// route with none left is skipped (as the kernel skips it); hops out of a link that is
    /// not Ethernet or not allowed by `filter` make the route a reject route when no other
    /// hop is usable (the kernel would take it, we cannot).
    pub fn build(state: &KernelState, filter: &OutputFilter, generation: u64) -> Snapshot {
        let mut routes: Vec<&Route> = state.routes.values().filter(|r| r.tos == 0).collect();
        routes.sort_by_key(|r| (r.prefix, r.priority));
        let mut hops = Vec::new();
        let mut local = Vec::new();
        let mut main = Vec::new();
        for route in routes {
            let target = match &route.kind {
                RouteKind::Local => Target::Local,
                RouteKind::Reject => Target::Reject,
                RouteKind::Unicast(list) => {
                    let first = hops.len();
                    let mut refused = false;
                    for hop in list {
                        let Some(link) = state.links.get(&hop.ifindex) else {
                            continue;
                        };
                        if hop.dead || !link.up {
                            continue;
                        }
                        match link.mac {
                            Some(src) if filter.allows(hop.ifindex) => hops.push(HopEntry {
                                ifindex: hop.ifindex,
                                gateway: hop.gateway,
                                src,
                            }),
                            _ => refused = true,
                        }
                    }
                    let count = hops.len() - first;
                    match (u32::try_from(first), u32::try_from(count)) {
                        (Ok(first), Ok(count)) if count > 0 => Target::Forward { first, count },
                        // The kernel would use this route, out of an interface we may not:
                        // no route for us.
                        _ if refused => Target::Reject,
                        // No hop we could parse (a nexthop object the kernel did not
                        // expand): the kernel would use it, we cannot.
                        _ if list.is_empty() => Target::Reject,
                        // Every hop dead or down: the kernel skips such a route, so do we.
                        _ => continue,
                    }
                }
            };
            match route.table {
                Table::Local => local.push((route.prefix, target)),
                Table::Main => main.push((route.prefix, target)),
            }
        }
        let mut neighbours: Vec<(u64, ([u8; 6], bool))> = state
            .neighbours
            .iter()
            .filter_map(|(&(ifindex, addr), n)| {
                let mac = n.mac?;
                let stale = match n.state {
                    NeighbourState::Valid => false,
                    NeighbourState::Stale => true,
                    NeighbourState::Invalid => return None,
                };
                Some((neighbour_key(ifindex, addr), (mac, stale)))
            })
            .collect();
        neighbours.sort_unstable_by_key(|(k, _)| *k);
        Snapshot {
            local: RangeTable::build(local),
            main: RangeTable::build(main),
            hops,
            neighbour_keys: neighbours.iter().map(|(k, _)| *k).collect(),
            neighbours: neighbours.into_iter().map(|(_, v)| v).collect(),
            generation,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of prefixes (local and main tables) in the view.
    pub fn routes(&self) -> usize {
        self.local.len() + self.main.len()
    }

    /// Where a packet to `dst` goes next. No allocation, no lock, no system call.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> NextHop {
        let target = match self.local.lookup(dst) {
            Some(t) => t,
            None => match self.main.lookup(dst) {
                Some(t) => t,
                None => return NextHop::NoRoute,
            },
        };
        let (first, count) = match *target {
            Target::Local => return NextHop::Local,
            Target::Reject => return NextHop::NoRoute,
            Target::Forward { first, count } => (first, count),
        };
        // Multipath: spread destinations over the hops (the kernel hashes the flow; we see
        // only the destination, which keeps one destination on one hop).
        let pick = if count > 1 {
            (u32::from(dst).wrapping_mul(0x9E37_79B1) >> 16) % count
        } else {
            0
        };
        let Some(hop) = usize::try_from(first.wrapping_add(pick))
            .ok()
            .and_then(|i| self.hops.get(i))
        else {
            return NextHop::NoRoute;
        };
        let addr = hop.gateway.unwrap_or(dst);
        let key = neighbour_key(hop.ifindex, addr);
        match self
            .neighbour_keys
            .binary_search(&key)
            .ok()
            .and_then(|i| self.neighbours.get(i))
        {
            Some(&(mac, stale)) => NextHop::Resolved {
                ifindex: hop.ifindex,
                l2: L2Header::ethernet(mac, hop.src),
                generation: self.generation,
                refresh: stale,
                addr,
            },
            None => NextHop::Unresolved {
                ifindex: hop.ifindex,
                addr,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ETH0: u32 = 2;
    const ETH1: u32 = 3;
    const TUN: u32 = 4;
    const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const GW_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 1, 2];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn route(table: Table, prefix: &str, priority: u32, kind: RouteKind) -> Route {
        let (a, l) = prefix.split_once('/').unwrap();
        Route {
            table,
            prefix: Prefix::new(ip(a), l.parse().unwrap()),
            tos: 0,
            priority,
            kind,
        }
    }

    fn via(ifindex: u32, gateway: Option<&str>) -> RouteKind {
        RouteKind::Unicast(vec![Hop {
            ifindex,
            gateway: gateway.map(ip),
            dead: false,
        }])
    }

    fn state() -> KernelState {
        let mut s = KernelState::default();
        for (ifindex, name, mac) in [(ETH0, "eth0", Some(MAC0)), (ETH1, "eth1", Some(MAC1))] {
            let name = name.to_string();
            s.add_link(
                ifindex,
                Link {
                    name,
                    mac,
                    up: true,
                },
            );
        }
        s.add_link(
            TUN,
            Link {
                name: "tun0".into(),
                mac: None,
                up: true,
            },
        );
        s.add_route(route(Table::Main, "10.0.0.0/24", 0, via(ETH0, None)));
        s.add_route(route(
            Table::Main,
            "0.0.0.0/0",
            100,
            via(ETH0, Some("10.0.0.1")),
        ));
        s.add_route(route(
            Table::Main,
            "0.0.0.0/0",
            50,
            via(ETH1, Some("10.9.0.1")),
        ));
        s.add_route(route(Table::Main, "10.9.0.0/24", 0, via(ETH1, None)));
        s.add_route(route(Table::Main, "198.51.100.0/24", 0, RouteKind::Reject));
        s.add_route(route(
            Table::Main,
            "198.51.100.128/25",
            0,
            via(ETH0, Some("10.0.0.1")),
        ));
        s.add_route(route(Table::Main, "172.16.0.0/12", 0, via(TUN, None)));
        s.add_route(route(Table::Local, "10.0.0.5/32", 0, RouteKind::Local));
        s.add_route(route(Table::Local, "127.0.0.0/8", 0, RouteKind::Local));
        s.add_route(route(Table::Main, "127.0.0.0/24", 0, via(ETH0, None)));
        let valid = |mac| Neighbour {
            mac: Some(mac),
            state: NeighbourState::Valid,
        };
        s.add_neighbour(ETH0, ip("10.0.0.1"), valid(GW_MAC));
        s.add_neighbour(ETH1, ip("10.9.0.1"), valid(GW_MAC));
        s.add_neighbour(
            ETH0,
            ip("10.0.0.7"),
            Neighbour {
                mac: Some(HOST_MAC),
                state: NeighbourState::Stale,
            },
        );
        s.add_neighbour(
            ETH0,
            ip("10.0.0.8"),
            Neighbour {
                mac: None,
                state: NeighbourState::Invalid,
            },
        );
        s
    }

    #[test]
    fn kinds_of_next_hop() {
        let snap = Snapshot::build(&state(), &OutputFilter::Any, 7);
        // The default route with the lower metric (via eth1) wins.
        assert_eq!(
            snap.lookup(ip("8.8.8.8")),
            NextHop::Resolved {
                ifindex: ETH1,
                l2: L2Header::ethernet(GW_MAC, MAC1),
                generation: 7,
                refresh: false,
                addr: ip("10.9.0.1"),
            }
        );
        // On-link, stale neighbour: usable, refresh asked.
        assert_eq!(
            snap.lookup(ip("10.0.0.7")),
            NextHop::Resolved {
                ifindex: ETH0,
                l2: L2Header::ethernet(HOST_MAC, MAC0),
                generation: 7,
                refresh: true,
                addr: ip("10.0.0.7"),
            }
        );
        // On-link, incomplete or absent neighbour.
        for host in ["10.0.0.8", "10.0.0.9"] {
            assert_eq!(
                snap.lookup(ip(host)),
                NextHop::Unresolved {
                    ifindex: ETH0,
                    addr: ip(host)
                }
            );
        }
        assert_eq!(snap.lookup(ip("198.51.100.1")), NextHop::NoRoute);
        assert!(matches!(
            snap.lookup(ip("198.51.100.200")),
            NextHop::Resolved { ifindex: ETH0, .. }
        ));
        // Out of a non-Ethernet link: not ours to forward.
        assert_eq!(snap.lookup(ip("172.16.1.1")), NextHop::NoRoute);
        assert_eq!(snap.lookup(ip("10.0.0.5")), NextHop::Local);
        // The local table wins over a longer prefix in main, as the kernel's rules order them.
        assert_eq!(snap.lookup(ip("127.0.0.1")), NextHop::Local);
        // Ten routes; the two default routes are one prefix.
        assert_eq!(snap.routes(), 9);
    }

    #[test]
    fn output_filter_turns_other_interfaces_into_no_route() {
        let filter = OutputFilter::Only([ETH0].into_iter().collect());
        let snap = Snapshot::build(&state(), &filter, 1);
        // The preferred default (eth1) is not allowed: no route, not a fallback to metric 100
        // (the kernel would send it out of eth1).
        assert_eq!(snap.lookup(ip("8.8.8.8")), NextHop::NoRoute);
        assert_eq!(snap.lookup(ip("10.9.0.20")), NextHop::NoRoute);
        assert!(matches!(
            snap.lookup(ip("10.0.0.9")),
            NextHop::Unresolved { ifindex: ETH0, .. }
        ));
    }

    #[test]
    fn down_links_dead_hops_and_tos_routes_are_not_used() {
        let mut s = state();
        if let Some(link) = s.links.get_mut(&ETH1) {
            link.up = false;
        }
        let mut tos = route(Table::Main, "203.0.113.0/24", 0, via(ETH0, None));
        tos.tos = 0x10;
        s.add_route(tos);
        s.add_route(route(
            Table::Main,
            "192.0.2.0/24",
            0,
            RouteKind::Unicast(vec![Hop {
                ifindex: ETH0,
                gateway: None,
                dead: true,
            }]),
        ));
        let snap = Snapshot::build(&s, &OutputFilter::Any, 1);
        let via_eth0 = NextHop::Resolved {
            ifindex: ETH0,
            l2: L2Header::ethernet(GW_MAC, MAC0),
            generation: 1,
            refresh: false,
            addr: ip("10.0.0.1"),
        };
        // The preferred default route is out of a down link: the metric-100 one takes over.
        assert_eq!(snap.lookup(ip("8.8.8.8")), via_eth0);
        // A route whose only hop is dead is skipped for the default route.
        assert_eq!(snap.lookup(ip("192.0.2.1")), via_eth0);
        // So is the /24 with a TOS.
        assert_eq!(snap.lookup(ip("203.0.113.1")), via_eth0);
    }

    #[test]
    fn multipath_spreads_destinations_over_live_hops() {
        let mut s = state();
        s.add_route(route(
            Table::Main,
            "100.64.0.0/10",
            0,
            RouteKind::Unicast(vec![
                Hop {
                    ifindex: ETH0,
                    gateway: Some(ip("10.0.0.1")),
                    dead: false,
                },
                Hop {
                    ifindex: ETH1,
                    gateway: Some(ip("10.9.0.1")),
                    dead: false,
                },
            ]),
        ));
        let snap = Snapshot::build(&s, &OutputFilter::Any, 1);
        let mut seen = HashSet::new();
        for i in 0..64u32 {
            let dst = Ipv4Addr::from(u32::from(ip("100.64.0.0")) + i * 977);
            match snap.lookup(dst) {
                NextHop::Resolved { ifindex, .. } => {
                    seen.insert(ifindex);
                    assert_eq!(snap.lookup(dst), snap.lookup(dst));
                }
                other => panic!("{dst}: {other:?}"),
            }
        }
        assert_eq!(seen, [ETH0, ETH1].into_iter().collect());
    }

    #[test]
    fn empty_snapshot_has_no_route() {
        assert_eq!(Snapshot::empty().lookup(ip("10.0.0.1")), NextHop::NoRoute);
    }
}
