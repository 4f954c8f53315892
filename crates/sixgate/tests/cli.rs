//! The `sixgate` binary as an operator runs it: `--check-config`, SIGHUP reload, SIGTERM shutdown.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_sixgate");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sixgate-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const VALID: &str = r#"
[xmpp]
listen = ["127.0.0.1:0"]
[dns]
nameservers = ["127.0.0.1:9"]
[tls]
trust_system_roots = false
[[local_domains]]
domain = "gw.example"
delivery = "echo"
"#;

#[test]
fn check_config_reports_every_error_and_exits_78() {
    let dir = scratch("check");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, VALID).unwrap();
    let ok = Command::new(BINARY)
        .args(["--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration is valid"));

    let broken = VALID
        .replace("127.0.0.1:0", "not-an-address")
        .replace("[dns]", "[dns]\ncolour = \"blue\"");
    std::fs::write(&path, broken).unwrap();
    let bad = Command::new(BINARY)
        .args(["--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("2 configuration error(s)"), "{stderr}");
    assert!(stderr.contains("xmpp.listen[0]"), "{stderr}");
    assert!(stderr.contains("dns.colour"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon's output, line by line, from a reader thread.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(BINARY)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Self { child, lines }
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the daemon never printed {needle:?}");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_routes_and_sigterm_stops_cleanly() {
    let dir = scratch("signals");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, VALID).unwrap();
    let mut daemon = Daemon::start(&path);
    daemon.wait_for("gateway started");

    // A valid route change is applied.
    let with_partner =
        format!("{VALID}\n[[remote_domains]]\ndomain = \"partner.example\"\nroute = \"deny\"\n");
    std::fs::write(&path, &with_partner).unwrap();
    daemon.signal("HUP");
    daemon.wait_for("route table reloaded");

    // A broken file is refused with its errors; the daemon keeps running.
    std::fs::write(
        &path,
        with_partner.replace("route = \"deny\"", "route = \"sideways\""),
    )
    .unwrap();
    daemon.signal("HUP");
    let refused = daemon.wait_for("reload refused");
    assert!(refused.contains("remote_domains[0].route"), "{refused}");

    daemon.signal("TERM");
    daemon.wait_for("shutting down");
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
