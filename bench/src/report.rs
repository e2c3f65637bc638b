//! What a bench run reports: the conditions it ran under, every figure it measured, the
//! ratios to its baselines, a human summary ([`fmt::Display`]) and the `--json` form (serde).
//!
//! These types are the contract between the parts that measure (the emulator's set-ups,
//! the traffic engine, the crypto floor, the datapath's worker counters) and the parts that
//! show (this summary, `--json`, [`crate::chart`]). Units are in the field names: `_ns`
//! nanoseconds, `_pps` packets per second, `_bps` bits per second, `_bytes` bytes, `_s`
//! seconds.
//!
//! Derived figures are computed here, not by whoever fills the types:
//! [`ScenarioResult::compute_ratios`] (worker ns/packet and its ratios to the crypto
//! floors) and [`SuiteResults::pair_backends`] (XDP over socket backend).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Reading or writing a results file failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read or written.
    #[error("cannot read or write {path}")]
    Io {
        /// The results file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a results file of this version of xpptp-bench.
    #[error(
        "{path} is not an xpptp-bench results file (give the JSON that `xpptp-bench suite` \
         or `--json` wrote)"
    )]
    Parse {
        /// The results file.
        path: PathBuf,
        /// Where and why parsing stopped.
        #[source]
        source: serde_json::Error,
    },
}

/// The machine a run came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU model as /proc/cpuinfo names it ("unknown" when it does not).
    pub cpu_model: String,
    /// Logical CPUs (the `processor` entries of /proc/cpuinfo).
    pub cores: u32,
    /// Operating system and kernel release, as uname(2) gives them ("Linux 6.18.0").
    pub kernel: String,
}

impl Machine {
    /// The machine this process runs on: /proc/cpuinfo and uname(2).
    pub fn detect() -> Result<Self, ReportError> {
        let path = Path::new("/proc/cpuinfo");
        let cpuinfo = fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let uname = rustix::system::uname();
        let kernel = format!(
            "{} {}",
            uname.sysname().to_string_lossy(),
            uname.release().to_string_lossy()
        );
        Ok(Self::from_cpuinfo(&cpuinfo, kernel))
    }

    /// The machine described by the text of /proc/cpuinfo and a kernel name.
    ///
    /// The model is the first `model name` (x86) or, failing that, `Hardware` or `cpu model`
    /// line (other architectures); cores count the `processor` entries.
    pub fn from_cpuinfo(cpuinfo: &str, kernel: String) -> Self {
        let mut cores = 0u32;
        let mut model = None;
        let mut fallback_model = None;
        for line in cpuinfo.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "processor" => cores = cores.saturating_add(1),
                "model name" if model.is_none() && !value.is_empty() => model = Some(value),
                "Hardware" | "cpu model" if fallback_model.is_none() && !value.is_empty() => {
                    fallback_model = Some(value)
                }
                _ => {}
            }
        }
        Self {
            cpu_model: model.or(fallback_model).unwrap_or("unknown").to_owned(),
            cores,
            kernel,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} CPUs, {}",
            self.cpu_model, self.cores, self.kernel
        )
    }
}

/// The datapath backend a scenario ran through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// XDP steering into AF_XDP sockets.
    Xdp,
    /// The socket backend (raw GRE socket and TUN queues), the baseline.
    Socket,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Xdp => "xdp",
            Backend::Socket => "socket",
        })
    }
}

/// How the AF_XDP sockets were bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XskMode {
    /// Copy mode (the only one veth offers).
    Copy,
    /// Zero-copy mode.
    ZeroCopy,
}

impl fmt::Display for XskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XskMode::Copy => "copy",
            XskMode::ZeroCopy => "zero-copy",
        })
    }
}

/// The inner packet sizes a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PacketSize {
    /// 64-byte inner IP packets.
    #[serde(rename = "64")]
    B64,
    /// 512-byte inner IP packets.
    #[serde(rename = "512")]
    B512,
    /// 1400-byte inner IP packets.
    #[serde(rename = "1400")]
    B1400,
    /// The simple IMIX: 7 × 64, 4 × 576, 1 × 1500 bytes.
    #[serde(rename = "imix")]
    Imix,
}

impl fmt::Display for PacketSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketSize::B64 => "64 B",
            PacketSize::B512 => "512 B",
            PacketSize::B1400 => "1400 B",
            PacketSize::Imix => "IMIX",
        })
    }
}

/// MPPE's key length and keying mode, written "128-stateless", "40-stateful" and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MppeMode {
    /// 40 or 128.
    pub key_bits: u16,
    /// Stateless (a new key every packet) or stateful (a new key every 256 packets).
    pub stateless: bool,
}

impl fmt::Display for MppeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keying = if self.stateless {
            "stateless"
        } else {
            "stateful"
        };
        write!(f, "{}-{keying}", self.key_bits)
    }
}

