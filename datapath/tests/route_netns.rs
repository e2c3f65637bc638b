//! The route and neighbour cache against a real kernel, in namespaces the test creates.
//!
//! Namespace a holds the cache under test (`Refresher` started on a thread inside it):
//! `xa` with 10.77.n.1/24 on a veth to namespace b (`xb`, 10.77.n.2/24), a default route via
//! b, reject routes (blackhole, unreachable, prohibit), and a more specific route inside a
//! blackhole. Namespace b is the gateway: its kernel answers ARP.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns); fails with what is missing, never
//! skips. Waits are bounded polls, not timing assertions. `VethPair`'s guard removes the namespaces even when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::netns::{VethPair, ip, run_in};
use xpptp_datapath::packet::L2Header;
use xpptp_datapath::route::{
    NextHop, OutputFilter, Refresher, RefresherConfig, RequestOutcome, Routes,
};

/// How long the kernel and the refresher get to catch up (generous: CI machines are slow;
/// this bounds a wait, it is not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(10);

fn ifindex(netns: &str, ifname: &str) -> u32 {
    let out = Command::new("ip")
        .args(["-n", netns, "-o", "link", "show", ifname])
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip link show {ifname} in {netns}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ifindex in {text:?}"))
}

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The third octet of the pair's subnet (10.77.n.0/24).
fn net(pair: &VethPair) -> u8 {
    pair.a.addr.octets()[2]
}

fn start(pair: &VethPair, config: RefresherConfig) -> (Arc<Routes>, Refresher) {
    run_in(&pair.a.netns, || Refresher::start(config))
        .unwrap_or_else(|err| panic!("starting the route refresher in {}: {err}", pair.a.netns))
}

/// Polls `lookup(dst)` until `want` accepts it; panics with the last answer after
/// [`PATIENCE`].
fn wait_for(routes: &Routes, dst: Ipv4Addr, what: &str, want: impl Fn(&NextHop) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = routes.lookup(dst);
        if want(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dst}: still {got:?} after {PATIENCE:?}, waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The routes of the scenario, in namespace a.
fn add_routes(pair: &VethPair) {
    let ns = pair.a.netns.as_str();
    let gw = pair.b.addr.to_string();
    ip(&["-n", ns, "route", "add", "default", "via", &gw, "dev", "xa"]);
    ip(&["-n", ns, "route", "add", "blackhole", "203.0.113.0/24"]);
    ip(&["-n", ns, "route", "add", "unreachable", "203.0.114.0/24"]);
    ip(&["-n", ns, "route", "add", "prohibit", "203.0.115.0/24"]);
    ip(&["-n", ns, "route", "add", "blackhole", "192.0.2.0/24"]);
    ip(&["-n", ns, "route", "add", "192.0.2.64/26", "via", &gw]);
}

#[test]
fn route_lookup_gives_each_kind_of_next_hop() {
    let pair = VethPair::create("rtk", 1);
    add_routes(&pair);
    let xa = ifindex(&pair.a.netns, "xa");
    let (routes, refresher) = start(&pair, RefresherConfig::default());
    let n = net(&pair);
    let gw = pair.b.addr;

    // On-link, nobody has talked to b yet: unresolved, the destination itself needs ARP.
    assert_eq!(
        routes.lookup(gw),
        NextHop::Unresolved {
            ifindex: xa,
            addr: gw
        }
    );
    let on_link = Ipv4Addr::new(10, 77, n, 99);
    assert_eq!(
        routes.lookup(on_link),
        NextHop::Unresolved {
            ifindex: xa,
            addr: on_link
        }
    );
    // Default route: the gateway needs ARP.
    let via_gw = NextHop::Unresolved {
        ifindex: xa,
        addr: gw,
    };
    assert_eq!(routes.lookup(addr("8.8.8.8")), via_gw);
    // The more specific route inside the blackhole forwards; the rest is rejected.
    assert_eq!(routes.lookup(addr("192.0.2.70")), via_gw);
    for rejected in [
        "192.0.2.1",
        "192.0.2.200",
        "203.0.113.9",
        "203.0.114.9",
        "203.0.115.9",
    ] {
        assert_eq!(
            routes.lookup(addr(rejected)),
            NextHop::NoRoute,
            "{rejected}"
        );
    }
    // This host's own addresses (local table).
    assert_eq!(routes.lookup(pair.a.addr), NextHop::Local);
    assert_eq!(routes.lookup(addr("127.0.0.1")), NextHop::Local);
    refresher.stop();
}

#[test]
fn route_request_resolves_the_gateway_through_the_kernel() {
    let pair = VethPair::create("rtr", 1);
    add_routes(&pair);
    let xa = ifindex(&pair.a.netns, "xa");
    let (routes, refresher) = start(&pair, RefresherConfig::default());
    let gw = pair.b.addr;
    let dst = addr("8.8.8.8");
    assert_eq!(
        routes.lookup(dst),
        NextHop::Unresolved {
            ifindex: xa,
            addr: gw
        }
    );

    assert_eq!(routes.request(gw, xa), RequestOutcome::Queued);
    // Asked again at once: rate-limited, not queued twice.
    assert_eq!(routes.request(gw, xa), RequestOutcome::RateLimited);
    let want = L2Header::ethernet(pair.b.mac, pair.a.mac);
    wait_for(&routes, dst, "the gateway's MAC", |hop| {
        matches!(hop, NextHop::Resolved { ifindex, l2, addr, .. }
            if *ifindex == xa && *l2 == want && *addr == gw)
    });
    // The kernel confirmed it itself (we sent nothing): fresh, not stale.
    assert!(matches!(
        routes.lookup(dst),
        NextHop::Resolved { refresh: false, .. }
    ));
    let stats = routes.counters().snapshot();
    assert_eq!(stats.requests_sent, 1, "{stats:?}");
    assert_eq!(stats.requests_dropped, 0, "{stats:?}");
    assert_eq!(stats.netlink_errors, 0, "{stats:?}");
    // And the kernel holds the entry (b answered its ARP request).
    let out = Command::new("ip")
        .args([
            "-n",
            &pair.a.netns,
            "neigh",
            "show",
            &gw.to_string(),
            "dev",
            "xa",
        ])
        .output()
        .expect("run ip");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("02:58:50"), "kernel neighbour entry: {text}");
    refresher.stop();
}

