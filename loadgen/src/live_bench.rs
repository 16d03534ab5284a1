//! `loadgen live-bench`: the supervisors' live feed under load
//! (docs/BENCHMARKS.md, "Live feed: 200 devices, 100 dashboards").
//!
//! Seeds a sled directory, starts the real release server on it, and:
//!
//! 1. Memory: reads the server's resident set, opens `--subscribers`
//!    streams of `GET /api/v1/live` as the supervisor, lets them sit idle,
//!    and reads it again; the difference over the subscribers is the memory
//!    one dashboard costs.
//! 2. Delivery: `--devices` handhelds sync continuously (a push of one note,
//!    then a pull, every `--interval-ms`) for `--seconds`. Every
//!    `device_contact` event that reaches a subscriber gives two delays:
//!    from the contact's server time (the event's `at`, written by the
//!    writer as it applied the request, so the durable commit is included)
//!    and from the moment the device had its answer. Server and load
//!    generator share the machine's clock. A device's requests are
//!    sequential and each makes one event, so a subscriber's k-th event of a
//!    device is that device's k-th request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use server::auth::Authority;
use sync_protocol::{
    Cursor, DeviceId, DeviceMutation, DeviceOp, DeviceReport, DeviceSeq, LiveEvent, LiveEventBody,
    Outcome, PROTOCOL_HEADER, PROTOCOL_VERSION, PullRequest, PullResponse, PushRequest,
    PushResponse, Role, UserId, Version,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::device::{Device, expect_success};
use crate::latency::Percentiles;
use crate::report::Machine;
use crate::seed::{self, Plan, technician_id, user_record};
use crate::server_process::process_usage;

/// The issue's target for the delivery delay.
const TARGET_P95_MS: f64 = 500.0;
/// Tickets each technician holds; the notes go to them in turn.
const TICKETS_PER_TECHNICIAN: usize = 5;
/// How long the subscribers sit idle before the memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// How long after the last sync the last events may take to arrive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct LiveBenchArgs {
    /// Handhelds syncing continuously.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Dashboards on the live feed.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// How long the devices sync.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Pause of each device between one sync (push, then pull) and the next.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// The server binary; defaults to estate-sync next to this binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    machine: Machine,
    devices: usize,
    subscribers: usize,
    seconds: u64,
    interval_ms: u64,
    #[serde(flatten)]
    measured: Measured,
    peak_resident_bytes: u64,
    server_cpu_seconds: f64,
    target_p95_ms: f64,
    target_met: bool,
}

#[derive(Debug, Serialize)]
struct Measured {
    /// Sync requests answered (pushes and pulls).
    syncs: usize,
    sync_errors: usize,
    /// `device_contact` events per second, as one subscriber sees them.
    events_per_second: f64,
    /// (event, subscriber) pairs received.
    deliveries: usize,
    /// Sync answers whose event some subscriber never received.
    missing_deliveries: usize,
    /// From the event's server time to its arrival at a subscriber.
    from_contact: Percentiles,
    /// From the device having its answer to the event's arrival; events
    /// published before the answer was read count as 0.
    from_answer: Percentiles,
    /// Streams that ended or got a `reset`.
    dropped_subscribers: usize,
    resident_before_bytes: u64,
    resident_with_subscribers_bytes: u64,
    bytes_per_subscriber: f64,
    /// CPU while the devices synced and the events drained: the server's
    /// and this load generator's (devices and subscribers), out of 2 × the
    /// wall time on a 2-core machine.
    sync_wall_seconds: f64,
    sync_server_cpu_seconds: f64,
    sync_loadgen_cpu_seconds: f64,
}

