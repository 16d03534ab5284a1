//! The measured phases over HTTP on loopback: the scaling probe, the pull
//! phase, the offline morning (not measured), the push phase, and the
//! checks that every mutation landed as it should.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use server::auth::Authority;
use server::store::UserRecord;
use sync_protocol::{Cursor, DevicePage, MAX_PAGE_SIZE, Role, Status, UserId, Version};
use tokio::sync::Barrier;

use crate::device::{
    Device, ExpectedTicket, MUTATIONS_PER_TICKET, Morning, Outbox, PushTally, RawPull,
};
use crate::latency::{Percentiles, milliseconds};
use crate::seed::{SUPERVISOR, technician_id, user_record};
use crate::server_process::{cpu_by_thread, machine_busy_seconds, process_usage, wait_for_quiet};

/// Page size and most pages when reading the device list back.
const DEVICE_PAGE_SIZE: usize = 500;
const MAX_DEVICE_PAGES: usize = 100;
/// Warm-up pulls before the probe's timed ones.
const PROBE_WARM_UP_PULLS: usize = 5;
/// Version of a freshly seeded ticket: received (1), dispatched (2).
const SEEDED_VERSION: Version = Version(2);

pub struct Settings {
    pub base_url: String,
    pub server_pid: u32,
    pub devices: usize,
    pub tickets_per_technician: usize,
    pub batch: usize,
    pub probe_pulls: usize,
    pub request_timeout: Duration,
    pub shared_client: bool,
    /// How long to wait for the machine to be idle before a measured phase.
    pub quiet_wait: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub probe: Probe,
    pub pull: PullPhase,
    pub push: PushPhase,
    pub verification: Verification,
}

/// One technician's pull from cursor 0, sequentially, on an idle server.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    pub technician: String,
    pub tickets: usize,
    pub median_ms: f64,
    pub latency: Percentiles,
    pub machine_busy_cores_before: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PullPhase {
    pub devices: usize,
    pub tickets: usize,
    pub requests: usize,
    pub wall_ms: f64,
    pub latency: Percentiles,
    pub cpu: CpuSpent,
}

