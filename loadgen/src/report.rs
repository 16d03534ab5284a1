//! The run's report: what ran where, the numbers, and each target met or
//! missed. Printed as a summary; optionally written as JSON.

use serde::{Deserialize, Serialize};

use crate::phases::Measured;

/// The targets.
pub const PUSH_MUTATIONS_PER_SECOND_MIN: f64 = 35_000.0;
pub const PULL_PHASE_WALL_MS_MAX: f64 = 1_000.0;
pub const PUSH_P99_MS_MAX: f64 = 50.0;
pub const PULL_P99_MS_MAX: f64 = 20.0;
pub const PROBE_GROWTH_MAX: f64 = 1.5;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub workload: Workload,
    pub machine: Machine,
    pub seeding: Seeding,
    pub measured: Measured,
    pub server: ServerFootprint,
    pub scaling: Option<Scaling>,
    pub targets: Vec<Target>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub technicians: usize,
    pub devices: usize,
    pub tickets_per_technician: usize,
    pub tickets_total: usize,
    pub batch: usize,
    pub client_threads: usize,
    pub shared_client: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_bytes: u64,
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cores, {}, {:.1} GiB",
            self.cores,
            self.cpu_model,
            self.memory_bytes as f64 / f64::from(1u32 << 30)
        )
    }
}

/// Write a benchmark's report as pretty JSON to `path`, when one is given.
pub fn write_json(
    path: Option<&std::path::PathBuf>,
    report: &impl Serialize,
) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(report).expect("the report serializes");
    std::fs::write(path, text + "\n")
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

#[derive(Clone, Debug, Serialize)]
pub struct Seeding {
    pub tickets: usize,
    pub users: usize,
    pub seconds: f64,
    pub disk_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerFootprint {
    /// VmHWM of the server process just before it was stopped.
    pub peak_resident_bytes: u64,
    pub cpu_seconds: f64,
    /// Allocated bytes of the data directory after the server stopped (du).
    pub disk_bytes: u64,
    pub disk_apparent_bytes: u64,
}

/// One technician's pull at this store size against a baseline run's.
#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    pub baseline_tickets_total: usize,
    pub baseline_median_ms: f64,
    pub median_ms: f64,
    pub growth: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub goal: String,
    pub actual: String,
    pub met: bool,
}

/// The part of an earlier report the scaling check reads.
#[derive(Deserialize)]
pub struct Baseline {
    workload: BaselineWorkload,
    measured: BaselineMeasured,
}

#[derive(Deserialize)]
struct BaselineWorkload {
    tickets_total: usize,
}

#[derive(Deserialize)]
struct BaselineMeasured {
    probe: BaselineProbe,
}

#[derive(Deserialize)]
struct BaselineProbe {
    median_ms: f64,
}

impl Baseline {
    pub fn scaling(&self, median_ms: f64) -> Scaling {
        Scaling {
            baseline_tickets_total: self.workload.tickets_total,
            baseline_median_ms: self.measured.probe.median_ms,
            median_ms,
            growth: median_ms / self.measured.probe.median_ms,
        }
    }
}

pub fn targets(
    measured: &Measured,
    tickets_total: usize,
    scaling: Option<&Scaling>,
) -> Vec<Target> {
    let push = &measured.push;
    let pull = &measured.pull;
    let conflicts = push.late + push.duplicates + push.rejected + push.missing_blobs;
    let mut targets = vec![
        Target {
            name: "push throughput",
            goal: format!("≥ {PUSH_MUTATIONS_PER_SECOND_MIN:.0} mutations/s, durable"),
            actual: format!("{:.0} mutations/s", push.mutations_per_second),
            met: push.mutations_per_second >= PUSH_MUTATIONS_PER_SECOND_MIN,
        },
        Target {
            name: "all pulls done",
            goal: format!("≤ {PULL_PHASE_WALL_MS_MAX:.0} ms"),
            actual: format!("{:.1} ms", pull.wall_ms),
            met: pull.wall_ms <= PULL_PHASE_WALL_MS_MAX,
        },
        Target {
            name: "nothing left for a human",
            goal: "every outcome applied, none late/duplicate/rejected".to_owned(),
            actual: format!(
                "{} of {} applied; {} late, {} duplicate, {} rejected, {} missing blobs, {} errors",
                push.applied,
                push.mutations_sent,
                push.late,
                push.duplicates,
                push.rejected,
                push.missing_blobs,
                push.errors.len()
            ),
            met: push.applied == push.mutations_sent
                && conflicts == 0
                && push.errors.is_empty()
                && measured.verification.passed(),
        },
        Target {
            name: "push p99",
            goal: format!("≤ {PUSH_P99_MS_MAX:.0} ms"),
            actual: format!("{:.2} ms", push.push_latency.p99_ms),
            met: push.push_latency.p99_ms <= PUSH_P99_MS_MAX,
        },
        Target {
            name: "pull p99",
            goal: format!("≤ {PULL_P99_MS_MAX:.0} ms"),
            actual: format!("{:.2} ms", pull.latency.p99_ms),
            met: pull.latency.p99_ms <= PULL_P99_MS_MAX,
        },
    ];
    if let Some(scaling) = scaling {
        targets.push(Target {
            name: "pull growth with store size",
            goal: format!("≤ {PROBE_GROWTH_MAX}×"),
            actual: format!(
                "{:.2}× ({:.3} ms at {} tickets vs {:.3} ms at {})",
                scaling.growth,
                scaling.median_ms,
                tickets_total,
                scaling.baseline_median_ms,
                scaling.baseline_tickets_total
            ),
            met: scaling.growth <= PROBE_GROWTH_MAX,
        });
    }
    targets
}

