//! Per-test run directories, serialisation of interop tests, and system users.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result, bail};

use crate::logs;

/// Environment variable that keeps the run directory after a test (for debugging).
pub const KEEP_ENV: &str = "SIXGATE_KEEP_INTEROP";

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// How many lines of each log a failure report shows.
const REPORT_LINES: usize = 80;
/// Lines with which Prosody, ejabberd and dnsmasq log the start of their shutdown.
const SHUTDOWN_MARKERS: [&str; 3] = [
    "Received SIGTERM",
    "SIGTERM received",
    "exiting on receipt of SIGTERM",
];
static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Holds the interop lock: only one interop test runs at a time, because all of them use the same
/// loopback addresses and ports.
#[derive(Debug)]
pub struct Serial {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Waits until no other interop test runs, in this process (a mutex) or in another one (an exclusive
/// lock on `/tmp/sixgate-interop.lock`).
pub fn serial() -> Serial {
    // A test that panicked while holding the mutex has cleaned up through its guards already.
    let guard = IN_PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = Path::new("/tmp/sixgate-interop.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    Serial {
        _file: file,
        _guard: guard,
    }
}

/// Checks what the interop tests need: root, and the peers' programs.
pub fn check_prerequisites() -> Result<()> {
    let uid = users::current_uid()?;
    if uid != 0 {
        bail!(
            "the interop tests must run as root (port 53, Prosody/ejabberd users, mount namespaces); uid is {uid}"
        );
    }
    for program in [
        "/usr/bin/prosody",
        "/usr/bin/prosodyctl",
        "/usr/sbin/ejabberdctl",
        "/usr/sbin/dnsmasq",
        "/usr/bin/unshare",
        "/usr/bin/ss",
    ] {
        if !Path::new(program).exists() {
            bail!(
                "{program} is missing: install prosody, lua-unbound, lua-sec, lua-event, ejabberd, dnsmasq (see tests/interop/README.md)"
            );
        }
    }
    Ok(())
}

/// A log file that is worth showing when a test fails.
#[derive(Debug, Clone)]
struct LogEntry {
    name: String,
    path: PathBuf,
}

/// A directory for one test run: `/tmp/sixgate-interop-<pid>-<n>-<name>/`.
///
/// World-readable (the peers run as their own users). Removed on drop unless [`KEEP_ENV`] is set.
/// If the test did not call [`RunDir::success`] (it panicked or returned an error), the drop prints
/// the registered logs' paths and their last lines.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    name: String,
    logs: Mutex<Vec<LogEntry>>,
    succeeded: bool,
}

impl RunDir {
    /// Creates a fresh run directory for the test `name`.
    pub fn new(name: &str) -> Result<Self> {
        let n = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!(
            "/tmp/sixgate-interop-{}-{n}-{name}",
            std::process::id()
        ));
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            path,
            name: name.to_owned(),
            logs: Mutex::new(Vec::new()),
            succeeded: false,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (if needed) a world-readable sub-directory and returns its path.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }

    /// Registers a log file to show when the test fails.
    pub fn register_log(&self, name: &str, path: &Path) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.push(LogEntry {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }

    /// Marks the test as passed: the drop then prints no log tails.
    pub fn success(&mut self) {
        self.succeeded = true;
    }

    fn print_failure_report(&self) {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!(
            "\n==== interop test '{}' failed; run directory {} ====",
            self.name,
            self.path.display()
        );
        for entry in logs.iter() {
            eprintln!(
                "---- {} log: {} (last {REPORT_LINES} lines before shutdown) ----",
                entry.name,
                entry.path.display()
            );
            match logs::read_lossy(&entry.path) {
                Ok(text) => {
                    let lines: Vec<&str> = text.lines().collect();
                    // The peers are stopped before this report; their shutdown lines are noise.
                    let end = lines
                        .iter()
                        .position(|l| SHUTDOWN_MARKERS.iter().any(|m| l.contains(m)))
                        .unwrap_or(lines.len());
                    let start = end.saturating_sub(REPORT_LINES);
                    for line in &lines[start..end] {
                        eprintln!("  {line}");
                    }
                    if end < lines.len() {
                        eprintln!("  ({} lines of shutdown omitted)", lines.len() - end);
                    }
                }
                Err(e) => eprintln!("  (cannot read: {e})"),
            }
        }
        if std::env::var_os(KEEP_ENV).is_none() {
            eprintln!("(set {KEEP_ENV}=1 to keep the run directory)");
        }
        eprintln!("==== end of report for '{}' ====\n", self.name);
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.succeeded || std::thread::panicking() {
            self.print_failure_report();
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!("{KEEP_ENV} is set: keeping {}", self.path.display());
        } else if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Reading `/etc/passwd` for the peers' system users (read only).
pub mod users {
    use std::fs;
    use std::path::Path;

    use anyhow::{Context, Result, anyhow};

    /// A system user's ids.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct User {
        /// User id.
        pub uid: u32,
        /// Primary group id.
        pub gid: u32,
    }

    /// Looks up `name` in `/etc/passwd`.
    pub fn lookup(name: &str) -> Result<User> {
        let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4 && fields[0] == name {
                return Ok(User {
                    uid: fields[2].parse().context("uid")?,
                    gid: fields[3].parse().context("gid")?,
                });
            }
        }
        Err(anyhow!(
            "no user {name} in /etc/passwd: is the package installed?"
        ))
    }

    /// The uid of this process (from `/proc/self/status`).
    pub fn current_uid() -> Result<u32> {
        let status = fs::read_to_string("/proc/self/status")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|uid| uid.parse().ok())
            .ok_or_else(|| anyhow!("no Uid in /proc/self/status"))
    }

    /// Gives `path` (not recursively) to `user`.
    pub fn chown(path: &Path, user: User) -> Result<()> {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("chown {}", path.display()))
    }

    /// Gives `path` and everything below it to `user`.
    pub fn chown_recursive(path: &Path, user: User) -> Result<()> {
        chown(path, user)?;
        if path.is_dir() {
            for entry in fs::read_dir(path)? {
                chown_recursive(&entry?.path(), user)?;
            }
        }
        Ok(())
    }
}