#[derive(Clone, Debug, Serialize)]
pub struct PushPhase {
    pub devices: usize,
    pub batch: usize,
    pub mutations_sent: usize,
    pub wall_ms: f64,
    /// Applied mutations per second of the whole phase, blob uploads included.
    pub mutations_per_second: f64,
    /// Push requests and blob uploads per second.
    pub requests_per_second: f64,
    pub push_latency: Percentiles,
    pub blob_latency: Percentiles,
    pub applied: usize,
    pub late: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub missing_blobs: usize,
    pub blobs_stored: usize,
    pub errors: Vec<String>,
    pub cpu: CpuSpent,
    /// The server's CPU seconds in the phase by thread name; threads that
    /// exited during the phase count as `(exited)`.
    pub server_cpu_by_thread: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub devices_at_last_seq: usize,
    pub tickets_checked: usize,
    pub blobs_checked: usize,
    pub tickets_repulled: usize,
    pub problems: Vec<String>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Run every phase against the server at `settings.base_url`.
pub async fn run(settings: &Settings, authority: &Authority) -> Result<Measured, String> {
    let devices = make_devices(settings, authority)?;
    for device in devices.iter() {
        device.connect().await?;
    }

    let busy_before_probe = quiet(settings).await;
    let mut probe = probe(&devices[0], settings.probe_pulls).await?;
    probe.machine_busy_cores_before = busy_before_probe;

    let busy_before_pull = quiet(settings).await;
    let before = CpuSnapshot::take(settings.server_pid)?;
    let (raw_pulls, pull_wall) = pull_phase(&devices).await?;
    let pull_cpu = CpuSnapshot::take(settings.server_pid)?.since(&before, busy_before_pull);
    let mut pull_latencies = Vec::new();
    let mut pulled = Vec::new();
    for (device, raw) in devices.iter().zip(&raw_pulls) {
        pull_latencies.extend_from_slice(&raw.latencies);
        let state = device.apply_pull(raw)?;
        check_pulled(device, &state.tickets, settings.tickets_per_technician)?;
        pulled.push(state);
    }
    let pull = PullPhase {
        devices: devices.len(),
        tickets: pulled.iter().map(|p| p.tickets.len()).sum(),
        requests: pull_latencies.len(),
        wall_ms: milliseconds(pull_wall),
        latency: Percentiles::of(&pull_latencies),
        cpu: pull_cpu,
    };

    // The offline morning: nothing reaches the server. It lies within the
    // estate's day (Shanghai, +08:00), so that the push finds every order
    // finished today and none past its R-C1 return.
    let morning = offline_morning(Utc::now(), settings.tickets_per_technician);
    let outboxes: Vec<Outbox> = devices
        .iter()
        .zip(&pulled)
        .map(|(device, state)| device.record_offline(state, settings.batch, morning))
        .collect();
    let expected: Vec<Vec<ExpectedTicket>> = outboxes.iter().map(|o| o.expected.clone()).collect();
    let mutations_sent: usize = outboxes
        .iter()
        .flat_map(|o| &o.pushes)
        .map(|p| p.n_mutations)
        .sum();

    let busy_before_push = quiet(settings).await;
    let threads_before = cpu_by_thread(settings.server_pid);
    let before = CpuSnapshot::take(settings.server_pid)?;
    let (tallies, push_wall) = push_phase(&devices, outboxes).await;
    let push_cpu = CpuSnapshot::take(settings.server_pid)?.since(&before, busy_before_push);
    let threads = thread_cpu_delta(
        &threads_before,
        &cpu_by_thread(settings.server_pid),
        push_cpu.server_seconds,
    );
    let mut push = summarize_push(settings, &tallies, mutations_sent, push_wall, push_cpu);
    push.server_cpu_by_thread = threads;

    let supervisor = token_for(
        authority,
        &user_record(
            UserId::parse(SUPERVISOR).expect("valid"),
            Role::Supervisor,
            "supervisor".to_owned(),
        ),
    )?;
    let verification = verify(settings, &devices, &pulled, &expected, &supervisor).await;
    Ok(Measured {
        probe,
        pull,
        push,
        verification,
    })
}

fn make_devices(settings: &Settings, authority: &Authority) -> Result<Vec<Arc<Device>>, String> {
    let make_client = || {
        reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            // Loopback only: never through a proxy from the environment.
            .no_proxy()
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {error}"))
    };
    let shared = make_client()?;
    let mut devices = Vec::with_capacity(settings.devices);
    for index in 0..settings.devices {
        let technician = technician_id(index);
        let record = user_record(technician.clone(), Role::Technician, String::new());
        let token = token_for(authority, &record)?;
        let client = if settings.shared_client {
            shared.clone()
        } else {
            make_client()?
        };
        devices.push(Arc::new(Device::new(
            index,
            technician,
            token,
            client,
            settings.base_url.clone(),
        )));
    }
    Ok(devices)
}

fn token_for(authority: &Authority, user: &UserRecord) -> Result<String, String> {
    authority
        .issue(user)
        .map(|(token, _)| token)
        .map_err(|error| format!("cannot mint a token: {error}"))
}

/// CPU used so far: by the server, by this load generator, by the machine.
struct CpuSnapshot {
    server: f64,
    loadgen: f64,
    machine: f64,
}

impl CpuSnapshot {
    fn take(server_pid: u32) -> Result<Self, String> {
        Ok(Self {
            server: process_usage(server_pid)?.cpu_seconds,
            loadgen: process_usage(std::process::id())?.cpu_seconds,
            machine: machine_busy_seconds(),
        })
    }

    fn since(&self, earlier: &Self, machine_busy_cores_before: f64) -> CpuSpent {
        let server_seconds = self.server - earlier.server;
        let loadgen_seconds = self.loadgen - earlier.loadgen;
        CpuSpent {
            server_seconds,
            loadgen_seconds,
            other_seconds: (self.machine - earlier.machine - server_seconds - loadgen_seconds)
                .max(0.0),
            machine_busy_cores_before,
        }
    }
}

/// CPU seconds a phase cost, and what else the (shared) machine did meanwhile.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CpuSpent {
    pub server_seconds: f64,
    pub loadgen_seconds: f64,
    /// Everything else on the machine: other processes, kernel threads.
    pub other_seconds: f64,
    /// Busy cores just before the phase started (see `--quiet-wait-seconds`).
    pub machine_busy_cores_before: f64,
}

