//! The real `edgelimit-gateway` binary as a child on a free loopback port,
//! in front of a test `redis-server`; killed on drop (also when a test
//! fails). Its stderr (the log) goes to a file in a temporary directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::http::{http, Resp};
use crate::port::{free_port, wait_for_port};
use crate::process::signal;

/// The bearer token of a gateway from [`Gateway::start`] (the edgelimit
/// store's tests).
pub const TOKEN: &str = "test-token-7f3a";
/// The full token of a gateway from [`Gateway::with_tokens`] (the
/// gateway's own tests)...
pub const FULL_TOKEN: &str = "test-token-9f8e7d";
/// ... and its read-only token.
pub const RO_TOKEN: &str = "test-ro-token-1a2b3c";

/// The gateway binary: `EDGELIMIT_GATEWAY_BIN`, or the workspace's build
/// next to the running test's own executable (`target/<profile>/`; cargo
/// builds it before the gateway's tests, `make test-deps` before the others).
pub fn binary() -> PathBuf {
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

/// The command line of a gateway on `port` in front of `redis_url`, with
/// `args` and `env` added and the caller's `EDGELIMIT_GATEWAY_*` settings
/// kept out; stdout and stderr to nowhere.
pub fn gateway_command(redis_url: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Command {
    let bin = binary();
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p edgelimit-gateway` (done by `make test`)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--redis-url")
        .arg(redis_url)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("EDGELIMIT_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A gateway child.
pub struct Gateway {
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// A gateway over the Redis at `redis_port` accepting [`TOKEN`], once
    /// `/healthz` answers 200.
    pub fn start(redis_port: u16) -> Self {
        Self::start_with(redis_port, &[])
    }

    /// The same with `flags` besides the defaults (`--cluster`...).
    pub fn start_with(redis_port: u16, flags: &[&str]) -> Self {
        let mut args = vec!["--token", TOKEN];
        args.extend_from_slice(flags);
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        let mut gateway = Self::start_raw(&redis_url, &args, &[("EDGELIMIT_GATEWAY_LOG", "warn")]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gateway.healthy() {
            if let Some(Ok(Some(status))) = gateway.child.as_mut().map(Child::try_wait) {
                panic!("the gateway exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not become healthy within 10 s"
            );
            sleep(Duration::from_millis(20));
        }
        gateway
    }

    /// A gateway with one full ([`FULL_TOKEN`]) and one read-only
    /// ([`RO_TOKEN`]) token and `extra` arguments, once its port accepts.
    pub fn with_tokens(redis_url: &str, extra: &[&str]) -> Gateway {
        let mut args = vec!["--token", FULL_TOKEN, "--read-only-token", RO_TOKEN];
        args.extend_from_slice(extra);
        Gateway::start_raw(redis_url, &args, &[])
    }

    /// A gateway with exactly `args` and `env`, once it listens on its
    /// port (on another free port if someone else took that one first).
    pub fn start_raw(redis_url: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let log = dir.path().join("gateway.log");
            let mut cmd = gateway_command(redis_url, port, args, env);
            cmd.stderr(std::fs::File::create(&log).expect("log file"));
            let child = cmd.spawn().expect("spawn gateway");
            let pid = child.id();
            let mut g = Gateway {
                port,
                child: Some(child),
                log,
                _dir: dir,
            };
            assert!(
                wait_for_port(port, Duration::from_secs(10)),
                "gateway did not start: {}",
                g.log_text()
            );
            // The port answers; make sure it is this gateway that listens.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if crate::port::listens(pid, port) {
                    return g;
                }
                if let Some(Ok(Some(_))) = g.child.as_mut().map(Child::try_wait) {
                    break; // it could not bind: another port
                }
                assert!(
                    Instant::now() < deadline,
                    "gateway did not start: {}",
                    g.log_text()
                );
                sleep(Duration::from_millis(10));
            }
        }
        panic!("no free port the gateway could bind in 5 tries");
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// A POST with [`FULL_TOKEN`].
    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, &[auth()], body.as_bytes())
    }

    /// A POST with [`FULL_TOKEN`], asking for base64 replies.
    pub fn post64(&self, path: &str, body: &str) -> Resp {
        self.request(
            "POST",
            path,
            &[auth(), ("Upstash-Encoding", "base64".into())],
            body.as_bytes(),
        )
    }

    /// A GET with [`FULL_TOKEN`].
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[auth()], b"")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Resp {
        http(self.port, method, path, headers, body)
    }

    /// One request with [`TOKEN`]: the status and the body.
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let auth = ("Authorization", format!("Bearer {TOKEN}"));
        let resp = self.request(method, path, &[auth], body.as_bytes());
        (resp.status, resp.text())
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.1 200")
    }
}

/// The `Authorization` header with [`FULL_TOKEN`].
pub fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {FULL_TOKEN}"))
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
