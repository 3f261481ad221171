//! Signals to a child process (SIGTERM, SIGSTOP, SIGCONT...).

use std::process::Command;

/// Sends `SIG<sig>` to `pid` with kill(1); errors are ignored.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}
