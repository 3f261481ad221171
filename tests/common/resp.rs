//! A tiny blocking RESP2 client and a throwaway `redis-server`, for tests.

// Shared by several test crates, each using a part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The integers of an array reply.
    pub fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Reply::Array(Some(items)) => items
                .iter()
                .map(|item| match item {
                    Reply::Int(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// A bulk or simple string.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// One connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn connect(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply.
    pub fn call<S: AsRef<[u8]>>(&mut self, args: &[S]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            let arg = arg.as_ref();
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        self.read()
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad RESP reply");
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        let number = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(number()?),
            "$" => match number()? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut buf = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut buf)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
            },
            "*" => match number()? {
                n if n < 0 => Reply::Array(None),
                n => Reply::Array(Some((0..n).map(|_| self.read()).collect::<Result<_, _>>()?)),
            },
            _ => return Err(bad()),
        })
    }
}

/// Starts `redis-server` on `port` with its files in `dir`, and waits until
/// it answers PING (which answers LOADING until an append-only file is
/// read); panics with a clear message when `redis-server` is missing
/// (`bash tools/ensure-redis.sh` installs it).
fn spawn_redis(port: u16, dir: &std::path::Path, persistence: &[&str]) -> Child {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(persistence)
        .arg("--dir")
        .arg(dir)
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
        if let Ok(mut conn) = Conn::connect(port) {
            if let Ok(Reply::Simple(pong)) = conn.call(&["PING"]) {
                if pong == "PONG" {
                    return child;
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
}

/// A `redis-server` child on a free port, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    /// Starts one (see [`spawn_redis`]).
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port, &[])
    }

    /// Starts one on `port` with `options` besides the defaults.
    pub fn start_on(port: u16, options: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("edgelimit-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut args = vec!["--appendonly", "no"];
        args.extend(options);
        let child = spawn_redis(port, &dir, &args);
        Self { child, port, dir }
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port).expect("connect to redis-server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` child with persistence on (append-only file, fsync on
/// every write) in its own directory, which can be killed and started again
/// on the same port and directory, e.g. to test a restart. Killed on drop.
pub struct PersistentServer {
    child: Option<Child>,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl PersistentServer {
    /// Starts one on a free port with a fresh directory.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("edgelimit-redis-aof-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.restart();
        server
    }

    /// Starts `redis-server` (again) on the same port and directory, and
    /// waits until it has loaded its data and answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let persistence = ["--appendonly", "yes", "--appendfsync", "always"];
        self.child = Some(spawn_redis(self.port, &self.dir, &persistence));
    }

    /// Kills `redis-server` with SIGKILL (a crash: no shutdown work) and
    /// waits for it to exit. Its data is what the append-only file holds.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port).expect("connect to redis-server")
    }
}

impl Drop for PersistentServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
