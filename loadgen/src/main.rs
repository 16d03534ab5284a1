//! The field-day benchmark (docs/BENCHMARKS.md): seed a sled directory with
//! technicians and dispatched tickets, start the real server binary on it,
//! let 200 handhelds pull, work offline and push over loopback HTTP, check
//! that every mutation landed, and report latencies, throughput, the
//! server's peak memory and its bytes on disk against the targets.
//!
//! Exits 1 when the run fails or its correctness checks do; missed
//! performance targets are reported, not turned into an exit code.

mod device;
mod idle_connections;
mod latency;
mod live_bench;
mod login_flood;
mod phases;
mod report;
mod report_bench;
mod scheduler_bench;
mod seed;
mod server_process;
mod ticket_life;
mod ticket_list;
mod writer_stall;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use server::auth::Authority;
use server::config::AuthConfig;

use crate::phases::Settings;
use crate::report::{Baseline, Machine, Report, Seeding, ServerFootprint, Workload};
use crate::seed::Plan;
use crate::server_process::{ServerProcess, disk_usage};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "The field-day benchmark: 200 handhelds pull, work offline and push against a real estate-sync server on loopback",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Another benchmark instead of the field day.
    #[command(subcommand)]
    bench: Option<Bench>,
    /// Technicians seeded with their tickets.
    #[arg(long, default_value_t = 500)]
    technicians: usize,
    /// Handhelds taking part, one per technician (the first N technicians).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    #[arg(long, default_value_t = 40)]
    tickets_per_technician: usize,
    /// Mutations per push request (1-500). A ticket's five mutations make 5.
    #[arg(long, default_value_t = 5)]
    batch: usize,
    /// Tickets in the store; the ones beyond technicians × tickets per
    /// technician go to other technicians (scaling check).
    #[arg(long, default_value_t = 20_000)]
    tickets_total: usize,
    /// The server binary; defaults to estate-sync next to this binary
    /// (build it with `cargo build --release -p server`).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The sled directory to seed and serve; must not exist yet. Defaults to
    /// a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the data directory afterwards.
    #[arg(long)]
    keep: bool,
    /// Timed pulls of the scaling probe (one technician, sequential).
    #[arg(long, default_value_t = 50)]
    probe_pulls: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// One HTTP client (connection pool) for all devices instead of one each.
    #[arg(long)]
    shared_client: bool,
    /// Before each measured phase, wait up to this long for the machine to
    /// be idle (other work on a shared machine skews the numbers).
    #[arg(long, default_value_t = 30)]
    quiet_wait_seconds: u64,
    /// Timeout of every request.
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// The measured phases give up after this long.
    #[arg(long, default_value_t = 600)]
    max_run_seconds: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// An earlier run's JSON report (another --tickets-total) to compare the
    /// probe's pull latency with.
    #[arg(long)]
    baseline: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Bench {
    /// The monthly report (R-A3) over 100,000 tickets built in memory:
    /// statistics, XLSX, CSV and JSON, and the daily list (R-C4).
    #[command(name = "report-bench")]
    Report(report_bench::ReportBenchArgs),
    /// The time-rule scheduler holding 100,000 open deadlines of tickets in
    /// a sled store: its extra memory, and the lag of each deadline_missed.
    #[command(name = "scheduler-bench")]
    Scheduler(scheduler_bench::SchedulerBenchArgs),
    /// The supervisors' live feed: handhelds syncing continuously while
    /// dashboards listen; the delay of each event to each dashboard, and
    /// the server's memory per dashboard.
    #[command(name = "live-bench")]
    Live(live_bench::LiveBenchArgs),
    /// A flood of logins from 128 connections: the server's peak memory,
    /// and the time of a login for a known and an unknown user.
    #[command(name = "login-flood")]
    LoginFlood(login_flood::LoginFloodArgs),
    /// How long one ticket filled to its bounds holds the single writer.
    #[command(name = "writer-stall")]
    WriterStall(writer_stall::WriterStallArgs),
    /// Idle connections from many client addresses until the server refuses.
    #[command(name = "idle-connections")]
    IdleConnections(idle_connections::IdleConnectionsArgs),
    /// The office console's ticket list over 100,000 tickets of one estate:
    /// first pages, filters and searches of GET /api/v1/ticket-cards.
    #[command(name = "ticket-list")]
    TicketList(ticket_list::TicketListArgs),
}