/// Seed, measure, print; a missed target is reported, not an error.
pub fn run(args: &LiveBenchArgs) -> Result<bool, String> {
    if args.devices == 0 || args.subscribers == 0 || args.seconds == 0 || args.client_threads == 0 {
        return Err(
            "--devices, --subscribers, --seconds and --client-threads must be at least 1"
                .to_owned(),
        );
    }
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => crate::default_server_bin()?,
    };
    let directory = tempfile::Builder::new()
        .prefix("live-bench-")
        .tempdir()
        .map_err(|error| format!("cannot make a temporary directory: {error}"))?;
    let data_dir = directory.path().join("data");
    let plan = Plan {
        technicians: args.devices,
        tickets_per_technician: TICKETS_PER_TECHNICIAN,
        tickets_total: args.devices * TICKETS_PER_TECHNICIAN,
    };
    seed::seed(&data_dir, &plan, Utc::now()).map_err(|e| e.to_string())?;
    seed::add_supervisors(&data_dir, args.subscribers).map_err(|e| e.to_string())?;
    let (server, auth) = crate::start_server(&server_bin, &data_dir)?;
    eprintln!("server {} listening on {} …", server.pid(), server.address);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    let base_url = format!("http://{}", server.address);
    let measured = runtime.block_on(measure(
        args,
        &base_url,
        server.pid(),
        &Authority::new(&auth),
    ));
    let (measured, usage) = server.finish(measured, SERVER_STOP_TIMEOUT)?;
    runtime.shutdown_timeout(Duration::from_secs(5));

    let report = BenchReport {
        machine: crate::machine(),
        devices: args.devices,
        subscribers: args.subscribers,
        seconds: args.seconds,
        interval_ms: args.interval_ms,
        peak_resident_bytes: usage.peak_resident_bytes,
        server_cpu_seconds: usage.cpu_seconds,
        target_p95_ms: TARGET_P95_MS,
        target_met: measured.from_contact.p95_ms <= TARGET_P95_MS
            && measured.dropped_subscribers == 0,
        measured,
    };
    print_summary(&report);
    crate::report::write_json(args.json.as_ref(), &report)?;
    Ok(report.measured.sync_errors == 0 && report.measured.dropped_subscribers == 0)
}

/// CPU used during the sync phase.
struct Cpu {
    wall_seconds: f64,
    server_seconds: f64,
    loadgen_seconds: f64,
}

/// The server's VmRSS before the subscribers connected and with them idle.
struct Resident {
    before: u64,
    with_subscribers: u64,
}

/// When each device had the answers to its sync requests, in order.
type Answers = Arc<Mutex<HashMap<DeviceId, Vec<SystemTime>>>>;

/// What one subscriber saw: per event, the device, the event's server time
/// and the arrival time.
struct Seen {
    arrivals: Vec<(DeviceId, DateTime<Utc>, SystemTime)>,
    dropped: bool,
}

