//! A throwaway `redis-server` on a loopback port, with its files in a
//! temporary directory; killed on drop (also when a test fails).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::port::free_port;
use crate::resp::{Conn, Reply};

/// A `redis-server` child. Without persistence by default; extra
/// arguments (which win over the defaults) turn on cluster mode, an
/// append-only file, etc.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Redis {
    /// A plain server on a free port.
    pub fn start() -> Redis {
        Redis::start_with(free_port(), &[])
    }

    /// A server on `port` with extra `redis-server` arguments (cluster
    /// mode...).
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

    /// A server on a free port with persistence on (append-only file,
    /// fsync on every write): what it holds survives [`Redis::stop`] (a
    /// SIGKILL) and [`Redis::restart`].
    pub fn start_persistent() -> Redis {
        Redis::start_with(
            free_port(),
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
    }

    /// Starts `redis-server` and waits until it answers PING (which
    /// answers LOADING until an append-only file is read); panics with a
    /// clear message when `redis-server` is missing.
    fn spawn(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): it must be on PATH; \
                     run `bash tools/ensure-redis.sh` (done by `make test`)"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = Conn::connect(self.port) {
                if let Ok(Reply::Simple(pong)) = conn.call(&["PING"]) {
                    if pong == "PONG" {
                        break;
                    }
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redis-server exited at start: {status}");
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL (a crash: no shutdown work) and waits for it
    /// to exit; what it keeps is what its append-only file holds, if any.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it (when running) and starts it again on the same port and
    /// directory: with an empty dataset and script cache, or with what its
    /// append-only file holds when persistence is on.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// A RESP connection to it.
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port).expect("connect to redis-server")
    }

    /// Runs redis-cli against this server; its trimmed output.
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
