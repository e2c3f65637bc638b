//! The client emulator: dials N real PPTP clients (TCP control connection, PPP with
//! MS-CHAPv2 and MPPE) at a concentrator and keeps their sessions up for the traffic engine.
//!
//! Run it inside the clients' network namespace. Each client has its own call ID and,
//! given a range ([`SourceRange`]), its own source address, which the caller has made local
//! (`ip route add local 10.100.0.0/16 dev lo`) and routed towards from the server side.
//!
//! # Tasks and sockets
//! One tokio task per client runs its TCP control connection, its PPP session and their
//! timers ([`xpptp_proto::pptp::control::Connection`] in the client role with
//! [`Vendor`]'s SCCRQ, [`xpptp_proto::session::Session`] over a client
//! [`xpptp_proto::ppp::link::Link`]). GRE goes through one raw socket for the whole
//! emulator (needs CAP_NET_RAW): sends write their own IPv4 header (`IP_HDRINCL`, so any
//! source address of the range), and one reader task hands each received GRE packet to its
//! client by (server address, our call ID in the GRE key) over a bounded queue; full
//! queues, unknown calls and data packets are counted ([`GreCounters`]), never waited on.
//!
//! # Data and control share one GRE numbering
//! When a session comes up the client's task calls
//! [`Session::hand_over`](xpptp_proto::session::Session::hand_over), exactly as the control
//! daemon does towards its datapath, and builds a
//! [`CallState`](xpptp_datapath::packet::CallState) from the client's
//! [`Established`](xpptp_proto::session::Established) (with the hand-over's GRE numbers) and
//! its source address: [`DialledSession::call`]. From then on that shared state numbers
//! every GRE packet the client sends:
//! * the traffic engine locks it and builds data packets with
//!   [`packet::encap`](xpptp_datapath::packet::encap) (its `downstream` half: our sequencer
//!   and MPPE encryptor with the client's transmit keys); it decrypts what the server sends
//!   with the `upstream` half (the client's receive keys) after receiving the GRE itself —
//!   the emulator's reader drops MPPE and IP packets without looking further;
//! * the client's task sends its PPP control frames (LCP Echo-Reply, Terminate, CCP
//!   Reset-Ack) with [`packet::ppp_control`](xpptp_datapath::packet::ppp_control) on the
//!   same state, so data and control never reuse a sequence number, and notes the
//!   sequence and acknowledgment numbers of the control packets it receives in the state's
//!   `acks`, which the next packet of either kind acknowledges.
//!
//! Hold the lock only to build a packet. Stateful MPPE: a CCP Reset-Request from the server
//! reaches the client's session, which answers it; resetting the encryptor is up to the
//! traffic engine (`downstream.mppe`), which owns the data.

pub mod cli;
mod client;
mod gre;
pub mod rate;
pub mod source;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use xpptp_datapath::packet::CallState;
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::ppp::auth::{AuthPolicy, Method, Password};
use xpptp_proto::ppp::ccp::MppeRequirement;
use xpptp_proto::ppp::link::ClientConfig;
use xpptp_proto::pptp::control;
use xpptp_proto::session::Established;
use xpptp_proto::wire::pptp::FixedStr;

use self::client::{ClientEnd, ClientSpec, DialOutcome, OutcomeSink};
pub use self::gre::GreCounters;
use self::gre::GreSocket;
// fuzzb: the GRE reader's classifier, for bench/fuzz (the module is private).
#[cfg(fuzzing)]
pub use self::gre::{Inbound, classify};
pub use self::rate::TokenBucket;
pub use self::source::{BadSourceRange, SourceRange};

/// The PPTP control port.
pub const PPTP_PORT: u16 = 1723;

/// Who the clients are: `{n}` in a template is replaced by the client's number, from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Users {
    /// `user{n}` and one password for all.
    Template {
        /// The user name, `{n}` replaced by 1, 2, ...
        template: String,
        /// Everyone's password.
        password: String,
    },
    /// (user, password) pairs, taken in turn (client `i` gets entry `i % len`).
    List(Vec<(String, String)>),
}

impl Users {
    /// Client `index`'s (user, password); `None` for an empty list.
    pub fn credentials(&self, index: u32) -> Option<(String, String)> {
        match self {
            Users::Template { template, password } => Some((
                template.replace("{n}", &(u64::from(index) + 1).to_string()),
                password.clone(),
            )),
            Users::List(list) => {
                let len = u32::try_from(list.len()).unwrap_or(u32::MAX);
                list.get(usize::try_from(index.checked_rem(len)?).ok()?)
                    .cloned()
            }
        }
    }
}

