//! Command-line flags; each has an `EDGELIMIT_GATEWAY_*` environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::target::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReadOnlyScripts {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// No `Debug`: the struct holds tokens.
#[derive(Parser, Clone)]
#[command(
    name = "edgelimit-gateway",
    version,
    about = "Upstash-compatible Redis REST gateway over a real Redis server"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Redis to forward to: redis://[[user]:password@]host[:port][/db].
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: Target,

    /// Treat --redis-url as a seed node of a Redis Cluster and route
    /// commands by hash slot.
    #[arg(long, env = "EDGELIMIT_GATEWAY_CLUSTER")]
    pub cluster: bool,

    /// Further cluster nodes to learn the slot map from when --redis-url's
    /// is down: redis://host:port (repeatable, or comma-separated in the env
    /// var). Nodes without credentials of their own use --redis-url's.
    #[arg(
        long = "cluster-seed",
        env = "EDGELIMIT_GATEWAY_CLUSTER_SEEDS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub cluster_seeds: Vec<Target>,

    /// How often the cluster's slot map is reloaded, in milliseconds,
    /// besides after redirects and failures (0: only then).
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_CLUSTER_REFRESH_MS",
        default_value_t = 1000
    )]
    pub cluster_refresh_ms: u64,

    /// Accepted bearer token (repeatable, or comma-separated in the env var).
    #[arg(
        long = "token",
        env = "EDGELIMIT_GATEWAY_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<String>,

    /// Token that may only run read-only commands (repeatable).
    #[arg(
        long = "read-only-token",
        env = "EDGELIMIT_GATEWAY_READ_ONLY_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub read_only_tokens: Vec<String>,

    /// File with one token per line; prefix a line with `readonly:` for a
    /// read-only token; `#` starts a comment line.
    #[arg(long, env = "EDGELIMIT_GATEWAY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Serve without any authentication (only for trusted networks).
    #[arg(long, env = "EDGELIMIT_GATEWAY_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,

    /// Only these commands are allowed (repeatable or comma-separated;
    /// `name` or `name|subcommand`, e.g. `evalsha,eval,script|load,get`).
    #[arg(
        long = "allow-command",
        env = "EDGELIMIT_GATEWAY_ALLOW_COMMANDS",
        value_delimiter = ','
    )]
    pub allow_commands: Vec<String>,

    /// Run edgelimit's own Lua scripts (and --script files) on keys under
    /// --key-prefix, and delete keys under it; refuse everything else.
    #[arg(long, env = "EDGELIMIT_GATEWAY_LIMITER_ONLY")]
    pub limiter_only: bool,

    /// Key prefix of the limiters served in --limiter-only mode
    /// (repeatable, or comma-separated in the env var).
    #[arg(
        long = "key-prefix",
        env = "EDGELIMIT_GATEWAY_KEY_PREFIXES",
        value_delimiter = ',',
        default_value = "edgelimit:"
    )]
    pub key_prefixes: Vec<String>,

    /// A Lua script file that may also run in --limiter-only mode
    /// (repeatable).
    #[arg(
        long = "script",
        env = "EDGELIMIT_GATEWAY_SCRIPTS",
        value_delimiter = ','
    )]
    pub scripts: Vec<PathBuf>,

    /// Whether read-only tokens may run scripts (`EVAL_RO`, `EVALSHA_RO`,
    /// `FCALL_RO`): `allow` (as Upstash does) or `deny`. Either way a
    /// read-only script that outruns its request is killed.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_READ_ONLY_SCRIPTS",
        value_enum,
        default_value = "allow"
    )]
    pub read_only_scripts: ReadOnlyScripts,

    /// Largest reply read from Redis, in bytes; a longer one is an error
    /// for its request (and the Redis connection is replaced).
    #[arg(long, env = "EDGELIMIT_GATEWAY_MAX_REPLY_BYTES", default_value_t = 16 << 20)]
    pub max_reply_bytes: usize,

    /// Bytes of rewritten Lua scripts remembered at most (scripts past it
    /// still run, their original SHA not remembered).
    #[arg(long, env = "EDGELIMIT_GATEWAY_MAX_SCRIPT_CACHE_BYTES", default_value_t = 16 << 20)]
    pub max_script_cache_bytes: usize,

    /// Multiplexed connections to Redis (to each master in a cluster), shared
    /// out among the serving threads (default: one per serving thread).
    #[arg(long, env = "EDGELIMIT_GATEWAY_POOL_SIZE")]
    pub pool_size: Option<usize>,

    /// Largest accepted request body, in bytes (larger ones get 413).
    #[arg(long, env = "EDGELIMIT_GATEWAY_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Time limit for a whole request, body read included (504 past it;
    /// 0 disables it).
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_REQUEST_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub request_timeout_ms: u64,

    /// Time limit from a request's first byte to the end of its head: a
    /// client trickling its headers (slowloris) is cut off.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_timeout_ms: u64,

    /// How long a connection may wait with no request (kept alive after
    /// one, or opened and silent) before it is closed.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_IDLE_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub idle_timeout_ms: u64,

    /// Open client connections at most; a new one closes the connection
    /// idle the longest, and is refused only when every one is busy.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,

    /// Time limit for opening a connection to Redis.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_CONNECT_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub connect_timeout_ms: u64,

    /// Threads serving connections, each with a single-threaded runtime;
    /// a connection stays on the one serving the fewest when it opened
    /// (default: one per CPU core; 1: everything on one thread).
    #[arg(long, env = "EDGELIMIT_GATEWAY_THREADS")]
    pub threads: Option<usize>,

    /// Log line format.
    #[arg(
        long,
        env = "EDGELIMIT_GATEWAY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

impl Config {
    /// Threads serving connections: `--threads`, else one per CPU core.
    pub fn serving_threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}
