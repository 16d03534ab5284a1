//! The handheld's two performance targets, on sled in a temporary
//! directory, every write durable (sled's flush and `fdatasync`):
//!
//! - apply a pulled page of 500 tickets in ≤ 50 ms;
//! - record a change durably in ≤ 5 ms at the 99th percentile.
//!
//! Run with `cargo bench -p handheld`; docs/BENCHMARKS.md ("Handheld") has
//! the figures. The tickets are the server's own golden ticket
//! (sync-protocol/tests/golden/pull_response.json, a completed work order
//! with eleven versions of history and facts from two devices, 5 KB of JSON)
//! under 500 ids, and the login is the golden login answer; no network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use handheld::{Device, DeviceSettings, SystemClock, Transport, TransportError, TransportFuture};
use sync_protocol::{
    BlobReceipt, Change, Cursor, DeviceId, DeviceOp, LoginRequest, LoginResponse, PullRequest,
    PullResponse, PushRequest, PushResponse, RefreshRequest, Sha256Hex, Ticket, TicketId,
};

const GOLDEN_PAGE: &str = include_str!("../../sync-protocol/tests/golden/pull_response.json");
const GOLDEN_LOGIN: &str = include_str!("../../sync-protocol/tests/golden/login_response.json");

const PAGE_TICKETS: usize = 500;
const PAGE_WARM_UP: usize = 5;
const PAGE_RUNS: usize = 60;
const RECORD_WARM_UP: usize = 50;
const RECORD_RUNS: usize = 2000;
const SIGNATURE_RUNS: usize = 200;
const SIGNATURE_IMAGE_BYTES: usize = 20 * 1024;

fn main() {
    let page = page_of(PAGE_TICKETS);
    let page_json = serde_json::to_vec(&page).expect("a page serializes");
    println!(
        "handheld benchmark: sled in a temporary directory, every write flushed and fdatasync'd; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let device = open(&dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(device.login(&GoldenLogin, "zhang", "password"))
        .expect("the golden login is a technician's");

    let mut apply = Vec::new();
    let mut parse_and_apply = Vec::new();
    let machine = Machine::quiet();
    for run in 0..PAGE_WARM_UP + PAGE_RUNS {
        let copy = page.clone();
        let started = Instant::now();
        device.apply_page(copy).expect("the page applies");
        let applied = started.elapsed();
        let started = Instant::now();
        let parsed: PullResponse = serde_json::from_slice(&page_json).expect("the page parses");
        device.apply_page(parsed).expect("the page applies");
        let parsed_and_applied = started.elapsed();
        if run >= PAGE_WARM_UP {
            apply.push(applied);
            parse_and_apply.push(parsed_and_applied);
        }
    }
    println!(
        "apply a pulled page of {PAGE_TICKETS} tickets ({} KiB of JSON), parsed: {}  [target: <= 50 ms]",
        page_json.len() / 1024,
        summary(&apply)
    );
    println!(
        "  the same from the page's JSON bytes (parse + apply): {}",
        summary(&parse_and_apply)
    );
    machine.report();

    let tickets: Vec<TicketId> = device
        .tickets()
        .expect("the replica reads")
        .into_iter()
        .map(|state| state.local.ticket.id)
        .collect();
    let mut record = Vec::new();
    let machine = Machine::quiet();
    for run in 0..RECORD_WARM_UP + RECORD_RUNS {
        let ticket = &tickets[run % tickets.len()];
        let op = if run % 2 == 0 {
            DeviceOp::RecordArrival { position: None }
        } else {
            DeviceOp::AddNote {
                text: format!("检查第 {run} 次 check number {run}: 阀门正常 the valve is fine"),
            }
        };
        let started = Instant::now();
        device.record(ticket, op).expect("the change records");
        if run >= RECORD_WARM_UP {
            record.push(started.elapsed());
        }
    }
    println!(
        "record a change durably (arrival or note, outbox growing to {}): {}  [target: p99 <= 5 ms]",
        RECORD_WARM_UP + RECORD_RUNS,
        summary(&record)
    );
    machine.report();

    let mut sign = Vec::new();
    let machine = Machine::quiet();
    for run in 0..SIGNATURE_RUNS {
        let ticket = &tickets[run % tickets.len()];
        let mut image = vec![0u8; SIGNATURE_IMAGE_BYTES];
        image[..8].copy_from_slice(&(run as u64).to_be_bytes());
        let started = Instant::now();
        device
            .record_signature(ticket, &image, "业主 Owner".to_owned(), None)
            .expect("the signature records");
        sign.push(started.elapsed());
    }
    println!(
        "record a signature with its {} KiB image durably: {}",
        SIGNATURE_IMAGE_BYTES / 1024,
        summary(&sign)
    );
    machine.report();
}

fn open(dir: &tempfile::TempDir) -> Device {
    let settings = DeviceSettings {
        data_dir: dir.path().to_path_buf(),
        device_id: Some(DeviceId::parse("hh-bench").expect("a valid id")),
        app_version: "handheld-bench".to_owned(),
    };
    Device::open(&settings, Arc::new(SystemClock)).expect("the store opens")
}

/// A page of `count` upserts of the golden ticket under new ids.
fn page_of(count: usize) -> PullResponse {
    let golden: PullResponse = serde_json::from_str(GOLDEN_PAGE).expect("the golden page parses");
    let template: Ticket = golden
        .changes
        .into_iter()
        .find_map(|change| match change {
            Change::Upsert { ticket, .. } => Some(*ticket),
            Change::Revoked { .. } => None,
        })
        .expect("the golden page holds a ticket");
    let changes = (1..=count)
        .map(|number| {
            let mut ticket = template.clone();
            ticket.id = TicketId::parse(&format!("tk{number:08}")).expect("a valid id");
            Change::Upsert {
                cursor: Cursor(number as u64),
                ticket: Box::new(ticket),
            }
        })
        .collect();
    PullResponse {
        changes,
        next_cursor: Cursor(count as u64),
        has_more: false,
        ..golden_envelope()
    }
}

fn golden_envelope() -> PullResponse {
    let mut golden: PullResponse =
        serde_json::from_str(GOLDEN_PAGE).expect("the golden page parses");
    golden.changes.clear();
    golden
}

/// Answers the login with the golden login answer; the bench needs no other call.
struct GoldenLogin;

impl Transport for GoldenLogin {
    fn login<'a>(&'a self, _request: &'a LoginRequest) -> TransportFuture<'a, LoginResponse> {
        let response: LoginResponse =
            serde_json::from_str(GOLDEN_LOGIN).expect("the golden login parses");
        Box::pin(async move { Ok(response) })
    }

    fn refresh<'a>(&'a self, _: &'a RefreshRequest) -> TransportFuture<'a, LoginResponse> {
        Box::pin(async { Err(offline()) })
    }

    fn pull<'a>(&'a self, _: &'a str, _: &'a PullRequest) -> TransportFuture<'a, PullResponse> {
        Box::pin(async { Err(offline()) })
    }

    fn push<'a>(&'a self, _: &'a str, _: &'a PushRequest) -> TransportFuture<'a, PushResponse> {
        Box::pin(async { Err(offline()) })
    }

    fn put_blob<'a>(
        &'a self,
        _: &'a str,
        _: &'a Sha256Hex,
        _: &'a [u8],
    ) -> TransportFuture<'a, BlobReceipt> {
        Box::pin(async { Err(offline()) })
    }
}

