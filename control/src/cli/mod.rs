//! `xpptp`, the operator's tool: sessions, one session in detail, statistics, terminate,
//! configuration check, version and shell completions, talking to `xpptp-control`'s
//! control socket through [`ControlClient`]. `src/bin/xpptp.rs` only calls [`main`].
//!
//! * [`format`]: numbers, durations, MPPE labels and tables for people (JSON keeps raw
//!   numbers).
//! * [`sessions`]: the sessions table's columns, `--sort`, `--match`, and the JSON objects.
//! * [`stats`]: two samples, their rates, the stats table and JSON.
//! * [`check`]: the configuration check shared with `xpptp-control --check`.
//!
//! Exit codes are [`Failure`]'s; the README's "The xpptp tool" documents output and codes.

pub mod check;
pub mod format;
pub mod sessions;
pub mod stats;

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use xpptp_proto::control_api::{FailureCode, SessionSelector, SessionState, TerminateTarget};

use crate::api::client::{ClientError, ControlClient};
use crate::config::{DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET};
use format::TableStyle;
use sessions::{Column, Columns, Match, Sort};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (a configuration error, a refused request, the daemon went away)
  2  bad arguments (also: terminate --all on a non-terminal without --yes)
  3  not found (no such session or user)
  4  xpptp-control is not running (no socket, or connection refused)
  5  permission denied (run as root or as the daemon's user)
  6  the datapath is not connected (stats: worker figures missing)";

/// The operator's tool for xpptp: sessions, statistics, terminate, configuration check.
#[derive(Debug, Parser)]
#[command(name = "xpptp", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// xpptp-control's control socket [env: XPPTP_SOCKET] [default:
    /// /run/xpptp/control.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Table of starting and established sessions.
    #[command(after_help = EXIT_CODES)]
    Sessions(SessionsArgs),
    /// One session (by numeric ID) or a user's sessions, in detail.
    #[command(after_help = EXIT_CODES)]
    Session {
        /// A number is a session ID, anything else a user name.
        target: String,
        /// One JSON object per session, in an array.
        #[arg(long)]
        json: bool,
    },
    /// Control plane and per-worker figures, with rates over an interval.
    #[command(after_help = EXIT_CODES)]
    Stats(StatsArgs),
    /// End sessions: by ID, by user, by tunnel address, or all.
    #[command(after_help = EXIT_CODES)]
    Terminate(TerminateArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// This tool's version and, if it answers, the daemon's.
    Version,
    /// A completion script for SHELL on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },
}

#[derive(Debug, Args)]
struct SessionsArgs {
    /// Columns to show, comma-separated, or `all` [default:
    /// id,user,state,peer,tunnel-ip,mppe,uptime,rx-bytes,tx-bytes]. Columns: id, user,
    /// state, call-id, peer-call-id, peer, tunnel-ip, mppe, uptime, rx-pkts, rx-bytes,
    /// tx-pkts, tx-bytes, drops, worker.
    #[arg(long, value_name = "A,B,...")]
    columns: Option<Columns>,
    /// Order by COLUMN (numbers numerically); `-COLUMN` for descending.
    #[arg(long, value_name = "COLUMN", allow_hyphen_values = true)]
    sort: Option<Sort>,
    /// Descending order.
    #[arg(long)]
    reverse: bool,
    /// Keep sessions whose KEY column (as shown) matches REGEX; repeatable, all must
    /// match. E.g. user=^alice$, peer=^10\.1\., tunnel-ip=^10\.8\., state=established, mppe=128.
    #[arg(long = "match", value_name = "KEY=REGEX")]
    matches: Vec<Match>,
    /// Every field with raw numbers, as a JSON array of objects.
    #[arg(long, conflicts_with_all = ["tsv", "no_header", "columns"])]
    json: bool,
    /// Tab-separated, unpadded cells with raw numbers (octets, packets, uptime in
    /// seconds), for scripts.
    #[arg(long)]
    tsv: bool,
    /// No header line.
    #[arg(long)]
    no_header: bool,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Seconds between the two samples rates come from.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = interval)]
    interval: f64,
    /// Refresh in place every interval, like top, until Ctrl-C.
    #[arg(long, conflicts_with = "json")]
    watch: bool,
    /// Both samples' raw counters and the rates, as JSON.
    #[arg(long)]
    json: bool,
    /// Tab-separated tables (for scripts).
    #[arg(long)]
    tsv: bool,
    /// No header lines in the tables.
    #[arg(long)]
    no_header: bool,
}