/// How long the server may take to open its store and bind.
const SERVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the server may take to finish its requests, flush and exit.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.bench {
        Some(Bench::Report(args)) => report_bench::run(args),
        Some(Bench::Scheduler(args)) => scheduler_bench::run(args),
        Some(Bench::Live(args)) => live_bench::run(args),
        Some(Bench::LoginFlood(args)) => login_flood::run(args),
        Some(Bench::WriterStall(args)) => writer_stall::run(args),
        Some(Bench::IdleConnections(args)) => idle_connections::run(args),
        Some(Bench::TicketList(args)) => ticket_list::run(args),
        None => run(&cli),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The whole run; true when every correctness check passed.
fn run(cli: &Cli) -> Result<bool, String> {
    check_arguments(cli)?;
    let server_bin = match &cli.server_bin {
        Some(path) => path.clone(),
        None => default_server_bin()?,
    };
    if !server_bin.is_file() {
        return Err(format!(
            "no server binary at {}; build it with `cargo build --release -p server` or pass --server-bin",
            server_bin.display()
        ));
    }
    let baseline: Option<Baseline> = match &cli.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|error| format!("{} is not a report: {error}", path.display()))?,
            )
        }
        None => None,
    };

    let (data_dir, temporary) = data_directory(cli)?;
    let plan = Plan {
        technicians: cli.technicians,
        tickets_per_technician: cli.tickets_per_technician,
        tickets_total: cli.tickets_total,
    };
    eprintln!(
        "seeding {} tickets for {} technicians into {} …",
        plan.tickets_total,
        plan.technicians + plan.other_technicians(),
        data_dir.display()
    );
    let seeded = seed::seed(&data_dir, &plan, chrono::Utc::now()).map_err(|e| e.to_string())?;
    let (seeded_disk_bytes, _) = disk_usage(&data_dir).map_err(|e| e.to_string())?;
    eprintln!(
        "seeded in {:.1} s; starting {} …",
        seeded.elapsed.as_secs_f64(),
        server_bin.display()
    );

    let (server, auth) = start_server(&server_bin, &data_dir)?;
    if !server.address.ip().is_loopback() {
        return Err(format!(
            "the server listens on {}, not on loopback; refusing to send it load",
            server.address
        ));
    }
    let settings = Settings {
        base_url: format!("http://{}", server.address),
        server_pid: server.pid(),
        devices: cli.devices,
        tickets_per_technician: cli.tickets_per_technician,
        batch: cli.batch,
        probe_pulls: cli.probe_pulls,
        request_timeout: Duration::from_millis(cli.request_timeout_ms),
        shared_client: cli.shared_client,
        quiet_wait: Duration::from_secs(cli.quiet_wait_seconds),
    };
    eprintln!(
        "server {} listening on {}; running the phases …",
        server.pid(),
        server.address
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    let authority = Authority::new(&auth);
    let measured = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(cli.max_run_seconds),
            phases::run(&settings, &authority),
        )
        .await
        .map_err(|_| format!("the run took longer than {} s", cli.max_run_seconds))?
    });
    let (measured, usage) = server.finish(measured, SERVER_STOP_TIMEOUT)?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    let (disk_bytes, disk_apparent_bytes) = disk_usage(&data_dir).map_err(|e| e.to_string())?;

    let scaling = baseline.map(|b| b.scaling(measured.probe.median_ms));
    let report = Report {
        workload: Workload {
            technicians: cli.technicians,
            devices: cli.devices,
            tickets_per_technician: cli.tickets_per_technician,
            tickets_total: cli.tickets_total,
            batch: cli.batch,
            client_threads: cli.client_threads,
            shared_client: cli.shared_client,
        },
        machine: machine(),
        seeding: Seeding {
            tickets: seeded.tickets,
            users: seeded.users,
            seconds: seeded.elapsed.as_secs_f64(),
            disk_bytes: seeded_disk_bytes,
        },
        targets: report::targets(&measured, cli.tickets_total, scaling.as_ref()),
        measured,
        server: ServerFootprint {
            peak_resident_bytes: usage.peak_resident_bytes,
            cpu_seconds: usage.cpu_seconds,
            disk_bytes,
            disk_apparent_bytes,
        },
        scaling,
    };
    report::print_summary(&report);
    crate::report::write_json(cli.json.as_ref(), &report)?;

    if cli.keep {
        eprintln!("kept the data directory {}", data_dir.display());
        if let Some(temporary) = temporary {
            let _ = temporary.keep();
        }
    }
    let correct = report.measured.verification.passed()
        && report.measured.push.errors.is_empty()
        && report.measured.push.applied == report.measured.push.mutations_sent;
    Ok(correct)
}