/// MPPE key length the clients require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MppeBits {
    /// 40-bit keys only.
    Bits40,
    /// 128-bit keys only (pppd `require-mppe-128`).
    Bits128,
}

/// Which client the emulated ones look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    /// pptp-linux 1.10 + pppd: its SCCRQ, Linux stateful MPPE.
    PptpLinux,
    /// Windows' built-in client: vendor "Microsoft", no host name, RFC 3078 stateful MPPE.
    Windows,
}

impl Vendor {
    /// The SCCRQ this vendor sends, with the default timers.
    pub fn control_config(self) -> control::Config {
        match self {
            Vendor::PptpLinux => control::Config::pptp_linux(),
            Vendor::Windows => control::Config {
                host_name: FixedStr::new(""),
                vendor: FixedStr::new("Microsoft"),
                firmware_revision: 0,
                max_channels: 0,
                ..control::Config::default()
            },
        }
    }

    fn stateful_mode(self) -> MppeMode {
        match self {
            Vendor::PptpLinux => MppeMode::StatefulLinux,
            Vendor::Windows => MppeMode::Stateful,
        }
    }
}

/// What to dial.
#[derive(Debug, Clone)]
pub struct DialConfig {
    /// The concentrator's control address (port 1723).
    pub server: SocketAddrV4,
    /// How many clients (at most 65,535: one call ID each).
    pub clients: u32,
    /// Their source addresses.
    pub sources: SourceRange,
    /// New dials per second (token bucket); `None`: as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// Dials in flight at most (TCP connect to IPCP/CCP up).
    pub concurrency: usize,
    /// Users and passwords.
    pub users: Users,
    /// MPPE key length.
    pub mppe: MppeBits,
    /// Accept stateful MPPE when the server asks for it (stateless otherwise).
    pub stateful: bool,
    /// The client the emulated ones look like.
    pub vendor: Vendor,
    /// TCP connect limit.
    pub connect_timeout: Duration,
    /// From TCP connect to session up, at most.
    pub setup_timeout: Duration,
}

impl DialConfig {
    /// `clients` pptp-linux clients from `sources` to `server`:1723, users `user{n}` with
    /// password `password`, MPPE-128 stateless, 64 dials in flight, no rate limit, 10 s to
    /// connect and 30 s to come up.
    pub fn new(server: Ipv4Addr, clients: u32, sources: SourceRange, password: &str) -> Self {
        DialConfig {
            server: SocketAddrV4::new(server, PPTP_PORT),
            clients,
            sources,
            rate: None,
            concurrency: 64,
            users: Users::Template {
                template: "user{n}".to_string(),
                password: password.to_string(),
            },
            mppe: MppeBits::Bits128,
            stateful: false,
            vendor: Vendor::PptpLinux,
            connect_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(30),
        }
    }

    fn link_config(&self, user: String, password: String) -> ClientConfig {
        let mut link = ClientConfig {
            auth: AuthPolicy::only(Method::MsChapV2),
            ..ClientConfig::default()
        };
        link.credentials.user = user.into_bytes();
        link.credentials.password = Password::new(password);
        link.mppe.requirement = MppeRequirement::Required;
        link.mppe.allow_40 = self.mppe == MppeBits::Bits40;
        link.mppe.allow_56 = false;
        link.mppe.allow_128 = self.mppe == MppeBits::Bits128;
        link.mppe.allow_stateful = self.stateful;
        link.mppe.prefer_stateful = false;
        link.mppe.stateful_mode = self.vendor.stateful_mode();
        link
    }
}

/// Why a dial failed, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// TCP connection refused.
    ConnectRefused,
    /// TCP connect timed out.
    ConnectTimeout,
    /// Start-Control-Connection-Reply with a result other than success.
    ControlRefused,
    /// Outgoing-Call-Reply with a result other than connected.
    CallRefused,
    /// MS-CHAPv2 failed (wrong password, unknown user).
    AuthFailed,
    /// No answer in time: SCCRP, OCRP, LCP/IPCP/CCP, or the whole set-up.
    NegotiationTimeout,
    /// Anything else (see the detail).
    Other,
}

