//! `GET /metrics`: counters and histograms in the Prometheus text format (version 0.0.4),
//! written by hand: a handful of series do not need a metrics crate. Labels are routes,
//! statuses and outcomes only: never an address, a token or a user.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histograms' buckets, in seconds: a page is milliseconds, a reset is
/// an argon2 hash (a fraction of a second), a queue can add seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    /// The series of one histogram: `labels` is `route="reset"` or empty.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (le, n) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    durations: BTreeMap<&'static str, Histogram>,
    resets_refused: BTreeMap<&'static str, u64>,
    forgot: BTreeMap<&'static str, u64>,
    closed: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    resets_done: AtomicU64,
    db_errors: AtomicU64,
}

/// What the scrape reads from elsewhere at the time of the scrape.
pub struct Gauges {
    pub connections_open: usize,
    /// Per pool: its name, jobs waiting, and how long jobs waited for a thread.
    pub pools: Vec<(&'static str, usize, Histogram)>,
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay counters after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One answered request: `route` is a fixed name, `outcome` the handler's tag.
    pub fn request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        took: Duration,
        outcome: &'static str,
    ) {
        let mut m = self.inner();
        *m.requests.entry((route, method, status)).or_default() += 1;
        m.durations.entry(route).or_default().observe(took);
        match (route, method) {
            ("reset", "POST") if outcome == "changed" => {
                self.resets_done.fetch_add(1, Ordering::Relaxed);
            }
            ("reset", "POST") => *m.resets_refused.entry(outcome).or_default() += 1,
            ("forgot", "POST") => *m.forgot.entry(outcome).or_default() += 1,
            _ => {}
        }
    }

    pub fn closed(&self, why: &'static str) {
        *self.inner().closed.entry(why).or_default() += 1;
    }

    pub fn db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, g: &Gauges) -> String {
        let m = self.inner();
        let mut out = String::with_capacity(8192);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "pwreset_http_requests_total",
            "counter",
            "Requests answered, by route, method and status.",
        );
        for ((route, method, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "pwreset_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        head(
            &mut out,
            "pwreset_http_request_duration_seconds",
            "histogram",
            "Time from the request's head to the answer, by route.",
        );
        for (route, h) in &m.durations {
            h.write(
                &mut out,
                "pwreset_http_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        head(
            &mut out,
            "pwreset_resets_done_total",
            "counter",
            "Passwords set through the reset page.",
        );
        let _ = writeln!(
            out,
            "pwreset_resets_done_total {}",
            self.resets_done.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "pwreset_resets_refused_total",
            "counter",
            "Reset form posts that set no password, by reason.",
        );
        for (reason, n) in &m.resets_refused {
            let _ = writeln!(
                out,
                "pwreset_resets_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        head(
            &mut out,
            "pwreset_forgot_requests_total",
            "counter",
            "Forgot-password form posts, by outcome (accepted: answered and queued, whether or not the address has an account).",
        );
        for (outcome, n) in &m.forgot {
            let _ = writeln!(
                out,
                "pwreset_forgot_requests_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        head(
            &mut out,
            "pwreset_database_errors_total",
            "counter",
            "Requests that failed on a database error.",
        );
        let _ = writeln!(
            out,
            "pwreset_database_errors_total {}",
            self.db_errors.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "pwreset_pool_queued",
            "gauge",
            "Jobs waiting for a thread, by pool (hash: resets; db: lookups; mail: forgot requests and notices).",
        );
        for (pool, queued, _) in &g.pools {
            let _ = writeln!(out, "pwreset_pool_queued{{pool=\"{pool}\"}} {queued}");
        }
        head(
            &mut out,
            "pwreset_pool_wait_seconds",
            "histogram",
            "How long jobs waited for a thread, by pool.",
        );
        for (pool, _, h) in &g.pools {
            h.write(
                &mut out,
                "pwreset_pool_wait_seconds",
                &format!("pool=\"{pool}\""),
            );
        }
        head(
            &mut out,
            "pwreset_connections_open",
            "gauge",
            "Open client connections.",
        );
        let _ = writeln!(out, "pwreset_connections_open {}", g.connections_open);
        head(
            &mut out,
            "pwreset_connections_closed_total",
            "counter",
            "Connections the server closed, by reason (header_timeout, body_timeout, idle_timeout, evicted, evicted_reading).",
        );
        for (why, n) in &m.closed {
            let _ = writeln!(
                out,
                "pwreset_connections_closed_total{{reason=\"{why}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("reset", "POST", 303, Duration::from_millis(200), "changed");
        m.request("reset", "POST", 422, Duration::from_millis(3), "mismatch");
        m.request("forgot", "POST", 200, Duration::from_millis(2), "accepted");
        m.db_error();
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(20));
        let text = m.render(&Gauges {
            connections_open: 3,
            pools: vec![("hash", 2, h)],
        });
        for want in [
            "pwreset_http_requests_total{route=\"reset\",method=\"POST\",status=\"303\"} 1",
            "pwreset_resets_done_total 1",
            "pwreset_resets_refused_total{reason=\"mismatch\"} 1",
            "pwreset_forgot_requests_total{outcome=\"accepted\"} 1",
            "pwreset_database_errors_total 1",
            "pwreset_pool_queued{pool=\"hash\"} 2",
            "pwreset_pool_wait_seconds_bucket{pool=\"hash\",le=\"0.01\"} 0",
            "pwreset_pool_wait_seconds_bucket{pool=\"hash\",le=\"0.025\"} 1",
            "pwreset_pool_wait_seconds_bucket{pool=\"hash\",le=\"+Inf\"} 1",
            "pwreset_http_request_duration_seconds_bucket{route=\"reset\",le=\"0.25\"} 2",
            "pwreset_http_request_duration_seconds_count{route=\"reset\"} 2",
            "pwreset_connections_open 3",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }
}
