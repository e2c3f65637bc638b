//! `xpptp-control`: the PPTP control daemon (TCP 1723, PPP negotiation, authentication,
//! address pools; established calls pushed to `xpptp-datapath`), or with `--check` a
//! configuration check.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;
use xpptp_control::cli::check;
use xpptp_control::config::{self, Loaded};
use xpptp_control::daemon::{self, ChapSecrets, Settings, SharedPool};
use xpptp_control::pool::AddressPool;

/// xpptp's control daemon: serves PPTP on TCP 1723, negotiates PPP, authenticates users
/// from chap-secrets, hands out addresses, and pushes every established call to
/// xpptp-datapath over its command socket.
///
/// Configuration: the native file (--config, default /etc/xpptp/xpptp.toml), or an
/// existing Poptop install read as it is (--pptpd-conf, with the pppd options file its
/// `option` line names, and --chap-secrets).
///
/// Signals: SIGTERM/SIGINT end every session cleanly (LCP Terminate, Call-Disconnect-Notify,
/// Stop-Control-Connection) and exit; SIGHUP reloads chap-secrets without dropping
/// sessions (a file with an error keeps the previous table and logs file:line).
///
/// Logs go to stderr; RUST_LOG filters them (default `info`, or `debug` when the
/// configuration says debug), e.g. RUST_LOG=xpptp_control=debug.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The native configuration file [default: /etc/xpptp/xpptp.toml].
    #[arg(long, value_name = "FILE", conflicts_with = "pptpd_conf")]
    config: Option<PathBuf>,
    /// Read an existing Poptop install instead: its pptpd.conf (and the pppd options file
    /// its `option` line names).
    #[arg(long, value_name = "FILE")]
    pptpd_conf: Option<PathBuf>,
    /// chap-secrets of the Poptop install [default: /etc/ppp/chap-secrets].
    #[arg(long, value_name = "FILE", requires = "pptpd_conf")]
    chap_secrets: Option<PathBuf>,
    /// Validate the configuration, print what was understood and every warning, and exit
    /// (0: usable, 1: not).
    #[arg(long)]
    check: bool,
    /// The datapath's command socket, overriding the configuration's
    /// [default: /run/xpptp/datapath.sock].
    #[arg(long, value_name = "PATH")]
    datapath_socket: Option<PathBuf>,
    /// The control socket the `xpptp` tool uses (sessions, terminate, stats), overriding
    /// the configuration's [default: /run/xpptp/control.sock].
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Serve Prometheus metrics (GET /metrics) on this address and port, e.g.
    /// 127.0.0.1:9723, overriding the configuration's ([metrics] listen); the only way to
    /// turn them on with --pptpd-conf [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Log lines as text for people or as JSON objects for collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

fn load(args: &Args) -> Result<Loaded, config::ConfigError> {
    check::load(match &args.pptpd_conf {
        Some(pptpd_conf) => check::Source::Poptop {
            pptpd_conf,
            chap_secrets: args.chap_secrets.as_deref(),
        },
        None => check::Source::Native(
            args.config
                .as_deref()
                .unwrap_or_else(|| Path::new(config::DEFAULT_CONFIG_PATH)),
        ),
    })
}

fn check(loaded: &Loaded) -> ExitCode {
    match check::report(loaded, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn init_logs(format: LogFormat, debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn serve(args: &Args, loaded: Loaded) -> anyhow::Result<()> {
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "configuration");
    }
    let Loaded {
        mut config,
        secrets,
        ..
    } = loaded;
    if let Some(socket) = &args.datapath_socket {
        config.datapath_socket = socket.clone();
    }
    if let Some(socket) = &args.control_socket {
        config.control_socket = socket.clone();
    }
    let settings = Settings::from_config(&config)?;
    let pool = AddressPool::new(
        &config.addresses.pool,
        &config.addresses.local,
        secrets.fixed_addresses(),
    )?;
    tracing::info!(
        pool = pool.dynamic_size(),
        users = secrets.len(),
        datapath = %config.datapath_socket.display(),
        control = %config.control_socket.display(),
        metrics = %config.metrics.map_or_else(|| "off".into(), |m| m.to_string()),
        "configuration loaded"
    );
    let secrets = Arc::new(ChapSecrets::new(&config.secrets_file, secrets));
    daemon::run(settings, secrets, Arc::new(SharedPool::new(pool)))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut loaded = match load(&args) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(metrics) = args.metrics_listen {
        loaded.config.metrics = Some(metrics);
    }
    if args.check {
        return check(&loaded);
    }
    init_logs(args.log_format, loaded.config.debug);
    match serve(&args, loaded) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