fn interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.01..=3600.0).contains(&secs) => Ok(secs),
        _ => Err(format!("{text:?}: give seconds between 0.01 and 3600")),
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
struct TerminateArgs {
    /// The session's ID.
    #[arg(group = "which")]
    id: Option<u16>,
    /// Every session of this user.
    #[arg(long, group = "which")]
    user: Option<String>,
    /// The session with this tunnel address.
    #[arg(long, group = "which", value_name = "ADDRESS")]
    ip: Option<Ipv4Addr>,
    /// Every session (asks for confirmation).
    #[arg(long, group = "which")]
    all: bool,
    /// Do not ask for confirmation (needed for --all when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration as `xpptp-control --check` does: print what was
    /// understood and every warning (never a secret); exit 0 if usable, 1 if not.
    Check {
        /// The native configuration file [default: /etc/xpptp/xpptp.toml].
        #[arg(conflicts_with = "pptpd_conf")]
        file: Option<PathBuf>,
        /// Check an existing Poptop install instead: its pptpd.conf.
        #[arg(long, value_name = "FILE")]
        pptpd_conf: Option<PathBuf>,
        /// The Poptop install's chap-secrets [default: /etc/ppp/chap-secrets].
        #[arg(long, value_name = "FILE", requires = "pptpd_conf")]
        chap_secrets: Option<PathBuf>,
    },
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// 1: anything else.
    Other(String),
    /// 2: the arguments do not make sense.
    Usage(String),
    /// 3: no such session or user.
    NotFound(String),
    /// 4: the daemon is not running.
    DaemonDown(String),
    /// 5: the socket may not be used by this user.
    PermissionDenied(String),
    /// 6: the datapath is not connected.
    DatapathUnavailable(String),
}

impl Failure {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::DaemonDown(_) => 4,
            Failure::PermissionDenied(_) => 5,
            Failure::DatapathUnavailable(_) => 6,
        }
    }

    /// What to tell the operator.
    pub fn message(&self) -> &str {
        match self {
            Failure::Other(m)
            | Failure::Usage(m)
            | Failure::NotFound(m)
            | Failure::DaemonDown(m)
            | Failure::PermissionDenied(m)
            | Failure::DatapathUnavailable(m) => m,
        }
    }

    /// Classifies a client error on `socket`.
    pub fn from_client(error: ClientError, socket: &Path) -> Failure {
        let path = socket.display();
        let permission = || {
            Failure::PermissionDenied(format!(
                "permission denied on the control socket {path}: run as root or as the \
                 daemon's user"
            ))
        };
        match error {
            ClientError::Connect { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => Failure::DaemonDown(format!(
                    "xpptp-control is not running (no socket at {path}); start it or pass \
                     --socket"
                )),
                // A socket file left behind by a daemon that died.
                io::ErrorKind::ConnectionRefused => Failure::DaemonDown(format!(
                    "xpptp-control is not running (nothing listens on {path}); start it or \
                     pass --socket"
                )),
                io::ErrorKind::PermissionDenied => permission(),
                _ => Failure::Other(format!(
                    "cannot connect to the control socket {path}: {source}; is it \
                     xpptp-control's socket? (pass --socket)"
                )),
            },
            ClientError::Failed { code, detail } => match code {
                FailureCode::NotFound => Failure::NotFound(detail),
                FailureCode::PermissionDenied => permission(),
                FailureCode::DatapathUnavailable => Failure::DatapathUnavailable(format!(
                    "{detail}: xpptp-datapath is not connected to xpptp-control; start it"
                )),
                _ => Failure::Other(format!("xpptp-control refused: {detail}")),
            },
            other => Failure::Other(other.to_string()),
        }
    }
}

type Outcome = Result<(), Failure>;

/// Runs the tool: parses the arguments, runs the command, reports a failure on stderr
/// and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("xpptp: {}", failure.message());
            ExitCode::from(failure.code())
        }
    }
}

fn client_name() -> String {
    format!("xpptp {}", env!("CARGO_PKG_VERSION"))
}

fn connect(socket: &Path) -> Result<ControlClient, Failure> {
    ControlClient::connect(socket, &client_name()).map_err(|e| Failure::from_client(e, socket))
}

fn print(text: &str) -> Outcome {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A closed pipe (`xpptp sessions | head`) is not a failure.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::Other(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn json_text(value: &serde_json::Value) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| Failure::Other(format!("cannot write JSON: {e}")))
}

