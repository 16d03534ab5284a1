//! Counters for Prometheus, kept with atomics and written out by hand in the
//! text exposition format: a handful of counters and one histogram do not
//! need a metrics crate and its global registry. Only counts and durations
//! are kept: no user, device or ticket names, so `/metrics` needs no token.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sync_protocol::{MutationOutcome, Outcome};

/// Upper bounds of the push latency buckets, in seconds.
const PUSH_BUCKETS_SECONDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// The statuses a sync request is counted under; any other is `other`.
const STATUSES: [u16; 9] = [200, 400, 401, 403, 404, 409, 413, 500, 503];

/// A sync request's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    Push,
    Pull,
}

impl SyncKind {
    const ALL: [SyncKind; 2] = [SyncKind::Push, SyncKind::Pull];

    fn as_str(self) -> &'static str {
        match self {
            SyncKind::Push => "push",
            SyncKind::Pull => "pull",
        }
    }
}

/// How one pushed mutation ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutationCount {
    Applied,
    Late,
    Duplicate,
    Rejected,
}

impl MutationCount {
    const ALL: [MutationCount; 4] = [
        MutationCount::Applied,
        MutationCount::Late,
        MutationCount::Duplicate,
        MutationCount::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            MutationCount::Applied => "applied",
            MutationCount::Late => "late",
            MutationCount::Duplicate => "duplicate",
            MutationCount::Rejected => "rejected",
        }
    }

    pub fn of(outcome: &MutationOutcome) -> Self {
        match &outcome.outcome {
            Outcome::Applied(applied) if applied.late.is_some() => MutationCount::Late,
            Outcome::Applied(_) => MutationCount::Applied,
            Outcome::Duplicate { .. } => MutationCount::Duplicate,
            Outcome::Rejected(_) => MutationCount::Rejected,
        }
    }
}

/// What `/metrics` reports besides these counters, read when it is asked.
pub struct Gauges {
    pub live_subscribers: u64,
    pub live_events: u64,
    pub live_dropped: u64,
    pub stale_after_minutes: i64,
    pub stale_devices: u64,
}

pub struct Metrics {
    /// Per kind, per status (the last slot: any other status).
    sync_requests: [[AtomicU64; STATUSES.len() + 1]; 2],
    mutations: [AtomicU64; 4],
    push_buckets: [AtomicU64; PUSH_BUCKETS_SECONDS.len()],
    push_count: AtomicU64,
    push_sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sync_requests: Default::default(),
            mutations: Default::default(),
            push_buckets: Default::default(),
            push_count: AtomicU64::new(0),
            push_sum_micros: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One sync request answered with `status` after `elapsed`.
    pub fn sync_request(&self, kind: SyncKind, status: u16, elapsed: Duration) {
        let slot = STATUSES
            .iter()
            .position(|known| *known == status)
            .unwrap_or(STATUSES.len());
        self.sync_requests[kind as usize][slot].fetch_add(1, Ordering::Relaxed);
        if kind == SyncKind::Push {
            let seconds = elapsed.as_secs_f64();
            // Buckets are cumulative when written out; here each push
            // counts in the first bucket it fits.
            if let Some(bucket) = PUSH_BUCKETS_SECONDS
                .iter()
                .position(|bound| seconds <= *bound)
            {
                self.push_buckets[bucket].fetch_add(1, Ordering::Relaxed);
            }
            self.push_count.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            self.push_sum_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }

    pub fn mutations(&self, outcomes: &[MutationOutcome]) {
        for outcome in outcomes {
            self.mutations[MutationCount::of(outcome) as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut text = String::new();
        let out = &mut text;
        header(
            out,
            "estate_sync_sync_requests_total",
            "counter",
            "Sync requests answered, by kind and HTTP status.",
        );
        for kind in SyncKind::ALL {
            for (slot, count) in self.sync_requests[kind as usize].iter().enumerate() {
                let status = STATUSES
                    .get(slot)
                    .map_or("other".to_owned(), u16::to_string);
                let count = count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "estate_sync_sync_requests_total{{kind=\"{}\",status=\"{status}\"}} {count}",
                    kind.as_str()
                );
            }
        }
        header(
            out,
            "estate_sync_mutations_total",
            "counter",
            "Pushed mutations by outcome; late ones were kept but flagged for review.",
        );
        for outcome in MutationCount::ALL {
            let count = self.mutations[outcome as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "estate_sync_mutations_total{{outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
        header(
            out,
            "estate_sync_push_duration_seconds",
            "histogram",
            "Time to answer a push, its flush included.",
        );
        let mut cumulative = 0;
        for (bound, count) in PUSH_BUCKETS_SECONDS.iter().zip(&self.push_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "estate_sync_push_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.push_count.load(Ordering::Relaxed);
        let sum_seconds = self.push_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "estate_sync_push_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "estate_sync_push_duration_seconds_sum {sum_seconds}");
        let _ = writeln!(out, "estate_sync_push_duration_seconds_count {count}");
        header(
            out,
            "estate_sync_live_subscribers",
            "gauge",
            "Dashboards connected to the live feed.",
        );
        let _ = writeln!(
            out,
            "estate_sync_live_subscribers {}",
            gauges.live_subscribers
        );
        header(
            out,
            "estate_sync_live_events_total",
            "counter",
            "Events published on the live feed.",
        );
        let _ = writeln!(out, "estate_sync_live_events_total {}", gauges.live_events);
        header(
            out,
            "estate_sync_live_subscribers_dropped_total",
            "counter",
            "Live subscribers dropped for falling behind.",
        );
        let _ = writeln!(
            out,
            "estate_sync_live_subscribers_dropped_total {}",
            gauges.live_dropped
        );
        header(
            out,
            "estate_sync_devices_stale",
            "gauge",
            "Devices whose last contact is older than the stale threshold.",
        );
        let _ = writeln!(
            out,
            "estate_sync_devices_stale{{minutes=\"{}\"}} {}",
            gauges.stale_after_minutes, gauges.stale_devices
        );
        text
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            live_subscribers: 2,
            live_events: 7,
            live_dropped: 0,
            stale_after_minutes: 30,
            stale_devices: 1,
        }
    }

    #[test]
    fn push_latencies_are_written_as_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.sync_request(SyncKind::Push, 200, Duration::from_millis(3));
        metrics.sync_request(SyncKind::Push, 200, Duration::from_millis(300));
        metrics.sync_request(SyncKind::Pull, 418, Duration::from_millis(1));
        let text = metrics.render(&gauges());
        assert!(text.contains("estate_sync_push_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("estate_sync_push_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("estate_sync_push_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("estate_sync_push_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("estate_sync_push_duration_seconds_count 2\n"));
        assert!(text.contains("estate_sync_sync_requests_total{kind=\"push\",status=\"200\"} 2\n"));
        assert!(
            text.contains("estate_sync_sync_requests_total{kind=\"pull\",status=\"other\"} 1\n")
        );
        assert!(text.contains("estate_sync_devices_stale{minutes=\"30\"} 1\n"));
    }
}
