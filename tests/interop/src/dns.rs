//! The test DNS server: dnsmasq on a loopback address, answering the test names itself and forwarding
//! nothing (`no-resolv`, no `server=` lines, `no-hosts`), with a query log.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::logs;
use crate::process::{self, Proc};
use crate::run::RunDir;

/// An SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// The owner name, e.g. `_xmpp-server._tcp.gw.example`.
    pub name: String,
    /// The target host name.
    pub target: String,
    /// The port.
    pub port: u16,
    /// Priority (lower first).
    pub priority: u16,
    /// Weight.
    pub weight: u16,
}

/// The records the test DNS server answers.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// A records.
    pub a: Vec<(String, Ipv4Addr)>,
    /// SRV records.
    pub srv: Vec<Srv>,
}

impl Records {
    /// An XMPP server domain: an A record for `domain` and `_xmpp-server._tcp.<domain>` SRV pointing
    /// to `domain` on `port`.
    pub fn xmpp_server(mut self, domain: &str, ip: Ipv4Addr, port: u16) -> Self {
        self.a.push((domain.to_owned(), ip));
        self.srv.push(Srv {
            name: format!("_xmpp-server._tcp.{domain}"),
            target: domain.to_owned(),
            port,
            priority: 0,
            weight: 5,
        });
        self
    }
}

/// A running dnsmasq.
#[derive(Debug)]
pub struct Dns {
    proc: Proc,
    ip: Ipv4Addr,
    log: PathBuf,
    hosts: PathBuf,
    resolv_conf: PathBuf,
}

impl Dns {
    /// Starts dnsmasq on `ip:53` serving `records` (port 53 needs root).
    pub fn start(run: &RunDir, ip: Ipv4Addr, records: &Records) -> Result<Self> {
        let dir = run.subdir("dns")?;
        let conf_path = dir.join("dnsmasq.conf");
        let log = dir.join("dnsmasq.log");
        let pid_file = dir.join("dnsmasq.pid");
        let addr = SocketAddr::from((ip, 53));
        process::ensure_free(addr)?;

        let mut conf = String::new();
        writeln!(
            conf,
            "# sixgate interop test DNS: loopback only, forwards nothing"
        )?;
        writeln!(conf, "port=53")?;
        writeln!(conf, "listen-address={ip}")?;
        writeln!(conf, "bind-interfaces")?;
        writeln!(conf, "no-resolv")?;
        writeln!(conf, "no-poll")?;
        writeln!(conf, "no-hosts")?;
        writeln!(conf, "no-negcache")?;
        writeln!(conf, "bogus-priv")?;
        writeln!(conf, "local=/example/")?;
        writeln!(conf, "user=root")?;
        writeln!(conf, "log-queries")?;
        writeln!(conf, "log-facility={}", log.display())?;
        for (name, a) in &records.a {
            writeln!(conf, "host-record={name},{a}")?;
        }
        for srv in &records.srv {
            writeln!(
                conf,
                "srv-host={},{},{},{},{}",
                srv.name, srv.target, srv.port, srv.priority, srv.weight
            )?;
        }
        fs::write(&conf_path, conf)?;

        // A hosts file (Prosody's `hoststxt`, the ejabberd namespace's /etc/hosts) and a resolv.conf
        // naming only this server. The test names come from DNS, so the query log shows every lookup.
        let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let hosts = dir.join("hosts");
        fs::write(
            &hosts,
            format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        )?;
        let resolv_conf = dir.join("resolv.conf");
        fs::write(
            &resolv_conf,
            format!("nameserver {ip}\noptions timeout:1 attempts:1\n"),
        )?;

        let mut cmd = Command::new("/usr/sbin/dnsmasq");
        cmd.arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf_path.display()))
            .arg(format!("--pid-file={}", pid_file.display()));
        let mut proc = Proc::spawn("dnsmasq", cmd, &dir.join("stdout.log"))?;
        run.register_log("dnsmasq", &log);
        process::wait_for_listen(addr, Some(&mut proc), Duration::from_secs(10))
            .context("dnsmasq did not start")?;
        process::check_loopback_only(&[proc.pid()])?;
        Ok(Self {
            proc,
            ip,
            log,
            hosts,
            resolv_conf,
        })
    }

    /// The server's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The query log.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// A hosts-format file with only `localhost` and this machine's name.
    pub fn hosts_file(&self) -> &Path {
        &self.hosts
    }

    /// A resolv.conf naming only this server.
    pub fn resolv_conf(&self) -> &Path {
        &self.resolv_conf
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The queries logged so far, as `TYPE name from addr` (e.g. `SRV _xmpp-server._tcp.gw.example
    /// from 127.0.0.1`).
    pub fn queries(&self) -> Vec<String> {
        logs::find_lines(&self.log, &["query["])
            .into_iter()
            .filter_map(|line| {
                let q = &line[line.find("query[")? + "query[".len()..];
                let (ty, rest) = q.split_once(']')?;
                Some(format!("{ty}{rest}"))
            })
            .collect()
    }
}
