use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use edgelimit_gateway::config::{Config, LogFormat};
use edgelimit_gateway::workers::Workers;
use tracing_subscriber::EnvFilter;

// Every request allocates its JSON and RESP values: mimalloc serves those
// small, short-lived allocations for a fraction of glibc's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cfg = Config::parse();
    init_logging(cfg.log_format);
    // This thread accepts connections (and serves them, alone); with more,
    // they are served on threads of their own (`workers.rs`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let threads = cfg.serving_threads();
    let workers = match threads {
        1 => Ok(None),
        n => Workers::start(n).map(Some),
    };
    let (rt, workers) = match (rt, workers) {
        (Ok(rt), Ok(workers)) => (rt, workers),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let ran = rt.block_on(edgelimit_gateway::run(
        cfg,
        workers.as_ref(),
        shutdown_signal(),
    ));
    drop(workers);
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway failed");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; the level comes from EDGELIMIT_GATEWAY_LOG (default
/// `info`, `debug` adds one line per request).
fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("EDGELIMIT_GATEWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let int = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = int => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = int.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = int.await;
    }
    tracing::info!("shutting down");
}
