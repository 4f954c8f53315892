//! A Prosody 0.12 instance on its own loopback address, run as the `prosody` user in the foreground,
//! with its own configuration, data directory, pid file and log.
//!
//! DNS goes through libunbound to the test DNS server only (`unbound = { resolvconf = false; forward =
//! …; hoststxt = … }`, a global option).

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::dns::Dns;
use crate::pki::Leaf;
use crate::process::{self, Proc};
use crate::run::{RunDir, users};
use crate::{C2S_PORT, S2S_PORT};

/// How Prosody does TLS.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "built once per test")]
pub enum Tls {
    /// The shipped policy: `s2s_require_encryption = true`, `s2s_secure_auth = true`,
    /// `c2s_require_encryption = true`, trusting `ca_file`.
    Secure {
        /// The CA to trust (`ssl = { cafile = … }`).
        ca_file: PathBuf,
        /// The certificate presented on c2s (and on s2s unless `s2s_cert` is set).
        cert: Leaf,
        /// A different certificate to present on s2s only (e.g. one for a wrong name).
        s2s_cert: Option<Leaf>,
    },
    /// No certificates and no `mod_tls`: plaintext c2s and s2s, `s2s_require_encryption = false`,
    /// `s2s_secure_auth = false`.
    Plaintext,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The VirtualHost.
    pub domain: String,
    /// The loopback address for c2s (5222) and s2s (5269).
    pub ip: Ipv4Addr,
    /// TLS policy and certificates.
    pub tls: Tls,
    /// Domains exempt from `s2s_secure_auth` (`s2s_insecure_domains`).
    pub insecure_domains: Vec<String>,
    /// Log at `debug` level (shows s2s negotiation and authentication details).
    pub debug_log: bool,
    /// Users to register before start: (localpart, password).
    pub users: Vec<(String, String)>,
}

impl Options {
    /// The secure default: the shipped policy, one certificate for c2s and s2s, debug log.
    pub fn secure(domain: &str, ip: Ipv4Addr, ca_file: &Path, cert: Leaf) -> Self {
        Self {
            domain: domain.to_owned(),
            ip,
            tls: Tls::Secure {
                ca_file: ca_file.to_owned(),
                cert,
                s2s_cert: None,
            },
            insecure_domains: Vec::new(),
            debug_log: true,
            users: Vec::new(),
        }
    }

    /// Adds a user to register.
    pub fn user(mut self, localpart: &str, password: &str) -> Self {
        self.users.push((localpart.to_owned(), password.to_owned()));
        self
    }
}

/// A running Prosody.
#[derive(Debug)]
pub struct Prosody {
    proc: Proc,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    domain: String,
    ip: Ipv4Addr,
}

impl Prosody {
    /// Writes the configuration, registers the users, starts Prosody and waits until c2s and s2s
    /// listen.
    pub fn start(run: &RunDir, dns: &Dns, opts: &Options) -> Result<Self> {
        let user = users::lookup("prosody")?;
        let dir = run.subdir(&format!("prosody-{}", opts.domain))?;
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let no_certs = dir.join("no-certs");
        fs::create_dir_all(&no_certs)?;
        let config = dir.join("prosody.cfg.lua");
        let log = dir.join("prosody.log");
        let pid_file = dir.join("prosody.pid");
        let c2s = SocketAddr::from((opts.ip, C2S_PORT));
        let s2s = SocketAddr::from((opts.ip, S2S_PORT));
        process::ensure_free(c2s)?;
        process::ensure_free(s2s)?;

        fs::write(&config, config_text(opts, &dir, dns)?)?;
        users::chown_recursive(&dir, user)?;
        run.register_log(&format!("prosody {}", opts.domain), &log);

        for (localpart, password) in &opts.users {
            register(&config, user, localpart, &opts.domain, password)?;
        }
        let mut cmd = Command::new("/usr/bin/prosody");
        cmd.arg("--config")
            .arg(&config)
            .arg("-F")
            .current_dir(&dir)
            .uid(user.uid)
            .gid(user.gid);
        let stdout = dir.join("stdout.log");
        let proc = Proc::spawn(&format!("prosody {}", opts.domain), cmd, &stdout)?;
        run.register_log(&format!("prosody {} stdout", opts.domain), &stdout);
        let mut this = Self {
            proc,
            dir,
            config,
            log,
            domain: opts.domain.clone(),
            ip: opts.ip,
        };
        process::wait_for_listen(c2s, Some(&mut this.proc), Duration::from_secs(20))
            .context("Prosody c2s")?;
        process::wait_for_listen(s2s, Some(&mut this.proc), Duration::from_secs(20))
            .context("Prosody s2s")?;
        // mod_posix writes the pid file: it must name the process we started.
        let pid = process::read_pid_file(&pid_file, Duration::from_secs(10))?;
        anyhow::ensure!(
            pid == this.proc.pid(),
            "Prosody's pid file says {pid}, but we started {}",
            this.proc.pid()
        );
        process::check_loopback_only(&[this.proc.pid()])?;
        Ok(this)
    }