fn check_arguments(cli: &Cli) -> Result<(), String> {
    if cli.devices == 0 || cli.devices > cli.technicians {
        return Err("--devices must be between 1 and --technicians".to_owned());
    }
    if cli.tickets_per_technician == 0 {
        return Err("--tickets-per-technician must be at least 1".to_owned());
    }
    if !(1..=sync_protocol::MAX_MUTATIONS_PER_PUSH).contains(&cli.batch) {
        return Err(format!(
            "--batch must be 1-{}",
            sync_protocol::MAX_MUTATIONS_PER_PUSH
        ));
    }
    if cli.tickets_per_technician > sync_protocol::MAX_PAGE_SIZE as usize * 10 {
        return Err("--tickets-per-technician is too large for a bounded pull".to_owned());
    }
    let needed = cli.technicians * cli.tickets_per_technician;
    if cli.tickets_total < needed {
        return Err(format!(
            "--tickets-total must be at least technicians × tickets per technician ({needed})"
        ));
    }
    if cli.tickets_total > 99_999_999 {
        return Err("--tickets-total must fit the 8-digit ticket numbers".to_owned());
    }
    if cli.probe_pulls == 0 || cli.client_threads == 0 {
        return Err("--probe-pulls and --client-threads must be at least 1".to_owned());
    }
    Ok(())
}

/// Start the server on `data_dir` with a fresh JWT secret, which the load
/// generator keeps to mint its users' tokens.
fn start_server(server_bin: &Path, data_dir: &Path) -> Result<(ServerProcess, AuthConfig), String> {
    let auth = AuthConfig {
        jwt_secret: server::auth::random_secret(),
        ..AuthConfig::default()
    };
    let server = ServerProcess::start(
        server_bin,
        data_dir,
        &auth.jwt_secret,
        SERVER_STARTUP_TIMEOUT,
    )?;
    Ok((server, auth))
}

/// `estate-sync` next to this binary: both live in `target/release`.
fn default_server_bin() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|error| format!("where am I? {error}"))?;
    let directory = me.parent().unwrap_or(Path::new("."));
    Ok(directory.join("estate-sync"))
}

/// The sled directory, and the temporary directory holding it (if any).
fn data_directory(cli: &Cli) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match &cli.data_dir {
        Some(path) => {
            if path.exists() {
                return Err(format!(
                    "{} exists; pass a path that does not, so every run starts from the same state",
                    path.display()
                ));
            }
            Ok((path.clone(), None))
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("field-day-")
                .tempdir()
                .map_err(|error| format!("cannot make a temporary directory: {error}"))?;
            Ok((temporary.path().join("data"), Some(temporary)))
        }
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_bytes,
    }
}
