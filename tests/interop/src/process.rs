//! Processes started by the harness: spawn, wait for a listening port, and stop by PID.
//!
//! Every process is stopped through its own PID (SIGTERM, then SIGKILL after 10 s), never by name. The
//! guard remembers the process's start time from `/proc/<pid>/stat`, so a recycled PID is never signalled.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running process that is stopped when the guard is dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    pid: u32,
    start_time: Option<u64>,
    child: Option<Child>,
    stopped: bool,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout and stderr appended to `output`.
    pub fn spawn(name: &str, mut cmd: Command, output: &Path) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .with_context(|| format!("opening {}", output.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let pid = child.id();
        Ok(Self {
            name: name.to_owned(),
            pid,
            start_time: proc_start_time(pid),
            child: Some(child),
            stopped: false,
        })
    }

    /// Takes charge of a daemon that writes its PID to `pid_file`: waits until the file holds the PID
    /// of a live process.
    pub fn from_pid_file(name: &str, pid_file: &Path, timeout: Duration) -> Result<Self> {
        let pid = read_pid_file(pid_file, timeout).with_context(|| name.to_owned())?;
        Ok(Self {
            name: name.to_owned(),
            pid,
            start_time: proc_start_time(pid),
            child: None,
            stopped: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the process still runs (a zombie counts as exited).
    pub fn is_alive(&mut self) -> bool {
        if self.stopped {
            return false;
        }
        if let Some(child) = &mut self.child {
            return matches!(child.try_wait(), Ok(None));
        }
        proc_start_time(self.pid).is_some() && proc_start_time(self.pid) == self.start_time
    }

    /// Stops the process: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        if self.is_alive() {
            signal(self.pid, "TERM");
            let deadline = Instant::now() + STOP_GRACE;
            while self.is_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.is_alive() {
                eprintln!(
                    "{} (pid {}) did not stop within {STOP_GRACE:?}: SIGKILL",
                    self.name, self.pid
                );
                signal(self.pid, "KILL");
                let deadline = Instant::now() + Duration::from_secs(5);
                while self.is_alive() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if let Some(child) = &mut self.child {
            let _ = child.try_wait();
        }
        self.stopped = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("/usr/bin/kill")
        .args(["-s", sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        eprintln!("kill -s {sig} {pid}: {e}");
    }
}

/// Waits until `pid_file` holds the PID of a live process and returns it.
pub fn read_pid_file(pid_file: &Path, timeout: Duration) -> Result<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(pid_file)
            && let Ok(pid) = text.trim().parse::<u32>()
            && proc_start_time(pid).is_some()
        {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            bail!("no live PID in {} after {timeout:?}", pid_file.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The start time (in clock ticks since boot) of a live, non-zombie process.
fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); starttime is field 22.
    if matches!(fields.first().copied(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Runs a command to completion; fails with its output if it does not exit successfully in time.
pub fn run_checked(what: &str, cmd: &mut Command, timeout: Duration) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: spawning {cmd:?}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let pid = child.id();
            signal(pid, "KILL");
            let _ = child.wait();
            bail!("{what}: {cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("{what}: {cmd:?} failed ({}): {text}", output.status);
    }
    Ok(text)
}

/// One listening socket, from `ss -Hltnup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub proto: String,
    /// Local address as `ss` prints it, e.g. `127.0.0.11:5222`, `0.0.0.0:4369`, `[::]:53`.
    pub local: String,
    /// The owning processes' ids.
    pub pids: Vec<u32>,
    /// The process column as `ss` prints it.
    pub process: String,
}

impl Listener {
    /// Whether the local address is in 127.0.0.0/8 or `::1`.
    pub fn is_loopback(&self) -> bool {
        self.local.starts_with("127.") || self.local.starts_with("[::1]")
    }

    /// The port number.
    pub fn port(&self) -> Option<u16> {
        self.local.rsplit(':').next()?.parse().ok()
    }
}

/// All listening TCP sockets and bound UDP sockets on the machine.
pub fn listeners() -> Result<Vec<Listener>> {
    let out = run_checked(
        "ss",
        Command::new("/usr/bin/ss").arg("-Hltnup"),
        Duration::from_secs(10),
    )?;
    let mut result = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            continue;
        }
        let process = fields.get(6..).map(|f| f.join(" ")).unwrap_or_default();
        let pids = process
            .split("pid=")
            .skip(1)
            .filter_map(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse().ok())
            })
            .collect();
        result.push(Listener {
            proto: fields[0].to_owned(),
            local: fields[4].to_owned(),
            pids,
            process,
        });
    }
    Ok(result)
}

/// Fails if a process in `pids` listens on anything but a loopback address. Returns what they listen
/// on, for the test output.
pub fn check_loopback_only(pids: &[u32]) -> Result<Vec<Listener>> {
    let ours: Vec<Listener> = listeners()?
        .into_iter()
        .filter(|l| l.pids.iter().any(|p| pids.contains(p)))
        .collect();
    let bad: Vec<&Listener> = ours.iter().filter(|l| !l.is_loopback()).collect();
    if !bad.is_empty() {
        bail!("processes of the test listen on non-loopback addresses: {bad:?}");
    }
    Ok(ours)
}

/// Whether a TCP socket listens on exactly `addr`.
pub fn is_listening(addr: SocketAddr) -> Result<bool> {
    let want = addr.to_string();
    Ok(listeners()?
        .iter()
        .any(|l| l.proto == "tcp" && l.local == want))
}

/// Waits until a TCP socket listens on `addr`; fails early if `proc` exits.
pub fn wait_for_listen(addr: SocketAddr, proc: Option<&mut Proc>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut proc = proc;
    loop {
        if is_listening(addr)? {
            return Ok(());
        }
        if let Some(p) = proc.as_deref_mut()
            && !p.is_alive()
        {
            return Err(anyhow!(
                "{} (pid {}) exited before listening on {addr}",
                p.name(),
                p.pid()
            ));
        }
        if Instant::now() >= deadline {
            bail!("nothing listens on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fails if something already listens on `addr` (a leftover from an earlier run, or another test).
pub fn ensure_free(addr: SocketAddr) -> Result<()> {
    let want = addr.to_string();
    if let Some(l) = listeners()?.into_iter().find(|l| l.local == want) {
        bail!("{addr} is already in use: {l:?}");
    }
    Ok(())
}
