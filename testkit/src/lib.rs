//! What the workspace's tests share (never published): servers on free
//! loopback ports, always stopped, and the clients that talk to them.
//!
//! - [`port`]: free ports, and waiting until something listens;
//! - [`process`]: signals to a child process;
//! - [`redis`]: a throwaway `redis-server`, stopped on drop;
//! - [`cases`]: how many cases a property test runs;
//! - [`cluster`]: a Redis Cluster of such servers (`redis-cli --cluster create`);
//! - [`gateway`]: the `edgelimit-gateway` binary as a child, killed on drop;
//! - [`http`]: a raw blocking HTTP/1.1 client that can send anything;
//! - [`resp`]: a tiny blocking RESP2 client;
//! - [`tap`]: a recording HTTP proxy in front of the gateway.

pub mod cases;
pub mod cluster;
pub mod gateway;
pub mod http;
pub mod port;
pub mod process;
pub mod redis;
pub mod resp;
pub mod tap;
