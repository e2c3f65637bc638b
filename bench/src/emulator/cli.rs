//! `xpptp-bench dial`: dials the clients, shows progress, holds the sessions, hangs up,
//! and reports.

use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{
    DialConfig, DialProgress, DialReport, Emulator, HangUpReport, MppeBits, PPTP_PORT, SourceRange,
    Users, Vendor,
};

/// Dial N emulated PPTP clients (MS-CHAPv2, MPPE) at a concentrator and report set-ups
/// per second, set-up latency and failures by cause.
///
/// Run it as root in the clients' network namespace. With a source range, make it local
/// first (`ip route add local 10.100.0.0/16 dev lo`) and route it back from the server.
#[derive(Debug, Clone, clap::Args)]
pub struct DialArgs {
    /// The concentrator's address (TCP 1723).
    #[arg(long)]
    pub server: Ipv4Addr,
    /// How many clients to dial (at most 65535).
    #[arg(long, default_value_t = 1)]
    pub clients: u32,
    /// Source address, or CIDR block giving each client its own (e.g. 10.100.0.0/16).
    /// Default: the kernel's choice for every client.
    #[arg(long)]
    pub source: Option<SourceRange>,
    /// New dials per second at most (default: as fast as --concurrency allows).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Dials in flight at most.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// User names; `{n}` becomes the client's number from 1.
    #[arg(long, default_value = "user{n}")]
    pub user_template: String,
    /// Every user's password (with --user-template).
    #[arg(long, required_unless_present = "users_file")]
    pub password: Option<String>,
    /// Take users and passwords from a chap-secrets file (`user server "secret" ips`
    /// lines, e.g. the concentrator's own), in turn, instead of the template.
    #[arg(long, conflicts_with_all = ["user_template", "password"])]
    pub users_file: Option<PathBuf>,
    /// MPPE key length: 128 or 40.
    #[arg(long, default_value = "128", value_parser = parse_mppe)]
    pub mppe: MppeBits,
    /// Accept stateful MPPE when the server asks for it.
    #[arg(long)]
    pub stateful: bool,
    /// Look like Windows' client instead of pptp-linux.
    #[arg(long)]
    pub windows: bool,
    /// Keep the sessions up this many seconds before hanging up (Ctrl-C ends it early).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// From TCP connect to session up, at most this many seconds per client.
    #[arg(long, default_value_t = 30)]
    pub setup_timeout: u64,
    /// Print every figure as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// (user, secret) from chap-secrets lines (`user server secret [ips]`, `#` comments,
/// fields optionally in double quotes, which may hold spaces): the `--users-file`.
pub fn parse_chap_secrets(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut users = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fields = chap_fields(line);
        if fields.is_empty() {
            continue;
        }
        let (Some(user), Some(secret)) = (fields.first(), fields.get(2)) else {
            anyhow::bail!(
                "line {}: expected `user server secret [addresses]`",
                number + 1
            );
        };
        users.push((user.clone(), secret.clone()));
    }
    anyhow::ensure!(!users.is_empty(), "no users in it");
    Ok(users)
}

/// A chap-secrets line's fields, up to a `#` outside quotes.
fn chap_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return fields,
            Some('"') => {
                chars.next();
                fields.push(chars.by_ref().take_while(|&c| c != '"').collect());
            }
            Some(_) => {
                let mut field = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    field.push(c);
                }
                fields.push(field);
            }
        }
    }
}

fn parse_mppe(text: &str) -> Result<MppeBits, String> {
    match text {
        "128" => Ok(MppeBits::Bits128),
        "40" => Ok(MppeBits::Bits40),
        _ => Err(format!("MPPE key length {text:?}: give 128 or 40")),
    }
}

/// The JSON `--json` prints.
#[derive(Debug, Serialize)]
struct Output<'a> {
    server: Ipv4Addr,
    vendor: Vendor,
    mppe: MppeBits,
    stateful: bool,
    rate: Option<f64>,
    concurrency: usize,
    hold_seconds: u64,
    dial: &'a DialReport,
    hang_up: HangUpReport,
}

impl DialArgs {
    fn config(&self) -> anyhow::Result<DialConfig> {
        let password = self.password.clone().unwrap_or_default();
        let mut config = DialConfig::new(
            self.server,
            self.clients,
            self.source
                .unwrap_or_else(|| SourceRange::single(Ipv4Addr::UNSPECIFIED)),
            &password,
        );
        config.server.set_port(PPTP_PORT);
        config.rate = self.rate;
        config.concurrency = self.concurrency;
        config.users = match &self.users_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the users file {}", path.display()))?;
                Users::List(
                    parse_chap_secrets(&text)
                        .with_context(|| format!("in the users file {}", path.display()))?,
                )
            }
            None => Users::Template {
                template: self.user_template.clone(),
                password,
            },
        };
        config.mppe = self.mppe;
        config.stateful = self.stateful;
        config.vendor = if self.windows {
            Vendor::Windows
        } else {
            Vendor::PptpLinux
        };
        config.setup_timeout = Duration::from_secs(self.setup_timeout.max(1));
        Ok(config)
    }
}

