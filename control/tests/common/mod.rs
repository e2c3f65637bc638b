//! Shared helpers of the control tests.
#![allow(dead_code)]

pub mod daemon;
pub mod netns;

use std::path::PathBuf;
use std::time::Duration;

/// Generous bound on each wait: a failure, not a speed measurement.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it holds; panics after [`PATIENCE`].
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `xpptp-TAG-PID` under the system's temporary directory, created.
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("xpptp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
