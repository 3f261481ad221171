//! A throwaway `edgelimit-gateway` in front of a test `redis-server`.

// Shared by several test crates, each using a part.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bearer token every test gateway accepts.
pub const TOKEN: &str = "test-token-7f3a";

/// A gateway child on a free loopback port, killed on drop.
pub struct Gateway {
    child: Child,
    pub port: u16,
}

/// The gateway binary: `EDGELIMIT_GATEWAY_BIN`, or the workspace's build
/// next to this test's own executable (`make test` builds it first).
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGELIMIT_GATEWAY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    profile_dir.join("edgelimit-gateway")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Gateway {
    /// Starts a gateway over the Redis at `redis_port`.
    pub fn start(redis_port: u16) -> Self {
        Self::start_with(redis_port, &[])
    }

    /// Starts one with `flags` besides the defaults (`--cluster`…).
    pub fn start_with(redis_port: u16, flags: &[&str]) -> Self {
        let bin = binary();
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p edgelimit-gateway` (done by `make test`)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}")])
            .args(["--token", TOKEN])
            .args(flags)
            .env("EDGELIMIT_GATEWAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut gateway = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gateway.healthy() {
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!("the gateway exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not become healthy within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        gateway
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP/1.1 request with the token: the status and the body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("the gateway");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("a request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("a response");
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.1 200")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
