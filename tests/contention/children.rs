//! This test binary run again as child processes: spawning them, their
//! entry point and the roles' shared loop, and the lines they report.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::holder::*;
use crate::leases::*;
use crate::quota::*;
use crate::rate::*;
use crate::setup::*;

// Child processes.

/// Children are started by killing-on-drop guards; each reports on stdout.
pub(crate) struct Children {
    pub(crate) children: Vec<Child>,
    readers: Vec<std::thread::JoinHandle<String>>,
}

impl Children {
    pub(crate) fn new() -> Self {
        Self {
            children: Vec::new(),
            readers: Vec::new(),
        }
    }

    /// Runs this test binary's child test in `role`; its stdout is read in
    /// the background so a full pipe never blocks it.
    pub(crate) fn spawn(&mut self, role: &str, vars: &[(&str, String)]) {
        let mut child = self.command(role, vars).spawn().expect("spawn a child");
        let mut stdout = child.stdout.take().expect("piped stdout");
        self.children.push(child);
        self.readers.push(std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        }));
    }

    pub(crate) fn command(&self, role: &str, vars: &[(&str, String)]) -> Command {
        let exe = std::env::current_exe().expect("this test's path");
        let mut command = Command::new(exe);
        command
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads", "1"])
            .env(ROLE_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in vars {
            command.env(name, value);
        }
        command
    }

    /// Waits for every child to exit successfully within `limit`, and
    /// returns the marked lines each printed.
    pub(crate) fn finish(mut self, limit: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + limit;
        for (i, child) in self.children.iter_mut().enumerate() {
            loop {
                if let Some(status) = child.try_wait().expect("wait for a child") {
                    assert!(status.success(), "child {i} failed: {status}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "child {i} still running after {limit:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::mem::take(&mut self.readers)
            .into_iter()
            .map(|reader| {
                let out = reader.join().expect("a stdout reader");
                marked_lines(&out)
            })
            .collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The reported lines (without the mark) of a child's stdout, which also
/// holds the test harness's own lines.
pub(crate) fn marked_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.find(MARK).map(|at| line[at + MARK.len()..].to_owned()))
        .collect()
}

pub(crate) fn fields(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or_else(|_| panic!("bad report {line:?}")))
        .collect()
}

/// Prints lines at once, each with the mark.
pub(crate) fn report(lines: &[String]) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in lines {
        writeln!(out, "{MARK}{line}").expect("write to stdout");
    }
    out.flush().expect("flush stdout");
}

/// The test run again as a child process: does nothing unless the parent
/// set its role.
#[test]
fn child_process() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    match role.as_str() {
        "rate" => child_rate(),
        "multi" => crate::multi::child_multi(),
        "quota" => child_quota(),
        "leases" => child_leases(),
        "holder" => child_holder(),
        other => panic!("unknown role {other}"),
    }
}

/// Runs `work(thread, deadline)` on `THREADS` threads from the parent's start
/// time until its end, and reports every thread's lines.
pub(crate) fn run_threads(work: impl Fn(usize, u64) -> Vec<String> + Sync) {
    let start: u64 = env(START_ENV).parse().expect("a start time");
    let run: u64 = env(RUN_ENV).parse().expect("a run time");
    let now = unix_ms();
    if start > now {
        std::thread::sleep(Duration::from_millis(start - now));
    }
    let deadline = start + run;
    let lines: Vec<Vec<String>> = std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || work(t, deadline)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    report(&lines.concat());
}

/// Spawns `PROCESSES` children in `role` against `url`, starting together
/// shortly and running for `run_ms`; returns their reported lines.
pub(crate) fn run_children(role: &str, url: &str, prefix: &str, run_ms: u64) -> Vec<String> {
    let start = unix_ms() + 700;
    let vars = [
        (URL_ENV, url.to_owned()),
        (PREFIX_ENV, prefix.to_owned()),
        (START_ENV, start.to_string()),
        (RUN_ENV, run_ms.to_string()),
    ];
    let mut children = Children::new();
    for _ in 0..PROCESSES {
        children.spawn(role, &vars);
    }
    let limit = Duration::from_millis(run_ms) + Duration::from_secs(25);
    children.finish(limit).concat()
}