impl FromStr for MppeMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("MPPE mode '{text}': expected 40 or 128, '-', stateless or stateful");
        let (bits, keying) = text.split_once('-').ok_or_else(bad)?;
        let key_bits = match bits {
            "40" => 40,
            "128" => 128,
            _ => return Err(bad()),
        };
        let stateless = match keying {
            "stateless" => true,
            "stateful" => false,
            _ => return Err(bad()),
        };
        Ok(Self {
            key_bits,
            stateless,
        })
    }
}

impl TryFrom<String> for MppeMode {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<MppeMode> for String {
    fn from(mode: MppeMode) -> Self {
        mode.to_string()
    }
}

/// Which way traffic flowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Clients to the inside host (GRE in, decrypted, out in the clear).
    Up,
    /// Inside host to the clients (in the clear, encrypted, out as GRE).
    Down,
    /// Both at once.
    Both,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
        })
    }
}

/// Everything a scenario's figures depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// The datapath backend.
    pub backend: Backend,
    /// AF_XDP copy or zero-copy; `None` for the socket backend.
    pub xsk_mode: Option<XskMode>,
    /// Receive queues per interface (one AF_XDP socket each).
    pub queues: u32,
    /// Datapath workers.
    pub workers: u32,
    /// Which threads ran on which cores, in words ("workers on 0,1; generator on 1").
    pub core_layout: String,
    /// Concurrent sessions (calls) established.
    pub sessions: u32,
    /// Inner packet size or mix.
    pub size: PacketSize,
    /// MPPE key length and keying mode.
    pub mppe: MppeMode,
    /// Which way traffic flowed.
    pub direction: Direction,
    /// The rate offered in each direction that carried traffic, packets per second.
    pub offered_pps: u64,
    /// How long traffic was offered, seconds.
    pub duration_s: f64,
    /// The machine it ran on.
    pub machine: Machine,
    /// xpptp-bench's version ([`TOOL_VERSION`]).
    pub tool_version: String,
    /// When the scenario started, seconds since the Unix epoch (UTC).
    pub timestamp_unix_s: u64,
}

/// Now, for [`Conditions::timestamp_unix_s`] (0 if the clock is before 1970).
pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The version of xpptp-bench, for [`Conditions::tool_version`].
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The conditions two scenarios must share for their throughputs to be compared across
/// backends: all but the backend, its AF_XDP mode and core layout, and when and with what
/// it ran. See [`SuiteResults::pair_backends`].
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub struct PairKey {
    /// [`Conditions::queues`].
    pub queues: u32,
    /// [`Conditions::workers`].
    pub workers: u32,
    /// [`Conditions::sessions`].
    pub sessions: u32,
    /// [`Conditions::size`].
    pub size: PacketSize,
    /// [`Conditions::mppe`].
    pub mppe: MppeMode,
    /// [`Conditions::direction`].
    pub direction: Direction,
    /// [`Conditions::offered_pps`].
    pub offered_pps: u64,
    /// [`Conditions::duration_s`].
    pub duration_s: f64,
}

impl Conditions {
    /// What a scenario through the other backend must share with this one to be its pair.
    pub fn pair_key(&self) -> PairKey {
        PairKey {
            queues: self.queues,
            workers: self.workers,
            sessions: self.sessions,
            size: self.size,
            mppe: self.mppe,
            direction: self.direction,
            offered_pps: self.offered_pps,
            duration_s: self.duration_s,
        }
    }

    /// The conditions in one short line without the backend: a pair's label in charts.
    pub fn pair_label(&self) -> String {
        format!(
            "{} {}, {}, {}, {}, {} workers",
            self.sessions,
            if self.sessions == 1 {
                "session"
            } else {
                "sessions"
            },
            self.size,
            self.mppe,
            self.direction,
            self.workers
        )
    }
}

impl Conditions {
    /// The datapath half: backend, mode, queues, workers, core layout.
    fn datapath_text(&self) -> String {
        let mode = self.xsk_mode.map(|m| format!(" ({m})")).unwrap_or_default();
        format!(
            "{}{mode}, {} queues, {} workers [{}]",
            self.backend, self.queues, self.workers, self.core_layout
        )
    }

    /// The traffic half: sessions, size, MPPE, direction, rate, duration.
    fn traffic_text(&self) -> String {
        format!(
            "{} sessions, {}, MPPE {}, {}, offered {} for {} s",
            self.sessions,
            self.size,
            self.mppe,
            self.direction,
            Pps(self.offered_pps as f64),
            self.duration_s
        )
    }
}

impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.datapath_text(), self.traffic_text())
    }
}

/// Percentiles of a latency distribution, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Number of samples (0: every figure is 0 and means nothing).
    pub samples: u64,
}

