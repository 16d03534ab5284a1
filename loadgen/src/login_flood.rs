//! `loadgen login-flood`: what a flood of logins costs the server
//! (docs/BENCHMARKS.md, "Login flood").
//!
//! Seeds a store with one user, starts the real release server, and:
//!
//! 1. Timing: on the idle server, sequential logins with a wrong password
//!    for the known user and for unknown users; the two medians should be
//!    the same (no username enumeration by time).
//! 2. The flood, twice, each on a fresh server: `--connections` clients
//!    sending logins back to back for `--seconds`, from one address with the
//!    default limits (the address throttle answers most of them), and then
//!    as if from many addresses (the address and username throttles set out
//!    of reach, so that every attempt goes to the password workers). The
//!    server's peak resident memory (VmHWM) is read at the end of each.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use server::store::{Changes, Store};
use sync_protocol::{EstateId, LoginRequest, Role, UserId};
use tokio::task::JoinSet;

use crate::latency::Percentiles;
use crate::report::Machine;
use crate::server_process::ServerProcess;

/// The goal for the peak memory under a 128-connection flood.
const TARGET_PEAK_MIB: f64 = 300.0;
const PASSWORD: &str = "a long enough password";
const SERVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct LoginFloodArgs {
    /// Concurrent clients sending logins back to back.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// How long each flood lasts.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Sequential logins of each kind for the timing comparison.
    #[arg(long, default_value_t = 40)]
    timed_logins: usize,
    /// The server binary; defaults to estate-sync next to this binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Flood {
    name: &'static str,
    requests: usize,
    /// Answers by HTTP status (0: no answer).
    by_status: BTreeMap<u16, usize>,
    peak_resident_mib: f64,
    resident_after_mib: f64,
}

#[derive(Debug, Serialize)]
struct LoginFloodReport {
    machine: Machine,
    connections: usize,
    seconds: u64,
    known_user_wrong_password: Percentiles,
    unknown_user: Percentiles,
    idle_resident_mib: f64,
    floods: Vec<Flood>,
    target_peak_mib: f64,
    target_met: bool,
}

pub fn run(args: &LoginFloodArgs) -> Result<bool, String> {
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => crate::default_server_bin()?,
    };
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    seed_one_user(&data.path().join("store"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let secret = server::auth::random_secret();
    let store = data.path().join("store");

    // Out of reach: every attempt goes to the password workers.
    let open_throttles = [
        ("ESTATE_SYNC_LOGIN_ATTEMPTS_PER_MINUTE", "4000000000"),
        ("ESTATE_SYNC_LOGIN_FREE_FAILURES", "4000000000"),
    ];

    let server = ServerProcess::start_with(
        &server_bin,
        &store,
        &secret,
        SERVER_STARTUP_TIMEOUT,
        &open_throttles,
    )?;
    let base = format!("http://{}", server.address);
    eprintln!(
        "timing {} logins of each kind on the idle server …",
        args.timed_logins
    );
    let (known, unknown) = runtime.block_on(timed_logins(&base, args.timed_logins))?;
    let idle_resident_mib = mib(server.usage()?.resident_bytes);
    server.stop(SERVER_STOP_TIMEOUT)?;

    let mut floods = Vec::new();
    for (name, settings) in [
        ("one address, default limits", &[][..]),
        (
            "every attempt checked (throttles out of reach)",
            &open_throttles[..],
        ),
    ] {
        let server = ServerProcess::start_with(
            &server_bin,
            &store,
            &secret,
            SERVER_STARTUP_TIMEOUT,
            settings,
        )?;
        let base = format!("http://{}", server.address);
        eprintln!(
            "flood: {name}: {} connections for {} s …",
            args.connections, args.seconds
        );
        let (requests, by_status) = runtime.block_on(flood(
            &base,
            args.connections,
            Duration::from_secs(args.seconds),
        ))?;
        let usage = server.usage()?;
        floods.push(Flood {
            name,
            requests,
            by_status,
            peak_resident_mib: mib(usage.peak_resident_bytes),
            resident_after_mib: mib(usage.resident_bytes),
        });
        server.stop(SERVER_STOP_TIMEOUT)?;
    }

    let worst = floods
        .iter()
        .map(|flood| flood.peak_resident_mib)
        .fold(0.0, f64::max);
    let report = LoginFloodReport {
        machine: crate::machine(),
        connections: args.connections,
        seconds: args.seconds,
        known_user_wrong_password: known,
        unknown_user: unknown,
        idle_resident_mib,
        floods,
        target_peak_mib: TARGET_PEAK_MIB,
        target_met: worst <= TARGET_PEAK_MIB,
    };
    print_summary(&report);
    crate::report::write_json(args.json.as_ref(), &report)?;
    Ok(true)
}

/// A store holding one technician whose password is [`PASSWORD`].
fn seed_one_user(path: &std::path::Path) -> Result<(), String> {
    let store = Store::open(path).map_err(|e| e.to_string())?;
    let user = server::users::new_user(
        UserId::parse("li").expect("a valid id"),
        Role::Technician,
        EstateId::parse("E01").expect("a valid estate"),
        "维修 李师傅",
        PASSWORD,
    )
    .map_err(|e| e.to_string())?;
    let mut changes = Changes::default();
    changes.put_user(&user);
    store.apply(changes).map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())
}