async fn measure(
    args: &LiveBenchArgs,
    base_url: &str,
    server_pid: u32,
    authority: &Authority,
) -> Result<Measured, String> {
    let client = client()?;

    // The devices' first pull, before anything is measured: each learns its
    // tickets and its cursor.
    let mut handhelds = Vec::with_capacity(args.devices);
    for index in 0..args.devices {
        let technician = technician_id(index);
        let token = token_for(authority, technician.clone(), Role::Technician)?;
        let device = Device::new(
            index,
            technician,
            token.clone(),
            client.clone(),
            base_url.to_owned(),
        );
        let pulled = device.apply_pull(&device.pull_raw(Cursor(0), 500).await?)?;
        if pulled.tickets.is_empty() {
            return Err(format!("{} holds no tickets", device.device_id));
        }
        handhelds.push(Handheld {
            device_id: device.device_id,
            token,
            client: client.clone(),
            base_url: base_url.to_owned(),
            tickets: pulled.tickets,
            cursor: pulled.cursor,
            seq: 0,
        });
    }

    let before = process_usage(server_pid)?;
    let (stop, stopped) = watch::channel(false);
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut streams = JoinSet::new();
    for index in 0..args.subscribers {
        // A dashboard each, of a supervisor each.
        let supervisor = token_for(authority, seed::supervisor_id(index), Role::Supervisor)?;
        let response = client
            .get(format!("{base_url}/api/v1/live"))
            .bearer_auth(&supervisor)
            .send()
            .await
            .map_err(|error| format!("live feed: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("live feed: HTTP {}", response.status()));
        }
        streams.spawn(subscribe(response, stopped.clone(), delivered.clone()));
    }
    tokio::time::sleep(IDLE_SETTLE).await;
    let with_subscribers = process_usage(server_pid)?;
    eprintln!(
        "{} subscribers connected; {} devices sync for {} s …",
        args.subscribers, args.devices, args.seconds
    );

    let answers: Answers = Arc::default();
    let started = Instant::now();
    let cpu_before = (
        process_usage(server_pid)?.cpu_seconds,
        process_usage(std::process::id())?.cpu_seconds,
    );
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let interval = Duration::from_millis(args.interval_ms);
    let mut syncing = JoinSet::new();
    for handheld in handhelds {
        syncing.spawn(handheld.sync_until(until, interval, answers.clone()));
    }
    let mut syncs = 0;
    let mut sync_errors = 0;
    while let Some(result) = syncing.join_next().await {
        let (done, error) = result.map_err(|error| format!("a device failed: {error}"))?;
        syncs += done;
        if let Some(error) = error {
            if sync_errors < 3 {
                eprintln!("{error}");
            }
            sync_errors += 1;
        }
    }
    let answers = std::mem::take(&mut *answers.lock().expect("answers lock"));
    let expected: usize = answers.values().map(Vec::len).sum();
    wait_for_deliveries(&delivered, expected * args.subscribers).await;
    let cpu = Cpu {
        wall_seconds: started.elapsed().as_secs_f64(),
        server_seconds: process_usage(server_pid)?.cpu_seconds - cpu_before.0,
        loadgen_seconds: process_usage(std::process::id())?.cpu_seconds - cpu_before.1,
    };
    // A watch, not a notify: a stream busy with a chunk sees it next time.
    stop.send_replace(true);
    let mut seen = Vec::with_capacity(args.subscribers);
    while let Some(result) = streams.join_next().await {
        seen.push(result.map_err(|error| format!("a subscriber failed: {error}"))?);
    }
    Ok(summarize(
        args,
        &answers,
        &seen,
        syncs,
        sync_errors,
        cpu,
        Resident {
            before: before.resident_bytes,
            with_subscribers: with_subscribers.resident_bytes,
        },
    ))
}

/// Wait until every subscriber has its share of the events, or the drain
/// timeout passes (a missing event then shows in the report).
async fn wait_for_deliveries(delivered: &AtomicUsize, expected: usize) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while delivered.load(Ordering::Acquire) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Read one stream until told to stop or until it ends: its SSE lines,
/// split on newlines across chunk boundaries.
async fn subscribe(
    mut response: reqwest::Response,
    mut stop: watch::Receiver<bool>,
    delivered: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen {
        arrivals: Vec::new(),
        dropped: false,
    };
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = stop.wait_for(|stop| *stop) => return seen,
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) | Err(_) => {
                seen.dropped = true;
                return seen;
            }
        };
        let arrived = SystemTime::now();
        pending.extend_from_slice(&chunk);
        for data in take_data_lines(&mut pending) {
            let Ok(event) = serde_json::from_slice::<LiveEvent>(&data) else {
                seen.dropped = true;
                return seen;
            };
            match event.body {
                LiveEventBody::DeviceContact { device, .. } => {
                    seen.arrivals.push((device.device_id, event.at, arrived));
                    delivered.fetch_add(1, Ordering::AcqRel);
                }
                LiveEventBody::Reset {} => {
                    seen.dropped = true;
                    return seen;
                }
                LiveEventBody::DeadlineMissed { .. } | LiveEventBody::FactReviewed { .. } => {}
            }
        }
    }
}

/// The `data:` fields of the complete lines in `pending`, trimmed; a
/// partial last line stays for the next chunk. The feed's events are one
/// `data:` line each (JSON holds no raw newline).
fn take_data_lines(pending: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        if let Some(field) = line.strip_prefix(b"data:") {
            data.push(field.trim_ascii().to_vec());
        }
    }
    data
}

