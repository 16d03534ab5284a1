//! `loadgen scheduler-bench`: the time-rule scheduler at scale
//! (docs/BENCHMARKS.md, "Scheduler").
//!
//! Seeds a temporary sled store through the writer, as intake and dispatch
//! would, with open tickets until they hold `--timers` open deadlines:
//! dispatched public-area work orders with an appointment booked days ahead
//! (R-P1, R-K2 and R-C2), and coordination tickets (two R-P3 and two R-P4
//! deadlines). Then, in the same process:
//!
//! 1. Memory: scans the store once as the scheduler will (so that sled's
//!    cache and the allocator are warm), reads the resident set, starts the
//!    scheduler (its start-up scan loads every deadline), and reads it
//!    again. The difference is the memory the scheduler's state takes,
//!    including whatever its scan left to the allocator.
//! 2. Lag: books new appointments on `--due` of the work orders, so that
//!    their R-P1 deadlines fall due during the run: spread evenly over
//!    `--spread-seconds`, except `--burst` of them due at one instant, as
//!    every same-day work order of an estate is at the end of the day. Each
//!    deadline's lag is the time of its `deadline_missed` history entry (the
//!    writer's clock as it applied the command) minus its due time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use server::calendars::Calendars;
use server::clock::{Clock, SystemClock};
use server::scheduler::{Scheduler, SchedulerHandle};
use server::store::Store;
use server::writer::{AfterCommit, Command, Reply, Writer};
use sync_protocol::{
    Area, Category, EstateId, HistoryEvent, Intake, OfficeActionRequest, OfficeOp, Reporter,
    RuleId, Source, Ticket, TicketId, TicketKind, UserId,
};
use tokio::task::JoinSet;

use crate::latency::Percentiles;
use crate::report::Machine;
use crate::server_process::process_usage;

/// The targets.
const TARGET_EXTRA_BYTES: u64 = 50 * 1024 * 1024;
const TARGET_MAX_LAG_MS: f64 = 1000.0;
/// Writer commands in flight while seeding: enough to fill its commit groups.
const SEEDING_IN_FLIGHT: usize = 512;
/// Of every ten tickets seeded, this many are work orders (three deadlines
/// each) and the rest coordination tickets (four each).
const WORK_ORDERS_PER_TEN: usize = 7;
const TECHNICIANS: usize = 50;
/// Time to book the appointments before the first of them falls due.
const LEAD_TIME: Duration = Duration::from_secs(5);
/// How long after the last due time the missed deadlines may take to land.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_QUEUE: usize = 4096;

#[derive(Args, Debug)]
pub struct SchedulerBenchArgs {
    /// Open deadlines the scheduler holds.
    #[arg(long, default_value_t = 100_000)]
    timers: usize,
    /// Of those, deadlines moved to fall due during the run.
    #[arg(long, default_value_t = 3000)]
    due: usize,
    /// Of the deadlines falling due, these fall due at one instant.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// The deadlines falling due are spread over this many seconds.
    #[arg(long, default_value_t = 20)]
    spread_seconds: u64,
    /// Worker threads of the runtime the scheduler runs on.
    #[arg(long, default_value_t = 2)]
    worker_threads: usize,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    machine: Machine,
    tickets: usize,
    work_orders: usize,
    coordination_tickets: usize,
    seeding_seconds: f64,
    /// Deadlines the scheduler held after its start-up scan.
    timers: u64,
    scan_seconds: f64,
    resident_before_bytes: u64,
    resident_after_bytes: u64,
    extra_resident_bytes: u64,
    peak_resident_bytes: u64,
    /// Deadlines that fell due during the run, and their lag.
    due: usize,
    burst: usize,
    spread_seconds: u64,
    lag: Percentiles,
    burst_lag: Percentiles,
    /// Deadlines that fell due but had no `deadline_missed` in time.
    not_recorded: usize,
    target_extra_bytes: u64,
    target_max_lag_ms: f64,
    targets_met: bool,
}