/// One failed dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The count it goes in.
    pub kind: FailureKind,
    /// What happened, for a person.
    pub detail: String,
}

/// One established session, for the traffic engine. See the [module
/// documentation](self) on how its GRE numbering is shared.
#[derive(Debug, Clone)]
pub struct DialledSession {
    /// The client's number (0-based; its user is `{n}` = index + 1).
    pub index: u32,
    /// Its user name.
    pub user: String,
    /// Its outer (source) address.
    pub source: Ipv4Addr,
    /// The server's outer address.
    pub server: Ipv4Addr,
    /// What the client negotiated (client role: `transmit` keys are ours, `local_call_id`
    /// ours, `client_tunnel_address` our inner address), with `gre` the numbers at the
    /// hand-over.
    pub established: Established,
    /// The call's GRE numbering and MPPE state from the hand-over on, shared between the
    /// client's task (control frames) and the traffic engine (data): `config` (outer and
    /// inner addresses, MTU), `downstream` (what the client sends: sequencer + encryptor),
    /// `upstream` (what it receives: window + decryptor), `acks`.
    pub call: Arc<Mutex<CallState>>,
}

/// Where the dial phase stands, given to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialProgress {
    /// Clients to dial.
    pub total: u32,
    /// Established so far.
    pub established: u32,
    /// Failed so far.
    pub failed: u32,
    /// Since the dial phase began.
    pub elapsed: Duration,
}

/// Set-up latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The GRE socket's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct GreReport {
    /// Delivered to a client.
    pub delivered: u64,
    /// Dropped: the client's queue was full.
    pub queue_full: u64,
    /// For no client of ours.
    pub unknown_call: u64,
    /// Data, left to the traffic engine.
    pub data_ignored: u64,
    /// Not IPv4 + enhanced GRE.
    pub malformed: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
}

/// The dial phase's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialReport {
    /// Clients dialled.
    pub clients: u32,
    /// Sessions established.
    pub established: u32,
    /// Dials failed.
    pub failed: u32,
    /// From the first dial to the last outcome.
    pub dial_seconds: f64,
    /// Established sessions per second over the dial phase.
    pub setups_per_sec: f64,
    /// Set-up latency (TCP connect to IPCP and CCP up) of the established sessions.
    pub latency: LatencySummary,
    /// Failures by cause.
    pub failures: BTreeMap<FailureKind, u64>,
    /// The first failure's detail of each cause.
    pub failure_examples: BTreeMap<FailureKind, String>,
    /// The GRE socket's counters at the end of the dial phase.
    pub gre: GreReport,
}

/// How [`Emulator::hang_up_all`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct HangUpReport {
    /// Client tasks that ended (every one, unless one panicked).
    pub ended: u32,
    /// Of the established sessions, those whose control connection ended with a
    /// Stop-Control-Connection exchange (our request answered, or the server's own after
    /// the call was cleared).
    pub clean: u32,
    /// Established sessions whose server did not answer in time (TCP closed anyway).
    pub unacknowledged: u32,
}

/// What went wrong before any client was dialled.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The raw GRE socket could not be opened.
    #[error(
        "cannot open a raw GRE socket (the emulator needs CAP_NET_RAW: run it as root, or \
         `setcap cap_net_raw+ep` on the binary)"
    )]
    RawSocket(#[source] std::io::Error),
    /// More clients than call IDs.
    #[error("{0} clients asked for; one emulator dials at most 65535 (one call ID each)")]
    TooManyClients(u32),
    /// An empty user list.
    #[error("the user list is empty: give at least one user and password")]
    NoUsers,
    /// No dial may be in flight.
    #[error("concurrency must be at least 1")]
    NoConcurrency,
}

/// Dialled clients whose sessions stay up until [`hang_up_all`](Self::hang_up_all) or
/// drop. See the [module documentation](self).
#[derive(Debug)]
pub struct Emulator {
    sessions: Vec<DialledSession>,
    report: DialReport,
    lost: Arc<AtomicU64>,
    gre: Arc<GreSocket>,
    hang_up: watch::Sender<bool>,
    tasks: Vec<JoinHandle<ClientEnd>>,
    reader: JoinHandle<()>,
}

