//! CPU time and memory of a process, from `/proc`.

use std::process::Command;

use anyhow::{Context as _, bail};

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`: `getconf CLK_TCK`, else 100 (the value
/// on every Linux architecture in practice; `USER_HZ` is fixed by the kernel ABI).
pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// `utime + stime` of `pid` (`"self"` for this process), in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("{path}: unexpected format");
    };
    // `rest` starts with field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|text| text.parse().ok())
            .with_context(|| format!("{path}: no field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
pub(crate) fn status_kib(pid: &str, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path}: no {key}"))
}
