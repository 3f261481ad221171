//! A Redis Cluster of throwaway `redis-server`s on loopback, created with
//! `redis-cli --cluster create`.

use std::net::TcpListener;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::port::free_port;
use crate::redis::Redis;

/// A free port whose cluster bus port (+10000) is free too.
pub fn cluster_port() -> u16 {
    (0..200)
        .map(|_| free_port())
        .find(|&p| p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok())
        .expect("a free port pair for a cluster node")
}

/// `nodes` servers in cluster mode (`--cluster-node-timeout` of
/// `node_timeout_ms`), made one cluster with `replicas` replicas per
/// master; returns once every node reports `cluster_state:ok`.
pub fn start(nodes: usize, replicas: usize, node_timeout_ms: u64) -> Vec<Redis> {
    let timeout = node_timeout_ms.to_string();
    let options = [
        "--cluster-enabled",
        "yes",
        "--cluster-node-timeout",
        &timeout,
    ];
    let nodes: Vec<Redis> = (0..nodes)
        .map(|_| Redis::start_with(cluster_port(), &options))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create", "--cluster-replicas"])
        .arg(replicas.to_string())
        .arg("--cluster-yes")
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    let end = Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < end, "cluster did not become ready");
        sleep(Duration::from_millis(50));
    }
    nodes
}