fn summarize(
    args: &LiveBenchArgs,
    answers: &HashMap<DeviceId, Vec<SystemTime>>,
    seen: &[Seen],
    syncs: usize,
    sync_errors: usize,
    cpu: Cpu,
    resident: Resident,
) -> Measured {
    let mut from_contact = Vec::new();
    let mut from_answer = Vec::new();
    let mut missing_deliveries = 0;
    for subscriber in seen {
        let mut next_of_device: HashMap<&DeviceId, usize> = HashMap::new();
        for (device, at, arrived) in &subscriber.arrivals {
            let at: SystemTime = (*at).into();
            from_contact.push(arrived.duration_since(at).unwrap_or_default());
            let k = next_of_device.entry(device).or_default();
            if let Some(answered) = answers.get(device).and_then(|times| times.get(*k)) {
                from_answer.push(arrived.duration_since(*answered).unwrap_or_default());
            }
            *k += 1;
        }
        for (device, times) in answers {
            let received = next_of_device.get(device).copied().unwrap_or(0);
            missing_deliveries += times.len().saturating_sub(received);
        }
    }
    let deliveries = from_contact.len();
    let per_subscriber = deliveries as f64 / seen.len().max(1) as f64;
    // Signed: the allocator may hand memory back between the two reads.
    let extra_bytes = resident.with_subscribers as f64 - resident.before as f64;
    Measured {
        syncs,
        sync_errors,
        events_per_second: per_subscriber / args.seconds as f64,
        deliveries,
        missing_deliveries,
        from_contact: Percentiles::of(&from_contact),
        from_answer: Percentiles::of(&from_answer),
        dropped_subscribers: seen.iter().filter(|s| s.dropped).count(),
        resident_before_bytes: resident.before,
        resident_with_subscribers_bytes: resident.with_subscribers,
        bytes_per_subscriber: extra_bytes / args.subscribers as f64,
        sync_wall_seconds: cpu.wall_seconds,
        sync_server_cpu_seconds: cpu.server_seconds,
        sync_loadgen_cpu_seconds: cpu.loadgen_seconds,
    }
}

fn print_summary(report: &BenchReport) {
    println!(
        "live feed: {} devices, {} subscribers, {} s, a sync every {} ms per device",
        report.devices, report.subscribers, report.seconds, report.interval_ms
    );
    println!(
        "  syncs answered {} ({} errors); {:.0} device_contact events/s; {} deliveries, {} missing",
        report.measured.syncs,
        report.measured.sync_errors,
        report.measured.events_per_second,
        report.measured.deliveries,
        report.measured.missing_deliveries
    );
    println!("  contact → subscriber: {}", report.measured.from_contact);
    println!("  answer → subscriber:  {}", report.measured.from_answer);
    println!(
        "  dropped subscribers {}; server RSS {:.1} MiB before, {:.1} MiB with the subscribers idle: {:.1} KiB per subscriber; peak {:.1} MiB; server CPU {:.1} s",
        report.measured.dropped_subscribers,
        mib(report.measured.resident_before_bytes),
        mib(report.measured.resident_with_subscribers_bytes),
        report.measured.bytes_per_subscriber / 1024.0,
        mib(report.peak_resident_bytes),
        report.server_cpu_seconds
    );
    println!(
        "  while syncing ({:.1} s): server CPU {:.1} s, load generator CPU {:.1} s",
        report.measured.sync_wall_seconds,
        report.measured.sync_server_cpu_seconds,
        report.measured.sync_loadgen_cpu_seconds
    );
    println!(
        "  target p95 <= {} ms and no subscriber dropped: {}",
        report.target_p95_ms,
        if report.target_met { "met" } else { "MISSED" }
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // Loopback only: never through a proxy from the environment.
        .no_proxy()
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))
}

fn token_for(authority: &Authority, user: UserId, role: Role) -> Result<String, String> {
    authority
        .issue(&user_record(user, role, String::new()))
        .map(|(token, _)| token)
        .map_err(|error| format!("cannot mint a token: {error}"))
}

/// A handheld syncing continuously: a push of one note on its tickets in
/// turn, then a pull from its cursor.
struct Handheld {
    device_id: DeviceId,
    token: String,
    client: reqwest::Client,
    base_url: String,
    tickets: Vec<(sync_protocol::TicketId, Version)>,
    cursor: Cursor,
    seq: u64,
}

impl Handheld {
    /// Sync until `until`; the requests answered, and the first error.
    async fn sync_until(
        mut self,
        until: Instant,
        interval: Duration,
        answers: Answers,
    ) -> (usize, Option<String>) {
        let mut done = 0;
        while Instant::now() < until {
            for push in [true, false] {
                let synced = if push {
                    self.push().await
                } else {
                    self.pull().await
                };
                if let Err(error) = synced {
                    return (done, Some(format!("{}: {error}", self.device_id)));
                }
                let answered = SystemTime::now();
                answers
                    .lock()
                    .expect("answers lock")
                    .entry(self.device_id.clone())
                    .or_default()
                    .push(answered);
                done += 1;
            }
            tokio::time::sleep(interval).await;
        }
        (done, None)
    }