fn request(username: String) -> LoginRequest {
    LoginRequest {
        username,
        password: "not the password".to_owned(),
        device_id: None,
    }
}

/// Sequential wrong-password logins for the known user and for unknown
/// ones, interleaved so that both see the same machine.
async fn timed_logins(base: &str, count: usize) -> Result<(Percentiles, Percentiles), String> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{base}/api/v1/auth/login");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for n in 0..count {
        for (username, samples) in [
            ("li".to_owned(), &mut known),
            (format!("nobody-{n}"), &mut unknown),
        ] {
            let started = Instant::now();
            let answer = client
                .post(&url)
                .json(&request(username))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if answer.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Err(format!("a wrong password answered {}", answer.status()));
            }
            samples.push(started.elapsed());
        }
    }
    Ok((Percentiles::of(&known), Percentiles::of(&unknown)))
}

/// `connections` clients, each on its own connection, sending logins back
/// to back until `length` has passed; the answers by status.
async fn flood(
    base: &str,
    connections: usize,
    length: Duration,
) -> Result<(usize, BTreeMap<u16, usize>), String> {
    let by_status = Arc::new(Mutex::new(BTreeMap::new()));
    let deadline = Instant::now() + length;
    let mut clients = JoinSet::new();
    for client_index in 0..connections {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("{base}/api/v1/auth/login");
        let by_status = by_status.clone();
        clients.spawn(async move {
            let mut sent = 0usize;
            while Instant::now() < deadline {
                // Half the attempts name the known user, half made-up ones.
                let username = if sent.is_multiple_of(2) {
                    "li".to_owned()
                } else {
                    format!("guess-{client_index}-{sent}")
                };
                let status = match client.post(&url).json(&request(username)).send().await {
                    Ok(answer) => answer.status().as_u16(),
                    Err(_) => 0,
                };
                *by_status
                    .lock()
                    .expect("no panics while counting")
                    .entry(status)
                    .or_insert(0) += 1;
                sent += 1;
            }
            sent
        });
    }
    let requests = clients.join_all().await.into_iter().sum();
    let by_status = by_status.lock().expect("no panics while counting").clone();
    Ok((requests, by_status))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_summary(report: &LoginFloodReport) {
    println!("machine: {}", report.machine);
    println!(
        "wrong password, known user: {}",
        report.known_user_wrong_password
    );
    println!("wrong password, unknown user: {}", report.unknown_user);
    println!("idle server: {:.1} MiB resident", report.idle_resident_mib);
    for flood in &report.floods {
        println!(
            "flood ({}), {} connections × {} s: {} requests, answers {:?}; peak {:.1} MiB, {:.1} MiB after",
            flood.name,
            report.connections,
            report.seconds,
            flood.requests,
            flood.by_status,
            flood.peak_resident_mib,
            flood.resident_after_mib
        );
    }
    println!(
        "peak memory target ≤ {:.0} MiB: {}",
        report.target_peak_mib,
        if report.target_met { "met" } else { "MISSED" }
    );
}
