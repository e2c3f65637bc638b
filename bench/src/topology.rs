//! The bench's and the demo's test bed: three network namespaces, a concentrator
//! (`xpptp-datapath` + `xpptp-control` as child processes) in the middle, removed on drop.
//!
//! ```text
//!  clients  c0 172.31.0.2 --- x0 172.31.0.1  concentrator  x1 172.31.1.1 --- i0 172.31.1.2  inside
//!  10.100.0.0/16 local          xpptp-datapath (XDP on x0, x1,               traffic sink
//!  (one outer address           or the socket backend)                       and source
//!  per client)                  xpptp-control (TCP 1723, pool 10.64.0.0/18)
//! ```
//!
//! The clients' outer addresses are a whole /16 made local in the clients' namespace
//! (`ip route add local ... dev lo`), so the emulator binds one address per client without
//! configuring thousands. Every veth has [`Spec::queues`] queues: the datapath runs one
//! AF_XDP socket and one pinned worker per queue, as on a multi-queue NIC.
//!
//! Everything [`Topology::create`] makes is undone by [`Drop`]: the daemons get SIGTERM
//! (then SIGKILL after [`STOP_TIMEOUT`]), the namespaces (and with them the veths) are
//! deleted, the work directory (configuration, sockets, logs) is removed.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The concentrator's outer address (TCP 1723, GRE).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);
/// The clients' namespace's own address on the outer link.
pub const CLIENTS_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 2);
/// The inside host's address: where upstream traffic goes and downstream comes from.
pub const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(172, 31, 1, 2);
/// The clients' outer addresses (local in the clients' namespace).
pub const CLIENT_SOURCES: &str = "10.100.0.0/16";
/// The concentrator's tunnel address (IPCP's server address, the TUN device's).
pub const TUNNEL_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
/// The tunnel prefix: pool and concentrator address, routed to the concentrator inside.
pub const TUNNEL_PREFIX: &str = "10.64.0.0/18";
/// The client address pool (16,374 addresses: the suite's 10,000 sessions fit).
pub const POOL: &str = "10.64.0.10-10.64.63.254";
/// Every emulated user's password (users are `USER_PREFIX` + number, from 1).
pub const PASSWORD: &str = "xpptp-bench-password";
/// Emulated users' names: `bench1`, `bench2`, ...
pub const USER_PREFIX: &str = "bench";
/// The clients' interface (in the clients' namespace) and its MAC.
pub const CLIENTS_INTERFACE: &str = "c0";
/// `c0`'s MAC (fixed, so AF_XDP senders can write whole frames).
pub const CLIENTS_MAC: [u8; 6] = [0x02, 0x78, 0x70, 0, 0, 0x02];
/// The concentrator's outer interface `x0`'s MAC.
pub const SERVER_MAC: [u8; 6] = [0x02, 0x78, 0x70, 0, 0, 0x01];
/// How long a daemon gets to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon gets to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Which datapath backend the concentrator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// XDP steering and AF_XDP workers (copy mode on veth).
    Xdp,
    /// Raw GRE socket and the TUN device.
    Socket,
}

impl Backend {
    /// The name `xpptp-datapath --backend` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Xdp => "xdp",
            Backend::Socket => "socket",
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names the namespaces (`xpb-TAG-PID-c|x|i`): short, letters and digits.
    pub tag: String,
    /// Queues per veth (= datapath workers).
    pub queues: u32,
    /// Users in chap-secrets (`bench1` ..).
    pub users: u32,
    /// The datapath's backend.
    pub backend: Backend,
    /// Where xpptp-datapath, xpptp-control and xpptp are [default: next to this program].
    pub bin_dir: Option<PathBuf>,
}

/// Why the test bed could not be built or a daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// Not root.
    #[error("needs root (network namespaces, XDP, raw sockets): run it with sudo")]
    NotRoot,
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr, or why it did not run.
        detail: String,
    },
    /// A binary is not next to this one.
    #[error(
        "{0} is missing: build the binaries first (cargo build --release --bins), \
         xpptp-bench runs the ones next to itself"
    )]
    MissingBinary(PathBuf),
    /// A daemon exited or did not create its socket.
    #[error("{name} did not start: {detail}")]
    DaemonFailed {
        /// Which.
        name: &'static str,
        /// Its exit status or a timeout, and the end of its log.
        detail: String,
    },
    /// The work directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TopologyError + '_ {
    move |source| TopologyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs a command to completion; its stderr is the error.