#[test]
fn route_changes_after_start_are_followed() {
    let pair = VethPair::create("rtc", 1);
    add_routes(&pair);
    let xa = ifindex(&pair.a.netns, "xa");
    let (routes, refresher) = start(&pair, RefresherConfig::default());
    let ns = pair.a.netns.as_str();
    let dst = addr("198.51.100.7");
    let via_gw = NextHop::Unresolved {
        ifindex: xa,
        addr: pair.b.addr,
    };
    assert_eq!(routes.lookup(dst), via_gw);
    let generation = routes.current().generation();

    ip(&["-n", ns, "route", "add", "blackhole", "198.51.100.0/24"]);
    wait_for(&routes, dst, "the new blackhole route", |h| {
        *h == NextHop::NoRoute
    });
    assert!(routes.current().generation() > generation);
    ip(&["-n", ns, "route", "del", "blackhole", "198.51.100.0/24"]);
    wait_for(&routes, dst, "the default route again", |h| *h == via_gw);

    // A neighbour added by hand shows up resolved, with its MAC; deleted, it is gone.
    let n = net(&pair);
    let host = Ipv4Addr::new(10, 77, n, 9);
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    ip(&[
        "-n",
        ns,
        "neigh",
        "add",
        &host.to_string(),
        "lladdr",
        "02:11:22:33:44:55",
        "dev",
        "xa",
        "nud",
        "permanent",
    ]);
    let want = L2Header::ethernet(mac, pair.a.mac);
    wait_for(
        &routes,
        host,
        "the static neighbour",
        |h| matches!(h, NextHop::Resolved { l2, refresh: false, .. } if *l2 == want),
    );
    ip(&["-n", ns, "neigh", "del", &host.to_string(), "dev", "xa"]);
    wait_for(&routes, host, "the neighbour's removal", |h| {
        matches!(h, NextHop::Unresolved { .. })
    });

    // A new local address is local.
    let extra = Ipv4Addr::new(10, 77, n, 200);
    ip(&["-n", ns, "addr", "add", &format!("{extra}/32"), "dev", "xa"]);
    wait_for(&routes, extra, "the new local address", |h| {
        *h == NextHop::Local
    });

    // Down and up again: the kernel flushes the routes out of xa without a notification
    // per route, and brings back only the connected one. The default route must be gone.
    ip(&["-n", ns, "link", "set", "xa", "down"]);
    wait_for(&routes, dst, "no route while xa is down", |h| {
        *h == NextHop::NoRoute
    });
    ip(&["-n", ns, "link", "set", "xa", "up"]);
    wait_for(
        &routes,
        host,
        "the connected route back",
        |h| matches!(h, NextHop::Unresolved { ifindex, .. } if *ifindex == xa),
    );
    assert_eq!(routes.lookup(dst), NextHop::NoRoute);

    let stats = routes.counters().snapshot();
    assert!(stats.notifications > 0, "{stats:?}");
    assert!(stats.full_dumps > 1, "{stats:?}");
    assert_eq!(stats.netlink_errors, 0, "{stats:?}");
    refresher.stop();
}

#[test]
fn route_out_of_another_interface_is_no_route_under_a_filter() {
    let pair = VethPair::create("rtf", 1);
    add_routes(&pair);
    let ns = pair.a.netns.as_str();
    // A second link in namespace a, both ends kept there.
    ip(&[
        "-n", ns, "link", "add", "xc", "type", "veth", "peer", "name", "xd",
    ]);
    ip(&["-n", ns, "link", "set", "xc", "up"]);
    ip(&["-n", ns, "link", "set", "xd", "up"]);
    ip(&["-n", ns, "route", "add", "100.64.0.0/10", "dev", "xc"]);
    let xa = ifindex(ns, "xa");
    let xc = ifindex(ns, "xc");

    let (open, refresher) = start(&pair, RefresherConfig::default());
    assert_eq!(
        open.lookup(addr("100.64.1.1")),
        NextHop::Unresolved {
            ifindex: xc,
            addr: addr("100.64.1.1")
        }
    );
    refresher.stop();

    let config = RefresherConfig {
        filter: OutputFilter::Only([xa].into_iter().collect()),
        ..RefresherConfig::default()
    };
    let (only_xa, refresher) = start(&pair, config);
    assert_eq!(only_xa.lookup(addr("100.64.1.1")), NextHop::NoRoute);
    assert_eq!(
        only_xa.lookup(addr("8.8.8.8")),
        NextHop::Unresolved {
            ifindex: xa,
            addr: pair.b.addr
        }
    );
    refresher.stop();
}