fn run(cli: Cli) -> Outcome {
    let socket = cli
        .socket
        .or_else(|| std::env::var_os("XPPTP_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let socket = socket.as_path();
    match cli.command {
        Command::Sessions(args) => list(socket, args),
        Command::Session { target, json } => show(socket, &target, json),
        Command::Stats(args) => show_stats(socket, &args),
        Command::Terminate(args) => terminate(socket, &args),
        Command::Config(ConfigCommand::Check {
            file,
            pptpd_conf,
            chap_secrets,
        }) => config_check(
            file.as_deref(),
            pptpd_conf.as_deref(),
            chap_secrets.as_deref(),
        ),
        Command::Version => version(socket),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "xpptp", &mut script);
            print(&String::from_utf8_lossy(&script))
        }
    }
}

fn list(socket: &Path, args: SessionsArgs) -> Outcome {
    let mut client = connect(socket)?;
    let all = client
        .list_sessions(None, None)
        .map_err(|e| Failure::from_client(e, socket))?;
    let listed: Vec<_> = all
        .into_iter()
        .filter(|s| s.state != SessionState::Finishing)
        .collect();
    let sort = args.sort.map(|mut sort| {
        sort.descending ^= args.reverse;
        sort
    });
    let sort = sort.or(args.reverse.then_some(Sort {
        column: Column::Id,
        descending: true,
    }));
    let selected = sessions::select(listed, &args.matches, sort);
    if args.json {
        let array: Vec<_> = selected.iter().map(sessions::summary_json).collect();
        return print(&json_text(&serde_json::Value::Array(array))?);
    }
    let columns = args
        .columns
        .map_or_else(|| Column::DEFAULT.to_vec(), |c| c.0);
    let style = TableStyle {
        header: !args.no_header,
        tsv: args.tsv,
    };
    print(&sessions::table(&selected, &columns, style))
}

fn show(socket: &Path, target: &str, json: bool) -> Outcome {
    let selector = match target.parse::<u16>() {
        Ok(id) => SessionSelector::Id(id),
        Err(_) => SessionSelector::User(target.as_bytes().to_vec()),
    };
    let mut client = connect(socket)?;
    let details = client
        .get_session(selector)
        .map_err(|e| Failure::from_client(e, socket))?;
    if details.is_empty() {
        return Err(Failure::NotFound(format!("no session matches {target:?}")));
    }
    if json {
        let array: Vec<_> = details.iter().map(sessions::detail_json).collect();
        return print(&json_text(&serde_json::Value::Array(array))?);
    }
    let blocks: Vec<String> = details.iter().map(sessions::detail_text).collect();
    print(&blocks.join("\n"))
}

fn sample(client: &mut ControlClient, socket: &Path) -> Result<stats::Sample, Failure> {
    let stats = client
        .stats()
        .map_err(|e| Failure::from_client(e, socket))?;
    Ok(stats::Sample {
        at: Instant::now(),
        stats,
    })
}

fn datapath_check(sample: &stats::Sample) -> Outcome {
    if sample.stats.datapath_connected {
        Ok(())
    } else {
        Err(Failure::DatapathUnavailable(
            "the datapath did not answer: no worker figures (is xpptp-datapath running and \
             xpptp-control connected to it?)"
                .into(),
        ))
    }
}

fn show_stats(socket: &Path, args: &StatsArgs) -> Outcome {
    let mut client = connect(socket)?;
    let wait = Duration::from_secs_f64(args.interval);
    let style = TableStyle {
        header: !args.no_header,
        tsv: args.tsv,
    };
    let mut first = sample(&mut client, socket)?;
    std::thread::sleep(wait);
    let mut second = sample(&mut client, socket)?;
    if args.json {
        print(&json_text(&stats::json(&first, &second))?)?;
        return datapath_check(&second);
    }
    if !args.watch {
        print(&stats::text(&first, &second, style))?;
        return datapath_check(&second);
    }
    loop {
        // Clear the screen and go home, as top does; Ctrl-C ends it.
        print(&format!(
            "\x1b[H\x1b[2J{}  every {}s, Ctrl-C to quit\n\n{}",
            client_name(),
            args.interval,
            stats::text(&first, &second, style)
        ))?;
        std::thread::sleep(wait);
        first = second;
        second = sample(&mut client, socket)?;
    }
}

