//! `sixgate-loadgen`: a load generator for the SIP → XMPP path of sixgate.
//!
//! It starts the `sixgate` binary as a separate process, with a throw-away CA and configuration, and
//! surrounds it with two in-process peers on loopback: a SIP edge proxy for `corp.example` that sends
//! `MESSAGE`s, at most `--concurrency` at once, and an XMPP server for `sink.example` that the gateway
//! federates with and that counts the `<message/>`s it receives. It reports the rate at which messages
//! arrive at the sink and the gateway's CPU time and memory. See `docs/benchmarks.md`.

mod edge;
mod gateway;
mod pki;
mod procfs;
mod sink;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::edge::{BatchResult, Edge};
use crate::gateway::GatewayProcess;
use crate::pki::{Names, Pki};
use crate::sink::Sink;

/// Load generator for sixgate's SIP → XMPP path: an in-process SIP edge and XMPP sink around a gateway
/// process, all on 127.0.0.30–32.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// MESSAGEs to send and measure (after the warm-up).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// MESSAGEs in flight at once. Each is answered only after the gateway's 1 s wait for an early XMPP
    /// error, so throughput is at most concurrency / (1 s + latency).
    #[arg(long, default_value_t = 2_000)]
    concurrency: usize,
    /// TLS connections from the edge to the gateway; MESSAGEs take turns among them.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured batches of `--messages` in a row, against the same gateway process.
    #[arg(long, default_value_t = 1)]
    rounds: u64,
    /// Seconds to wait after each batch before reading the gateway's memory once more (0: don't), to see
    /// what it keeps once finished transactions have expired (Timer J, 4 s).
    #[arg(long, default_value_t = 0)]
    settle: u64,
    /// Milliseconds over which the first `--concurrency` MESSAGEs are spread (0: all at once). Without a
    /// ramp their answers, all due one second later, come back in one burst on the single connection.
    #[arg(long, default_value_t = 1_000)]
    ramp_ms: u64,
    /// MESSAGEs sent before the measurement, while the TLS connections and the s2s stream are set up.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// The `sixgate` binary. Default: `sixgate` next to this executable.
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// `RUST_LOG` of the gateway process; its output goes to `gateway.log` in the working directory.
    #[arg(long, default_value = "warn")]
    gateway_log: String,
    /// Keep the working directory (certificates, gateway.toml, gateway.log) instead of removing it.
    #[arg(long)]
    keep: bool,
}

/// Who is where. Fixed so that the configuration reads like a real one; only loopback is used.
pub(crate) struct Layout {
    pub(crate) gateway_domain: &'static str,
    pub(crate) gateway_xmpp: SocketAddr,
    pub(crate) gateway_sip: SocketAddr,
    pub(crate) edge_identity: &'static str,
    pub(crate) edge_sip: SocketAddr,
    pub(crate) sink_domain: &'static str,
    pub(crate) sink_xmpp: SocketAddr,
}

const LAYOUT: Layout = Layout {
    gateway_domain: "corp.example",
    gateway_xmpp: loopback(30, 5269),
    gateway_sip: loopback(30, 5061),
    edge_identity: "edge.corp.example",
    edge_sip: loopback(31, 5061),
    sink_domain: "sink.example",
    sink_xmpp: loopback(32, 5269),
};

/// `127.0.0.<host>:<port>`.
const fn loopback(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), port)
}

