//! The `xpptp` binary against a running daemon, as root in two namespaces joined by a veth
//! pair (common::daemon: the daemon and a mock datapath in one, a client running proto's
//! client role in the other; the control socket is reached by path).
//!
//! `every_command_against_a_daemon`: `sessions` shows the dialled session's user, tunnel
//! address and MPPE; `--columns`, `--sort`, `--match` select and filter (no match: an empty
//! table, exit 0); `--json` parses with the mock datapath's counters as raw numbers;
//! `--tsv` is tab-separated with raw numbers; `session ID` and `session USER` show
//! what was negotiated, a missing one exits 3; `stats` shows the worker table, the mock's events,
//! ring and XDP verdicts, and `--json` both samples (events, rings, verdicts included) and
//! the rates, `--watch` redraws; `version` names the daemon; an unprivileged user gets exit 5
//! and the message; `terminate --all` without `--yes` on a non-terminal refuses (exit 2)
//! and ends nothing; `terminate ID` ends the session (the client sees
//! Call-Disconnect-Notify, the mock datapath Remove); then `sessions` is empty.
//!
//! Without root: the daemon down (exit 4 and the message), `config check` of the example
//! (exit 0) and of a broken file (exit 1, file:line), completions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use serde_json::Value;
use xpptp_control::daemon::SharedPool;
use xpptp_control::pool::AddressPool;
use xpptp_proto::pptp::control::Event;

use common::daemon::{
    CLIENT_CALL_ID, CLIENT_TUNNEL, Client, MockDatapath, PASSWORD, SERVER_TUNNEL, ShutdownOnDrop,
    USER, established_calls, removed_calls, start_daemon,
};
use common::netns::{VethPair, run_in};
use common::{TempDir, eventually};

fn xpptp(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xpptp"));
    command
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("XPPTP_SOCKET");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the command off the client's runtime thread (the client keeps answering meanwhile).
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("run xpptp"))
        .await
        .unwrap()
}

