//! Connections an attacker holds without a token: slow heads (slowloris)
//! and silent sockets must not lock real clients out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use testkit::gateway::Gateway;
use testkit::redis::Redis;

/// A connection that sends the start of a request head, a byte now and then.
fn slowloris(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .unwrap();
    stream
}

/// Whether the server closed `stream` (a read sees the end, or an error).
fn closed(mut stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut byte = [0; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn slow_heads_are_cut_off_and_real_clients_served() {
    let redis = Redis::start();
    let g = Gateway::with_tokens(&redis.url(), &["--header-timeout-ms", "800"]);
    let mut attackers: Vec<TcpStream> = (0..50).map(|_| slowloris(g.port)).collect();
    let started = Instant::now();
    // Real requests keep being answered meanwhile.
    while started.elapsed() < Duration::from_millis(1_500) {
        for attacker in &mut attackers {
            let _ = attacker.write_all(b"a");
        }
        assert_eq!(g.post("/", r#"["PING"]"#).status, 200);
        thread::sleep(Duration::from_millis(100));
    }
    // Past the header timeout, every trickling connection was closed.
    let open = attackers.iter().filter(|s| !closed(s)).count();
    assert_eq!(open, 0, "{open} slow heads still open");
}

#[test]
fn silent_sockets_at_the_cap_make_room_for_real_clients() {
    let redis = Redis::start();
    let g = Gateway::with_tokens(
        &redis.url(),
        &["--max-connections", "32", "--idle-timeout-ms", "60000"],
    );
    // 300 bare sockets, ten times the cap, silent.
    let silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", g.port)).unwrap())
        .collect();
    for _ in 0..20 {
        assert_eq!(
            g.post("/", r#"["PING"]"#).status,
            200,
            "a real client is served"
        );
    }
    thread::sleep(Duration::from_millis(200));
    let open = silent.iter().filter(|s| !closed(s)).count();
    assert!(open <= 32, "{open} silent sockets kept past the cap");
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let redis = Redis::start();
    let g = Gateway::with_tokens(&redis.url(), &["--idle-timeout-ms", "500"]);
    let idle = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(!closed(&idle), "not yet");
    thread::sleep(Duration::from_millis(1_000));
    assert!(closed(&idle), "closed once idle past the timeout");
}

/// Under a descriptor limit below the number of silent sockets, the cap
/// fits itself to the limit and real clients are still served.
#[test]
fn a_descriptor_limit_below_the_attack_still_serves_real_clients() {
    let redis = Redis::start();
    let port = testkit::port::free_port();
    // Stopped however the test ends.
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Stopped(
        std::process::Command::new("prlimit")
            .arg("--nofile=128:128")
            .arg("--")
            .arg(testkit::gateway::binary())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", &redis.url()])
            .args(["--token", testkit::gateway::TOKEN])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prlimit (util-linux) runs the gateway"),
    );
    let served = {
        assert!(testkit::port::wait_for_port(port, Duration::from_secs(10)));
        let silent: Vec<TcpStream> = (0..300)
            .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        thread::sleep(Duration::from_millis(200));
        let ping = || {
            testkit::http::http(
                port,
                "POST",
                "/",
                &[(
                    "authorization",
                    format!("Bearer {}", testkit::gateway::TOKEN),
                )],
                br#"["PING"]"#,
            )
            .status
        };
        let statuses: Vec<u16> = (0..10).map(|_| ping()).collect();
        drop(silent);
        statuses
    };
    assert_eq!(served, vec![200; 10]);
}

/// The raw reply to `request`, read until the server closes or 2 s pass.
fn raw(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// Errors answered before a request reaches the handler (a malformed
/// request line, a URI or head too large, a bad length) have a JSON body
/// like every other error.
#[test]
fn errors_below_the_handler_are_json_too() {
    let redis = Redis::start();
    let g = Gateway::with_tokens(&redis.url(), &[]);
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let big_head = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    for (request, status) in [
        ("GARBAGE\r\n\r\n".to_owned(), "400"),
        (long_uri, "414"),
        (big_head, "431"),
        (
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n".to_owned(),
            "400",
        ),
    ] {
        let reply = raw(g.port, request.as_bytes());
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{reply:.80}"
        );
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let json: serde_json::Value = serde_json::from_str(body).expect(&reply);
        assert!(
            json["error"].as_str().unwrap().starts_with(status),
            "{json}"
        );
    }
}

/// The gateway's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// 100 MB replies and 100 scripts of 1 MB stay within the caps: JSON
/// errors, memory bounded (uncapped, one such reply alone grew the debug
/// build's RSS by about 420 MB, and each remembered script by its size),
/// the gateway still serving.
#[test]
fn replies_and_the_script_cache_are_bounded() {
    let redis = Redis::start();
    let g = Gateway::with_tokens(
        &redis.url(),
        &[
            "--max-reply-bytes",
            "4194304",
            "--max-script-cache-bytes",
            "4194304",
            "--max-body-bytes",
            "2000000",
        ],
    );
    assert_eq!(g.post("/", r#"["PING"]"#).status, 200);
    let before = rss_bytes(g.pid());
    for _ in 0..3 {
        let res = g.post(
            "/",
            r#"["EVAL","return string.rep('x', 100*1024*1024)","0"]"#,
        );
        assert!(res.status >= 400, "{}", res.status);
        let error = res.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains("larger than"), "{error}");
    }
    for i in 0..100 {
        // A shebang makes the gateway rewrite the script, and remember it.
        let body = format!(
            r##"["EVAL","#!lua flags=allow-key-locking\nreturn '{}{i}'","0"]"##,
            "y".repeat(1_000_000)
        );
        assert_eq!(g.post("/", &body).status, 200);
    }
    assert_eq!(g.post("/", r#"["PING"]"#).status, 200, "still serving");
    let grown = rss_bytes(g.pid()).saturating_sub(before);
    assert!(grown < 80 << 20, "RSS grew by {} MB", grown >> 20);
}