fn offline() -> TransportError {
    TransportError::NoAnswer("the benchmark has no network".to_owned())
}

/// Median, 99th percentile (nearest rank) and maximum, in milliseconds.
fn summary(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |fraction: f64| {
        let rank = (fraction * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
    };
    format!(
        "median {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} runs",
        at(0.5),
        at(0.99),
        sorted[sorted.len() - 1].as_secs_f64() * 1000.0,
        sorted.len()
    )
}

/// The machine is shared: before each phase the benchmark waits (up to
/// `QUIET_WAIT`) for it to be nearly idle, and after it says how many
/// cores everything else kept busy meanwhile, so that a figure taken under
/// load is seen as such.
struct Machine {
    started: Instant,
    busy_seconds: f64,
    own_seconds: f64,
}

const QUIET_WAIT: Duration = Duration::from_secs(120);
const QUIET_CORES: f64 = 0.2;

impl Machine {
    fn quiet() -> Self {
        let deadline = Instant::now() + QUIET_WAIT;
        loop {
            let before = busy_seconds();
            std::thread::sleep(Duration::from_millis(500));
            let cores = (busy_seconds() - before) / 0.5;
            if cores < QUIET_CORES || Instant::now() >= deadline {
                break;
            }
        }
        Self {
            started: Instant::now(),
            busy_seconds: busy_seconds(),
            own_seconds: own_seconds(),
        }
    }

    fn report(&self) {
        let wall = self.started.elapsed().as_secs_f64();
        let others = (busy_seconds() - self.busy_seconds) - (own_seconds() - self.own_seconds);
        println!(
            "  (everything else on the machine kept {:.2} cores busy meanwhile)",
            (others / wall).max(0.0)
        );
    }
}

/// CPU time the whole machine has spent busy, in seconds: all of
/// `/proc/stat`'s first line but idle and iowait, in 1/100 s.
fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (ticks.iter().sum::<f64>() - idle) / 100.0
}

/// This process's CPU time (user and system, `/proc/self/stat` fields 14
/// and 15), in seconds.
fn own_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces; the fields after it are plain.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // The first field after the name is field 3: utime is field 14, stime 15.
    let ticks = |field: usize| -> f64 {
        fields
            .get(field - 3)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}