/// Runs `xpptp ARGS` and checks its exit code; returns stdout.
async fn ok(socket: &Path, args: &[&str]) -> String {
    let out = run(xpptp(socket, args)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "xpptp {args:?}: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Reads `xpptp stats --watch` until it has cleared the screen twice (two refreshes),
/// then kills it; returns what it wrote.
async fn watch_frames(socket: &Path) -> String {
    let mut command = xpptp(socket, &["stats", "--watch", "--interval", "0.1"]);
    command.stdout(Stdio::piped());
    let mut child = command.spawn().expect("run xpptp stats --watch");
    let mut stdout = child.stdout.take().unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while text(&seen).matches("\x1b[H\x1b[2J").count() < 2 {
            let n = stdout.read(&mut chunk).expect("read the watch output");
            assert!(n > 0, "xpptp stats --watch ended: {}", text(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
        text(&seen)
    });
    let frames = tokio::time::timeout(common::PATIENCE, read).await;
    child.kill().unwrap();
    child.wait().unwrap();
    frames.expect("two refreshes").unwrap()
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn every_command_against_a_daemon() {
    let pair = VethPair::create("xcli", 1);
    let dir = TempDir::new("ctld-cli");
    let socket = dir.0.join("datapath.sock");
    let control_socket = dir.0.join("run").join("control.sock");
    let pool = Arc::new(SharedPool::new(
        AddressPool::new(&[CLIENT_TUNNEL], &[SERVER_TUNNEL], []).unwrap(),
    ));
    let mock = MockDatapath {
        report_calls: true,
        ..MockDatapath::default()
    };
    let log = Arc::clone(&mock.log);
    let (handle, daemon) = start_daemon(
        &pair.a.netns,
        pair.a.addr,
        &socket,
        Arc::clone(&pool),
        mock,
        Some(control_socket.clone()),
    );
    let guard = ShutdownOnDrop(handle.clone());
    let server = pair.a.addr;
    let client_outer = pair.b.addr.to_string();
    let tunnel = CLIENT_TUNNEL.to_string();

    run_in(&pair.b.netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let path = control_socket.as_path();
            let empty = ok(path, &["sessions"]).await;
            assert_eq!(empty.lines().count(), 1, "a header only: {empty}");

            let mut client = Client::dial(server, PASSWORD).await;
            client
                .drive_until("established", |c| c.established().is_some())
                .await;
            eventually("the datapath gets the call", || {
                established_calls(&log).len() == 1
            })
            .await;
            let call = established_calls(&log)[0].local_call_id;
            let id = call.to_string();

            // The default table.
            let table = ok(path, &["sessions"]).await;
            let lines: Vec<&str> = table.lines().collect();
            assert_eq!(lines.len(), 2, "{table}");
            let header: Vec<&str> = lines[0].split_whitespace().collect();
            assert_eq!(
                header,
                [
                    "id", "user", "state", "peer", "tunnel-ip", "mppe", "uptime", "rx-bytes",
                    "tx-bytes"
                ]
            );
            let row: Vec<&str> = lines[1].split_whitespace().collect();
            assert_eq!(row[..6], [&id, USER, "established", &client_outer, &tunnel, "128-stateless"]);
            assert_eq!(row[7..], ["1.1", "KiB", "2.1", "KiB"], "{table}");

            // --columns, --match, --sort, --tsv.
            let chosen = ok(
                path,
                &["sessions", "--columns", "user,peer-call-id,worker,drops,rx-bytes", "--tsv"],
            )
            .await;
            assert_eq!(
                chosen,
                format!("user\tpeer-call-id\tworker\tdrops\trx-bytes\n{USER}\t{CLIENT_CALL_ID}\tup:0/down:any\t3\t1100\n")
            );
            let matched = ok(
                path,
                &["sessions", "--match", &format!("user=^{USER}$"), "--match", "mppe=128",
                  "--sort", "-rx-bytes", "--columns", "id", "--no-header"],
            )
            .await;
            assert_eq!(matched.trim(), id);
            let none = ok(path, &["sessions", "--match", "tunnel-ip=^203\\.0\\.113\\."]).await;
            assert_eq!(none.lines().count(), 1, "an empty table: {none}");
            let bad = run(xpptp(path, &["sessions", "--sort", "colour"])).await;
            assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
            assert!(text(&bad.stderr).contains("tunnel-ip"), "names the columns");

            // --json: raw numbers, the mock's counters.
            let listed = json(&ok(path, &["sessions", "--json"]).await);
            let s = &listed[0];
            assert_eq!(listed.as_array().unwrap().len(), 1);
            assert_eq!(s["id"], call);
            assert_eq!(s["user"], USER);
            assert_eq!(s["state"], "established");
            assert_eq!(s["peer"], client_outer.as_str());
            assert_eq!(s["tunnel_ip"], tunnel.as_str());
            assert_eq!(s["peer_call_id"], CLIENT_CALL_ID);
            assert_eq!(s["mppe_tx"]["bits"], 128);
            assert_eq!(
                (&s["rx_packets"], &s["rx_bytes"], &s["tx_packets"], &s["tx_bytes"]),
                (&Value::from(11), &Value::from(1100), &Value::from(22), &Value::from(2200))
            );
            assert_eq!(s["drops"], 3);
            assert_eq!(s["upstream_worker"], 0);

            // One session, by ID and by user; missing ones exit 3.
            let by_id = ok(path, &["session", &id]).await;
            assert!(by_id.contains("ms-chap-v2"), "{by_id}");
            assert!(by_id.contains("cananian"), "the vendor: {by_id}");
            assert!(by_id.contains(&format!("peer {CLIENT_TUNNEL}")), "{by_id}");
            let by_user = json(&ok(path, &["session", USER, "--json"]).await);
            assert_eq!(by_user[0]["id"], call);
            assert_eq!(by_user[0]["negotiated"]["auth"], "ms-chap-v2");
            assert_eq!(
                by_user[0]["negotiated"]["server_tunnel_ip"],
                SERVER_TUNNEL.to_string()
            );
            for missing in ["nobody", "9"] {
                let out = run(xpptp(path, &["session", missing])).await;
                assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
                assert!(text(&out.stderr).contains("no session"), "{}", text(&out.stderr));
            }

            // Stats: the table and the JSON with both samples and the rates.
            let table = ok(path, &["stats", "--interval", "0.2"]).await;
            assert!(table.contains("1 established"), "{table}");
            assert!(table.contains("1 total"), "set-ups: {table}");
            assert!(table.lines().any(|l| l.starts_with("worker")), "{table}");
            assert!(table.lines().any(|l| l.starts_with("total")), "{table}");
            // The mock datapath's events, ring and XDP verdicts (common/daemon.rs).
            let row = |first: &str| -> Vec<String> {
                table
                    .lines()
                    .find(|l| l.split_whitespace().next() == Some(first))
                    .unwrap_or_else(|| panic!("no {first} row: {table}"))
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(row("next-hop-unresolved"), ["next-hop-unresolved", "4", "4"]);
            assert!(
                table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["0", "2", "4096", "96", "3990", "10", "0", "6"]),
                "ring row: {table}"
            );
            assert_eq!(row("to-worker"), ["to-worker", "9", "1.2", "KiB", "0", "0", "bit/s"]);
            assert_eq!(row("pass"), ["pass", "1", "60", "B", "0", "0", "bit/s"]);
            let stats = json(&ok(path, &["stats", "--json", "--interval", "0.2"]).await);
            assert_eq!(stats["second"]["sessions_established"], 1);
            assert_eq!(stats["second"]["setups_total"], 1);
            assert_eq!(stats["first"]["workers"][0]["batches"], 5);
            assert_eq!(stats["second"]["refusals"]["max_sessions"], 0);
            assert!(stats["rates"]["interval_secs"].as_f64().unwrap() > 0.1);
            assert_eq!(stats["rates"]["workers"][0]["rx_pps"], 0.0);
            assert!(stats["rates"]["total"]["tx_bps"].is_number());
            let w0 = &stats["second"]["workers"][0];
            assert_eq!(w0["events"]["next_hop_unresolved"], 4);
            assert_eq!(w0["acks_sent"]["bytes"], 120);
            assert_eq!(w0["batch_sizes"][0], 3);
            assert_eq!(w0["rings"][0]["ifindex"], 2);
            assert_eq!(w0["rings"][0]["receive"], 3990);
            assert_eq!(w0["rings"][0]["kernel"]["rx_ring_full"], 6);
            assert_eq!(stats["first"]["xdp"]["to_worker"]["bytes"], 1260);
            assert_eq!(stats["second"]["xdp"]["pass"]["packets"], 1);
            assert_eq!(stats["rates"]["xdp"]["to_worker"]["pps"], 0.0);

            // --watch redraws in place until killed.
            let frames = watch_frames(path).await;
            assert!(frames.contains("1 established"), "{frames}");

            let version = ok(path, &["version"]).await;
            assert!(version.contains("daemon: xpptp-control"), "{version}");
            assert!(version.contains("datapath connected"), "{version}");

            // Another user than root: the socket's directory keeps it out.
            let mut stranger = xpptp(path, &["sessions"]);
            stranger.uid(65534).gid(65534);
            let out = run(stranger).await;
            assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("run as root or as the daemon's user"),
                "{}",
                text(&out.stderr)
            );

            // --all refuses without --yes when stdin is not a terminal.
            let out = run(xpptp(path, &["terminate", "--all"])).await;
            assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
            assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
            assert_eq!(handle.sessions().len(), 1, "nothing ended");

            // Terminate by ID really ends it.
            let told = ok(path, &["terminate", &id]).await;
            assert_eq!(told, "1 session told to end\n");
            client
                .drive_until("the call is cleared", |c| {
                    c.ctrl_events
                        .iter()
                        .any(|e| matches!(e, Event::CallCleared { .. }))
                })
                .await;
            eventually("the datapath removes the call", || {
                removed_calls(&log).contains(&call)
            })
            .await;
            eventually("no session is left", || handle.sessions().is_empty()).await;
            let out = run(xpptp(path, &["terminate", &id])).await;
            assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
            let after = json(&ok(path, &["sessions", "--json"]).await);
            assert_eq!(after, Value::Array(Vec::new()));
        });
    });

    drop(guard);
    daemon.join().expect("daemon thread");
}

