//! The load generator runs end to end with a handful of messages: certificates, configuration, the gateway
//! process, the edge, the sink, the report and the clean stop. Not a measurement (nothing here is timed).
//!
//! The `sixgate` binary comes from `$SIXGATE_BIN` when set, else from `cargo build -p sixgate` (a no-op
//! when it is up to date) in the same target directory and profile family as this test.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

/// Builds `sixgate` and returns the path of its executable, as cargo reports it.
fn gateway_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SIXGATE_BIN") {
        return PathBuf::from(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "-p", "sixgate", "--message-format=json"])
        .arg("--manifest-path")
        .arg(&workspace);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let output = build.output().expect("running cargo build -p sixgate");
    assert!(
        output.status.success(),
        "cargo build -p sixgate failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One JSON object per line; the binary's artifact line carries `"executable":"<path>"`.
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|line| {
            line.contains("\"reason\":\"compiler-artifact\"")
                && line.contains("\"name\":\"sixgate\"")
                && line.contains("\"executable\":\"")
        })
        .expect("cargo reported no sixgate executable");
    let start = line.find("\"executable\":\"").unwrap() + "\"executable\":\"".len();
    let end = start + line[start..].find('"').unwrap();
    PathBuf::from(&line[start..end])
}

#[test]
fn twenty_messages_end_to_end() {
    let gateway = gateway_binary();
    let output = Command::new(env!("CARGO_BIN_EXE_sixgate-loadgen"))
        .args(["--messages", "20", "--concurrency", "20", "--warmup", "2"])
        .arg("--gateway-bin")
        .arg(&gateway)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sixgate-loadgen failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("SIP 2xx:      20, errors: 0"), "{stdout}");
    assert!(
        stdout.contains("(20 messages arrived, 20 distinct, 0 duplicates)"),
        "{stdout}"
    );
    assert!(stdout.contains("gateway CPU:"), "{stdout}");
    assert!(stdout.contains("gateway RSS:"), "{stdout}");
    assert!(
        stdout.contains("gateway stopped with SIGTERM: exit status: 0"),
        "{stdout}"
    );
    // The working directory is gone.
    let dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("directory:"))
        .unwrap()
        .trim();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was not removed");
}
