//! The datapath daemon assembled: XDP steering, one AF_XDP socket and one worker per receive
//! queue, the call table, and the [`Fastpath`] the command socket drives.
//!
//! # Start and stop
//!
//! [`Datapath::start`] follows the working order of AF_XDP (shared/notes/environment.md):
//! load the program, open and bind one socket per queue, put each into the XSKMAP, attach,
//! then start the workers. [`Datapath::shutdown`] detaches XDP first (traffic goes back to
//! the kernel at once), then stops the workers. Any failure on the way drops what was built
//! (the bpf_link detaches with it).
//!
//! # The command path's rules
//!
//! One lock ([`Inner`]) serialises every change: the call table's only writer, the XDP maps
//! and the per-call facts the listing needs. Changes are ordered so that the XDP program
//! never steers a call's GRE before the workers can find the call, and stops steering it
//! before the call leaves the table; each establish, replace and remove is all or nothing
//! (a failed step undoes the earlier ones).

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aya::programs::XdpMode;
use xpptp_proto::command::{
    self as wire, CallInfo, CallList, DirectionStats, DropCount, Failed, FailureCode, MppeInfo,
    PppFromPeer, ResetRequestNeeded, Traffic,
};
use xpptp_proto::ppp::link::Role;
use xpptp_proto::session::{Established, MppeKeyState};

use crate::backend::socket::{
    SocketBackend, SocketBackendError, SocketConfig, warn_if_not_forwarding,
};
use crate::backend::{BackendKind, XDP_FALLBACK_HINT};
use crate::calls::{CallTable, CallTableWriter, TableError};
use crate::command::{Event, EventQueue, Fastpath};
use crate::packet::{CallState, DropReason, L2Header};
use crate::punt::{ControlPath, PuntEvent};
use crate::route::{OutputFilter, Refresher, RefresherConfig, RouteError};
use crate::steering::{Steering, SteeringError};
use crate::tun::{Tun, TunConfig, TunError, TunQueue};
use crate::worker::{
    NextHops, Other, RingSnapshot, TunReaderStats, TunReaders, Worker, WorkerCall, WorkerConfig,
    WorkerError, WorkerStats,
};
use crate::xsk::{XskConfig, XskError, XskSocket};

/// How XDP is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, or fail.
    Native,
    /// Generic (skb) XDP: any interface, slower.
    Generic,
    /// Native, falling back to generic with a warning.
    Auto,
}

/// What [`Datapath::start`] needs.
#[derive(Debug, Clone)]
pub struct DatapathConfig {
    /// The interface clients' GRE arrives on (one-armed: the uplink too).
    pub interface: String,
    /// Two-armed mode: the interface facing the network. Upstream packets leave through it
    /// (their routes are out of it), downstream packets arrive on it; XDP is attached to
    /// both, and worker `q` serves queue `q` of both. `None`: one-armed.
    pub inside: Option<String>,
    pub mode: AttachMode,
    /// Receive queues to serve (one socket and worker each); `None`: every RX queue the
    /// interface has (from sysfs).
    pub queues: Option<u32>,
    /// Our outer address (the one clients' control connections reach); `None`: the
    /// interface's IPv4 address.
    pub local_address: Option<Ipv4Addr>,
    /// The interface's MAC, source of every frame sent; `None`: from sysfs.
    pub local_mac: Option<[u8; 6]>,
    /// A static next hop: the destination MAC of every frame sent, both directions, instead
    /// of the kernel's route and neighbour tables (`None`, the default). For a one-armed
    /// concentrator behind a single router whose MAC is fixed; everything else wants the
    /// tables (several next hops, failover, ARP changes).
    pub next_hop_mac: Option<[u8; 6]>,
    /// The TUN device: the concentrator's tunnel address and the client pool routed into it
    /// (its `queues` is set to the number of workers).
    pub tun: TunConfig,
    /// Every queue's UMEM and rings.
    pub xsk: XskConfig,
    /// Pin worker `q` to core `q`.
    pub pin: bool,
    /// Events (punted frames, reset requests) queued for the control plane at most.
    pub event_capacity: usize,
    /// XDP and AF_XDP workers, or the socket backend (raw GRE socket and TUN).
    pub backend: BackendKind,
    /// The socket backend's downstream threads (one TUN queue each); `None`: one per core.
    pub socket_threads: Option<usize>,
}

impl DatapathConfig {
    /// Defaults for `interface` with the TUN device `tun`: native XDP with fallback, every
    /// queue, addresses from the interface, next hops from the kernel's tables, pinned
    /// workers.
    pub fn new(interface: impl Into<String>, tun: TunConfig) -> DatapathConfig {
        DatapathConfig {
            interface: interface.into(),
            inside: None,
            mode: AttachMode::Auto,
            queues: None,
            local_address: None,
            local_mac: None,
            next_hop_mac: None,
            tun,
            xsk: XskConfig::default(),
            pin: true,
            event_capacity: 4096,
            backend: BackendKind::Xdp,
            socket_threads: None,
        }
    }
}