fn terminate(socket: &Path, args: &TerminateArgs) -> Outcome {
    let target = if let Some(id) = args.id {
        TerminateTarget::Id(id)
    } else if let Some(user) = &args.user {
        TerminateTarget::User(user.as_bytes().to_vec())
    } else if let Some(ip) = args.ip {
        TerminateTarget::TunnelAddress(ip)
    } else {
        TerminateTarget::All
    };
    let confirm = target == TerminateTarget::All && !args.yes;
    if confirm && !io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "terminate --all ends every session: stdin is not a terminal to confirm on; \
             pass --yes"
                .into(),
        ));
    }
    let mut client = connect(socket)?;
    if confirm {
        confirm_all(&mut client, socket)?;
    }
    let count = client
        .terminate(target)
        .map_err(|e| Failure::from_client(e, socket))?;
    print(&format!(
        "{count} session{} told to end\n",
        if count == 1 { "" } else { "s" }
    ))
}

fn confirm_all(client: &mut ControlClient, socket: &Path) -> Outcome {
    let stdin = io::stdin();
    let n = client
        .list_sessions(None, None)
        .map_err(|e| Failure::from_client(e, socket))?
        .len();
    eprint!("End all {n} sessions? Type yes to confirm: ");
    let _ = io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Other(format!("cannot read the confirmation: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::Other("not confirmed; no session ended".into()))
    }
}

fn config_check(
    file: Option<&Path>,
    pptpd_conf: Option<&Path>,
    chap_secrets: Option<&Path>,
) -> Outcome {
    let source = match pptpd_conf {
        Some(pptpd_conf) => check::Source::Poptop {
            pptpd_conf,
            chap_secrets,
        },
        None => check::Source::Native(file.unwrap_or_else(|| Path::new(DEFAULT_CONFIG_PATH))),
    };
    let loaded = check::load(source).map_err(|e| Failure::Other(e.to_string()))?;
    check::report(&loaded, &mut io::stdout(), &mut io::stderr())
        .map_err(|e| Failure::Other(format!("cannot write the report: {e}")))
}

fn version(socket: &Path) -> Outcome {
    let mut text = format!("{}\n", client_name());
    match ControlClient::connect(socket, &client_name()) {
        Ok(client) => {
            let hello = client.server();
            text.push_str(&format!(
                "daemon: {}, up {}, datapath {}\n",
                hello.server,
                format::duration(hello.uptime_secs),
                if hello.datapath_connected {
                    "connected"
                } else {
                    "not connected"
                }
            ));
        }
        Err(error) => {
            let failure = Failure::from_client(error, socket);
            text.push_str(&format!("daemon: not reachable ({})\n", failure.message()));
        }
    }
    print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_error(kind: io::ErrorKind) -> ClientError {
        ClientError::Connect {
            path: PathBuf::from("/run/x.sock"),
            source: kind.into(),
        }
    }

    fn failed(code: FailureCode) -> ClientError {
        ClientError::Failed {
            code,
            detail: "no session with ID 9".into(),
        }
    }

    #[test]
    fn exit_codes_name_the_cause() {
        let socket = Path::new("/run/x.sock");
        let classify = |e| Failure::from_client(e, socket);
        let down = classify(connect_error(io::ErrorKind::NotFound));
        assert_eq!(down.code(), 4);
        assert_eq!(
            down.message(),
            "xpptp-control is not running (no socket at /run/x.sock); start it or pass --socket"
        );
        assert_eq!(
            classify(connect_error(io::ErrorKind::ConnectionRefused)).code(),
            4
        );
        let denied = classify(connect_error(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.code(), 5);
        assert!(
            denied
                .message()
                .contains("run as root or as the daemon's user")
        );
        assert_eq!(classify(failed(FailureCode::PermissionDenied)).code(), 5);
        let missing = classify(failed(FailureCode::NotFound));
        assert_eq!(
            (missing.code(), missing.message()),
            (3, "no session with ID 9")
        );
        assert_eq!(classify(failed(FailureCode::DatapathUnavailable)).code(), 6);
        assert_eq!(classify(failed(FailureCode::Busy)).code(), 1);
        assert_eq!(classify(connect_error(io::ErrorKind::Other)).code(), 1);
    }

    #[test]
    fn arguments_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        assert!(
            parse(&["xpptp", "terminate"]).is_err(),
            "a target is required"
        );
        assert!(
            parse(&["xpptp", "terminate", "3", "--all"]).is_err(),
            "one target"
        );
        assert!(
            parse(&[
                "xpptp", "sessions", "--sort", "-uptime", "--match", "user=a"
            ])
            .is_ok()
        );
        assert!(parse(&["xpptp", "sessions", "--columns", "id,colour"]).is_err());
        assert!(parse(&["xpptp", "stats", "--interval", "0"]).is_err());
        assert!(parse(&["xpptp", "config", "check", "--chap-secrets", "x"]).is_err());
        Cli::command().debug_assert();
    }
}