/// Wait until the machine is idle, within the configured limit.
async fn quiet(settings: &Settings) -> f64 {
    let limit = settings.quiet_wait;
    tokio::task::spawn_blocking(move || wait_for_quiet(limit))
        .await
        .unwrap_or(f64::NAN)
}

/// One technician pulls everything, again and again, nobody else busy.
async fn probe(device: &Device, pulls: usize) -> Result<Probe, String> {
    let mut latencies = Vec::with_capacity(pulls);
    let mut tickets = 0;
    for round in 0..PROBE_WARM_UP_PULLS + pulls {
        let raw = device.pull_raw(Cursor(0), MAX_PAGE_SIZE).await?;
        if round >= PROBE_WARM_UP_PULLS {
            latencies.extend_from_slice(&raw.latencies);
        }
        tickets = device.apply_pull(&raw)?.tickets.len();
    }
    let latency = Percentiles::of(&latencies);
    Ok(Probe {
        technician: device.technician.to_string(),
        tickets,
        median_ms: latency.p50_ms,
        latency,
        machine_busy_cores_before: 0.0,
    })
}

/// Every device pulls from cursor 0 at the same moment.
async fn pull_phase(devices: &[Arc<Device>]) -> Result<(Vec<RawPull>, Duration), String> {
    let barrier = Arc::new(Barrier::new(devices.len() + 1));
    let mut tasks = Vec::with_capacity(devices.len());
    for device in devices {
        let device = device.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            device.pull_raw(Cursor(0), MAX_PAGE_SIZE).await
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut pulls = Vec::with_capacity(tasks.len());
    for task in tasks {
        pulls.push(
            task.await
                .map_err(|error| format!("pull task: {error}"))??,
        );
    }
    Ok((pulls, started.elapsed()))
}

/// Every device uploads and pushes its outbox at the same moment.
async fn push_phase(devices: &[Arc<Device>], outboxes: Vec<Outbox>) -> (Vec<PushTally>, Duration) {
    let barrier = Arc::new(Barrier::new(devices.len() + 1));
    let mut tasks = Vec::with_capacity(devices.len());
    for (device, outbox) in devices.iter().zip(outboxes) {
        let device = device.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            device.push_outbox(outbox.pushes).await
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut tallies = Vec::with_capacity(tasks.len());
    for task in tasks {
        tallies.push(task.await.unwrap_or_else(|error| PushTally {
            errors: vec![format!("push task: {error}")],
            ..PushTally::default()
        }));
    }
    (tallies, started.elapsed())
}

fn summarize_push(
    settings: &Settings,
    tallies: &[PushTally],
    mutations_sent: usize,
    wall: Duration,
    cpu: CpuSpent,
) -> PushPhase {
    let mut push_latencies = Vec::new();
    let mut blob_latencies = Vec::new();
    let mut errors = Vec::new();
    for tally in tallies {
        push_latencies.extend_from_slice(&tally.push_latencies);
        blob_latencies.extend_from_slice(&tally.blob_latencies);
        errors.extend(tally.errors.iter().cloned());
    }
    let sum = |field: fn(&PushTally) -> usize| tallies.iter().map(field).sum::<usize>();
    let applied = sum(|t| t.applied);
    let requests = push_latencies.len() + blob_latencies.len();
    PushPhase {
        devices: tallies.len(),
        batch: settings.batch,
        mutations_sent,
        wall_ms: milliseconds(wall),
        mutations_per_second: applied as f64 / wall.as_secs_f64(),
        requests_per_second: requests as f64 / wall.as_secs_f64(),
        push_latency: Percentiles::of(&push_latencies),
        blob_latency: Percentiles::of(&blob_latencies),
        applied,
        late: sum(|t| t.late),
        duplicates: sum(|t| t.duplicates),
        rejected: sum(|t| t.rejected),
        missing_blobs: sum(|t| t.missing_blobs),
        blobs_stored: sum(|t| t.blobs_stored),
        errors: errors.into_iter().take(10).collect(),
        cpu,
        server_cpu_by_thread: Vec::new(),
    }
}

/// Per-thread CPU spent between two snapshots; what the process spent
/// beyond the threads still alive went to threads that exited.
fn thread_cpu_delta(
    before: &[(String, f64)],
    after: &[(String, f64)],
    process_delta: f64,
) -> Vec<(String, f64)> {
    let mut deltas: Vec<(String, f64)> = after
        .iter()
        .map(|(name, seconds)| {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, s)| *s);
            (name.clone(), (seconds - earlier).max(0.0))
        })
        .filter(|(_, seconds)| *seconds > 0.0)
        .collect();
    let accounted: f64 = deltas.iter().map(|(_, s)| s).sum();
    if process_delta - accounted > 0.005 {
        deltas.push(("(exited)".to_owned(), process_delta - accounted));
    }
    deltas.sort_by(|a, b| b.1.total_cmp(&a.1));
    deltas
}