impl From<&Histogram<u64>> for Latency {
    /// The percentiles of a histogram of nanoseconds.
    fn from(histogram: &Histogram<u64>) -> Self {
        Self {
            p50_ns: histogram.value_at_quantile(0.50),
            p90_ns: histogram.value_at_quantile(0.90),
            p99_ns: histogram.value_at_quantile(0.99),
            max_ns: histogram.max(),
            samples: histogram.len(),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} p90 {} p99 {} max {} ({} samples)",
            Ns(self.p50_ns as f64),
            Ns(self.p90_ns as f64),
            Ns(self.p99_ns as f64),
            Ns(self.max_ns as f64),
            self.samples
        )
    }
}

/// Control connections and PPP negotiations: how many, how fast, why some failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Sessions the emulator tried to establish.
    pub attempted: u64,
    /// Sessions that reached the open state (IPCP and CCP up).
    pub established: u64,
    /// Failures by cause (the emulator's names for them), sorted by cause.
    pub failed_by_cause: BTreeMap<String, u64>,
    /// Established sessions per second over the dialling phase.
    pub setups_per_s: f64,
    /// From the TCP connect to the session's open state.
    pub latency: Latency,
}

impl Setup {
    /// All failures, whatever their cause.
    pub fn failed(&self) -> u64 {
        self.failed_by_cause
            .values()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

/// Traffic one way through the concentrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionResult {
    /// The rate the generator aimed at, packets per second.
    pub offered_pps: u64,
    /// Packets received per second over the measurement.
    pub achieved_pps: f64,
    /// Bits of inner IP packets received per second (tunnel overhead not counted).
    pub achieved_bps: f64,
    /// Packets the generator sent.
    pub sent: u64,
    /// Packets the sink received and verified (duplicates not counted).
    pub received: u64,
    /// Packets sent and never received.
    pub lost: u64,
    /// Packets received after a later-sent one of the same session.
    pub reordered: u64,
    /// Packets received more than once.
    pub duplicated: u64,
    /// One-way latency from the timestamps in the payloads; `None` when not measured.
    pub latency: Option<Latency>,
}

impl DirectionResult {
    /// Lost over sent, 0 to 1 (`None` when nothing was sent).
    pub fn loss_ratio(&self) -> Option<f64> {
        ratio(self.lost as f64, self.sent as f64)
    }
}

/// One datapath worker's cost over a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkerCost {
    /// The worker's index (its queue).
    pub worker: u32,
    /// Packets it processed, both directions.
    pub packets: u64,
    /// CPU time its thread used, nanoseconds.
    pub cpu_ns: u64,
    /// `cpu_ns / packets`; `None` when it processed nothing.
    pub ns_per_packet: Option<f64>,
}

impl WorkerCost {
    /// A worker's figures, with its nanoseconds per packet computed.
    pub fn new(worker: u32, packets: u64, cpu_ns: u64) -> Self {
        Self {
            worker,
            packets,
            cpu_ns,
            ns_per_packet: ratio(cpu_ns as f64, packets as f64),
        }
    }
}

/// All workers of a scenario together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkerTotals {
    /// Packets processed by all workers.
    pub packets: u64,
    /// CPU time of all workers, nanoseconds.
    pub cpu_ns: u64,
    /// All CPU time over all packets; `None` when no packet was processed.
    pub ns_per_packet: Option<f64>,
}

impl WorkerTotals {
    /// The sum of the workers' figures.
    pub fn of(workers: &[WorkerCost]) -> Self {
        let packets = workers
            .iter()
            .fold(0u64, |sum, w| sum.saturating_add(w.packets));
        let cpu_ns = workers
            .iter()
            .fold(0u64, |sum, w| sum.saturating_add(w.cpu_ns));
        Self {
            packets,
            cpu_ns,
            ns_per_packet: ratio(cpu_ns as f64, packets as f64),
        }
    }
}

/// What MPPE alone costs per packet on one core, for the scenario's size and MPPE mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CryptoFloor {
    /// Our MPPE code (proto's), nanoseconds per packet.
    pub ours_ns_per_packet: f64,
    /// The same packets with OpenSSL's RC4 and SHA-1, nanoseconds per packet.
    pub openssl_ns_per_packet: f64,
}

/// The ratios every report states next to the absolute figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// Worker ns/packet over our crypto floor (1.0: the worker costs only its crypto).
    pub worker_over_our_floor: Option<f64>,
    /// Worker ns/packet over OpenSSL's crypto floor.
    pub worker_over_openssl_floor: Option<f64>,
    /// This scenario's XDP throughput over the same scenario's through the socket backend
    /// (upstream + downstream achieved pps); the same value on both scenarios of the pair.
    pub xdp_over_socket: Option<f64>,
}