impl Emulator {
    /// Dials `config.clients` clients and waits for every outcome, calling `progress`
    /// after each. Needs a tokio runtime with time and I/O enabled, in the clients'
    /// network namespace. Failed dials are counted in the report, not errors.
    pub async fn dial(
        config: DialConfig,
        mut progress: impl FnMut(&DialProgress),
    ) -> Result<Emulator, EmulatorError> {
        if config.clients > u32::from(u16::MAX) {
            return Err(EmulatorError::TooManyClients(config.clients));
        }
        if config.concurrency == 0 {
            return Err(EmulatorError::NoConcurrency);
        }
        if config.users.credentials(0).is_none() {
            return Err(EmulatorError::NoUsers);
        }
        raise_open_files(config.clients);
        let gre = Arc::new(GreSocket::open().map_err(EmulatorError::RawSocket)?);
        let reader = tokio::spawn(Arc::clone(&gre).run_reader());
        let (hang_up, hang_up_rx) = watch::channel(false);
        let lost = Arc::new(AtomicU64::new(0));
        let mut seed = [0u8; 32];
        if let Err(error) = getrandom::fill(&mut seed) {
            // The seeds only make the MS-CHAPv2 peer challenges differ; a fixed one still
            // dials, it is just predictable.
            tracing::warn!(%error, "no OS randomness; the clients' nonces are predictable");
        }
        let (results, mut outcomes) = mpsc::unbounded_channel::<(u32, DialOutcome)>();
        let permits = Arc::new(Semaphore::new(config.concurrency));
        let started = Instant::now();
        let mut bucket = TokenBucket::new(config.rate.unwrap_or(0.0), 1, started);
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok();
        let mut sessions = Vec::new();
        let mut tasks = Vec::new();
        let mut failures = BTreeMap::new();
        let mut failure_examples = BTreeMap::new();
        let (mut next, mut established, mut failed) = (0u32, 0u32, 0u32);
        while established.saturating_add(failed) < config.clients {
            tokio::select! {
                Some((index, outcome)) = outcomes.recv() => {
                    match outcome {
                        Ok((session, latency)) => {
                            established += 1;
                            if let Some(histogram) = histogram.as_mut() {
                                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                                let _ = histogram.record(micros.clamp(1, histogram.high()));
                            }
                            sessions.push(session);
                        }
                        Err(failure) => {
                            failed += 1;
                            tracing::debug!(client = index, kind = ?failure.kind, detail = %failure.detail, "dial failed");
                            *failures.entry(failure.kind).or_insert(0u64) += 1;
                            failure_examples.entry(failure.kind).or_insert(failure.detail);
                        }
                    }
                    progress(&DialProgress {
                        total: config.clients,
                        established,
                        failed,
                        elapsed: started.elapsed(),
                    });
                }
                permit = next_slot(&permits, &mut bucket), if next < config.clients => {
                    let Ok(permit) = permit else { break };
                    let index = next;
                    next += 1;
                    let Some((user, password)) = config.users.credentials(index) else { break };
                    let call_id = u16::try_from(index + 1).unwrap_or(u16::MAX);
                    let mut client_seed = seed;
                    for (byte, index_byte) in client_seed.iter_mut().zip(index.to_be_bytes()) {
                        *byte ^= index_byte;
                    }
                    let spec = ClientSpec {
                        index,
                        source: config.sources.address(index),
                        server: config.server,
                        call_id,
                        control: config.vendor.control_config(),
                        link: config.link_config(user.clone(), password),
                        user,
                        seed: client_seed,
                        connect_timeout: config.connect_timeout,
                        setup_timeout: config.setup_timeout,
                        lost: Arc::clone(&lost),
                    };
                    let inbound = gre.register(*config.server.ip(), call_id);
                    let sink = OutcomeSink::new(index, results.clone(), permit);
                    tasks.push(tokio::spawn(client::run(
                        spec,
                        Arc::clone(&gre),
                        inbound,
                        sink,
                        hang_up_rx.clone(),
                    )));
                }
            }
        }
        let dial_seconds = started.elapsed().as_secs_f64();
        sessions.sort_by_key(|s| s.index);
        let latency = histogram
            .filter(|h| !h.is_empty())
            .map(|h| LatencySummary {
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p90_ms: h.value_at_quantile(0.9) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
                mean_ms: h.mean() / 1000.0,
            })
            .unwrap_or_default();
        let report = DialReport {
            clients: config.clients,
            established,
            failed,
            dial_seconds,
            setups_per_sec: if dial_seconds > 0.0 {
                f64::from(established) / dial_seconds
            } else {
                0.0
            },
            latency,
            failures,
            failure_examples,
            gre: gre_report(&gre.counters),
        };
        Ok(Emulator {
            sessions,
            report,
            lost,
            gre,
            hang_up,
            tasks,
            reader,
        })
    }

