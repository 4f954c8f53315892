//! `sixgate`: the SIP/XMPP federation gateway daemon. Sets up logging, reads `gateway.toml`, runs the
//! gateway until SIGINT or SIGTERM, and reloads the route table on SIGHUP.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// sysexits.h EX_CONFIG: the configuration is wrong, retrying will not help.
const EXIT_CONFIG: u8 = 78;

/// SIP ⇄ XMPP federation gateway.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file.
    #[arg(long, short, default_value = "gateway.toml", env = "SIXGATE_CONFIG")]
    config: PathBuf,
    /// Check the configuration, print every problem, and exit (0 when it is valid).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colour codes only for a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = match sixgate_app::config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!(
                "{}: {} configuration error(s):",
                args.config.display(),
                errors.0.len()
            );
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sixgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: sixgate_app::config::Config, path: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers first: a signal arriving between start-up and their installation would otherwise take the
    // default action, which for SIGHUP is to terminate.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut gateway = sixgate_app::Gateway::start(config).await?;
    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                result?;
                break;
            }
            _ = terminate.recv() => break,
            _ = hangup.recv() => reload(&mut gateway, &path),
        }
    }
    gateway.shutdown().await;
    Ok(())
}

/// SIGHUP: re-reads the configuration and applies its route table; on any error the running table stays.
fn reload(gateway: &mut sixgate_app::Gateway, path: &std::path::Path) {
    match sixgate_app::config::load(path) {
        Ok(config) => {
            if let Err(error) = gateway.reload(config) {
                tracing::error!("reload refused, the running configuration stays: {error:#}");
            }
        }
        Err(errors) => {
            for error in &errors.0 {
                tracing::error!(key = %error.key, "reload refused: {}", error.message);
            }
        }
    }
}
