//! `xpptp-control --check`: exit 0 and a summary for a usable configuration, 1 and a
//! `file:line: what; fix` message otherwise; warnings on stderr; never a secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xpptp-control"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("xpptp-check-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("xpptp.toml.example")
        .display()
        .to_string()
}

#[test]
fn the_example_configuration_checks_out() {
    let dir = TempDir::new("example");
    let secrets = dir.file(
        "chap-secrets",
        "alice pptpd \"Sekrit-Pass\" *\nbob pptpd x 10.8.0.20\n",
    );
    let example = std::fs::read_to_string(example()).unwrap();
    let config = dir.file(
        "xpptp.toml",
        &example.replace("/etc/xpptp/chap-secrets", &secrets),
    );
    let out = run(&["--check", "--config", &config]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for needle in [
        "pool              497 addresses (10.8.0.10 .. 10.8.1.255), 1 reserved as fixed addresses",
        "MPPE              required, 128-bit, stateless only",
        "secrets           ",
        "(2 users)",
        "metrics           off",
        "configuration OK (0 warnings)",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from\n{stdout}");
    }
    assert!(!stdout.contains("Sekrit-Pass"));
}

#[test]
fn a_poptop_install_checks_out_with_warnings() {
    let dir = TempDir::new("poptop");
    let options = dir.file(
        "pptpd-options",
        "name pptpd\nrequire-mschap-v2\nrequire-mppe-128\nlock\nms-dns 10.0.0.53\n",
    );
    let conf = dir.file(
        "pptpd.conf",
        &format!("option {options}\nlocalip 192.168.0.1\nremoteip 192.168.0.234-238,192.168.0.245\nlogwtmp\n"),
    );
    let secrets = dir.file("chap-secrets", "# users\nalice pptpd \"Sekrit-Pass\" *\n");
    let out = run(&["--check", "--pptpd-conf", &conf, "--chap-secrets", &secrets]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("metrics           off\n"), "{stdout}");
    // metrics: the flag turns them on where pptpd.conf has no place for them.
    let with_metrics = run(&[
        "--check",
        "--pptpd-conf",
        &conf,
        "--chap-secrets",
        &secrets,
        "--metrics-listen",
        "127.0.0.1:9723",
    ]);
    assert!(
        text(&with_metrics.stdout).contains("metrics           127.0.0.1:9723\n"),
        "{}",
        text(&with_metrics.stdout)
    );
    assert!(
        stdout.contains("pool              6 addresses (192.168.0.234 .. 192.168.0.245)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("DNS               10.0.0.53 10.0.0.53"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration OK (2 warnings)"), "{stdout}");
    assert!(
        stderr.contains(&format!("warning: {options}:4: pppd option `lock` ignored")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: {conf}:4: pptpd keyword `logwtmp` ignored"
        )),
        "{stderr}"
    );
    assert!(!stdout.contains("Sekrit-Pass") && !stderr.contains("Sekrit-Pass"));
}

#[test]
fn an_invalid_configuration_fails_with_location_and_fix() {
    let dir = TempDir::new("invalid");
    let config = dir.file(
        "xpptp.toml",
        "[addresses]\nlocal = [\"10.0.0.1\"]\npool = [\"10.0.0.2-9\"]\n[ppp]\nmppe = \"always\"\n",
    );
    let out = run(&["--check", "--config", &config]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {config}:5: unknown variant `always`")),
        "{stderr}"
    );
    assert!(
        stderr.contains("; use one of the values listed"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_fails() {
    let out = run(&["--check", "--config", "/nonexistent/xpptp.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/xpptp.toml: cannot read it"));
}

#[test]
fn help_names_every_flag_and_bad_invocations_fail() {
    let help = text(&run(&["--help"]).stdout);
    for flag in [
        "--config",
        "--pptpd-conf",
        "--chap-secrets",
        "--check",
        "--datapath-socket",
        "--metrics-listen",
        "--log-format",
        "SIGHUP",
        "RUST_LOG",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}: {help}");
    }
    let out = run(&["--check", "--config", "a", "--pptpd-conf", "b"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--config and --pptpd-conf conflict"
    );
    let out = run(&["--log-format", "xml", "--check"]);
    assert_eq!(out.status.code(), Some(2), "unknown log format");
    // Without --check the daemon starts only from a configuration that loads.
    let out = run(&["--config", "/nonexistent/xpptp.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/xpptp.toml"),
        "{}",
        text(&out.stderr)
    );
}