    /// The established sessions, by client index.
    pub fn sessions(&self) -> &[DialledSession] {
        &self.sessions
    }

    /// The dial phase's figures.
    pub fn report(&self) -> &DialReport {
        &self.report
    }

    /// Established sessions that have ended since (the server hung up, LCP echo failed,
    /// the connection dropped): the traffic through them is lost too.
    pub fn sessions_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The GRE socket's counters now.
    pub fn gre_counters(&self) -> GreReport {
        gre_report(&self.gre.counters)
    }

    /// Hangs every client up like pptp-linux (Call-Clear-Request, then
    /// Stop-Control-Connection-Request, then TCP closed) and waits for all of them (each
    /// gives up on an unanswering server after 10 s).
    pub async fn hang_up_all(mut self) -> HangUpReport {
        let _ = self.hang_up.send(true);
        let mut report = HangUpReport::default();
        for task in std::mem::take(&mut self.tasks) {
            match task.await {
                Ok(end) => {
                    report.ended += 1;
                    if end.established {
                        if end.clean {
                            report.clean += 1;
                        } else {
                            report.unacknowledged += 1;
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "a client task failed"),
            }
        }
        report
    }
}

impl Drop for Emulator {
    /// The clients hang up on their own (their hang-up channel closes); the GRE reader
    /// stops.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Waits for a dial slot: a permit (concurrency), then a token (rate). Cancelling it
/// loses nothing: the permit goes back, and the token is taken only when it returns.
async fn next_slot(
    permits: &Arc<Semaphore>,
    bucket: &mut TokenBucket,
) -> Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError> {
    let permit = Arc::clone(permits).acquire_owned().await?;
    while let Some(wait) = bucket.take(Instant::now()) {
        tokio::time::sleep(wait).await;
    }
    Ok(permit)
}

/// Descriptors besides the clients' TCP sockets: the runtime, the GRE socket, stdio.
const SPARE_FILES: u64 = 64;

/// Raises the soft limit on open files to the hard one when `clients` TCP sockets would
/// not fit (the usual soft limit is 1024); warns, naming the fix, when even that is short.
fn raise_open_files(clients: u32) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = u64::from(clients).saturating_add(SPARE_FILES);
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= needed) {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!(%error, "cannot raise the open-files limit");
    }
    let now = getrlimit(Resource::Nofile).current;
    if now.is_some_and(|current| current < needed) {
        tracing::warn!(
            limit = now,
            needed,
            "the open-files limit is below one socket per client: dials beyond it fail; \
             raise the hard limit (`ulimit -Hn`, LimitNOFILE=) or dial fewer clients"
        );
    }
}

fn gre_report(counters: &GreCounters) -> GreReport {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    GreReport {
        delivered: get(&counters.delivered),
        queue_full: get(&counters.queue_full),
        unknown_call: get(&counters.unknown_call),
        data_ignored: get(&counters.data_ignored),
        malformed: get(&counters.malformed),
        send_errors: get(&counters.send_errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_numbers_users_from_one() {
        let users = Users::Template {
            template: "user{n}".into(),
            password: "pw".into(),
        };
        assert_eq!(users.credentials(0), Some(("user1".into(), "pw".into())));
        assert_eq!(users.credentials(41), Some(("user42".into(), "pw".into())));
        let list = Users::List(vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(list.credentials(3), Some(("b".into(), "2".into())));
        assert_eq!(Users::List(Vec::new()).credentials(0), None);
    }

    #[test]
    fn the_link_requires_what_was_asked() {
        let mut config = DialConfig::new(
            Ipv4Addr::LOCALHOST,
            1,
            SourceRange::single(Ipv4Addr::LOCALHOST),
            "pw",
        );
        config.mppe = MppeBits::Bits40;
        config.stateful = true;
        let link = config.link_config("u".into(), "pw".into());
        assert!(link.mppe.allow_40 && !link.mppe.allow_128 && link.mppe.allow_stateful);
        assert_eq!(link.mppe.stateful_mode, MppeMode::StatefulLinux);
        assert_eq!(link.credentials.user, b"u");
        assert_eq!(link.auth, AuthPolicy::only(Method::MsChapV2));
    }
}
