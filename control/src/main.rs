//! `xpptp-control`: so far it validates a configuration (`--check`) and exits; the daemon
//! itself (TCP 1723, PPP negotiation, pushing calls to the datapath) is not written yet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xpptp_control::config::{self, Loaded};

/// xpptp's control daemon. This build only checks configurations (--check): the daemon
/// itself is not implemented yet.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Validate the configuration, print what was understood and every warning, and exit
    /// (0: usable, 1: not). Required: this build does nothing else yet.
    #[arg(long, required = true)]
    check: bool,
    /// The native configuration file.
    #[arg(long, value_name = "FILE", conflicts_with = "pptpd_conf")]
    config: Option<PathBuf>,
    /// Read an existing Poptop install instead: its pptpd.conf (and the pppd options file
    /// its `option` line names).
    #[arg(long, value_name = "FILE")]
    pptpd_conf: Option<PathBuf>,
    /// chap-secrets of the Poptop install (default /etc/ppp/chap-secrets).
    #[arg(long, value_name = "FILE", requires = "pptpd_conf")]
    chap_secrets: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded: Result<Loaded, config::ConfigError> = match &args.pptpd_conf {
        Some(pptpd_conf) => config::load_poptop(pptpd_conf, None, args.chap_secrets.as_deref()),
        None => config::load_native(
            args.config
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new(config::DEFAULT_CONFIG_PATH)),
        ),
    };
    match loaded {
        Ok(loaded) => {
            print!("{loaded}");
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "configuration OK ({} warning{})",
                loaded.warnings.len(),
                if loaded.warnings.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