/// Everything one scenario measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The scenario's name, unique in a suite.
    pub name: String,
    /// What it ran under.
    pub conditions: Conditions,
    /// Dialling; `None` when the sessions were pre-installed.
    pub setup: Option<Setup>,
    /// Client to inside host traffic; `None` when none was sent.
    pub upstream: Option<DirectionResult>,
    /// Inside host to client traffic; `None` when none was sent.
    pub downstream: Option<DirectionResult>,
    /// Each datapath worker's packets and CPU time.
    pub workers: Vec<WorkerCost>,
    /// All workers' CPU time over their packets, nanoseconds (see
    /// [`ScenarioResult::compute_ratios`]).
    pub worker_ns_per_packet: Option<f64>,
    /// The crypto floor for this scenario's size and MPPE mode.
    pub floor: Option<CryptoFloor>,
    /// Ratios to the baselines.
    pub ratios: Ratios,
    /// The datapath's memory with this scenario's sessions installed, bytes.
    pub datapath_memory_bytes: Option<u64>,
}

impl ScenarioResult {
    /// Fills [`Self::worker_ns_per_packet`] from [`Self::workers`] (when they processed any
    /// packet; otherwise a value set by hand is kept) and the two floor ratios from it and
    /// [`Self::floor`]. [`Ratios::xdp_over_socket`] needs the other backend's scenario:
    /// [`SuiteResults::pair_backends`] fills it.
    pub fn compute_ratios(&mut self) {
        if let Some(ns) = WorkerTotals::of(&self.workers).ns_per_packet {
            self.worker_ns_per_packet = Some(ns);
        }
        let (ours, openssl) = match (self.worker_ns_per_packet, self.floor) {
            (Some(worker), Some(floor)) => (
                ratio(worker, floor.ours_ns_per_packet),
                ratio(worker, floor.openssl_ns_per_packet),
            ),
            _ => (None, None),
        };
        self.ratios.worker_over_our_floor = ours;
        self.ratios.worker_over_openssl_floor = openssl;
    }

    /// Achieved packets per second, upstream and downstream together (`None` when the
    /// scenario carried no traffic).
    pub fn throughput_pps(&self) -> Option<f64> {
        match (&self.upstream, &self.downstream) {
            (None, None) => None,
            (up, down) => Some(
                up.as_ref().map_or(0.0, |d| d.achieved_pps)
                    + down.as_ref().map_or(0.0, |d| d.achieved_pps),
            ),
        }
    }
}

impl fmt::Display for ScenarioResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const W: usize = 12;
        writeln!(f, "{}", self.name)?;
        let c = &self.conditions;
        writeln!(f, "  {:<W$}{}", "datapath", c.datapath_text())?;
        writeln!(f, "  {:<W$}{}", "traffic", c.traffic_text())?;
        writeln!(f, "  {:<W$}{}", "machine", self.conditions.machine)?;
        if let Some(setup) = &self.setup {
            write!(
                f,
                "  {:<W$}{}/{} established, {:.1} set-ups/s, {}",
                "set-up", setup.established, setup.attempted, setup.setups_per_s, setup.latency
            )?;
            if !setup.failed_by_cause.is_empty() {
                let causes: Vec<String> = setup
                    .failed_by_cause
                    .iter()
                    .map(|(cause, n)| format!("{cause} {n}"))
                    .collect();
                write!(f, "; failed: {}", causes.join(", "))?;
            }
            writeln!(f)?;
        }
        for (label, result) in [
            ("upstream", &self.upstream),
            ("downstream", &self.downstream),
        ] {
            let Some(d) = result else { continue };
            writeln!(
                f,
                "  {:<W$}{} ({}) of {} offered; sent {} received {} lost {} ({}) reordered {} duplicated {}",
                label,
                Pps(d.achieved_pps),
                Bps(d.achieved_bps),
                Pps(d.offered_pps as f64),
                d.sent,
                d.received,
                d.lost,
                Percent(d.loss_ratio()),
                d.reordered,
                d.duplicated
            )?;
            if let Some(latency) = &d.latency {
                writeln!(f, "  {:<W$}{latency}", "  latency")?;
            }
        }
        if let Some(ns) = self.worker_ns_per_packet {
            let totals = WorkerTotals::of(&self.workers);
            write!(
                f,
                "  {:<W$}{} per packet ({} workers, {} packets)",
                "workers",
                Ns(ns),
                self.workers.len(),
                totals.packets
            )?;
            if let Some(floor) = &self.floor {
                write!(
                    f,
                    "; {} our floor ({}), {} OpenSSL's floor ({})",
                    Times(self.ratios.worker_over_our_floor),
                    Ns(floor.ours_ns_per_packet),
                    Times(self.ratios.worker_over_openssl_floor),
                    Ns(floor.openssl_ns_per_packet)
                )?;
            }
            writeln!(f)?;
        } else if let Some(floor) = &self.floor {
            writeln!(
                f,
                "  {:<W$}ours {}, OpenSSL {} per packet",
                "floor",
                Ns(floor.ours_ns_per_packet),
                Ns(floor.openssl_ns_per_packet)
            )?;
        }
        if self.ratios.xdp_over_socket.is_some() {
            writeln!(
                f,
                "  {:<W$}{} throughput",
                "xdp/socket",
                Times(self.ratios.xdp_over_socket)
            )?;
        }
        if let Some(bytes) = self.datapath_memory_bytes {
            writeln!(
                f,
                "  {:<W$}{} in the datapath with {} sessions",
                "memory",
                Bytes(bytes),
                self.conditions.sessions
            )?;
        }
        Ok(())
    }
}

