//! What operators see at `GET /metrics` (Prometheus text format): requests
//! by route and status, their latency, failures by kind, Redis connections
//! busy, scripts remembered and client connections open. Counting is a few
//! relaxed atomic adds per request; the text is built only when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Routes as the logs name them.
pub const ROUTES: [&str; 6] = [
    "command",
    "pipeline",
    "multi-exec",
    "path",
    "healthz",
    "metrics",
];
/// Statuses counted one by one; others count as their class (`4xx`, `5xx`).
const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 405, 413, 503, 504, 500];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Kinds of failure answered with a 5xx.
pub const FAILURES: [&str; 3] = ["unavailable", "refused", "timeout"];

#[derive(Default)]
pub struct Metrics {
    /// By route, then by status (`STATUSES`, then 4xx and 5xx others).
    requests: [[AtomicU64; STATUSES.len() + 3]; ROUTES.len()],
    /// Counts per bucket (each request in the first bucket it fits; summed
    /// into Prometheus's cumulative form when scraped: one atomic add per
    /// request rather than one per bucket), then of all, and the sum (µs).
    latency: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    failures: [AtomicU64; FAILURES.len()],
    /// Client connections open now.
    pub connections: AtomicUsize,
}

impl Metrics {
    /// One request of `route` answered `status` after `took`.
    pub fn record(&self, route: &str, status: u16, took: Duration) {
        let r = ROUTES.iter().position(|&x| x == route).unwrap_or(0);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(match status {
                400..=499 => STATUSES.len(),
                500..=599 => STATUSES.len() + 1,
                _ => STATUSES.len() + 2,
            });
        self.requests[r][s].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|bound| secs <= *bound) {
            self.latency[b].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A request failed for `kind` (one of `FAILURES`).
    pub fn failed(&self, kind: &str) {
        if let Some(i) = FAILURES.iter().position(|&x| x == kind) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text Prometheus scrapes; `redis_busy` and `scripts` are read at
    /// scrape time.
    pub fn render(&self, redis_busy: usize, scripts: usize) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP edgelimit_gateway_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE edgelimit_gateway_requests_total counter");
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, count) in self.requests[r].iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = match STATUSES.get(s) {
                    Some(code) => code.to_string(),
                    None => ["4xx", "5xx", "other"][s - STATUSES.len()].to_string(),
                };
                let _ = writeln!(
                    out,
                    "edgelimit_gateway_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP edgelimit_gateway_request_duration_seconds Time to answer a request."
        );
        let _ = writeln!(
            out,
            "# TYPE edgelimit_gateway_request_duration_seconds histogram"
        );
        let mut below = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.latency) {
            below += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "edgelimit_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {below}"
            );
        }
        // Read after the buckets, it may lag a request they counted: the
        // +Inf bucket never shows fewer than the others.
        let count = self.latency_count.load(Ordering::Relaxed).max(below);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "edgelimit_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "edgelimit_gateway_request_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "edgelimit_gateway_request_duration_seconds_count {count}"
        );
        let _ = writeln!(
            out,
            "# HELP edgelimit_gateway_failures_total Requests failed by Redis, by kind."
        );
        let _ = writeln!(out, "# TYPE edgelimit_gateway_failures_total counter");
        for (kind, count) in FAILURES.iter().zip(&self.failures) {
            let _ = writeln!(
                out,
                "edgelimit_gateway_failures_total{{kind=\"{kind}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "redis_requests_in_flight",
                "Requests sent to Redis and not answered yet.",
                redis_busy,
            ),
            (
                "scripts_cached",
                "Rewritten Lua scripts remembered.",
                scripts,
            ),
            (
                "connections_open",
                "Client connections open.",
                self.connections.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP edgelimit_gateway_{name} {help}");
            let _ = writeln!(out, "# TYPE edgelimit_gateway_{name} gauge");
            let _ = writeln!(out, "edgelimit_gateway_{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(text: &str, le: &str) -> u64 {
        let prefix = format!("edgelimit_gateway_request_duration_seconds_bucket{{le=\"{le}\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(&prefix));
        line.and_then(|n| n.parse().ok()).expect(le)
    }

    #[test]
    fn latency_buckets_are_cumulative_when_scraped() {
        let m = Metrics::default();
        m.record("command", 200, Duration::from_micros(300));
        m.record("command", 200, Duration::from_micros(2_000));
        m.record("command", 200, Duration::from_micros(2_500));
        m.record("command", 503, Duration::from_secs(7));
        let text = m.render(0, 0);
        assert_eq!(bucket(&text, "0.0005"), 1);
        assert_eq!(bucket(&text, "0.001"), 1);
        assert_eq!(bucket(&text, "0.0025"), 3);
        assert_eq!(bucket(&text, "5"), 3);
        assert_eq!(bucket(&text, "+Inf"), 4);
        assert!(text.contains("edgelimit_gateway_request_duration_seconds_count 4\n"));
        assert!(
            text.contains("edgelimit_gateway_requests_total{route=\"command\",status=\"503\"} 1\n")
        );
    }
}