pub fn print_summary(report: &Report) {
    let w = &report.workload;
    let m = &report.measured;
    println!();
    println!(
        "field day — {} on {} cores",
        report.machine.cpu_model, report.machine.cores
    );
    println!(
        "  workload   {} technicians × {} tickets, {} in the store, {} devices, {} mutations per push",
        w.technicians, w.tickets_per_technician, w.tickets_total, w.devices, w.batch
    );
    println!(
        "  seeding    {} tickets, {} users in {:.1} s, {} on disk (not measured)",
        report.seeding.tickets,
        report.seeding.users,
        report.seeding.seconds,
        mebibytes(report.seeding.disk_bytes)
    );
    println!(
        "  probe      {} pulls {} tickets from cursor 0, alone: median {:.3} ms ({})",
        m.probe.technician, m.probe.tickets, m.probe.median_ms, m.probe.latency
    );
    println!(
        "  pull       {} devices, {} tickets in {:.1} ms; per request {}",
        m.pull.devices, m.pull.tickets, m.pull.wall_ms, m.pull.latency
    );
    println!("             {}", cpu_line(&m.pull.cpu, m.pull.wall_ms));
    println!(
        "  push       {} mutations + {} blobs in {:.1} ms = {:.0} mutations/s ({:.0} requests/s)",
        m.push.applied,
        m.push.blob_latency.count,
        m.push.wall_ms,
        m.push.mutations_per_second,
        m.push.requests_per_second
    );
    println!("             push requests {}", m.push.push_latency);
    println!("             blob uploads  {}", m.push.blob_latency);
    println!("             {}", cpu_line(&m.push.cpu, m.push.wall_ms));
    let threads: Vec<String> = m
        .push
        .server_cpu_by_thread
        .iter()
        .map(|(name, seconds)| format!("{name} {seconds:.2} s"))
        .collect();
    println!("             server CPU by thread: {}", threads.join(", "));
    let v = &m.verification;
    println!(
        "  verified   {} devices at their last seq, {} tickets and {} signature images read back, {} tickets re-pulled",
        v.devices_at_last_seq, v.tickets_checked, v.blobs_checked, v.tickets_repulled
    );
    for problem in v.problems.iter().take(10) {
        println!("             PROBLEM: {problem}");
    }
    for error in m.push.errors.iter().take(10) {
        println!("             ERROR: {error}");
    }
    println!(
        "  server     peak memory (VmHWM) {}, data dir {} on disk (apparent {}), {:.1} s CPU",
        mebibytes(report.server.peak_resident_bytes),
        mebibytes(report.server.disk_bytes),
        mebibytes(report.server.disk_apparent_bytes),
        report.server.cpu_seconds
    );
    if report.scaling.is_none() {
        println!(
            "  scaling    pass --baseline REPORT.json of a run with another --tickets-total to compare"
        );
    }
    println!("  targets");
    for target in &report.targets {
        let verdict = if target.met { "met   " } else { "MISSED" };
        println!(
            "    {verdict} {:<28} goal {:<48} actual {}",
            target.name, target.goal, target.actual
        );
    }
}

fn cpu_line(cpu: &crate::phases::CpuSpent, wall_ms: f64) -> String {
    let cores = |seconds: f64| seconds / (wall_ms / 1000.0);
    format!(
        "CPU: server {:.2} s ({:.2} cores), load generator {:.2} s ({:.2} cores), \
         everything else on the machine {:.2} s ({:.2} cores; {:.2} busy before the phase)",
        cpu.server_seconds,
        cores(cpu.server_seconds),
        cpu.loadgen_seconds,
        cores(cpu.loadgen_seconds),
        cpu.other_seconds,
        cores(cpu.other_seconds),
        cpu.machine_busy_cores_before
    )
}

pub fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