/// A suite's results: what `--json` writes and `xpptp-bench chart` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteResults {
    /// The machine the suite ran on.
    pub machine: Machine,
    /// Every scenario, in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
}

impl SuiteResults {
    /// Fills [`Ratios::xdp_over_socket`] of every scenario whose pair (same
    /// [`Conditions::pair_key`], the other backend) is in the suite: XDP's throughput over
    /// the socket backend's, on both scenarios of the pair. When a backend ran the same
    /// conditions more than once, the first run is paired. Scenarios without a pair, or
    /// whose socket run carried nothing, get `None`.
    pub fn pair_backends(&mut self) {
        let mut values = vec![None; self.scenarios.len()];
        for (x, xdp) in self.scenarios.iter().enumerate() {
            if xdp.conditions.backend != Backend::Xdp {
                continue;
            }
            let key = xdp.conditions.pair_key();
            let first_xdp = self.scenarios.iter().position(|s| {
                s.conditions.backend == Backend::Xdp && s.conditions.pair_key() == key
            });
            if first_xdp != Some(x) {
                continue;
            }
            let Some(s) = self.scenarios.iter().position(|s| {
                s.conditions.backend == Backend::Socket && s.conditions.pair_key() == key
            }) else {
                continue;
            };
            let value = match (xdp.throughput_pps(), self.scenarios.get(s)) {
                (Some(ours), Some(socket)) => socket.throughput_pps().and_then(|t| ratio(ours, t)),
                _ => None,
            };
            if let Some(slot) = values.get_mut(x) {
                *slot = value;
            }
            if let Some(slot) = values.get_mut(s) {
                *slot = value;
            }
        }
        for (scenario, value) in self.scenarios.iter_mut().zip(values) {
            scenario.ratios.xdp_over_socket = value;
        }
    }

    /// [`ScenarioResult::compute_ratios`] on every scenario, then [`Self::pair_backends`].
    pub fn compute_ratios(&mut self) {
        for scenario in &mut self.scenarios {
            scenario.compute_ratios();
        }
        self.pair_backends();
    }

    /// Reads a results file.
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses the text of a results file.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Writes the results as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ReportError> {
        let io = |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| io(e.into()))?;
        fs::write(path, text + "\n").map_err(io)
    }
}

/// The summary table's columns, in order.
const COLUMNS: [&str; 15] = [
    "scenario",
    "backend",
    "sessions",
    "size",
    "mppe",
    "set-ups/s",
    "up",
    "down",
    "loss",
    "p99 up",
    "worker/pkt",
    "/floor",
    "/openssl",
    "xdp/socket",
    "memory",
];

impl SuiteResults {
    /// One row per scenario, the cells as the summary table prints them.
    fn table_rows(&self) -> Vec<[String; COLUMNS.len()]> {
        self.scenarios
            .iter()
            .map(|s| {
                let c = &s.conditions;
                let lost: u64 = [&s.upstream, &s.downstream]
                    .into_iter()
                    .flatten()
                    .fold(0, |sum, d| sum.saturating_add(d.lost));
                let sent: u64 = [&s.upstream, &s.downstream]
                    .into_iter()
                    .flatten()
                    .fold(0, |sum, d| sum.saturating_add(d.sent));
                let dash = || "-".to_owned();
                [
                    s.name.clone(),
                    c.backend.to_string(),
                    c.sessions.to_string(),
                    c.size.to_string(),
                    c.mppe.to_string(),
                    s.setup
                        .as_ref()
                        .map_or_else(dash, |x| format!("{:.1}", x.setups_per_s)),
                    s.upstream
                        .as_ref()
                        .map_or_else(dash, |d| Pps(d.achieved_pps).to_string()),
                    s.downstream
                        .as_ref()
                        .map_or_else(dash, |d| Pps(d.achieved_pps).to_string()),
                    if s.upstream.is_none() && s.downstream.is_none() {
                        dash()
                    } else {
                        Percent(ratio(lost as f64, sent as f64)).to_string()
                    },
                    s.upstream
                        .as_ref()
                        .and_then(|d| d.latency)
                        .map_or_else(dash, |l| Ns(l.p99_ns as f64).to_string()),
                    s.worker_ns_per_packet
                        .map_or_else(dash, |ns| Ns(ns).to_string()),
                    Times(s.ratios.worker_over_our_floor).to_string(),
                    Times(s.ratios.worker_over_openssl_floor).to_string(),
                    Times(s.ratios.xdp_over_socket).to_string(),
                    s.datapath_memory_bytes
                        .map_or_else(dash, |b| Bytes(b).to_string()),
                ]
            })
            .collect()
    }
}

