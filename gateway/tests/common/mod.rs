//! Test harness: a real redis-server and the real gateway binary on free
//! loopback ports, both stopped on drop (also when a test fails), and a tiny
//! blocking HTTP/1.1 client that can send anything, malformed bodies included.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use serde_json::{json, Value as Json};

pub const TOKEN: &str = "test-token-9f8e7d";
pub const RO_TOKEN: &str = "test-ro-token-1a2b3c";

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn wait_for_port(port: u16, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    false
}

pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(free_port(), &[])
    }

    /// A server with extra `redis-server` arguments (cluster mode...).
    pub fn start_with(port: u16, extra: &[&str]) -> Redis {
        let mut r = Redis {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (tools/ensure-redis.sh)");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not start"
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts again on the same port, with an empty dataset and
    /// an empty script cache.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Runs redis-cli against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Gateway {
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway with one full and one read-only token.
    pub fn start(redis_url: &str, extra: &[&str]) -> Gateway {
        let mut args = vec!["--token", TOKEN, "--read-only-token", RO_TOKEN];
        args.extend_from_slice(extra);
        Gateway::start_raw(redis_url, &args, &[])
    }

    pub fn start_raw(redis_url: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("gateway.log");
        let mut cmd = gateway_command(redis_url, port, args, env);
        cmd.stderr(std::fs::File::create(&log).expect("log file"));
        let child = cmd.spawn().expect("spawn gateway");
        let g = Gateway {
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
        g
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

    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, &[auth()], body.as_bytes())
    }

    pub fn post64(&self, path: &str, body: &str) -> Resp {
        self.request(
            "POST",
            path,
            &[auth(), ("Upstash-Encoding", "base64".into())],
            body.as_bytes(),
        )
    }

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
}

pub fn gateway_command(redis_url: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgelimit-gateway"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--redis-url")
        .arg(redis_url)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Keep the caller's EDGELIMIT_GATEWAY_* settings out of the test.
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

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request on a fresh connection (`Connection: close`), read to EOF.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to gateway");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    // The server may answer (413) and close before reading a large body.
    let _ = s.write_all(&out);
    let mut raw = vec![];
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp { status, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}