/// How long the sink may stay silent, once every MESSAGE is answered, before missing messages are given up.
const SINK_PATIENCE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SIXGATE_LOADGEN_LOG")
                .unwrap_or_else(|_| EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("sixgate-loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up, measures, tears down. `Ok(false)`: the run completed but messages were lost or refused.
async fn run(args: &Args) -> anyhow::Result<bool> {
    if args.messages == 0 || args.concurrency == 0 || args.connections == 0 || args.rounds == 0 {
        bail!("--messages, --concurrency, --connections and --rounds must be at least 1");
    }
    let binary = match &args.gateway_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("sixgate"),
    };
    if !binary.is_file() {
        bail!(
            "no gateway binary at {} (build it with `cargo build --release -p sixgate`, or pass --gateway-bin)",
            binary.display()
        );
    }
    let dir = make_dir()?;
    let outcome = measure(args, &binary, &dir).await;
    if args.keep {
        println!("working directory kept: {}", dir.display());
    } else if let Err(error) = std::fs::remove_dir_all(&dir) {
        eprintln!("cannot remove {}: {error}", dir.display());
    }
    outcome
}

fn make_dir() -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("sixgate-loadgen-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn measure(args: &Args, binary: &Path, dir: &Path) -> anyhow::Result<bool> {
    let l = &LAYOUT;
    let pki = Pki::new(dir)?;
    let gateway_leaf = pki.leaf(
        "corp.example",
        &Names {
            dns: &[l.gateway_domain],
            uris: &[&format!("sip:{}", l.gateway_domain)],
        },
    )?;
    let edge_leaf = pki.leaf(
        "edge.corp.example",
        &Names {
            dns: &[],
            uris: &[&format!("sip:{}", l.edge_identity)],
        },
    )?;
    let sink_leaf = pki.leaf(
        "sink.example",
        &Names {
            dns: &[l.sink_domain],
            uris: &[],
        },
    )?;
    let config = gateway::write_config(
        dir,
        l,
        &pki.ca_file,
        &gateway_leaf.certificate_file,
        &gateway_leaf.key_file,
    )?;

    let sink = Sink::start(
        l.sink_xmpp,
        l.sink_domain,
        l.gateway_domain,
        sink_leaf.local_certificates(l.sink_domain)?,
        pki.trust()?,
    )
    .await?;
    let edge = Edge::start(
        args.connections,
        l.edge_sip,
        l.edge_identity,
        l.gateway_domain,
        l.sink_domain,
        l.gateway_sip,
        l.gateway_domain,
        edge_leaf.local_certificates(l.edge_identity)?,
        pki.trust()?,
    )
    .await?;
    let gateway = GatewayProcess::start(
        binary,
        &config,
        dir,
        &args.gateway_log,
        &[l.gateway_xmpp, l.gateway_sip],
    )?;
    let pid = gateway.pid().to_string();
    println!("gateway:      {} (pid {pid})", binary.display());
    println!("directory:    {}", dir.display());

    let result = drive(args, &edge, &sink, &pid).await;

    let log = gateway.log_text();
    let log_path = gateway.log_path().to_owned();
    let status = gateway.stop()?;
    edge.shutdown();
    sink.shutdown().await;
    println!("gateway stopped with SIGTERM: {status}");
    if !status.success() {
        bail!("the gateway did not exit cleanly: {status}");
    }
    let lines: Vec<&str> = log.lines().collect();
    if !lines.is_empty() {
        println!(
            "gateway log ({}): {} line(s) at {}, the last ones:",
            log_path.display(),
            lines.len(),
            args.gateway_log
        );
        for line in &lines[lines.len().saturating_sub(10)..] {
            println!("  {line}");
        }
    }
    result
}

/// The warm-up and the measured run, against a gateway already listening.
async fn drive(args: &Args, edge: &Edge, sink: &Sink, pid: &str) -> anyhow::Result<bool> {
    // At least one per connection, so that every TLS connection is open before the measurement.
    let warmup = args.warmup.max(u64::try_from(args.connections)?);
    if warmup > 0 {
        let warm = edge
            .run(
                0,
                warmup,
                args.concurrency.min(usize::try_from(warmup)?),
                Duration::ZERO,
            )
            .await?;
        let arrived = sink.wait_for(warmup, SINK_PATIENCE).await;
        if warm.successes() != warmup || arrived.unique != warmup {
            bail!(
                "the warm-up failed: {} of {warmup} MESSAGEs answered 2xx ({:?}, {:?}), {} arrived at the sink",
                warm.successes(),
                warm.statuses,
                warm.errors,
                arrived.unique
            );
        }
        println!(
            "warm-up:      {warmup} messages in {:.2} s (TLS connections and the s2s stream set up)",
            warm.elapsed.as_secs_f64()
        );
    }
    let mut all_good = true;
    for round in 0..args.rounds {
        if args.rounds > 1 {
            println!("--- round {} of {}", round + 1, args.rounds);
        }
        all_good &= measure_round(args, edge, sink, pid, warmup + round * args.messages).await?;
        let rss = procfs::status_kib(pid, "VmRSS")?;
        let hwm = procfs::status_kib(pid, "VmHWM")?;
        println!(
            "gateway RSS:  {:.1} MiB at the end (peak {:.1} MiB)",
            kib_to_mib(rss),
            kib_to_mib(hwm)
        );
        if args.settle > 0 {
            tokio::time::sleep(Duration::from_secs(args.settle)).await;
            println!(
                "gateway RSS:  {:.1} MiB {} s later",
                kib_to_mib(procfs::status_kib(pid, "VmRSS")?),
                args.settle
            );
        }
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine:      {} CPU(s), load average {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let notices = edge.received.load(std::sync::atomic::Ordering::Relaxed);
    if notices > 0 {
        println!("requests from the gateway to the edge (delivery notices): {notices}");
    }
    Ok(all_good)
}

/// One measured batch of `--messages`, numbered from `first`. Whether every one was answered 2xx and
/// arrived exactly once.
async fn measure_round(
    args: &Args,
    edge: &Edge,
    sink: &Sink,
    pid: &str,
    first: u64,
) -> anyhow::Result<bool> {
    sink.reset();
    println!(
        "started:      {} UTC (to compare with gateway.log)",
        utc_time_of_day()
    );
    let ticks_per_second = procfs::clock_ticks();
    let gateway_before = procfs::cpu_ticks(pid)?;
    let own_before = procfs::cpu_ticks("self")?;
    let wall = Instant::now();
    let ramp = Duration::from_millis(args.ramp_ms);
    let batch = edge
        .run(first, args.messages, args.concurrency, ramp)
        .await?;
    let arrivals = sink.wait_for(args.messages, SINK_PATIENCE).await;
    let wall = wall.elapsed();
    let gateway_cpu = procfs::cpu_ticks(pid)?.saturating_sub(gateway_before);
    let own_cpu = procfs::cpu_ticks("self")?.saturating_sub(own_before);
    report(
        args,
        &batch,
        &arrivals,
        Cpu {
            gateway: gateway_cpu,
            own: own_cpu,
            ticks_per_second,
            wall,
        },
    );
    Ok(batch.successes() == args.messages
        && arrivals.unique == args.messages
        && arrivals.messages == args.messages)
}

struct Cpu {
    gateway: u64,
    own: u64,
    ticks_per_second: u64,
    wall: Duration,
}

#[allow(clippy::cast_precision_loss)]
fn report(args: &Args, batch: &BatchResult, arrivals: &sink::Arrivals, cpu: Cpu) {
    let n = args.messages as f64;
    let span = match (arrivals.first, arrivals.last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    let sink_rate = if span.is_zero() {
        0.0
    } else {
        arrivals.messages.saturating_sub(1) as f64 / span.as_secs_f64()
    };
    let seconds = |ticks: u64| ticks as f64 / cpu.ticks_per_second as f64;
    println!("messages:     {}", args.messages);
    println!(
        "concurrency:  {} over {} connection(s), ramp {} ms",
        args.concurrency, args.connections, args.ramp_ms
    );
    println!(
        "elapsed:      {:.2} s (first MESSAGE sent to last answer), {:.2} s first to last arrival at the sink",
        batch.elapsed.as_secs_f64(),
        span.as_secs_f64()
    );
    println!(
        "sink rate:    {sink_rate:.0} msg/s ({} messages arrived, {} distinct, {} duplicates)",
        arrivals.messages,
        arrivals.unique,
        arrivals.messages - arrivals.unique
    );
    println!(
        "SIP rate:     {:.0} answers/s",
        n / batch.elapsed.as_secs_f64().max(f64::EPSILON)
    );
    let others: Vec<String> = batch
        .statuses
        .iter()
        .filter(|(code, _)| !(200..300).contains(*code))
        .map(|(code, count)| format!("{count}×{code}"))
        .chain(
            batch
                .errors
                .iter()
                .map(|(error, count)| format!("{count}× {error}")),
        )
        .collect();
    println!(
        "SIP 2xx:      {}, errors: {}{}",
        batch.successes(),
        batch.failures(),
        if others.is_empty() {
            String::new()
        } else {
            format!(" ({})", others.join(", "))
        }
    );
    println!(
        "latency:      p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (includes the 1 s early-error wait)",
        ms(batch.latency(0.5)),
        ms(batch.latency(0.9)),
        ms(batch.latency(0.99)),
        ms(batch.latency(1.0))
    );
    println!(
        "gateway CPU:  {:.0} µs/msg ({:.2} s over {:.2} s wall, {:.2} cores; {} ticks/s)",
        seconds(cpu.gateway) * 1e6 / n,
        seconds(cpu.gateway),
        cpu.wall.as_secs_f64(),
        seconds(cpu.gateway) / cpu.wall.as_secs_f64().max(f64::EPSILON),
        cpu.ticks_per_second
    );
    println!(
        "loadgen CPU:  {:.0} µs/msg (edge and sink together, same machine)",
        seconds(cpu.own) * 1e6 / n
    );
    if arrivals.other > 0 {
        println!("other stanzas at the sink: {}", arrivals.other);
    }
}

/// `HH:MM:SS.mmm` now, in UTC like the gateway's log.
fn utc_time_of_day() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_epoch.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        since_epoch.subsec_millis()
    )
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
