//! Interop test harness: runs real, unmodified Prosody 0.12 and ejabberd 23 next to the gateway,
//! on 127.0.0.0/8 only, with a loopback DNS server and a throw-away test CA.
//!
//! The building blocks, in the order a test usually needs them:
//!
//! - [`run::serial`]: one interop test at a time (in this process and across processes),
//! - [`run::RunDir`]: a per-test directory under `/tmp`, removed at the end unless `SIXGATE_KEEP_INTEROP`
//!   is set; on failure it prints the peers' log paths and tails,
//! - [`pki::Pki`]: a test CA and leaf certificates written as PEM files,
//! - [`dns::Dns`]: dnsmasq on a loopback address, answering only the test names, with a query log,
//! - [`prosody::Prosody`] and [`ejabberd::Ejabberd`]: the real servers, each with its own configuration,
//! - [`c2s::C2sClient`]: a minimal XMPP client to log in as a test user and send and receive messages,
//! - [`sip_peer::SipPeer`]: a SIP peer of the gateway (edge proxy, SIP partner) with its own certificate,
//! - [`process::Proc`]: a guard that stops a process by its PID when dropped,
//! - [`evidence`]: the peers' log lines that show how an s2s stream was authenticated,
//! - [`gateway_log`]: the in-process gateway's `tracing` output, captured into the run directory,
//! - [`gateway_env`]: the in-process gateway with its SIP domain behind a test edge proxy, and the SIP
//!   helpers of `tests/sip.rs` and `tests/presence.rs`,
//! - [`run_test`]: all of the above around one test body.
//!
//! See `tests/interop/README.md` for the address plan and what each test proves.

pub mod c2s;
pub mod dns;
pub mod ejabberd;
pub mod evidence;
pub mod gateway_env;
pub mod gateway_log;
pub mod logs;
pub mod pki;
pub mod process;
pub mod prosody;
pub mod run;
pub mod sip_peer;
pub mod xml;

use std::net::Ipv4Addr;

/// The gateway's address in the interop tests.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
/// The address of the Prosody instance.
pub const PROSODY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The address of the ejabberd instance.
pub const EJABBERD_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 13);
/// The address of the test DNS server (dnsmasq, port 53).
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 153);

/// The gateway's XMPP domain.
pub const GATEWAY_DOMAIN: &str = "gw.example";
/// The Prosody instance's domain.
pub const PROSODY_DOMAIN: &str = "prosody.example";
/// The ejabberd instance's domain.
pub const EJABBERD_DOMAIN: &str = "ejabberd.example";

/// The s2s port every server uses.
pub const S2S_PORT: u16 = 5269;
/// The c2s port of the real servers.
pub const C2S_PORT: u16 = 5222;

/// Set this environment variable to skip the interop tests (they need root and the peers' packages;
/// without this variable, a machine that lacks them fails the tests rather than passing them silently).
pub const SKIP_ENV: &str = "SIXGATE_SKIP_INTEROP";

/// Runs one interop test: takes the interop lock, checks the prerequisites, creates the run directory,
/// runs `body` on a fresh multi-threaded tokio runtime and reports the time it took. If `body` fails,
/// the run directory's report (log paths and tails) is printed and the test panics.
pub fn run_test<F>(name: &str, body: F)
where
    F: for<'a> AsyncFnOnce(&'a run::RunDir) -> anyhow::Result<()>,
{
    if std::env::var_os(SKIP_ENV).is_some() {
        println!("[{name}] SKIPPED: {SKIP_ENV} is set");
        return;
    }
    let _serial = run::serial();
    let started = std::time::Instant::now();
    if let Err(e) = run::check_prerequisites() {
        panic!("{name}: {e:#}");
    }
    let mut dir = match run::RunDir::new(name) {
        Ok(dir) => dir,
        Err(e) => panic!("{name}: {e:#}"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{name}: tokio runtime: {e}"),
    };
    let result = runtime.block_on(body(&dir));
    // Anything the body spawned and left running stops here, before the run directory goes away.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let elapsed = started.elapsed();
    match result {
        Ok(()) => {
            dir.success();
            println!("[{name}] passed in {:.1} s", elapsed.as_secs_f64());
        }
        Err(e) => {
            eprintln!(
                "[{name}] FAILED after {:.1} s: {e:#}",
                elapsed.as_secs_f64()
            );
            drop(dir);
            panic!("{name} failed: {e:#}");
        }
    }
}
