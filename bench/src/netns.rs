//! Running code inside another network namespace.

use std::os::fd::AsFd;

use anyhow::{Context, bail};

/// Runs `f` on a thread inside network namespace `netns` (or here when None): sockets it
/// opens stay in that namespace.
pub fn in_netns<T: Send>(
    netns: Option<&str>,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let Some(netns) = netns else {
        return f();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let path = format!("/run/netns/{netns}");
            let file = std::fs::File::open(&path)
                .with_context(|| format!("network namespace {netns}: cannot open {path}"))?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter network namespace {netns} (root?)"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| bail!("the thread opening sockets in {netns} panicked"))
    })
}
