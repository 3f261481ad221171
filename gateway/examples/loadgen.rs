//! Closed-loop HTTP/1.1 load generator for the gateway benchmark.
//!
//! `--concurrency` keep-alive connections each send the same request, wait
//! for the whole response, and send again, for `--duration-secs` (after an
//! unrecorded warm-up). Prints one JSON line: throughput, latency
//! percentiles, errors. Loopback targets only: it refuses other hosts.
//!
//! Example:
//! cargo run --release --example loadgen -- --port 8080 --method POST --path / \
//!   --header 'Authorization: Bearer t' --body '["PING"]' --concurrency 10

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long)]
    port: u16,
    #[arg(long, default_value = "GET")]
    method: String,
    #[arg(long, default_value = "/")]
    path: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long)]
    header: Vec<String>,
    #[arg(long, default_value = "")]
    body: String,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Substring every response body must contain to count as a success.
    #[arg(long)]
    expect: Option<String>,
    /// Cycle through this many keys: each `{key}` in the body becomes
    /// `k0`, `k1`… (0: the body as given).
    #[arg(long, default_value_t = 0)]
    keys: usize,
}

struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !args.host.is_loopback() {
        return Err("loadgen only targets loopback addresses".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// The request with `body`.
fn request(args: &Args, body: &str) -> Vec<u8> {
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\n",
        args.method,
        args.path,
        args.host,
        args.port,
        body.len()
    );
    for h in &args.header {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let reqs: Vec<Vec<u8>> = match args.keys {
        0 => vec![request(&args, &args.body)],
        n => (0..n)
            .map(|i| request(&args, &args.body.replace("{key}", &format!("k{i}"))))
            .collect(),
    };
    let reqs = Arc::new(reqs);
    let expect = Arc::new(args.expect.clone());
    let addr = SocketAddr::new(args.host, args.port);

    let stop = Arc::new(AtomicBool::new(false));
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup_secs);
    let mut tasks = vec![];
    for w in 0..args.concurrency {
        let (reqs, expect, stop) = (reqs.clone(), expect.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            worker(addr, &reqs, w, expect.as_deref(), &stop, warm_until).await
        }));
    }
    let total = Duration::from_secs_f64(args.warmup_secs + args.duration_secs);
    tokio::time::sleep(total).await;
    stop.store(true, Ordering::Relaxed);
    // Workers finish their current request; bounded by a grace period.
    let mut all = Stats {
        latencies_us: vec![],
        errors: 0,
    };
    for t in tasks {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), t).await {
            all.latencies_us.extend(s.latencies_us);
            all.errors += s.errors;
        } else {
            all.errors += 1;
        }
    }
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let pct = |p: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        all.latencies_us[i] as f64 / 1000.0
    };
    println!(
        "{{\"requests\":{},\"errors\":{},\"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        n,
        all.errors,
        n as f64 / args.duration_secs,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}

/// Sends `reqs` in turn, starting at `first`, until `stop`.
async fn worker(
    addr: SocketAddr,
    reqs: &[Vec<u8>],
    first: usize,
    expect: Option<&str>,
    stop: &AtomicBool,
    warm_until: Instant,
) -> Stats {
    let mut stats = Stats {
        latencies_us: Vec::with_capacity(1 << 16),
        errors: 0,
    };
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut next = first;
    while !stop.load(Ordering::Relaxed) {
        let req = &reqs[next % reqs.len()];
        next += 1;
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn.insert(s)
                }
                Err(_) => {
                    stats.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let t = Instant::now();
        let ok = exchange(stream, req, &mut buf, expect).await;
        let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if !ok {
            stats.errors += 1;
            conn = None;
            continue;
        }
        if t >= warm_until {
            stats.latencies_us.push(us);
        }
    }
    stats
}

/// Sends the request and reads one full response (Content-Length framed).
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>, expect: Option<&str>) -> bool {
    if s.write_all(req).await.is_err() {
        return false;
    }
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let ok_status = head.starts_with("http/1.1 200");
            let Some(len) = content_length(&head) else {
                return false;
            };
            while buf.len() < end + 4 + len {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = &buf[end + 4..end + 4 + len];
            let body_ok = expect.map_or(true, |e| find(body, e.as_bytes()).is_some());
            return ok_status && body_ok;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
