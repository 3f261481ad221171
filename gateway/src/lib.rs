//! edgelimit-gateway: an Upstash-compatible Redis REST server.
//!
//! Serves the Upstash REST protocol (see the crate README) and forwards
//! commands to one Redis server over a few multiplexed connections.

pub mod auth;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod error;
pub mod gateway;
pub mod http;
pub mod json;
mod json_scan;
pub mod limiter_only;
pub mod metrics;
pub mod policy;
#[cfg(not(any(
    edgelimit_gateway_client = "redis-rs",
    edgelimit_gateway_client = "redis-rs-cluster",
    edgelimit_gateway_client = "fred"
)))]
pub mod pool;
// Library clients, for comparison only (see Cargo.toml).
#[cfg(edgelimit_gateway_client = "fred")]
#[path = "pool_fred.rs"]
pub mod pool;
#[cfg(any(
    edgelimit_gateway_client = "redis-rs",
    edgelimit_gateway_client = "redis-rs-cluster"
))]
#[path = "pool_redis_rs.rs"]
pub mod pool;
pub mod resp;
pub mod response;
pub mod scripts;
pub mod serve;
pub mod target;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::{parse_token_file, Token, Tokens};
use crate::backend::Backend;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::http::AppState;
use crate::limiter_only::LimiterOnly;
use crate::policy::Policy;
use crate::pool::Pool;
use crate::workers::Workers;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("no token configured: pass --token or --token-file (or --insecure-no-auth)")]
    NoToken,
    #[error("an empty token in {origin}: it would let in any request with an empty token (a trailing comma?)")]
    EmptyToken { origin: String },
    #[error("cannot read token file {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read script file {path}: {source}")]
    ScriptFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Connections to Redis (to each master): as configured, else one per
/// serving thread (see `pool.rs`).
fn pool_size(cfg: &Config) -> usize {
    cfg.pool_size
        .unwrap_or_else(|| cfg.serving_threads())
        .max(1)
}

/// Builds the shared state from the configuration.
pub fn build_state(cfg: &Config) -> Result<Arc<AppState>, StartError> {
    // Each token with where it came from, for the messages below.
    let mut given: Vec<(String, Token)> = Vec::new();
    for t in &cfg.tokens {
        given.push((
            "--token (EDGELIMIT_GATEWAY_TOKEN)".into(),
            Token::new(t, false),
        ));
    }
    for t in &cfg.read_only_tokens {
        let source = "--read-only-token (EDGELIMIT_GATEWAY_READ_ONLY_TOKEN)".into();
        given.push((source, Token::new(t, true)));
    }
    if let Some(path) = &cfg.token_file {
        let text = std::fs::read_to_string(path).map_err(|source| StartError::TokenFile {
            path: path.display().to_string(),
            source,
        })?;
        for (line, token) in parse_token_file(&text) {
            given.push((format!("{} line {line}", path.display()), token));
        }
    }
    let mut tokens = Vec::with_capacity(given.len());
    for (source, token) in given {
        if token.is_empty() {
            return Err(StartError::EmptyToken { origin: source });
        }
        if token.len() < 16 {
            tracing::warn!(%source, "a token shorter than 16 bytes is easy to guess");
        }
        tokens.push(token);
    }
    let tokens = Tokens::new(tokens, cfg.insecure_no_auth);
    if tokens.is_empty() && !cfg.insecure_no_auth {
        return Err(StartError::NoToken);
    }
    conn::set_max_reply_bytes(cfg.max_reply_bytes);
    pool::share_among_threads(cfg.serving_threads());
    let pool_size = pool_size(cfg);
    let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms);
    let target = cfg.redis_url.clone();
    let backend = if cfg.cluster {
        let mut seeds = vec![target];
        for seed in &cfg.cluster_seeds {
            let mut seed = seed.clone();
            if seed.username.is_none() && seed.password.is_none() {
                seed.username.clone_from(&seeds[0].username);
                seed.password.clone_from(&seeds[0].password);
            }
            seeds.push(seed);
        }
        let refresh = Duration::from_millis(cfg.cluster_refresh_ms);
        let cluster = Cluster::new(seeds, pool_size, connect_timeout, refresh);
        Backend::Cluster(Arc::new(cluster))
    } else {
        Backend::Single(Pool::new(target, pool_size, connect_timeout))
    };
    let mut policy = Policy::new(&cfg.allow_commands);
    if cfg.read_only_scripts == config::ReadOnlyScripts::Deny {
        policy = policy.deny_read_only_scripts();
    }
    if cfg.limiter_only {
        let mut scripts = Vec::new();
        for path in &cfg.scripts {
            let code = std::fs::read_to_string(path).map_err(|source| StartError::ScriptFile {
                path: path.display().to_string(),
                source,
            })?;
            scripts.push(code);
        }
        policy = policy.limiter_only(LimiterOnly::new(&scripts, &cfg.key_prefixes));
    }
    Ok(Arc::new(AppState {
        metrics: Arc::default(),
        gateway: Gateway::new(backend, policy).with_script_cache_bytes(cfg.max_script_cache_bytes),
        tokens,
        max_body: cfg.max_body_bytes,
        request_timeout: Duration::from_millis(cfg.request_timeout_ms),
    }))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
///
/// Connections are served on `workers`' threads, or without them on the
/// runtime `run` runs on.
pub async fn run(
    cfg: Config,
    workers: Option<&Workers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = build_state(&cfg)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(
        %addr,
        redis = ?cfg.redis_url,
        pool_size = pool_size(&cfg),
        cluster = cfg.cluster,
        allow_list = !cfg.allow_commands.is_empty(),
        "listening"
    );
    let limits = serve::Limits {
        header_timeout: Duration::from_millis(cfg.header_timeout_ms.max(1)),
        idle_timeout: Duration::from_millis(cfg.idle_timeout_ms.max(1)),
        max_connections: serve::connection_cap(cfg.max_connections, pool_size(&cfg)),
    };
    let metrics = state.metrics.clone();
    let handler = move |request| http::handle(state.clone(), request);
    serve::serve(listener, handler, limits, metrics, workers, shutdown)
        .await
        .map_err(StartError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}