fn check_pulled(
    device: &Device,
    tickets: &[(sync_protocol::TicketId, Version)],
    expected: usize,
) -> Result<(), String> {
    if tickets.len() != expected {
        return Err(format!(
            "{} pulled {} tickets, expected {expected}",
            device.device_id,
            tickets.len()
        ));
    }
    if let Some((id, version)) = tickets.iter().find(|(_, v)| *v != SEEDED_VERSION) {
        return Err(format!(
            "{} pulled {id} at version {}, expected {}",
            device.device_id, version.0, SEEDED_VERSION.0
        ));
    }
    Ok(())
}

/// After the push phase: every device's last sequence number on the server,
/// a sample of tickets in full, their signature images, and a re-pull.
async fn verify(
    settings: &Settings,
    devices: &[Arc<Device>],
    pulled: &[crate::device::Pulled],
    expected: &[Vec<ExpectedTicket>],
    supervisor_token: &str,
) -> Verification {
    let mut verification = Verification::default();
    let expected_seq = (settings.tickets_per_technician * MUTATIONS_PER_TICKET) as u64;
    match device_seqs(settings, supervisor_token).await {
        Ok(seqs) => {
            for device in devices {
                match seqs.iter().find(|(id, _)| id == device.device_id.as_str()) {
                    Some((_, seq)) if *seq == expected_seq => verification.devices_at_last_seq += 1,
                    Some((_, seq)) => verification.problems.push(format!(
                        "{} is at seq {seq} on the server, expected {expected_seq}",
                        device.device_id
                    )),
                    None => verification
                        .problems
                        .push(format!("the server does not know {}", device.device_id)),
                }
            }
        }
        Err(error) => verification.problems.push(error),
    }

    // First, middle and last device; first and last ticket of each.
    let mut sample: Vec<usize> = vec![0, devices.len() / 2, devices.len() - 1];
    sample.dedup();
    for &index in &sample {
        let device = &devices[index];
        let tickets = &expected[index];
        let mut picks = vec![0, tickets.len() - 1];
        picks.dedup();
        for pick in picks {
            let want = &tickets[pick];
            match device.ticket(&want.ticket_id).await {
                Ok(ticket) => {
                    verification.tickets_checked += 1;
                    verification.problems.extend(check_ticket(&ticket, want));
                }
                Err(error) => verification.problems.push(error),
            }
            match download_blob(settings, supervisor_token, want).await {
                Ok(bytes) if bytes == crate::device::signature_image(index, pick) => {
                    verification.blobs_checked += 1;
                }
                Ok(_) => verification.problems.push(format!(
                    "the signature image of {} came back different",
                    want.ticket_id
                )),
                Err(error) => verification.problems.push(error),
            }
        }
    }

    // The first device syncs again: every ticket comes back in its final version.
    let device = &devices[0];
    match device.pull_raw(pulled[0].cursor, MAX_PAGE_SIZE).await {
        Ok(raw) => match device.apply_pull(&raw) {
            Ok(state) => {
                verification.tickets_repulled = state.tickets.len();
                let final_version = Version(SEEDED_VERSION.0 + MUTATIONS_PER_TICKET as u64);
                if state.tickets.len() != settings.tickets_per_technician
                    || state.tickets.iter().any(|(_, v)| *v != final_version)
                {
                    verification.problems.push(format!(
                        "a re-pull by {} did not return every ticket at version {}",
                        device.device_id, final_version.0
                    ));
                }
            }
            Err(error) => verification.problems.push(error),
        },
        Err(error) => verification.problems.push(error),
    }
    verification
}