/// Why the datapath could not start. Each says what is missing and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("no network interface named {0:?} in this network namespace (see `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "cannot read {what} of {interface} from {path}: {source}. sysfs shows the network \
         namespace it was mounted in: run the daemon under `ip netns exec`, which mounts the \
         right one, or pass the value on the command line ({flag})"
    )]
    Sysfs {
        interface: String,
        what: &'static str,
        path: String,
        flag: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "--next-hop-mac gives one next hop for both directions, which only a one-armed \
         concentrator has; with --inside the next hops come from the kernel's tables"
    )]
    StaticTwoArmed,
    #[error("the inside interface must differ from the outside one ({0})")]
    SameInterface(String),
    #[error("{interface} has no IPv4 address; add one or pass --local-address")]
    NoLocalAddress { interface: String },
    #[error(
        "loading the XDP program failed: needs CAP_BPF and CAP_NET_ADMIN (run as root, or \
         grant them: setcap cap_bpf,cap_net_admin,cap_net_raw,cap_ipc_lock+ep, or systemd \
         AmbientCapabilities=) and a kernel with BPF; {XDP_FALLBACK_HINT}"
    )]
    Load(#[source] Box<SteeringError>),
    #[error(
        "attaching XDP to {interface} in {mode} mode failed: needs CAP_NET_ADMIN; in native \
         mode also a driver with XDP support (try --mode generic); another XDP program on the \
         interface must be removed first (`ip link set dev {interface} xdp off`); \
         {XDP_FALLBACK_HINT}"
    )]
    Attach {
        interface: String,
        mode: &'static str,
        #[source]
        source: Box<SteeringError>,
    },
    #[error("the XDP program's maps refused {what}")]
    Maps {
        what: &'static str,
        #[source]
        source: Box<SteeringError>,
    },
    #[error(
        "AF_XDP socket for {interface} queue {queue} failed (needs a kernel with \
         CONFIG_XDP_SOCKETS, CAP_NET_RAW, and the queue must exist: see --queues); \
         {XDP_FALLBACK_HINT}"
    )]
    Socket {
        interface: String,
        queue: u32,
        #[source]
        source: Box<XskError>,
    },
    #[error("the TUN device: {0}")]
    Tun(#[from] TunError),
    #[error("the socket backend: {0}")]
    SocketBackend(#[from] SocketBackendError),
    #[error("starting the TUN readers failed: {0}")]
    TunReaders(#[source] io::Error),
    #[error("the route and neighbour tables: {0}")]
    Routes(#[from] RouteError),
    #[error(
        "opening a raw IPv4 socket (sending GRE to clients whose next hop the kernel resolves) \
         failed: needs CAP_NET_RAW: {0}"
    )]
    RawSocket(#[source] io::Error),
    #[error("starting the worker of queue {queue} failed")]
    Worker {
        queue: u32,
        #[source]
        source: Box<WorkerError>,
    },
}

/// What the listing needs that the fast path's call state does not keep.
#[derive(Debug, Clone)]
struct CallFacts {
    peer_call_id: u16,
    peer: Ipv4Addr,
    client: Ipv4Addr,
    /// The XDP call map lets plain IP through (no MPPE upstream).
    plain_ip: bool,
    user: Option<Vec<u8>>,
    transmit: Option<MppeInfo>,
    receive: Option<MppeInfo>,
    mtu: u16,
    since: Instant,
}

/// The XDP maps of every interface's program (one, or two when two-armed), changed
/// together; with the socket backend there is nothing to steer (the kernel delivers GRE to
/// the raw socket and routes the pool into the TUN by itself) and every change succeeds. A
/// change is applied to each program in turn and stops at the first failure; the callers'
/// undo steps are applied to all (each is idempotent).
#[derive(Debug)]
struct Maps(Vec<Steering>);

impl Maps {
    fn each(
        &mut self,
        mut f: impl FnMut(&mut Steering) -> Result<(), SteeringError>,
    ) -> Result<(), SteeringError> {
        self.0.iter_mut().try_for_each(&mut f)
    }

    fn establish_call(
        &mut self,
        id: u16,
        peer: Ipv4Addr,
        plain: bool,
    ) -> Result<(), SteeringError> {
        self.each(|s| s.establish_call(id, peer, plain))
    }

    fn remove_call(&mut self, id: u16) -> Result<(), SteeringError> {
        self.each(|s| s.remove_call(id))
    }

    fn add_client(&mut self, client: Ipv4Addr, id: u16) -> Result<(), SteeringError> {
        self.each(|s| s.add_client(client, id))
    }

    fn remove_client(&mut self, client: Ipv4Addr) -> Result<(), SteeringError> {
        self.each(|s| s.remove_client(client))
    }
}
/// Everything the command path changes, under one lock.
#[derive(Debug)]
struct Inner {
    steering: Maps,
    writer: CallTableWriter<WorkerCall>,
    facts: BTreeMap<u16, CallFacts>,
}

/// The running datapath. Field order is drop order: XDP is detached (with `inner`) before
/// the workers stop; the TUN device goes with the last of its queues (workers and readers).
#[derive(Debug)]
pub struct Datapath {
    inner: Mutex<Inner>,
    calls: Arc<CallTable<WorkerCall>>,
    local_address: Ipv4Addr,
    events: Arc<EventQueue>,
    control: Arc<ControlPath>,
    workers: Vec<Worker>,
    readers: Option<TunReaders>,
    socket: Option<SocketBackend>,
    tun_name: String,
    refresher: Option<Refresher>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Inner is consistent between statements: a panic mid-change leaves at worst one call
    // half-steered, which the next remove or replace of that call repairs.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sysfs(interface: &str, file: &str) -> String {
    format!("/sys/class/net/{interface}/{file}")
}

/// The interface's index, or `NoSuchInterface`.
fn ifindex(interface: &str) -> Result<xdp::nic::NicIndex, DatapathError> {
    let missing = || DatapathError::NoSuchInterface(interface.to_owned());
    let name = CString::new(interface).map_err(|_| missing())?;
    xdp::nic::NicIndex::lookup_by_name(&name)
        .ok()
        .flatten()
        .ok_or_else(missing)
}

/// Reads a sysfs attribute of `interface`, checking that sysfs shows this namespace's
/// interface (same ifindex).
fn read_sysfs(
    interface: &str,
    index: u32,
    what: &'static str,
    file: &str,
    flag: &'static str,
) -> Result<String, DatapathError> {
    let error = |path: String, source| DatapathError::Sysfs {
        interface: interface.to_owned(),
        what,
        path,
        flag,
        source,
    };
    let index_path = sysfs(interface, "ifindex");
    let shown = fs::read_to_string(&index_path).map_err(|e| error(index_path.clone(), e))?;
    if shown.trim().parse::<u32>().ok() != Some(index) {
        let other = io::Error::other(format!(
            "it shows ifindex {}, this namespace's {interface} is {index}",
            shown.trim()
        ));
        return Err(error(index_path, other));
    }
    let path = sysfs(interface, file);
    fs::read_to_string(&path).map_err(|e| error(path, e))
}

fn rx_queues(interface: &str, index: u32) -> Result<u32, DatapathError> {
    // Checks the namespace through ifindex first.
    read_sysfs(interface, index, "the queue count", "ifindex", "--queues")?;
    let path = sysfs(interface, "queues");
    let entries = fs::read_dir(&path).map_err(|source| DatapathError::Sysfs {
        interface: interface.to_owned(),
        what: "the queue count",
        path: path.clone(),
        flag: "--queues",
        source,
    })?;
    let n = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn interface_mac(interface: &str, index: u32) -> Result<[u8; 6], DatapathError> {
    let text = read_sysfs(
        interface,
        index,
        "the MAC address",
        "address",
        "--local-mac",
    )?;
    parse_mac(&text).ok_or_else(|| DatapathError::Sysfs {
        interface: interface.to_owned(),
        what: "the MAC address",
        path: sysfs(interface, "address"),
        flag: "--local-mac",
        source: io::Error::other(format!("{:?} is not an Ethernet address", text.trim())),
    })
}

fn mppe_info(k: &Option<MppeKeyState>) -> Option<MppeInfo> {
    k.as_ref().map(|k| MppeInfo {
        strength: k.strength,
        mode: k.mode,
    })
}

fn refused(code: FailureCode, detail: impl Into<String>) -> Failed {
    Failed {
        code,
        detail: detail.into(),
    }
}

fn table_refusal(e: TableError) -> Failed {
    let code = match e {
        TableError::CallIdZero => FailureCode::CallIdZero,
        TableError::CallIdInUse(_) => FailureCode::CallIdInUse,
        TableError::AddressInUse { .. } => FailureCode::AddressInUse,
        TableError::NoSuchCall(_) => FailureCode::NoSuchCall,
    };
    refused(code, e.to_string())
}

fn map_refusal(what: &str, e: &SteeringError) -> Failed {
    let mut detail = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    refused(FailureCode::Internal, detail)
}

/// The command interface's name for a fast-path drop reason (several of ours share one).
fn wire_drop_reason(r: DropReason) -> wire::DropReason {
    use wire::DropReason as W;
    match r {
        DropReason::Truncated
        | DropReason::NotIpv4
        | DropReason::BadOuterIpv4
        | DropReason::OuterFragment
        | DropReason::NotGre
        | DropReason::BadGre
        | DropReason::BadPpp
        | DropReason::BadInnerIpv4
        | DropReason::NoHeadroom
        | DropReason::NetworkProtocolNotOpen => W::Malformed,
        DropReason::CallIdMismatch => W::UnknownCall,
        DropReason::Spoofed | DropReason::WrongDestination | DropReason::InnerSpoofed => {
            W::WrongPeer
        }
        DropReason::Duplicate => W::Duplicate,
        DropReason::Stale => W::OutOfWindow,
        DropReason::Unencrypted | DropReason::UnexpectedMppe | DropReason::Mppe => W::MppeError,
        DropReason::TtlExpired => W::NoRoute,
        DropReason::ExceedsMtu => W::TooBig,
    }
}

/// One worker's counters as the command interface reports them.
fn wire_worker_stats(
    queue: u32,
    cpu: Option<u32>,
    s: &WorkerStats,
    rings: &[RingSnapshot],
) -> wire::WorkerStats {
    let traffic = |p: crate::worker::PacketsBytes| Traffic {
        packets: p.packets,
        bytes: p.bytes,
    };
    let mut drops: Vec<DropCount> = Vec::new();
    let mut add = |reason: wire::DropReason, packets: u64| {
        if packets == 0 {
            return;
        }
        match drops.iter_mut().find(|d| d.reason == reason) {
            Some(d) => d.packets = d.packets.saturating_add(packets),
            None => drops.push(DropCount { reason, packets }),
        }
    };
    for (reason, n) in DropReason::ALL.iter().zip(s.drops.iter()) {
        add(wire_drop_reason(*reason), *n);
    }
    let other = |o: Other| s.other.get(o.index()).copied().unwrap_or(0);
    add(wire::DropReason::UnknownCall, other(Other::UnknownCall));
    add(wire::DropReason::UnknownClient, other(Other::UnknownClient));
    add(wire::DropReason::HandOffFull, other(Other::HandOffFull));
    add(wire::DropReason::PuntQueueFull, other(Other::PuntFull));
    // A full TUN queue is a full ring too.
    add(
        wire::DropReason::RingFull,
        other(Other::TxRingFull).saturating_add(other(Other::TunDropped)),
    );
    add(wire::DropReason::NoRoute, other(Other::PeerUnreachable));
    wire::WorkerStats {
        worker: u16::try_from(queue).unwrap_or(u16::MAX),
        cpu,
        upstream: DirectionStats {
            rx: traffic(s.up_rx),
            tx: traffic(s.up_tx),
        },
        downstream: DirectionStats {
            rx: traffic(s.down_rx),
            tx: traffic(s.down_tx),
        },
        drops,
        batches: s.batches,
        batch_packets: s.batch_frames,
        handed_off: other(Other::HandedOff),
        punted: other(Other::ToControl),
        client_to_client: traffic(s.c2c_tx),
        acks_sent: traffic(s.ack_tx),
        control_sent: traffic(s.control_tx),
        events: Other::ALL
            .iter()
            .map(|o| wire::EventCount {
                name: o.name().to_owned(),
                packets: other(*o),
            })
            .collect(),
        batch_sizes: s.batch_sizes.to_vec(),
        rings: rings.iter().map(wire_rings).collect(),
    }
}

fn wire_rings(r: &RingSnapshot) -> wire::RingStats {
    wire::RingStats {
        ifindex: r.ifindex,
        frames: r.frames,
        free: r.free,
        receive: r.receive,
        transmit: r.transmit,
        kernel: r.kernel.map(|k| wire::XskKernelStats {
            rx_dropped: k.rx_dropped,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: k.tx_ring_empty_descs,
        }),
    }
}

impl Datapath {
    /// Starts the configured backend. No call is established.
    pub fn start(config: &DatapathConfig) -> Result<Datapath, DatapathError> {
        match config.backend {
            BackendKind::Xdp => Datapath::start_xdp(config),
            BackendKind::Socket => Datapath::start_socket(config),
        }
    }

    /// The socket backend: the raw GRE socket, the TUN device and its threads, and the same
    /// call table and command path (no XDP maps).
    fn start_socket(config: &DatapathConfig) -> Result<Datapath, DatapathError> {
        let interface = config.interface.as_str();
        let index = ifindex(interface)?;
        let local_address = match config.local_address {
            Some(a) => a,
            None => index
                .addresses()
                .ok()
                .and_then(|(v4, _)| v4)
                .ok_or_else(|| DatapathError::NoLocalAddress {
                    interface: interface.to_owned(),
                })?,
        };
        let (calls, writer) = CallTable::<WorkerCall>::new();
        let control = ControlPath::new(1);
        let events = Arc::new(EventQueue::new(config.event_capacity));
        connect_punts(&control, &events);
        let mut socket_config = SocketConfig::new(config.tun.clone());
        socket_config.control = Some(Arc::clone(&control));
        if let Some(threads) = config.socket_threads {
            socket_config.downstream_threads = threads;
        }
        socket_config.pin = config.pin;
        let socket = SocketBackend::spawn(Arc::clone(&calls), socket_config)?;
        let tun_name = socket.tun_name().to_owned();
        tracing::info!(
            interface,
            %local_address,
            tun = %tun_name,
            threads = socket.threads(),
            "datapath running (socket backend)"
        );
        Ok(Datapath {
            inner: Mutex::new(Inner {
                steering: Maps(Vec::new()),
                writer,
                facts: BTreeMap::new(),
            }),
            calls,
            local_address,
            events,
            control,
            workers: Vec::new(),
            readers: None,
            socket: Some(socket),
            tun_name,
            refresher: None,
        })
    }

    /// Loads and attaches XDP on `config.interface`, opens one AF_XDP socket per queue and
    /// starts one worker per socket.
    fn start_xdp(config: &DatapathConfig) -> Result<Datapath, DatapathError> {
        let interface = config.interface.as_str();
        let index = ifindex(interface)?;
        let inside = match config.inside.as_deref() {
            Some(name) if name == interface => {
                return Err(DatapathError::SameInterface(name.to_owned()));
            }
            Some(_) if config.next_hop_mac.is_some() => return Err(DatapathError::StaticTwoArmed),
            Some(name) => Some((name, ifindex(name)?)),
            None => None,
        };
        let queues = match (config.queues, inside) {
            (Some(q), _) => q.max(1),
            (None, None) => rx_queues(interface, index.0)?,
            (None, Some((name, inside))) => {
                rx_queues(interface, index.0)?.min(rx_queues(name, inside.0)?)
            }
        };
        let local_mac = match config.local_mac {
            Some(mac) => mac,
            None => interface_mac(interface, index.0)?,
        };
        let local_address = match config.local_address {
            Some(a) => a,
            None => index
                .addresses()
                .ok()
                .and_then(|(v4, _)| v4)
                .ok_or_else(|| DatapathError::NoLocalAddress {
                    interface: interface.to_owned(),
                })?,
        };

        let workers_n = usize::try_from(queues).unwrap_or(usize::MAX);
        // Next hops: the kernel's tables, limited to the interface the workers send on (a
        // route out of another interface is no route for them: the kernel forwards it).
        let (next_hops, refresher) = match config.next_hop_mac {
            Some(mac) => (NextHops::Static(L2Header::ethernet(mac, local_mac)), None),
            None => {
                // Two-armed: upstream routes out of the inside, GRE to clients out of the
                // outside (and a destination routed back out of the outside leaves there,
                // as the kernel would route it).
                let mut interfaces = HashSet::from([index.0]);
                interfaces.extend(inside.map(|(_, i)| i.0));
                let (routes, refresher) = Refresher::start(RefresherConfig {
                    filter: OutputFilter::Only(interfaces),
                    ..RefresherConfig::default()
                })?;
                (NextHops::Routes(routes), Some(refresher))
            }
        };
        let mut tun_config = config.tun.clone();
        tun_config.queues = workers_n;
        let tun = Tun::create(tun_config)?;
        let tun_name = tun.name().to_owned();
        warn_if_not_forwarding(&tun_name);
        let tun_queues: Arc<[TunQueue]> = tun.into_queues().into();
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
        )
        .map_err(DatapathError::RawSocket)?;

        // One program (with its own maps: an XSKMAP is indexed by queue) per interface.
        let (steering, sockets) = steer(interface, index.0, queues, config)?;
        let mut steerings = vec![steering];
        let mut inside_sockets = Vec::new();
        if let Some((name, inside)) = inside {
            let (steering, sockets) = steer(name, inside.0, queues, config)?;
            steerings.push(steering);
            inside_sockets = sockets;
        }

        let (calls, writer) = CallTable::<WorkerCall>::new();
        let mut worker_config = WorkerConfig::new(next_hops, workers_n);
        worker_config.pin = config.pin;
        worker_config.tun = Some(Arc::clone(&tun_queues));
        worker_config.raw = Some(Arc::new(raw));
        let control = Arc::clone(&worker_config.control);
        let events = Arc::new(EventQueue::new(config.event_capacity));
        connect_punts(&control, &events);
        let mut workers = Vec::new();
        let mut inside_sockets = inside_sockets.into_iter();
        for socket in sockets {
            let queue = socket.queue();
            let (calls, config) = (Arc::clone(&calls), worker_config.clone());
            let worker = match inside_sockets.next() {
                Some(inside) => Worker::spawn_two_armed(socket, inside, calls, config),
                None => Worker::spawn(socket, calls, config),
            }
            .map_err(|source| DatapathError::Worker {
                queue,
                source: Box::new(source),
            })?;
            workers.push(worker);
        }
        let readers = TunReaders::spawn(
            &tun_queues,
            &calls,
            &worker_config.handoff,
            worker_config.poll_timeout.max(Duration::from_millis(10)),
        )
        .map_err(DatapathError::TunReaders)?;
        tracing::info!(
            interface,
            inside = config.inside.as_deref().unwrap_or("none (one-armed)"),
            queues,
            %local_address,
            tun = %tun_name,
            next_hops = if refresher.is_some() { "kernel tables" } else { "static" },
            "datapath running"
        );
        Ok(Datapath {
            inner: Mutex::new(Inner {
                steering: Maps(steerings),
                writer,
                facts: BTreeMap::new(),
            }),
            calls,
            local_address,
            events,
            control,
            workers,
            readers: Some(readers),
            socket: None,
            tun_name,
            refresher,
        })
    }

    /// The TUN device's name.
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    /// What the TUN readers counted (XDP backend; the socket backend has none).
    pub fn tun_stats(&self) -> TunReaderStats {
        self.readers
            .as_ref()
            .map(TunReaders::stats)
            .unwrap_or_default()
    }

    /// Every worker's (or socket backend thread's) counters summed, as last published.
    pub fn stats(&self) -> WorkerStats {
        match &self.socket {
            Some(socket) => socket.snapshot(),
            None => crate::worker::sum(&self.workers),
        }
    }

    /// The backend running.
    pub fn backend(&self) -> BackendKind {
        match self.socket {
            Some(_) => BackendKind::Socket,
            None => BackendKind::Xdp,
        }
    }

    /// Workers a call is established for: the AF_XDP workers, or one (the socket backend
    /// has a single upstream thread and locks each direction).
    fn worker_count(&self) -> usize {
        self.workers.len().max(1)
    }

    /// Our outer address, as calls are established with it.
    pub fn local_address(&self) -> Ipv4Addr {
        self.local_address
    }

    /// The XDP program's verdict counters, summed over CPUs, by slot name.
    pub fn xdp_counters(&self) -> Vec<(&'static str, u64, u64)> {
        let inner = lock(&self.inner);
        let mut total: Vec<(&'static str, u64, u64)> = Vec::new();
        for steering in &inner.steering.0 {
            match steering.counters() {
                Ok(c) => {
                    for (slot, c) in c {
                        match total.iter_mut().find(|(name, ..)| *name == slot.name()) {
                            Some(t) => {
                                t.1 = t.1.saturating_add(c.packets);
                                t.2 = t.2.saturating_add(c.bytes);
                            }
                            None => total.push((slot.name(), c.packets, c.bytes)),
                        }
                    }
                }
                Err(e) => tracing::warn!("reading the XDP counters failed: {e}"),
            }
        }
        total
    }

    /// Detaches XDP (the kernel handles the interface's traffic again), then stops the
    /// workers. Established calls are forgotten.
    pub fn shutdown(self) {
        let Datapath {
            inner,
            workers,
            readers,
            socket,
            refresher,
            events,
            control,
            ..
        } = self;
        control.clear_notify();
        let calls = lock(&inner).facts.len();
        drop(inner);
        tracing::info!(
            calls,
            events_refused = events.refused(),
            punts_dropped = control.punts_dropped(),
            "XDP detached"
        );
        for worker in workers {
            let queue = worker.queue();
            if let Err(e) = worker.stop() {
                tracing::warn!(queue, "worker stopped with an error: {e}");
            }
        }
        if let Some(readers) = readers {
            readers.stop();
        }
        if let Some(socket) = socket
            && let Err(e) = socket.stop()
        {
            tracing::warn!("the socket backend stopped with an error: {e}");
        }
        if let Some(refresher) = refresher {
            refresher.stop();
        }
        tracing::info!("workers stopped");
    }

    /// A PPP frame for the peer of `call`, queued for the worker that sends the call's
    /// control frames (which numbers it). A CCP Reset-Ack also makes that worker flush the
    /// call's MPPE encryptor first: the peer asked for it with its Reset-Request (RFC 3078
    /// section 8.1), and the ack must be followed by a flushed packet.
    fn send_to_worker(&self, call: u16, frame: Vec<u8>) -> Result<(), Failed> {
        let frame = strip_address_control(frame);
        let queued = if is_ccp_reset_ack(&frame) {
            self.control.send_reset_ack(call, frame)
        } else {
            self.control.send_ppp(call, frame)
        };
        queued.map_err(|busy| refused(FailureCode::Busy, format!("call {call}: {busy}")))
    }

    /// Punted frames and reset requests, as the workers queued them.
    fn wait_worker_events(&self, out: &mut Vec<Event>, timeout: Duration) {
        // A punt queued between a notify and this drain is picked up here, not lost.
        move_punts(&self.control, &self.events);
        self.events.wait_drain(out, timeout);
    }

    fn call_info(&self, id: u16, facts: &CallFacts) -> CallInfo {
        let (mut upstream, mut downstream, mut dropped) =
            (Traffic::default(), Traffic::default(), 0);
        let mut owner = None;
        if let Some(call) = self.calls.get_full(id) {
            let state = call.state();
            // The socket backend has no owners (one upstream thread, locked directions).
            owner = state.owner().filter(|_| self.socket.is_none());
            let up = state
                .upstream
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .counters;
            let down = state
                .downstream
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .counters;
            upstream = Traffic {
                packets: up.packets,
                bytes: up.bytes,
            };
            downstream = Traffic {
                packets: down.packets,
                bytes: down.bytes,
            };
            dropped = up.dropped.saturating_add(down.dropped);
        }
        CallInfo {
            local_call_id: id,
            peer_call_id: facts.peer_call_id,
            peer_address: facts.peer,
            client_tunnel_address: facts.client,
            user: facts.user.clone(),
            transmit: facts.transmit,
            receive: facts.receive,
            mtu: facts.mtu,
            // A stateful call's owner does both directions; a stateless call has none.
            upstream_owner: owner,
            downstream_owner: owner,
            age_secs: facts.since.elapsed().as_secs(),
            upstream,
            downstream,
            dropped,
        }
    }
}

/// Loads a program for `interface`, opens and registers one AF_XDP socket per queue, and
/// attaches it.
fn steer(
    interface: &str,
    index: u32,
    queues: u32,
    config: &DatapathConfig,
) -> Result<(Steering, Vec<XskSocket>), DatapathError> {
    let mut steering = Steering::load().map_err(|e| DatapathError::Load(Box::new(e)))?;
    let mut sockets = Vec::new();
    for queue in 0..queues {
        let socket =
            XskSocket::open(index, queue, config.xsk).map_err(|source| DatapathError::Socket {
                interface: interface.to_owned(),
                queue,
                source: Box::new(source),
            })?;
        steering
            .set_socket(queue, &socket)
            .map_err(|source| DatapathError::Maps {
                what: "an AF_XDP socket",
                source: Box::new(source),
            })?;
        sockets.push(socket);
    }
    attach(&mut steering, interface, config.mode)?;
    Ok((steering, sockets))
}

fn attach(steering: &mut Steering, interface: &str, mode: AttachMode) -> Result<(), DatapathError> {
    let attach_error = |mode, source| DatapathError::Attach {
        interface: interface.to_owned(),
        mode,
        source: Box::new(source),
    };
    match mode {
        AttachMode::Native => steering
            .attach(interface, XdpMode::Driver)
            .map_err(|e| attach_error("native", e)),
        AttachMode::Generic => steering
            .attach(interface, XdpMode::Skb)
            .map_err(|e| attach_error("generic", e)),
        AttachMode::Auto => match steering.attach(interface, XdpMode::Driver) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(
                    interface,
                    "native XDP failed ({e}); using generic XDP, which is slower"
                );
                steering
                    .attach(interface, XdpMode::Skb)
                    .map_err(|e| attach_error("generic", e))
            }
        },
    }
}

impl Inner {
    /// Steers `id`'s GRE and its client's downstream; undoes its own first step on failure.
    fn steer(&mut self, id: u16, facts: &CallFacts, add_client: bool) -> Result<(), Failed> {
        if add_client {
            self.steering
                .add_client(facts.client, id)
                .map_err(|e| map_refusal("adding the client to the XDP map", &e))?;
        }
        if let Err(e) = self.steering.establish_call(id, facts.peer, facts.plain_ip) {
            if add_client {
                self.unsteer_client(facts.client);
            }
            return Err(map_refusal("adding the call to the XDP map", &e));
        }
        Ok(())
    }

    fn unsteer_client(&mut self, client: Ipv4Addr) {
        if let Err(e) = self.steering.remove_client(client) {
            tracing::warn!(%client, "removing a client from the XDP map failed: {e}");
        }
    }

    fn establish(&mut self, id: u16, facts: CallFacts, call: WorkerCall) -> Result<(), Failed> {
        self.writer
            .establish(id, facts.client, call)
            .map_err(|r| table_refusal(r.error))?;
        if let Err(f) = self.steer(id, &facts, true) {
            self.writer.remove(id);
            return Err(f);
        }
        self.facts.insert(id, facts);
        Ok(())
    }

    fn replace(&mut self, id: u16, facts: CallFacts, call: WorkerCall) -> Result<(), Failed> {
        let Some(old) = self.facts.get(&id).cloned() else {
            return self.establish(id, facts, call);
        };
        let moved = old.client != facts.client;
        if let Some(owner) = moved.then(|| self.calls_owner_of(facts.client)).flatten() {
            return Err(table_refusal(TableError::AddressInUse {
                address: facts.client,
                call_id: owner,
            }));
        }
        self.steer(id, &facts, moved)?;
        if let Err(r) = self.writer.replace(id, facts.client, call) {
            // Put the XDP maps back as they were.
            if let Err(e) = self.steering.establish_call(id, old.peer, old.plain_ip) {
                tracing::warn!(call = id, "restoring the XDP call map failed: {e}");
            }
            if moved {
                self.unsteer_client(facts.client);
            }
            return Err(table_refusal(r.error));
        }
        if moved {
            self.unsteer_client(old.client);
        }
        self.facts.insert(id, facts);
        Ok(())
    }

    fn calls_owner_of(&self, client: Ipv4Addr) -> Option<u16> {
        self.writer
            .table()
            .get_by_address(client)
            .as_ref()
            .map(|c| c.call_id())
    }

    fn remove(&mut self, id: u16) -> Result<(), Failed> {
        let Some(facts) = self.facts.get(&id).cloned() else {
            return Err(table_refusal(TableError::NoSuchCall(id)));
        };
        // Stop steering first, so no frame of the call reaches a worker after it is gone.
        self.steering
            .remove_call(id)
            .map_err(|e| map_refusal("removing the call from the XDP map", &e))?;
        if let Err(e) = self.steering.remove_client(facts.client) {
            if let Err(e) = self.steering.establish_call(id, facts.peer, facts.plain_ip) {
                tracing::warn!(call = id, "restoring the XDP call map failed: {e}");
            }
            return Err(map_refusal("removing the client from the XDP map", &e));
        }
        self.writer.remove(id);
        self.facts.remove(&id);
        Ok(())
    }
}

/// Frames larger than this are refused by [`Fastpath::send_ppp`] (a PPP control frame is
/// at most the peer's MRU; 1500 + PPP header is generous).
const MAX_PPP_FRAME: usize = 1504;

impl Fastpath for Datapath {
    fn workers(&self) -> u16 {
        let n = match &self.socket {
            Some(socket) => socket.threads(),
            None => self.workers.len(),
        };
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    fn call_count(&self) -> u32 {
        u32::try_from(self.calls.len()).unwrap_or(u32::MAX)
    }

    fn establish(&self, est: &Established, replace: bool) -> Result<(), Failed> {
        let id = est.local_call_id;
        if id == 0 {
            return Err(table_refusal(TableError::CallIdZero));
        }
        if est.role != Role::Server {
            return Err(refused(
                FailureCode::InvalidArgument,
                "the datapath carries calls as the PPTP server; this call's role is client",
            ));
        }
        if est.gre.local_call_id != id || est.gre.peer_call_id != est.peer_call_id {
            return Err(refused(
                FailureCode::InvalidArgument,
                format!(
                    "the GRE snapshot is of call {}/{}, the call is {id}/{}",
                    est.gre.local_call_id, est.gre.peer_call_id, est.peer_call_id
                ),
            ));
        }
        if est.mtu < 68 {
            return Err(refused(
                FailureCode::InvalidArgument,
                format!("MTU {} is below IPv4's minimum of 68", est.mtu),
            ));
        }
        let facts = CallFacts {
            peer_call_id: est.peer_call_id,
            peer: est.peer_address,
            client: est.client_tunnel_address,
            plain_ip: est.receive.is_none(),
            user: est.user.clone(),
            transmit: mppe_info(&est.transmit),
            receive: mppe_info(&est.receive),
            mtu: est.mtu,
            since: Instant::now(),
        };
        let call = WorkerCall::new(
            CallState::from_established(est, self.local_address),
            self.worker_count(),
        );
        let mut inner = lock(&self.inner);
        match (replace, inner.facts.contains_key(&id)) {
            (true, true) => inner.replace(id, facts, call),
            (false, true) => Err(table_refusal(TableError::CallIdInUse(id))),
            (_, false) => inner.establish(id, facts, call),
        }
    }

    fn remove(&self, call: u16) -> Result<(), Failed> {
        lock(&self.inner).remove(call)
    }

    fn send_ppp(&self, call: u16, frame: Vec<u8>) -> Result<(), Failed> {
        if frame.is_empty() || frame.len() > MAX_PPP_FRAME {
            return Err(refused(
                FailureCode::InvalidArgument,
                format!(
                    "a PPP frame of {} octets (1 to {MAX_PPP_FRAME})",
                    frame.len()
                ),
            ));
        }
        if self.calls.get(call).as_ref().is_none() {
            return Err(table_refusal(TableError::NoSuchCall(call)));
        }
        self.send_to_worker(call, frame)
    }

    fn list_calls(&self, start: u16, max: u16) -> CallList {
        let inner = lock(&self.inner);
        let mut range = inner.facts.range(start..);
        let calls = range
            .by_ref()
            .take(usize::from(max))
            .map(|(id, facts)| self.call_info(*id, facts))
            .collect();
        CallList {
            calls,
            next: range.next().map(|(id, _)| *id),
        }
    }

    fn worker_stats(&self) -> Vec<wire::WorkerStats> {
        // The socket backend's threads report as one worker (their counters summed).
        if let Some(socket) = &self.socket {
            return vec![wire_worker_stats(0, None, &socket.snapshot(), &[])];
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        self.workers
            .iter()
            .map(|w| {
                let queue = w.queue();
                let pinned = cores.iter().any(|c| c.id == queue as usize);
                wire_worker_stats(queue, pinned.then_some(queue), &w.snapshot(), &w.rings())
            })
            .collect()
    }

    fn xdp_verdicts(&self) -> Vec<wire::VerdictCount> {
        self.xdp_counters()
            .into_iter()
            .map(|(verdict, packets, bytes)| wire::VerdictCount {
                verdict: verdict.to_owned(),
                packets,
                bytes,
            })
            .collect()
    }

    fn wait_events(&self, out: &mut Vec<Event>, timeout: Duration) {
        self.wait_worker_events(out, timeout);
    }
}

/// A worker that punts rings this: it moves every queued punt into the event queue the
/// command server's pump waits on. This runs on a worker thread, but only for PPP control
/// frames (a few per call per minute), never for data; the event queue's lock is held for a
/// push only. `Weak`: the control path must not own itself.
fn connect_punts(control: &Arc<ControlPath>, events: &Arc<EventQueue>) {
    let (events, weak) = (Arc::clone(events), Arc::downgrade(control));
    control.set_notify(move || {
        if let Some(control) = weak.upgrade() {
            move_punts(&control, &events);
        }
    });
}

/// Moves the workers' punts into the command server's event queue.
fn move_punts(control: &ControlPath, events: &EventQueue) {
    while let Some(punt) = control.next_punt() {
        let call = punt.call_id;
        events.push(match punt.event {
            PuntEvent::Ppp(frame) => Event::PppFromPeer(PppFromPeer { call, frame }),
            PuntEvent::ResetRequest => Event::ResetRequestNeeded(ResetRequestNeeded { call }),
        });
    }
}

/// The workers take frames from the protocol field on and add address/control themselves.
fn strip_address_control(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.starts_with(&[0xFF, 0x03]) {
        frame.drain(..2);
    }
    frame
}

/// CCP (0x80FD, or 0xFD compressed) with code 15, Reset-Ack (RFC 1962 section 5.2).
fn is_ccp_reset_ack(frame: &[u8]) -> bool {
    const RESET_ACK: u8 = 15;
    match frame {
        [0x80, 0xFD, code, ..] | [0xFD, code, ..] => *code == RESET_ACK,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_acks_are_recognised_in_every_framing() {
        assert!(is_ccp_reset_ack(&[0x80, 0xFD, 15, 1, 0, 4]));
        assert!(is_ccp_reset_ack(&[0xFD, 15, 1, 0, 4]));
        assert!(!is_ccp_reset_ack(&[0x80, 0xFD, 14, 1, 0, 4]));
        assert!(!is_ccp_reset_ack(&[0xC0, 0x21, 15, 1, 0, 4]));
        assert!(!is_ccp_reset_ack(&[0x80]));
        assert_eq!(
            strip_address_control(vec![0xFF, 0x03, 0xC0, 0x21]),
            [0xC0, 0x21]
        );
        assert_eq!(strip_address_control(vec![0xC0, 0x21]), [0xC0, 0x21]);
    }

    #[test]
    fn xdp_errors_point_to_the_socket_backend() {
        let e = DatapathError::Socket {
            interface: "eth0".into(),
            queue: 3,
            source: Box::new(XskError::Poll(io::Error::other("no AF_XDP"))),
        };
        let text = e.to_string();
        assert!(text.contains("CONFIG_XDP_SOCKETS"), "{text}");
        assert!(text.contains("--backend socket"), "{text}");
        assert!(
            DatapathError::StaticTwoArmed
                .to_string()
                .contains("--next-hop-mac")
        );
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("02:58:50:01:00:0a\n"),
            Some([0x02, 0x58, 0x50, 0x01, 0x00, 0x0a])
        );
        assert_eq!(parse_mac("02:58:50:01:00"), None);
        assert_eq!(parse_mac("02:58:50:01:00:0a:0b"), None);
        assert_eq!(parse_mac("02:58:50:01:00:zz"), None);
    }

    #[test]
    fn worker_stats_merge_drop_reasons_and_skip_zeroes() {
        let mut s = WorkerStats::default();
        s.drop(DropReason::Truncated);
        s.drop(DropReason::BadGre);
        s.drop(DropReason::Spoofed);
        s.other(Other::UnknownCall);
        s.other(Other::ToControl);
        s.up_rx.add(100);
        s.other(Other::NoRoute);
        s.ack_tx.add(60);
        let rings = [RingSnapshot {
            ifindex: 2,
            frames: 64,
            free: 4,
            receive: 58,
            transmit: 2,
            kernel: None,
        }];
        let w = wire_worker_stats(1, Some(1), &s, &rings);
        assert_eq!(
            w.rings.first().map(|r| (r.receive, r.transmit)),
            Some((58, 2))
        );
        assert_eq!(w.acks_sent.bytes, 60);
        assert_eq!(w.events.len(), Other::COUNT, "every count, zeros included");
        let named = |name: &str| w.events.iter().find(|e| e.name == name).map(|e| e.packets);
        assert_eq!(named("no_route"), Some(1));
        assert_eq!(named("next_hop_unresolved"), Some(0));
        assert_eq!(w.worker, 1);
        assert_eq!(
            w.upstream.rx,
            Traffic {
                packets: 1,
                bytes: 100
            }
        );
        assert_eq!(w.punted, 1);
        assert_eq!(
            w.drops,
            vec![
                DropCount {
                    reason: wire::DropReason::Malformed,
                    packets: 2
                },
                DropCount {
                    reason: wire::DropReason::WrongPeer,
                    packets: 1
                },
                DropCount {
                    reason: wire::DropReason::UnknownCall,
                    packets: 1
                },
            ]
        );
    }
}
