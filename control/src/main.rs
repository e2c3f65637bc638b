//! `xpptp-control`: the control plane daemon. Flags and configuration files are read by the
//! configuration module; this entry point runs the daemon with them.

use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use xpptp_control::daemon::{self, MemoryPool, MemorySecrets, Settings};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let settings = Settings::default();
    daemon::run(
        settings,
        Arc::new(MemorySecrets::new()),
        Arc::new(MemoryPool::new([])),
    )
    .context("xpptp-control failed")
}