    /// Registers another user (works while Prosody runs).
    pub fn register(&self, localpart: &str, password: &str) -> Result<()> {
        register(
            &self.config,
            users::lookup("prosody")?,
            localpart,
            &self.domain,
            password,
        )
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The instance directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The c2s address.
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, C2S_PORT))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops Prosody now (it closes its streams; the guard would do the same when dropped).
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

fn register(
    config: &Path,
    user: users::User,
    localpart: &str,
    domain: &str,
    password: &str,
) -> Result<()> {
    let mut cmd = Command::new("/usr/bin/prosodyctl");
    cmd.arg("--config")
        .arg(config)
        .args(["register", localpart, domain, password])
        .uid(user.uid)
        .gid(user.gid);
    if let Some(dir) = config.parent() {
        cmd.current_dir(dir);
    }
    process::run_checked(
        &format!("prosodyctl register {localpart}@{domain}"),
        &mut cmd,
        Duration::from_secs(30),
    )?;
    Ok(())
}

fn lua_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn lua_path(p: &Path) -> String {
    lua_str(&p.display().to_string())
}

fn config_text(opts: &Options, dir: &Path, dns: &Dns) -> Result<String> {
    let mut c = String::new();
    let secure = matches!(opts.tls, Tls::Secure { .. });
    writeln!(c, "-- Generated by the sixgate interop harness.")?;
    writeln!(c, "pidfile = {}", lua_path(&dir.join("prosody.pid")))?;
    writeln!(c, "data_path = {}", lua_path(&dir.join("data")))?;
    writeln!(c, "admin_socket = {}", lua_path(&dir.join("prosody.sock")))?;
    writeln!(c, "daemonize = false")?;
    writeln!(
        c,
        "log = {{ {{ levels = {{ min = {} }}, to = \"file\", filename = {} }} }}",
        lua_str(if opts.debug_log { "debug" } else { "info" }),
        lua_path(&dir.join("prosody.log"))
    )?;
    writeln!(c, "interfaces = {{ {} }}", lua_str(&opts.ip.to_string()))?;
    writeln!(
        c,
        "local_interfaces = {{ {} }}",
        lua_str(&opts.ip.to_string())
    )?;
    writeln!(
        c,
        "c2s_ports = {{ {C2S_PORT} }}; s2s_ports = {{ {S2S_PORT} }}"
    )?;
    writeln!(
        c,
        "c2s_direct_tls_ports = {{}}; s2s_direct_tls_ports = {{}}"
    )?;
    writeln!(c, "use_ipv6 = false")?;
    let mut modules = vec!["roster", "saslauth", "dialback", "disco", "ping", "posix"];
    if secure {
        modules.push("tls");
    }
    let modules: Vec<String> = modules.iter().map(|m| lua_str(m)).collect();
    writeln!(c, "modules_enabled = {{ {} }}", modules.join("; "))?;
    writeln!(c, "authentication = \"internal_hashed\"")?;
    writeln!(c, "storage = \"internal\"")?;
    // Test names come from the test DNS server only; nothing is forwarded elsewhere.
    writeln!(
        c,
        "unbound = {{ resolvconf = false; hoststxt = {}; forward = {} }}",
        lua_path(dns.hosts_file()),
        lua_str(&dns.ip().to_string())
    )?;
    // Prosody indexes a certificate directory by default; point it at an empty one.
    writeln!(c, "certificates = {}", lua_path(&dir.join("no-certs")))?;
    if !opts.insecure_domains.is_empty() {
        let domains: Vec<String> = opts.insecure_domains.iter().map(|d| lua_str(d)).collect();
        writeln!(c, "s2s_insecure_domains = {{ {} }}", domains.join("; "))?;
    }
    match &opts.tls {
        Tls::Secure {
            ca_file,
            cert,
            s2s_cert,
        } => {
            writeln!(c, "s2s_require_encryption = true")?;
            writeln!(c, "s2s_secure_auth = true")?;
            writeln!(c, "c2s_require_encryption = true")?;
            writeln!(c, "ssl = {{ cafile = {} }}", lua_path(ca_file))?;
            writeln!(c, "VirtualHost {}", lua_str(&opts.domain))?;
            writeln!(
                c,
                "  ssl = {{ certificate = {}; key = {} }}",
                lua_path(&cert.cert),
                lua_path(&cert.key)
            )?;
            if let Some(s2s) = s2s_cert {
                writeln!(
                    c,
                    "  s2s_ssl = {{ certificate = {}; key = {} }}",
                    lua_path(&s2s.cert),
                    lua_path(&s2s.key)
                )?;
            }
        }
        Tls::Plaintext => {
            writeln!(c, "s2s_require_encryption = false")?;
            writeln!(c, "s2s_secure_auth = false")?;
            writeln!(c, "c2s_require_encryption = false")?;
            writeln!(c, "allow_unencrypted_plain_auth = true")?;
            writeln!(c, "VirtualHost {}", lua_str(&opts.domain))?;
        }
    }
    Ok(c)
}