fn run(program: &str, args: &[&str]) -> Result<(), TopologyError> {
    let command = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|err| TopologyError::Command {
            command: command(),
            detail: format!("cannot run it: {err} (is iproute2 installed?)"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TopologyError::Command {
            command: command(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A daemon started by the topology.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// The built test bed; [`Drop`] undoes it.
#[derive(Debug)]
pub struct Topology {
    spec: Spec,
    /// The clients' namespace.
    pub clients_netns: String,
    /// The concentrator's namespace.
    pub concentrator_netns: String,
    /// The inside host's namespace.
    pub inside_netns: String,
    work: PathBuf,
    bin: PathBuf,
    namespaces: Vec<String>,
    daemons: Vec<Daemon>,
}

impl Topology {
    /// Builds the namespaces and links; the daemons are started by [`Topology::start`].
    pub fn create(spec: Spec) -> Result<Topology, TopologyError> {
        if !rustix::process::geteuid().is_root() {
            return Err(TopologyError::NotRoot);
        }
        let bin = spec.bin_dir.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .unwrap_or_default()
        });
        for name in ["xpptp-datapath", "xpptp-control"] {
            if !bin.join(name).is_file() {
                return Err(TopologyError::MissingBinary(bin.join(name)));
            }
        }
        let base = format!("xpb-{}-{}", spec.tag, std::process::id());
        let work = std::env::temp_dir().join(&base);
        let mut topology = Topology {
            clients_netns: format!("{base}-c"),
            concentrator_netns: format!("{base}-x"),
            inside_netns: format!("{base}-i"),
            spec,
            work,
            bin,
            namespaces: Vec::new(),
            daemons: Vec::new(),
        };
        fs::create_dir_all(topology.work.join("run")).map_err(io_error(&topology.work))?;
        topology.build_links()?;
        Ok(topology)
    }

    fn build_links(&mut self) -> Result<(), TopologyError> {
        let (c, x, i) = (
            self.clients_netns.clone(),
            self.concentrator_netns.clone(),
            self.inside_netns.clone(),
        );
        for ns in [&c, &x, &i] {
            run("ip", &["netns", "add", ns])?;
            self.namespaces.push(ns.clone());
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        let q = self.spec.queues.to_string();
        for (a_ns, a, b_ns, b) in [(&c, "c0", &x, "x0"), (&x, "x1", &i, "i0")] {
            run(
                "ip",
                &[
                    "link",
                    "add",
                    a,
                    "netns",
                    a_ns,
                    "numtxqueues",
                    &q,
                    "numrxqueues",
                    &q,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    b,
                    "netns",
                    b_ns,
                    "numtxqueues",
                    &q,
                    "numrxqueues",
                    &q,
                ],
            )?;
        }
        for (ns, dev, mac) in [(&c, "c0", &CLIENTS_MAC), (&x, "x0", &SERVER_MAC)] {
            let mac = mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            run(
                "ip",
                &["-n", ns, "link", "set", "dev", dev, "address", &mac],
            )?;
        }
        for (ns, dev, addr) in [
            (&c, "c0", "172.31.0.2/24"),
            (&x, "x0", "172.31.0.1/24"),
            (&x, "x1", "172.31.1.1/24"),
            (&i, "i0", "172.31.1.2/24"),
        ] {
            run("ip", &["-n", ns, "addr", "add", addr, "dev", dev])?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
        }
        run(
            "ip",
            &[
                "-n",
                &c,
                "route",
                "add",
                "local",
                CLIENT_SOURCES,
                "dev",
                "lo",
            ],
        )?;
        run(
            "ip",
            &["-n", &c, "route", "add", "default", "via", "172.31.0.1"],
        )?;
        run(
            "ip",
            &[
                "-n",
                &x,
                "route",
                "add",
                CLIENT_SOURCES,
                "via",
                "172.31.0.2",
            ],
        )?;
        run(
            "ip",
            &["-n", &i, "route", "add", TUNNEL_PREFIX, "via", "172.31.1.1"],
        )?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &x,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        Ok(())
    }

    /// The work directory (configuration, sockets, daemon logs).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The datapath's command socket.
    pub fn datapath_socket(&self) -> PathBuf {
        self.work.join("run/datapath.sock")
    }

    /// xpptp-control's control socket (for `xpptp`).
    pub fn control_socket(&self) -> PathBuf {
        self.work.join("run/control.sock")
    }

    /// The datapath's process ID (for its worker threads' CPU time).
    pub fn datapath_pid(&self) -> Option<u32> {
        self.daemons
            .iter()
            .find(|d| d.name == "xpptp-datapath")
            .map(|d| d.child.id())
    }

    /// The name of emulated user `n` (from 1).
    pub fn user(n: u32) -> String {
        format!("{USER_PREFIX}{n}")
    }

    /// Writes the configuration and starts xpptp-datapath then xpptp-control, each
    /// waited for until its socket exists.
    pub fn start(&mut self) -> Result<(), TopologyError> {
        let secrets = self.work.join("chap-secrets");
        let mut text = String::from("# client server secret addresses\n");
        for n in 1..=self.spec.users {
            let _ = writeln!(text, "{} pptpd \"{PASSWORD}\" *", Topology::user(n));
        }
        fs::write(&secrets, text).map_err(io_error(&secrets))?;
        let config = self.work.join("xpptp.toml");
        let text = format!(
            "listen = \"{SERVER}:1723\"\n\
             secrets = \"{secrets}\"\n\
             datapath_socket = \"{datapath}\"\n\
             control_socket = \"{control}\"\n\
             \n[addresses]\nlocal = [\"{TUNNEL_ADDRESS}\"]\npool = [\"{POOL}\"]\n\
             \n[limits]\n\
             # Emulated clients dial in bursts, each from its own address.\n\
             max_starting = 1024\n\
             connections_per_source_per_minute = 0\n",
            secrets = secrets.display(),
            datapath = self.datapath_socket().display(),
            control = self.control_socket().display(),
        );
        fs::write(&config, text).map_err(io_error(&config))?;

        let tunnel = format!("{TUNNEL_ADDRESS}/18");
        let datapath_args = vec![
            "--interface".to_string(),
            "x0".into(),
            "--inside".into(),
            "x1".into(),
            "--backend".into(),
            self.spec.backend.as_str().into(),
            "--socket".into(),
            self.datapath_socket().display().to_string(),
            "--tunnel-address".into(),
            tunnel,
        ];
        let socket = self.datapath_socket();
        self.spawn("xpptp-datapath", &datapath_args, &socket)?;
        let control_args = vec!["--config".to_string(), config.display().to_string()];
        let socket = self.control_socket();
        self.spawn("xpptp-control", &control_args, &socket)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        args: &[String],
        socket: &Path,
    ) -> Result<(), TopologyError> {
        let log = self.work.join(format!("{name}.log"));
        let out = File::create(&log).map_err(io_error(&log))?;
        let err = out.try_clone().map_err(io_error(&log))?;
        let program = self.bin.join(name);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.concentrator_netns])
            .arg(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|err| TopologyError::DaemonFailed {
                name,
                detail: format!("cannot run {}: {err}", program.display()),
            })?;
        self.daemons.push(Daemon { name, child, log });
        let give_up = Instant::now() + START_TIMEOUT;
        loop {
            if socket.exists() {
                return Ok(());
            }
            let daemon = self.daemons.last_mut().ok_or(TopologyError::DaemonFailed {
                name,
                detail: "lost".into(),
            })?;
            let status = daemon.child.try_wait().ok().flatten();
            if status.is_some() || Instant::now() > give_up {
                let why = status.map_or_else(
                    || format!("no socket at {} after {START_TIMEOUT:?}", socket.display()),
                    |s| format!("exited ({s})"),
                );
                return Err(TopologyError::DaemonFailed {
                    name,
                    detail: format!("{why}; its log ends:\n{}", tail(&daemon.log, 20)),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the operator's tool against this concentrator (in its namespace) and returns
    /// what it printed on stdout, or its stderr as the error.
    pub fn xpptp(&self, args: &[&str]) -> Result<String, TopologyError> {
        let program = self.bin.join("xpptp");
        if !program.is_file() {
            return Err(TopologyError::MissingBinary(program));
        }
        let control = self.control_socket().display().to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.concentrator_netns])
            .arg(&program)
            .args(["--socket", &control])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| TopologyError::Command {
                command: format!("xpptp {}", args.join(" ")),
                detail: err.to_string(),
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(TopologyError::Command {
                command: format!("xpptp {}", args.join(" ")),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// The last lines of every daemon's log (for a failure report).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for daemon in &self.daemons {
            let _ = writeln!(out, "--- {} ({})", daemon.name, daemon.log.display());
            out.push_str(&tail(&daemon.log, lines));
        }
        out
    }

    fn stop_daemons(&mut self) {
        // Control first: it ends every session cleanly and removes its calls from the
        // datapath, which then stops with nothing left.
        while let Some(mut daemon) = self.daemons.pop() {
            let pid = daemon.child.id();
            // `ip netns exec` execs the daemon: the child is the daemon itself.
            if let Some(pid) = rustix::process::Pid::from_raw(pid.cast_signed()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let give_up = Instant::now() + STOP_TIMEOUT;
            loop {
                match daemon.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > give_up => {
                        tracing::warn!(daemon = daemon.name, "did not stop on SIGTERM; killing it");
                        let _ = daemon.child.kill();
                        let _ = daemon.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop_daemons();
        for ns in self.namespaces.drain(..).rev() {
            if let Err(err) = run("ip", &["netns", "del", &ns]) {
                tracing::warn!(%err, "namespace left behind");
            }
        }
        let _ = fs::remove_dir_all(&self.work);
    }
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut out = all.get(from..).unwrap_or_default().join("\n");
    out.push('\n');
    out
}
