//! The gateway under test: its configuration file, and the `sixgate` process.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Layout;

/// Writes `gateway.toml` into `dir` and returns its path.
pub(crate) fn write_config(
    dir: &Path,
    layout: &Layout,
    ca_file: &Path,
    certificate: &Path,
    key: &Path,
) -> anyhow::Result<PathBuf> {
    let mut text = String::new();
    writeln!(text, "# Written by sixgate-loadgen.")?;
    writeln!(text, "[xmpp]\nlisten = [\"{}\"]\n", layout.gateway_xmpp)?;
    writeln!(text, "[sip]\nlisten = [\"{}\"]\n", layout.gateway_sip)?;
    writeln!(text, "# Never asked: every peer has a static address.")?;
    writeln!(text, "[dns]\nnameservers = [\"127.0.0.1:9\"]\n")?;
    writeln!(
        text,
        "[tls]\ntrust_system_roots = false\nca_files = [{}]\n",
        toml_string(ca_file)?
    )?;
    writeln!(
        text,
        "[[tls.certificates]]\ncertificate = {}\nkey = {}\ndomains = [\"{}\"]\n",
        toml_string(certificate)?,
        toml_string(key)?,
        layout.gateway_domain,
    )?;
    writeln!(
        text,
        "[[local_domains]]\ndomain = \"{}\"\ndelivery = \"sip\"\nedge = \"{}\"\nedge_identity = \"{}\"\n",
        layout.gateway_domain, layout.edge_sip, layout.edge_identity,
    )?;
    writeln!(
        text,
        "[[remote_domains]]\ndomain = \"{}\"\nroute = \"xmpp\"\nconnect = [\"{}\"]",
        layout.sink_domain, layout.sink_xmpp,
    )?;
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> anyhow::Result<String> {
    let Some(text) = path.to_str() else {
        bail!("{} is not UTF-8", path.display());
    };
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The `sixgate` process.
pub(crate) struct GatewayProcess {
    child: Child,
    log: PathBuf,
}

impl GatewayProcess {
    /// Starts `binary --config <config>` with `RUST_LOG=<log_filter>`, its output in `<dir>/gateway.log`, and
    /// waits until both listeners accept TCP connections.
    pub(crate) fn start(
        binary: &Path,
        config: &Path,
        dir: &Path,
        log_filter: &str,
        ports: &[SocketAddr],
    ) -> anyhow::Result<Self> {
        let log = dir.join("gateway.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", log_filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut gateway = Self { child, log };
        if let Err(error) = gateway.wait_for_ports(ports) {
            let _ = gateway.child.kill();
            let _ = gateway.child.wait();
            bail!("{error:#}\n--- gateway log ---\n{}", gateway.log_text());
        }
        Ok(gateway)
    }

    fn wait_for_ports(&mut self, ports: &[SocketAddr]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in ports {
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!("the gateway exited at start: {status}");
                }
                if TcpStream::connect_timeout(port, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the gateway does not listen on {port}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub(crate) fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            self.child.kill()?;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                return Ok(self.child.wait()?);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GatewayProcess {
    /// A gateway left running by an early error is killed rather than orphaned.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