/// Runs `xpptp-bench dial`.
pub fn run(args: &DialArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dial(args))
}

/// Dial progress for a person: a progress bar on a terminal, a plain line a second
/// otherwise (logs, CI).
#[derive(Debug)]
pub struct DialProgressView {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl DialProgressView {
    /// For `total` clients.
    pub fn new(total: u32) -> DialProgressView {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(u64::from(total));
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} dialled, {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        DialProgressView {
            bar,
            last_line: Instant::now(),
        }
    }

    /// Shows where the dial phase stands.
    pub fn update(&mut self, p: &DialProgress) {
        let done = p.established.saturating_add(p.failed);
        if let Some(bar) = self.bar.as_ref() {
            bar.set_position(u64::from(done));
            bar.set_message(format!("{} up, {} failed", p.established, p.failed));
        } else if self.last_line.elapsed() >= Duration::from_secs(1) || done == p.total {
            self.last_line = Instant::now();
            eprintln!(
                "dial: {done}/{} after {:.1} s: {} up, {} failed",
                p.total,
                p.elapsed.as_secs_f64(),
                p.established,
                p.failed
            );
        }
    }

    /// Ends the bar (nothing to do for plain lines).
    pub fn finish(&self) {
        if let Some(bar) = self.bar.as_ref() {
            bar.finish();
        }
    }
}

async fn dial(args: &DialArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let mut progress = DialProgressView::new(args.clients);
    let emulator = Emulator::dial(config.clone(), |p: &DialProgress| progress.update(p)).await?;
    progress.finish();
    let report = emulator.report().clone();
    if args.hold > 0 {
        eprintln!(
            "holding {} sessions for {} s (Ctrl-C to hang up now)",
            emulator.sessions().len(),
            args.hold
        );
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.hold)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    let hang_up = emulator.hang_up_all().await;
    let mut out = std::io::stdout().lock();
    if args.json {
        let output = Output {
            server: args.server,
            vendor: config.vendor,
            mppe: config.mppe,
            stateful: config.stateful,
            rate: config.rate,
            concurrency: config.concurrency,
            hold_seconds: args.hold,
            dial: &report,
            hang_up,
        };
        serde_json::to_writer_pretty(&mut out, &output)?;
        writeln!(out)?;
    } else {
        write_dial_summary(&mut out, &report)?;
        write_hang_up_summary(&mut out, &hang_up)?;
    }
    Ok(())
}

/// The dial phase's figures for a person (what `xpptp-bench dial` prints).
pub fn write_dial_summary(out: &mut impl Write, report: &DialReport) -> std::io::Result<()> {
    writeln!(
        out,
        "dialled {} clients in {:.2} s: {} established, {} failed; {:.1} set-ups/s",
        report.clients,
        report.dial_seconds,
        report.established,
        report.failed,
        report.setups_per_sec
    )?;
    let l = &report.latency;
    writeln!(
        out,
        "set-up latency (TCP connect to IPCP/CCP up): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
    )?;
    for (kind, count) in &report.failures {
        let example = report.failure_examples.get(kind).map_or("", String::as_str);
        writeln!(out, "failed: {count} {kind:?} (e.g. {example})")?;
    }
    let g = &report.gre;
    if g.queue_full > 0 || g.send_errors > 0 {
        writeln!(
            out,
            "GRE: {} dropped on full client queues, {} sends refused by the kernel",
            g.queue_full, g.send_errors
        )?;
    }
    Ok(())
}

/// How the hang-up went, for a person.
pub fn write_hang_up_summary(out: &mut impl Write, hang_up: &HangUpReport) -> std::io::Result<()> {
    writeln!(
        out,
        "hung up {} clients: {} sessions stopped cleanly, {} without the server's reply",
        hang_up.ended, hang_up.clean, hang_up.unacknowledged
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chap_secrets_give_users_in_order() {
        let text = "# users\nuser1 * \"pass #1\" *\n\nuser2\tpptpd pw2 10.0.0.2 # two\n";
        let users = parse_chap_secrets(text).unwrap();
        assert_eq!(users[0], ("user1".to_string(), "pass #1".to_string()));
        assert_eq!(users[1], ("user2".to_string(), "pw2".to_string()));
        assert!(parse_chap_secrets("# nothing\n").is_err());
        let err = parse_chap_secrets("a b\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }
}