#[test]
fn daemon_down_is_exit_4_with_the_fix() {
    let dir = TempDir::new("cli-down");
    let absent = dir.0.join("control.sock");
    for args in [&["sessions"][..], &["stats"], &["terminate", "1"]] {
        let out = xpptp(&absent, args).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        let message = text(&out.stderr);
        assert!(
            message.contains(&format!(
                "xpptp-control is not running (no socket at {}); start it or pass --socket",
                absent.display()
            )),
            "{message}"
        );
    }
    // version still answers for the tool.
    let out = xpptp(&absent, &["version"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("xpptp "));
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("xpptp.toml.example")
}

#[test]
fn config_check_reports_like_the_daemon() {
    let dir = TempDir::new("cli-check");
    let secrets = dir.0.join("chap-secrets");
    std::fs::write(&secrets, "alice pptpd \"Sekrit-Pass\" *\n").unwrap();
    let example = std::fs::read_to_string(example()).unwrap();
    let good = dir.0.join("xpptp.toml");
    std::fs::write(
        &good,
        example.replace("/etc/xpptp/chap-secrets", &secrets.display().to_string()),
    )
    .unwrap();
    let unused = dir.0.join("unused.sock");
    let out = xpptp(&unused, &["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(!stdout.contains("Sekrit-Pass") && !text(&out.stderr).contains("Sekrit-Pass"));

    let broken = dir.0.join("broken.toml");
    std::fs::write(
        &broken,
        "[addresses]\nlocal = [\"192.168.0.1\"]\npool = [\"10.0.0.1-10.0.0.300\"]\n",
    )
    .unwrap();
    let out = xpptp(&unused, &["config", "check"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let message = text(&out.stderr);
    assert!(
        message.contains(&format!("{}:3", broken.display())),
        "file:line: {message}"
    );
}

#[test]
fn completions_for_bash() {
    let out = xpptp(Path::new("/nonexistent"), &["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let script = text(&out.stdout);
    assert!(script.contains("complete -F _xpptp"), "{script}");
    assert!(script.contains("terminate"), "{script}");
}