impl fmt::Display for SuiteResults {
    /// The machine, then a table with one row per scenario: the figures a closing note
    /// quotes (worker ns/packet and its ratios, XDP over socket, set-ups/s, memory).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "machine: {}", self.machine)?;
        let rows = self.table_rows();
        let mut widths = COLUMNS.map(|c| c.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                // Names and words to the left, figures to the right.
                if i < 5 {
                    let _ = write!(out, "{cell:<width$}");
                } else {
                    let _ = write!(out, "{cell:>width$}");
                }
            }
            out.trim_end().to_owned()
        };
        writeln!(f, "{}", line(&COLUMNS.map(str::to_owned)))?;
        for row in &rows {
            writeln!(f, "{}", line(row))?;
        }
        Ok(())
    }
}

/// `numerator / denominator`, or `None` when the denominator is not a positive number.
pub(crate) fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && numerator.is_finite()).then(|| numerator / denominator)
}

/// Nanoseconds in the unit that suits them ("850 ns", "1.23 µs", "4.50 ms").
pub(crate) struct Ns(pub f64);

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns < 1e3 {
            write!(f, "{ns:.0} ns")
        } else if ns < 1e6 {
            write!(f, "{:.2} µs", ns / 1e3)
        } else if ns < 1e9 {
            write!(f, "{:.2} ms", ns / 1e6)
        } else {
            write!(f, "{:.2} s", ns / 1e9)
        }
    }
}

/// A packet rate with an SI prefix ("950 pps", "1.25 Mpps").
pub(crate) struct Pps(pub f64);

impl fmt::Display for Pps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (value, prefix) = si(self.0);
        if prefix.is_empty() {
            write!(f, "{value:.0} pps")
        } else {
            write!(f, "{value:.2} {prefix}pps")
        }
    }
}

/// A bit rate with an SI prefix ("512 bit/s", "1.25 Gbit/s").
pub(crate) struct Bps(pub f64);

impl fmt::Display for Bps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (value, prefix) = si(self.0);
        if prefix.is_empty() {
            write!(f, "{value:.0} bit/s")
        } else {
            write!(f, "{value:.2} {prefix}bit/s")
        }
    }
}

/// A byte count in binary units ("512 B", "3.50 MiB").
pub(crate) struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = UNITS[0];
        for next in &UNITS[1..] {
            if value < 1024.0 {
                break;
            }
            value /= 1024.0;
            unit = next;
        }
        write!(f, "{value:.2} {unit}")
    }
}

/// A ratio as a factor ("1.25×"), "-" when absent.
pub(crate) struct Times(pub Option<f64>);

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{r:.2}×"),
            None => f.write_str("-"),
        }
    }
}

/// A 0-to-1 ratio as a percentage ("0.50%"), "-" when absent.
pub(crate) struct Percent(pub Option<f64>);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{:.2}%", r * 100.0),
            None => f.write_str("-"),
        }
    }
}

