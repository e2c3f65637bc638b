//! Network namespaces and veth pairs for the root-only tests of every xpptp crate, removed by
//! a guard (test support; not published).
//!
//! [`VethPair::create`] makes two fresh namespaces (names unique per process and call) joined
//! by a veth pair with N queues each way, fixed MACs and addresses; dropping the guard deletes
//! both namespaces (which destroys the veth) even when the test panics. [`run_in`] runs a
//! closure on a thread that has entered a namespace; sockets it creates stay in that
//! namespace when used from other threads.
//!
//! Every failure panics with what is missing: these tests run as root in CI and are never
//! skipped.
// Test helpers: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `ip ARGS`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run `ip` (iproute2 missing from PATH?): {err}"));
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}; these tests need root with CAP_NET_ADMIN and a kernel \
         with network namespaces and veth",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// One end of the pair.
#[derive(Debug, Clone)]
pub struct End {
    pub netns: String,
    pub ifname: &'static str,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
}

/// Two namespaces joined by a veth pair; both are deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    pub a: End,
    pub b: End,
    pub queues: u32,
    created: Vec<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl VethPair {
    /// Namespaces `xp-<tag>-<pid>-<n>-a|b`, veth `xa` (in a, 10.77.n.1/24) and `xb` (in b,
    /// 10.77.n.2/24), `queues` RX and TX queues on each end, both up.
    pub fn create(tag: &str, queues: u32) -> VethPair {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let subnet = u8::try_from(n % 250).expect("in range");
        let base = format!("xp-{tag}-{}-{n}", std::process::id());
        let mut pair = VethPair {
            a: End {
                netns: format!("{base}-a"),
                ifname: "xa",
                mac: [0x02, 0x58, 0x50, subnet, 0, 1],
                addr: Ipv4Addr::new(10, 77, subnet, 1),
            },
            b: End {
                netns: format!("{base}-b"),
                ifname: "xb",
                mac: [0x02, 0x58, 0x50, subnet, 0, 2],
                addr: Ipv4Addr::new(10, 77, subnet, 2),
            },
            queues,
            created: Vec::new(),
        };
        // Each namespace joins `created` as soon as it exists, so Drop removes it even if a
        // later step panics.
        for ns in [pair.a.netns.clone(), pair.b.netns.clone()] {
            ip(&["netns", "add", &ns]);
            pair.created.push(ns);
        }
        let q = queues.to_string();
        let (a, b) = (&pair.a, &pair.b);
        ip(&[
            "-n",
            &a.netns,
            "link",
            "add",
            a.ifname,
            "address",
            &mac_text(&a.mac),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b.ifname,
            "address",
            &mac_text(&b.mac),
            "netns",
            &b.netns,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]);
        for end in [a, b] {
            let cidr = format!("{}/24", end.addr);
            ip(&["-n", &end.netns, "addr", "add", &cidr, "dev", end.ifname]);
            ip(&["-n", &end.netns, "link", "set", end.ifname, "up"]);
            ip(&["-n", &end.netns, "link", "set", "lo", "up"]);
        }
        pair
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            // Not `ip()`: a failing cleanup must not panic while unwinding.
            match Command::new("ip").args(["netns", "del", &ns]).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "warning: `ip netns del {ns}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(err) => eprintln!("warning: cannot run `ip netns del {ns}`: {err}"),
            }
        }
    }
}

/// Moves the calling thread into namespace `netns` (only this thread).
pub fn enter(netns: &str) {
    let path = format!("/run/netns/{netns}");
    let file = File::open(&path).unwrap_or_else(|err| panic!("open {path}: {err}"));
    // SAFETY: setns on a valid namespace descriptor changes only this thread's network
    // namespace; `file` stays open for the duration of the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns into {netns} failed: {} (needs CAP_SYS_ADMIN)",
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on a new thread inside `netns` and returns its result (a panic in `f` fails the
/// caller).
pub fn run_in<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            enter(netns);
            f()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Pins the calling thread to `cpu` (which must exist).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of the set it is given; `cpu` is below CPU_SETSIZE
    // (checked by the assertion before the call).
    assert!(cpu < 1024, "cpu {cpu} out of range");
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads the set (of the size passed) for the calling thread (0).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        rc,
        0,
        "pinning to cpu {cpu} failed: {}",
        std::io::Error::last_os_error()
    );
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