fn check_ticket(ticket: &sync_protocol::Ticket, want: &ExpectedTicket) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("{}: {what}", want.ticket_id));
        }
    };
    expect(ticket.version == want.version, "wrong final version");
    expect(ticket.status == Status::Completed, "not completed");
    expect(ticket.arrivals.len() == 1, "not exactly one arrival");
    expect(ticket.notes.len() == 2, "not exactly two notes");
    expect(ticket.results.len() == 1, "not exactly one result");
    expect(ticket.signatures.len() == 1, "not exactly one signature");
    let no_late_fact = ticket.arrivals.values().all(|f| f.late.is_none())
        && ticket.notes.values().all(|f| f.late.is_none())
        && ticket.results.values().all(|f| f.late.is_none())
        && ticket.signatures.values().all(|f| f.late.is_none());
    expect(no_late_fact, "a fact is flagged late");
    let current = ticket.current_result().map(|fact| fact.body.record_hash());
    expect(
        current.as_ref() == Some(&want.signed_record),
        "the current result is not the signed one",
    );
    let signature = ticket.signatures.values().next().map(|fact| &fact.body);
    expect(
        signature.is_some_and(|s| {
            s.blob == want.signature_blob && s.signed_record == want.signed_record
        }),
        "the signature is not the one recorded",
    );
    problems
}

/// Every device of the estate with its last sequence number, page by page.
async fn device_seqs(settings: &Settings, token: &str) -> Result<Vec<(String, u64)>, String> {
    let client = reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .no_proxy()
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
    let mut seqs = Vec::new();
    let mut after: Option<String> = None;
    // Bounded: far more pages than the devices of any run need.
    for _ in 0..MAX_DEVICE_PAGES {
        let mut url = format!(
            "{}/api/v1/devices?limit={DEVICE_PAGE_SIZE}",
            settings.base_url
        );
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let response = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|error| format!("device list: {error}"))?;
        let body = crate::device::expect_success(response, "device list").await?;
        let page: DevicePage =
            serde_json::from_slice(&body).map_err(|error| format!("device list: {error}"))?;
        seqs.extend(
            page.devices
                .iter()
                .map(|device| (device.device_id.to_string(), device.last_seq.0)),
        );
        match page.next_after {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(seqs),
        }
    }
    Err(format!("device list: more than {MAX_DEVICE_PAGES} pages"))
}

async fn download_blob(
    settings: &Settings,
    token: &str,
    want: &ExpectedTicket,
) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .no_proxy()
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
    let response = client
        .get(format!(
            "{}/api/v1/blobs/{}",
            settings.base_url, want.signature_blob
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|error| format!("blob download: {error}"))?;
    crate::device::expect_success(response, "blob download").await
}

/// When the offline morning starts and how far apart its steps are: from
/// eight hours ago, or from the estate's local midnight if that is later (a
/// run just after midnight), to a minute ago, every ticket's work in turn.
fn offline_morning(now: DateTime<Utc>, tickets: usize) -> Morning {
    let steps = i32::try_from(tickets * MUTATIONS_PER_TICKET)
        .unwrap_or(i32::MAX)
        .max(1);
    let shanghai = chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    let local_midnight = now
        .with_timezone(&shanghai)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_local_timezone(shanghai)
        .single()
        .expect("a fixed offset has one midnight")
        .with_timezone(&Utc);
    let starts_at = (now - chrono::Duration::hours(8)).max(local_midnight);
    let room = (now - chrono::Duration::minutes(1)) - starts_at;
    Morning {
        starts_at,
        step: (room / steps).min(chrono::Duration::minutes(2)),
    }
}
