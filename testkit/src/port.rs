//! Free loopback ports, and waiting until something listens on one.

use std::net::{TcpListener, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A port nothing listens on now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether process `pid` holds a socket listening on `port` (Linux: its
/// descriptors against /proc/net/tcp). `wait_for_port` alone cannot tell:
/// between `free_port` and a bind, another test's server may take the port,
/// and then answers for a process that failed to start.
pub fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true; // not Linux: trust wait_for_port
    };
    let local = format!(":{port:04X}");
    let inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, state 0A (LISTEN), inode
            (fields.get(1)?.ends_with(&local) && *fields.get(3)? == "0A").then(|| fields[9])
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|link| {
            let link = link.to_string_lossy();
            inodes
                .iter()
                .any(|inode| link == format!("socket:[{inode}]"))
        })
}

/// Whether something accepts connections on 127.0.0.1:`port` within `limit`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    false
}