    fn report(&self) -> DeviceReport {
        DeviceReport {
            device_id: self.device_id.clone(),
            app_version: "loadgen-live/1".to_owned(),
            outbox_depth: 0,
            oldest_pending_age_ms: None,
            device_time: Utc::now(),
        }
    }

    async fn post(&self, path: &str, body: Vec<u8>, what: &str) -> Result<Vec<u8>, String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .header("content-type", "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|error| format!("{what}: {error}"))?;
        expect_success(response, what).await
    }

    async fn push(&mut self) -> Result<(), String> {
        self.seq += 1;
        let (ticket_id, version) = &self.tickets[self.seq as usize % self.tickets.len()];
        let request = PushRequest {
            protocol_version: PROTOCOL_VERSION,
            device: self.report(),
            mutations: vec![DeviceMutation {
                seq: DeviceSeq(self.seq),
                ticket_id: ticket_id.clone(),
                base_version: *version,
                recorded_at: Utc::now(),
                op: DeviceOp::AddNote {
                    text: format!("巡检记录 {}", self.seq),
                },
            }],
        };
        let body = serde_json::to_vec(&request).expect("a push request serializes");
        let answer: PushResponse =
            serde_json::from_slice(&self.post("/api/v1/sync/push", body, "push").await?)
                .map_err(|error| format!("push: unreadable response: {error}"))?;
        match answer.outcomes.first().map(|outcome| &outcome.outcome) {
            Some(Outcome::Applied(_)) => Ok(()),
            other => Err(format!("push: seq {} got {other:?}", self.seq)),
        }
    }

    async fn pull(&mut self) -> Result<(), String> {
        let request = PullRequest {
            protocol_version: PROTOCOL_VERSION,
            device: self.report(),
            cursor: self.cursor,
            limit: Some(500),
        };
        let body = serde_json::to_vec(&request).expect("a pull request serializes");
        let answer: PullResponse =
            serde_json::from_slice(&self.post("/api/v1/sync/pull", body, "pull").await?)
                .map_err(|error| format!("pull: unreadable response: {error}"))?;
        self.cursor = answer.next_cursor;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_line_split_across_chunks_is_read_once_whole() {
        let mut pending = b"id: 7\nevent: device_contact\ndata: {\"id\":".to_vec();
        assert!(take_data_lines(&mut pending).is_empty());
        pending.extend_from_slice(b"7}\n\n: keep-alive\n\ndata: {\"id\":8");
        assert_eq!(take_data_lines(&mut pending), vec![b"{\"id\":7}".to_vec()]);
        assert_eq!(pending, b"data: {\"id\":8".to_vec());
    }

    #[test]
    fn a_subscribers_kth_event_of_a_device_is_timed_from_that_devices_kth_answer() {
        let args = LiveBenchArgs {
            devices: 1,
            subscribers: 2,
            seconds: 1,
            interval_ms: 0,
            client_threads: 1,
            server_bin: None,
            json: None,
        };
        let device = DeviceId::parse("hh-00000").unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let answers = HashMap::from([(device.clone(), vec![ms(10), ms(100)])]);
        let at = |n: u64| DateTime::<Utc>::from(ms(n));
        let whole = Seen {
            // The first event arrived before its answer was read: 0, not negative.
            arrivals: vec![
                (device.clone(), at(5), ms(8)),
                (device.clone(), at(95), ms(130)),
            ],
            dropped: false,
        };
        let short = Seen {
            arrivals: vec![(device.clone(), at(5), ms(20))],
            dropped: true,
        };
        let cpu = Cpu {
            wall_seconds: 1.0,
            server_seconds: 0.0,
            loadgen_seconds: 0.0,
        };
        let resident = Resident {
            before: 1000,
            with_subscribers: 3000,
        };
        let measured = summarize(&args, &answers, &[whole, short], 2, 0, cpu, resident);
        assert_eq!(measured.deliveries, 3);
        assert_eq!(measured.missing_deliveries, 1);
        assert_eq!(measured.dropped_subscribers, 1);
        assert_eq!(measured.from_answer.max_ms, 30.0);
        assert_eq!(measured.from_answer.p50_ms, 10.0);
        assert_eq!(measured.from_contact.max_ms, 35.0);
        assert_eq!(measured.bytes_per_subscriber, 1000.0);
    }
}
