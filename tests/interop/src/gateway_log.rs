//! Captures the in-process gateway's `tracing` output into a file of the current test's run directory.
//!
//! One global subscriber is installed per test process; it writes to whatever file the current test
//! chose with [`capture_to`] (tests run one at a time, see [`crate::run::serial`]). The filter comes from
//! `SIXGATE_INTEROP_LOG` (`EnvFilter` syntax), by default `debug` for the gateway's crates and `info`
//! for everything else.
//!
//! The test's own SIP peers ([`crate::sip_peer`]) run `sixgate-sip-net` in the same process, so their
//! lines land in the same file; the `sip_connection` span's addresses tell them apart.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The environment variable holding the gateway log filter.
pub const FILTER_ENV: &str = "SIXGATE_INTEROP_LOG";
const DEFAULT_FILTER: &str = "info,sixgate=debug,sixgate_app=debug,sixgate_core=debug,\
    sixgate_route=debug,sixgate_xmpp=debug,sixgate_xmpp_proto=debug,sixgate_sip=debug,\
    sixgate_sip_net=debug";

static TARGET: Mutex<Option<File>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Stops the capture when dropped.
#[derive(Debug)]
pub struct Capture(());

impl Drop for Capture {
    fn drop(&mut self) {
        let mut target = TARGET.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = target.as_mut() {
            let _ = file.flush();
        }
        *target = None;
    }
}

/// Sends the gateway's log to `path` (created or truncated) until the guard is dropped.
pub fn capture_to(path: &Path) -> Result<Capture> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    *TARGET.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    INSTALL.call_once(|| {
        let filter =
            EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        let result = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(Switch)
            .try_init();
        if let Err(e) = result {
            eprintln!("cannot install the gateway log subscriber: {e}");
        }
    });
    Ok(Capture(()))
}

struct Switch;

impl<'a> MakeWriter<'a> for Switch {
    type Writer = SwitchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        SwitchWriter
    }
}

struct SwitchWriter;

impl Write for SwitchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut target = TARGET.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = target.as_mut() {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut target = TARGET.lock().unwrap_or_else(|p| p.into_inner());
        match target.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}