/// A value scaled to 1..1000 and its SI prefix ("", "k", "M", "G", "T").
pub(crate) fn si(value: f64) -> (f64, &'static str) {
    const PREFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, prefix) in PREFIXES {
        if value.abs() >= scale {
            return (value / scale, prefix);
        }
    }
    (value, "")
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    pub(crate) fn machine() -> Machine {
        Machine {
            cpu_model: "Test CPU @ 2.00GHz".into(),
            cores: 2,
            kernel: "Linux 6.18.0".into(),
        }
    }

    pub(crate) fn conditions(backend: Backend, size: PacketSize, stateless: bool) -> Conditions {
        Conditions {
            backend,
            xsk_mode: (backend == Backend::Xdp).then_some(XskMode::Copy),
            queues: 2,
            workers: 2,
            core_layout: "workers on 0,1; generator on 1".into(),
            sessions: 1000,
            size,
            mppe: MppeMode {
                key_bits: 128,
                stateless,
            },
            direction: Direction::Both,
            offered_pps: 200_000,
            duration_s: 10.0,
            machine: machine(),
            tool_version: TOOL_VERSION.into(),
            timestamp_unix_s: 1_795_000_000,
        }
    }

    fn direction(achieved_pps: f64, p99_ns: u64) -> DirectionResult {
        DirectionResult {
            offered_pps: 200_000,
            achieved_pps,
            achieved_bps: achieved_pps * 64.0 * 8.0,
            sent: 2_000_000,
            received: 1_990_000,
            lost: 10_000,
            reordered: 12,
            duplicated: 3,
            latency: Some(Latency {
                p50_ns: 40_000,
                p90_ns: 80_000,
                p99_ns,
                max_ns: 2_500_000,
                samples: 1_990_000,
            }),
        }
    }

    /// A scenario with every figure filled and its ratios computed.
    pub(crate) fn scenario(name: &str, backend: Backend, up_pps: f64) -> ScenarioResult {
        let mut s = ScenarioResult {
            name: name.into(),
            conditions: conditions(backend, PacketSize::B64, true),
            setup: Some(Setup {
                attempted: 1000,
                established: 998,
                failed_by_cause: BTreeMap::from([("timeout".to_owned(), 2)]),
                setups_per_s: 412.5,
                latency: Latency {
                    p50_ns: 3_000_000,
                    p90_ns: 9_000_000,
                    p99_ns: 30_000_000,
                    max_ns: 95_000_000,
                    samples: 998,
                },
            }),
            upstream: Some(direction(up_pps, 150_000)),
            downstream: Some(direction(up_pps / 2.0, 170_000)),
            workers: vec![
                WorkerCost::new(0, 1_000_000, 1_500_000_000),
                WorkerCost::new(1, 3_000_000, 3_300_000_000),
            ],
            worker_ns_per_packet: None,
            floor: Some(CryptoFloor {
                ours_ns_per_packet: 1000.0,
                openssl_ns_per_packet: 1200.0,
            }),
            ratios: Ratios::default(),
            datapath_memory_bytes: Some(3 * 1024 * 1024 + 512 * 1024),
        };
        s.compute_ratios();
        s
    }

    /// An XDP/socket pair and a scenario without a pair.
    pub(crate) fn suite() -> SuiteResults {
        let mut lone = scenario("xdp-1400-stateful", Backend::Xdp, 50_000.0);
        lone.conditions.size = PacketSize::B1400;
        lone.conditions.mppe.stateless = false;
        let mut suite = SuiteResults {
            machine: machine(),
            scenarios: vec![
                scenario("xdp-64-stateless", Backend::Xdp, 150_000.0),
                scenario("socket-64-stateless", Backend::Socket, 50_000.0),
                lone,
            ],
        };
        suite.pair_backends();
        suite
    }

    #[test]
    fn serde_round_trip_keeps_every_figure() {
        let suite = suite();
        let json = serde_json::to_string_pretty(&suite).unwrap();
        let back: SuiteResults = serde_json::from_str(&json).unwrap();
        assert_eq!(back, suite);
        // The wire names the issue asks for.
        assert!(json.contains("\"size\": \"64\""), "{json}");
        assert!(json.contains("\"mppe\": \"128-stateless\""), "{json}");
        assert!(json.contains("\"backend\": \"socket\""), "{json}");
        assert!(json.contains("\"xsk_mode\": \"copy\""), "{json}");
        assert!(json.contains("\"direction\": \"both\""), "{json}");
    }

    #[test]
    fn save_and_load_a_results_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let suite = suite();
        suite.save(&path).unwrap();
        assert_eq!(SuiteResults::load(&path).unwrap(), suite);
        std::fs::write(&path, "{\"machine\": 1}").unwrap();
        let error = SuiteResults::load(&path).unwrap_err().to_string();
        assert!(error.contains("not an xpptp-bench results file"), "{error}");
    }

    #[test]
    fn mppe_modes_parse_and_reject() {
        for text in [
            "40-stateless",
            "40-stateful",
            "128-stateless",
            "128-stateful",
        ] {
            assert_eq!(text.parse::<MppeMode>().unwrap().to_string(), text);
        }
        for text in ["56-stateless", "128", "128-sometimes", ""] {
            assert!(text.parse::<MppeMode>().is_err(), "{text}");
        }
        assert!(serde_json::from_str::<MppeMode>("\"64-stateful\"").is_err());
    }

    #[test]
    fn latency_from_a_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from(&h);
        assert_eq!(l.samples, 1000);
        // Three significant digits: within 0.1 % of the exact percentiles.
        for (got, exact) in [
            (l.p50_ns, 500_000),
            (l.p90_ns, 900_000),
            (l.p99_ns, 990_000),
        ] {
            assert!(got.abs_diff(exact) <= exact / 1000, "{got} vs {exact}");
        }
        assert!(l.max_ns.abs_diff(1_000_000) <= 1000, "{}", l.max_ns);
        let empty = Latency::from(&Histogram::<u64>::new(3).unwrap());
        assert_eq!(empty.samples, 0);
    }

    #[test]
    fn ratios_from_hand_numbers() {
        let s = scenario("x", Backend::Xdp, 1.0);
        // (1.5 s + 3.3 s) over 4 M packets = 1200 ns; floors 1000 and 1200 ns.
        assert_eq!(s.workers[0].ns_per_packet, Some(1500.0));
        assert_eq!(s.workers[1].ns_per_packet, Some(1100.0));
        assert_eq!(s.worker_ns_per_packet, Some(1200.0));
        assert_eq!(s.ratios.worker_over_our_floor, Some(1.2));
        assert_eq!(s.ratios.worker_over_openssl_floor, Some(1.0));
        assert_eq!(WorkerCost::new(3, 0, 10).ns_per_packet, None);
    }

    #[test]
    fn ratios_keep_a_hand_set_worker_cost_and_need_a_floor() {
        let mut s = scenario("x", Backend::Xdp, 1.0);
        s.workers.clear();
        s.worker_ns_per_packet = Some(500.0);
        s.compute_ratios();
        assert_eq!(s.worker_ns_per_packet, Some(500.0));
        assert_eq!(s.ratios.worker_over_our_floor, Some(0.5));
        s.floor = None;
        s.compute_ratios();
        assert_eq!(s.ratios.worker_over_our_floor, None);
        assert_eq!(s.ratios.worker_over_openssl_floor, None);
    }

    #[test]
    fn pairing_fills_xdp_over_socket_on_both_of_a_pair_only() {
        let suite = suite();
        // XDP: 150 k + 75 k pps; socket: 50 k + 25 k pps.
        assert_eq!(suite.scenarios[0].ratios.xdp_over_socket, Some(3.0));
        assert_eq!(suite.scenarios[1].ratios.xdp_over_socket, Some(3.0));
        assert_eq!(suite.scenarios[2].ratios.xdp_over_socket, None);
    }

    #[test]
    fn pairing_needs_the_same_conditions_but_not_the_same_layout() {
        let mut suite = suite();
        suite.scenarios[1].conditions.core_layout = "socket threads on 0,1".into();
        suite.scenarios[1].conditions.timestamp_unix_s += 60;
        suite.pair_backends();
        assert_eq!(suite.scenarios[0].ratios.xdp_over_socket, Some(3.0));
        suite.scenarios[1].conditions.sessions = 1;
        suite.pair_backends();
        assert_eq!(suite.scenarios[0].ratios.xdp_over_socket, None);
        assert_eq!(suite.scenarios[1].ratios.xdp_over_socket, None);
        // A socket run that carried nothing gives no ratio.
        suite.scenarios[1].conditions.sessions = 1000;
        suite.scenarios[1].upstream = None;
        suite.scenarios[1].downstream = None;
        suite.pair_backends();
        assert_eq!(suite.scenarios[0].ratios.xdp_over_socket, None);
    }

    #[test]
    fn machine_from_cpuinfo() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: sse\n\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        let m = Machine::from_cpuinfo(cpuinfo, "Linux 6.18.0".into());
        assert_eq!(m.cpu_model, "AMD EPYC 7B13");
        assert_eq!(m.cores, 2);
        let arm = Machine::from_cpuinfo("processor : 0\nHardware : BCM2835\n", "Linux".into());
        assert_eq!(arm.cpu_model, "BCM2835");
        assert_eq!(
            Machine::from_cpuinfo("", "Linux".into()).cpu_model,
            "unknown"
        );
        assert!(unix_now_s() > 1_700_000_000);
        let here = Machine::detect().unwrap();
        assert!(here.cores >= 1, "{here:?}");
        assert!(here.kernel.starts_with("Linux "), "{here:?}");
    }

    #[test]
    fn scenario_summary_shows_the_figures() {
        let suite = suite();
        let text = suite.scenarios[0].to_string();
        for figure in [
            "xdp-64-stateless",
            "xdp (copy), 2 queues, 2 workers [workers on 0,1; generator on 1]",
            "1000 sessions, 64 B, MPPE 128-stateless, both, offered 200.00 kpps for 10 s",
            "998/1000 established, 412.5 set-ups/s, p50 3.00 ms p90 9.00 ms p99 30.00 ms",
            "failed: timeout 2",
            "150.00 kpps (76.80 Mbit/s) of 200.00 kpps offered",
            "lost 10000 (0.50%) reordered 12 duplicated 3",
            "p50 40.00 µs p90 80.00 µs p99 150.00 µs max 2.50 ms",
            "1.20 µs per packet (2 workers, 4000000 packets)",
            "1.20× our floor (1.00 µs), 1.00× OpenSSL's floor (1.20 µs)",
            "3.00× throughput",
            "3.50 MiB in the datapath with 1000 sessions",
        ] {
            assert!(text.contains(figure), "{figure:?} missing from:\n{text}");
        }
    }

    #[test]
    fn suite_summary_has_a_row_per_scenario_with_its_figures() {
        let text = suite().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + 3, "{text}");
        assert!(lines[0].contains("Test CPU @ 2.00GHz, 2 CPUs, Linux 6.18.0"));
        assert!(lines[1].starts_with("scenario"), "{text}");
        let socket = lines[3];
        for figure in [
            "socket-64-stateless",
            "412.5",
            "50.00 kpps",
            "25.00 kpps",
            "0.50%",
            "150.00 µs",
            "1.20 µs",
            "1.20×",
            "1.00×",
            "3.00×",
            "3.50 MiB",
        ] {
            assert!(
                socket.contains(figure),
                "{figure:?} missing from {socket:?}"
            );
        }
        assert!(lines[4].contains("1400 B") && lines[4].contains("128-stateful"));
        // Columns line up: every row's "/floor" figure ends where the header's does.
        let header = lines[1];
        let end = header[..header.find("/floor").unwrap()].chars().count() + "/floor".len();
        for row in &lines[2..] {
            assert_eq!(row.chars().nth(end - 1), Some('×'), "{row}");
        }
    }
}
