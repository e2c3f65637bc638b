//! The Prometheus endpoint against a running daemon, as root in two namespaces joined by a
//! veth pair (common::daemon: the daemon and a mock datapath in one, a client running
//! proto's client role in the other).
//!
//! `scrape_matches_the_daemon_and_the_mock_and_passes_promtool`: with `metrics_listen` set,
//! a client dials in; a scrape over TCP from the client's namespace is 200 with the
//! exposition's content type and shows the established session, the set-up, every refusal
//! reason, the datapath up and the mock datapath's counters (per-worker traffic, events,
//! UMEM frames, the kernel's ring-full count, XDP verdicts) under their families with HELP
//! and TYPE; `promtool check metrics` (Debian's prometheus package) accepts the text from
//! stdin; /other is 404 and a POST to /metrics is 405. Then the mock stops answering
//! GetWorkerStats: a scrape still comes (after the 2 s bound), with `xpptp_datapath_up 0`,
//! no datapath series and the daemon's own figures, and promtool accepts it too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use xpptp_control::daemon::SharedPool;
use xpptp_control::pool::AddressPool;

use common::daemon::{
    CLIENT_TUNNEL, Client, MockDatapath, PASSWORD, SERVER_TUNNEL, ShutdownOnDrop,
    established_calls, start_daemon_with, test_settings,
};
use common::netns::{VethPair, run_in};
use common::{PATIENCE, TempDir, eventually};

const METRICS_PORT: u16 = 9723;

/// One HTTP/1.1 request; the status code, the headers (lower-cased names) and the body.
fn http(address: SocketAddr, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect_timeout(&address, PATIENCE).expect("metrics port");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// `promtool check metrics` on `text`; panics with its output unless it accepts it.
fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => panic!(
            "cannot run promtool ({error}): apt-get install prometheus (promtool), or run \
             scripts/setup.sh"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused the scrape:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn scrape_matches_the_daemon_and_the_mock_and_passes_promtool() {
    let pair = VethPair::create("ctlm", 1);
    let dir = TempDir::new("ctld-metrics");
    let socket = dir.0.join("datapath.sock");
    let pool = Arc::new(SharedPool::new(
        AddressPool::new(&[CLIENT_TUNNEL], &[SERVER_TUNNEL], []).unwrap(),
    ));
    let mock = MockDatapath::default();
    let log = Arc::clone(&mock.log);
    let stall = Arc::clone(&mock.stall_stats);
    let metrics = SocketAddr::from((pair.a.addr, METRICS_PORT));
    let mut settings = test_settings(pair.a.addr, &socket, None);
    settings.metrics_listen = Some(metrics);
    let (handle, daemon) = start_daemon_with(&pair.a.netns, settings, Arc::clone(&pool), mock);
    let guard = ShutdownOnDrop(handle.clone());
    let server = pair.a.addr;

    let (scrape, other, post, stalled) = run_in(&pair.b.netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut client = Client::dial(server, PASSWORD).await;
            client
                .drive_until("established", |c| c.established().is_some())
                .await;
            eventually("the datapath gets the call", || {
                established_calls(&log).len() == 1
            })
            .await;
            tokio::task::spawn_blocking(move || {
                let answered = (
                    http(metrics, "GET", "/metrics"),
                    http(metrics, "GET", "/other"),
                    http(metrics, "POST", "/metrics"),
                );
                stall.store(true, Ordering::Relaxed);
                let stalled = http(metrics, "GET", "/metrics");
                (answered.0, answered.1, answered.2, stalled)
            })
            .await
            .unwrap()
        })
    });

    let (status, headers, text) = scrape;
    assert_eq!(status, 200, "{text}");
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for sample in [
        "xpptp_build_info{version=\"",
        "xpptp_sessions{state=\"established\"} 1\n",
        "xpptp_sessions{state=\"starting\"} 0\n",
        "xpptp_session_setups_total 1\n",
        "xpptp_auth_failures_total 0\n",
        "xpptp_refusals_total{reason=\"max_sessions\"} 0\n",
        "xpptp_refusals_total{reason=\"shutting_down\"} 0\n",
        "xpptp_datapath_up 1\n",
        "xpptp_worker_info{worker=\"0\",cpu=\"0\"} 1\n",
        "xpptp_worker_batches_total{worker=\"0\"} 5\n",
        "xpptp_worker_batch_packets_total{worker=\"0\"} 9\n",
        "xpptp_worker_punted_frames_total{worker=\"0\"} 1\n",
        "xpptp_worker_received_packets_total{worker=\"0\",direction=\"upstream\"} 0\n",
        "xpptp_worker_generated_bytes_total{worker=\"0\",kind=\"gre_ack\"} 120\n",
        "xpptp_worker_events_total{worker=\"0\",reason=\"next_hop_unresolved\"} 4\n",
        "xpptp_worker_drops_total{worker=\"0\",reason=\"no_route\"} 3\n",
        "xpptp_worker_umem_frames{worker=\"0\",ifindex=\"2\",state=\"receive\"} 3990\n",
        "xpptp_worker_umem_frames{worker=\"0\",ifindex=\"2\",state=\"free\"} 96\n",
        "xpptp_worker_xsk_kernel_events_total{worker=\"0\",ifindex=\"2\",reason=\"rx_ring_full\"} 6\n",
        "xpptp_xdp_packets_total{verdict=\"to_worker\"} 9\n",
        "xpptp_xdp_bytes_total{verdict=\"pass\"} 60\n",
    ] {
        assert!(text.contains(sample), "{sample:?} missing from\n{text}");
    }
    for family in [
        "xpptp_sessions gauge",
        "xpptp_control_gre_packets_total counter",
        "xpptp_worker_drops_total counter",
        "xpptp_start_time_seconds gauge",
        "xpptp_uptime_seconds gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "{family} missing from\n{text}"
        );
    }
    assert_eq!(
        text.lines().filter(|l| l.contains("state=\"")).count(),
        3 + 3,
        "three session states and three UMEM frame states, no per-session series"
    );
    promtool_check(&text);

    let (status, _, body) = other;
    assert_eq!(status, 404, "{body}");
    let (status, headers, body) = post;
    assert_eq!(status, 405, "{body}");
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "allow" && v == "GET, HEAD"),
        "{headers:?}"
    );

    // A datapath that does not answer: the scrape still comes, with the datapath down and
    // its series absent, and the daemon's own figures.
    let (status, _, text) = stalled;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("xpptp_datapath_up 0\n"), "{text}");
    assert!(text.contains("xpptp_session_setups_total 1\n"), "{text}");
    assert!(
        !text.contains("xpptp_worker") && !text.contains("xpptp_xdp"),
        "{text}"
    );
    promtool_check(&text);

    drop(guard);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !daemon.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the daemon stops");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.join().unwrap();
}