/// Seed, measure, print; a missed target is reported, not an error.
pub fn run(args: &SchedulerBenchArgs) -> Result<bool, String> {
    if args.timers == 0 || args.due == 0 || args.burst > args.due || args.worker_threads == 0 {
        return Err(
            "--timers, --due and --worker-threads must be at least 1, --burst at most --due"
                .to_owned(),
        );
    }
    let plan = Plan::for_timers(args.timers);
    if plan.work_orders() < args.due {
        return Err(format!(
            "--due {} exceeds the {} work orders seeded for --timers {}",
            args.due,
            plan.work_orders(),
            args.timers
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    let directory = tempfile::Builder::new()
        .prefix("scheduler-bench-")
        .tempdir()
        .map_err(|error| format!("cannot make a temporary directory: {error}"))?;
    let store = Store::open(directory.path()).map_err(|e| e.to_string())?;
    let report = runtime.block_on(measure(args, &plan, store))?;
    print_summary(&report);
    crate::report::write_json(args.json.as_ref(), &report)?;
    Ok(report.not_recorded == 0)
}

async fn measure(
    args: &SchedulerBenchArgs,
    plan: &Plan,
    store: Store,
) -> Result<BenchReport, String> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    eprintln!(
        "seeding {} tickets ({} work orders, {} coordination tickets) …",
        plan.tickets,
        plan.work_orders(),
        plan.tickets - plan.work_orders()
    );
    let started = Instant::now();
    let work_orders = seed(&store, clock.clone(), plan).await?;
    let seeding_seconds = started.elapsed().as_secs_f64();

    eprintln!("seeded in {seeding_seconds:.1} s; warming the store with a scan …");
    warm(&store).await?;
    let before = process_usage(std::process::id())?;
    let scheduler = Scheduler::new();
    let (writer, writer_thread) = Writer::start_with_notices(
        store.clone(),
        clock.clone(),
        WRITE_QUEUE,
        Calendars::default().into(),
        AfterCommit {
            tickets: Some(scheduler.notices()),
            users: None,
        },
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let scheduler = scheduler
        .start(
            store.clone(),
            writer.clone(),
            clock.clone(),
            Calendars::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let scan_seconds = started.elapsed().as_secs_f64();
    let after = process_usage(std::process::id())?;
    let timers = scheduler.pending();
    eprintln!(
        "the scheduler holds {timers} deadlines after a {scan_seconds:.1} s scan; {} deadlines fall due over {} s …",
        args.due, args.spread_seconds
    );

    let due = schedule_due(args, &writer, clock.as_ref(), &work_orders[..args.due]).await?;
    let last_due_at = due
        .iter()
        .map(|(_, due_at)| *due_at)
        .max()
        .expect("at least one");
    wait_for_fires(&scheduler, clock.as_ref(), last_due_at, args.due as u64).await;
    let lags = lags(&store, &due)?;
    let not_recorded = lags.iter().filter(|lag| lag.is_none()).count();
    let burst_lags: Vec<Duration> = lags[..args.burst].iter().flatten().copied().collect();
    let lags: Vec<Duration> = lags.into_iter().flatten().collect();

    scheduler.stop().await;
    drop(writer);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the writer thread panicked".to_owned())?;
    let peak = process_usage(std::process::id())?;
    let extra_resident_bytes = after.resident_bytes.saturating_sub(before.resident_bytes);
    let lag = Percentiles::of(&lags);
    Ok(BenchReport {
        machine: crate::machine(),
        tickets: plan.tickets,
        work_orders: plan.work_orders(),
        coordination_tickets: plan.tickets - plan.work_orders(),
        seeding_seconds,
        timers,
        scan_seconds,
        resident_before_bytes: before.resident_bytes,
        resident_after_bytes: after.resident_bytes,
        extra_resident_bytes,
        peak_resident_bytes: peak.peak_resident_bytes,
        due: args.due,
        burst: args.burst,
        spread_seconds: args.spread_seconds,
        lag,
        burst_lag: Percentiles::of(&burst_lags),
        not_recorded,
        target_extra_bytes: TARGET_EXTRA_BYTES,
        target_max_lag_ms: TARGET_MAX_LAG_MS,
        targets_met: extra_resident_bytes <= TARGET_EXTRA_BYTES
            && lag.max_ms <= TARGET_MAX_LAG_MS
            && not_recorded == 0,
    })
}

/// How many tickets of each kind hold the wanted number of deadlines.
struct Plan {
    tickets: usize,
}

impl Plan {
    fn for_timers(timers: usize) -> Self {
        // Ten tickets hold 7 × 3 + 3 × 4 = 33 deadlines.
        let per_ten = WORK_ORDERS_PER_TEN * 3 + (10 - WORK_ORDERS_PER_TEN) * 4;
        Self {
            tickets: (timers * 10).div_ceil(per_ten),
        }
    }

    fn is_work_order(index: usize) -> bool {
        index % 10 < WORK_ORDERS_PER_TEN
    }

    fn work_orders(&self) -> usize {
        (0..self.tickets)
            .filter(|&index| Self::is_work_order(index))
            .count()
    }
}

/// Create the tickets through a writer of their own, as intake and dispatch
/// would; returns the work orders' ids in the order they were planned.
async fn seed(store: &Store, clock: Arc<dyn Clock>, plan: &Plan) -> Result<Vec<TicketId>, String> {
    let (writer, writer_thread) =
        Writer::start(store.clone(), clock.clone(), WRITE_QUEUE).map_err(|e| e.to_string())?;
    let now = clock.now();
    let workers = SEEDING_IN_FLIGHT.min(plan.tickets);
    let mut seeding = JoinSet::new();
    for worker in 0..workers {
        let writer = writer.clone();
        let tickets = plan.tickets;
        seeding.spawn(async move {
            let mut work_orders = Vec::new();
            for index in (worker..tickets).step_by(workers) {
                let ticket = seed_ticket(&writer, index, now).await?;
                if ticket.kind == TicketKind::WorkOrder {
                    work_orders.push((index, ticket.id));
                }
            }
            Ok::<_, String>(work_orders)
        });
    }
    let mut work_orders = Vec::new();
    while let Some(done) = seeding.join_next().await {
        work_orders.extend(done.map_err(|e| e.to_string())??);
    }
    drop(writer);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the seeding writer panicked".to_owned())?;
    work_orders.sort_unstable();
    Ok(work_orders.into_iter().map(|(_, id)| id).collect())
}

/// One ticket: a work order dispatched with an appointment one to seven
/// days ahead, or a coordination ticket just received.
async fn seed_ticket(writer: &Writer, index: usize, now: DateTime<Utc>) -> Result<Ticket, String> {
    let work_order = Plan::is_work_order(index);
    let intake = Intake {
        estate: EstateId::parse("E01").expect("a valid estate"),
        kind: if work_order {
            TicketKind::WorkOrder
        } else {
            TicketKind::CoordinationTicket
        },
        category: Category::Repair,
        // Public areas have three days to finish (R-K2), so that no R-K2
        // deadline falls due at local midnight during the run.
        area: Area::PublicArea,
        source: Source::Phone,
        reporter: Reporter {
            name: "业主 Owner".to_owned(),
            phone: Some("138 0000 0000".to_owned()),
        },
        location: format!(
            "{}-{}-{}",
            index % 20 + 1,
            index % 4 + 1,
            100 + index % 1800
        ),
        description: "公区照明故障 Public-area lighting fault".to_owned(),
        received_at: now,
        follow_up_of: None,
        booking: None,
    };
    let created = submit(
        writer,
        Command::CreateTicket {
            by: user("kefu"),
            intake,
            named: None,
        },
    )
    .await?;
    if !work_order {
        return Ok(created);
    }
    let technician = user(&format!("tech{:02}", index % TECHNICIANS));
    office(writer, &created.id, OfficeOp::Dispatch { technician }).await?;
    let days_ahead = 1 + (index % 7) as i64;
    let appointment = OfficeOp::SetAppointment {
        at: now + chrono::Duration::days(days_ahead),
        note: String::new(),
    };
    office(writer, &created.id, appointment).await
}

/// Read every ticket once, a page at a time, as the scheduler's scan does.
async fn warm(store: &Store) -> Result<(), String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut after: Option<TicketId> = None;
        loop {
            let page = store
                .all_tickets(after.as_ref(), 1000)
                .map_err(|e| e.to_string())?;
            if page.len() < 1000 {
                return Ok(());
            }
            after = page.last().map(|ticket| ticket.id.clone());
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Book the appointments that make the deadlines fall due during the run;
/// returns each ticket with its due time, the burst first.
async fn schedule_due(
    args: &SchedulerBenchArgs,
    writer: &Writer,
    clock: &dyn Clock,
    tickets: &[TicketId],
) -> Result<Vec<(TicketId, DateTime<Utc>)>, String> {
    let first_due_at = clock.now() + chrono::Duration::from_std(LEAD_TIME).expect("small");
    let spread = chrono::Duration::seconds(args.spread_seconds as i64);
    let burst_at = first_due_at + spread / 2;
    let spread_count = (args.due - args.burst).max(1) as i32;
    let due: Vec<(TicketId, DateTime<Utc>)> = tickets
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let due_at = if index < args.burst {
                burst_at
            } else {
                first_due_at + spread * (index - args.burst) as i32 / spread_count
            };
            (id.clone(), due_at)
        })
        .collect();
    let mut booking = JoinSet::new();
    for chunk in due.chunks(due.len().div_ceil(SEEDING_IN_FLIGHT)) {
        let writer = writer.clone();
        let chunk = chunk.to_vec();
        booking.spawn(async move {
            for (id, due_at) in chunk {
                let appointment = OfficeOp::SetAppointment {
                    at: due_at,
                    note: String::new(),
                };
                office(&writer, &id, appointment).await?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = booking.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    if clock.now() >= first_due_at {
        return Err("booking the appointments took longer than the lead time".to_owned());
    }
    Ok(due)
}

/// Wait until the scheduler has answered `count` fires, or the last due time
/// plus [`SETTLE_TIMEOUT`] has passed.
async fn wait_for_fires(
    scheduler: &SchedulerHandle,
    clock: &dyn Clock,
    last_due_at: DateTime<Utc>,
    count: u64,
) {
    let give_up_at = last_due_at + chrono::Duration::from_std(SETTLE_TIMEOUT).expect("small");
    while scheduler.fired() < count && clock.now() < give_up_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each deadline's lag, in the order given; `None` when no miss was recorded.
fn lags(store: &Store, due: &[(TicketId, DateTime<Utc>)]) -> Result<Vec<Option<Duration>>, String> {
    let mut lags = Vec::with_capacity(due.len());
    for (id, due_at) in due {
        let ticket = store
            .ticket(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id} is gone"))?;
        let recorded_at = ticket.history.iter().find_map(|entry| match entry.event {
            HistoryEvent::DeadlineMissed {
                rule,
                due_at: missed,
            } if rule == RuleId::P1 && missed == *due_at => Some(entry.at),
            _ => None,
        });
        lags.push(recorded_at.and_then(|at| (at - *due_at).to_std().ok()));
    }
    Ok(lags)
}

async fn submit(writer: &Writer, command: Command) -> Result<Ticket, String> {
    match writer.submit(command).await {
        Ok(Reply::Ticket(ticket)) => Ok(*ticket),
        Ok(_) => Err("the writer answered something other than a ticket".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

async fn office(writer: &Writer, ticket_id: &TicketId, op: OfficeOp) -> Result<Ticket, String> {
    let command = Command::Office {
        by: user("diaodu"),
        ticket_id: ticket_id.clone(),
        request: OfficeActionRequest {
            expected_version: None,
            op,
        },
        named: None,
    };
    submit(writer, command).await
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("a valid user id")
}

fn print_summary(report: &BenchReport) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "scheduler bench: {} deadlines of {} tickets ({} work orders, {} coordination tickets), {} × {}",
        report.timers,
        report.tickets,
        report.work_orders,
        report.coordination_tickets,
        report.machine.cores,
        report.machine.cpu_model
    );
    println!(
        "  seeded through the writer in {:.1} s; the scheduler's start-up scan took {:.2} s",
        report.seeding_seconds, report.scan_seconds
    );
    println!(
        "  resident memory {:.1} MiB before the scheduler, {:.1} MiB after: {:.1} MiB extra (peak of the run {:.1} MiB)",
        mib(report.resident_before_bytes),
        mib(report.resident_after_bytes),
        mib(report.extra_resident_bytes),
        mib(report.peak_resident_bytes)
    );
    println!(
        "  lag of deadline_missed, {} deadlines over {} s ({} at one instant): {}",
        report.due, report.spread_seconds, report.burst, report.lag
    );
    println!("  lag of the burst alone: {}", report.burst_lag);
    if report.not_recorded > 0 {
        println!(
            "  {} deadlines had no deadline_missed within {} s",
            report.not_recorded,
            SETTLE_TIMEOUT.as_secs()
        );
    }
    println!(
        "  targets: extra memory ≤ {:.0} MiB and every miss within {:.0} ms: {}",
        mib(report.target_extra_bytes),
        report.target_max_lag_ms,
        if report.targets_met { "met" } else { "MISSED" }
    );
}
