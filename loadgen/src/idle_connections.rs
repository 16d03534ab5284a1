//! `loadgen idle-connections`: how many idle connections the server holds
//! before it refuses, and that it lets none of them stay (docs/BENCHMARKS.md,
//! "Idle connections").
//!
//! Starts the real release server with its default limits, then opens
//! connections that never send a request from `--addresses` loopback
//! addresses (127.0.0.2, 127.0.0.3, …: a client each), `--per-address` from
//! each. A refused connection is answered `429` at once and closed; an
//! accepted one hears nothing. It counts both, checks that the server still
//! answers a new client's request quickly while full, then waits for the
//! server to close the idle ones (its header-read timeout) and checks that a
//! new request is served again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::report::Machine;
use crate::server_process::ServerProcess;

const SERVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an accepted connection is watched for an answer it should not get.
const REFUSAL_WAIT: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct IdleConnectionsArgs {
    /// Client addresses (127.0.0.2 onwards).
    #[arg(long, default_value_t = 20)]
    addresses: u8,
    /// Connections each address opens.
    #[arg(long, default_value_t = 300)]
    per_address: usize,
    /// The server's header-read (and idle) timeout for this run.
    #[arg(long, default_value_t = 20_000)]
    header_read_timeout_ms: u64,
    /// The server binary; defaults to estate-sync next to this binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write the measurements as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct IdleConnectionsReport {
    machine: Machine,
    attempted: usize,
    held: usize,
    refused_429: usize,
    /// Connections that could not even be made (the client's own limits).
    failed: usize,
    /// A new client's request while the server is full: its answer and time.
    while_full_status: String,
    while_full_ms: f64,
    /// From the last connection opened until the server had closed every
    /// held one.
    all_closed_after_s: f64,
    served_again: bool,
    server_open_files_limit: Option<u64>,
}

pub fn run(args: &IdleConnectionsArgs) -> Result<bool, String> {
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => crate::default_server_bin()?,
    };
    // Our own sockets: one descriptor each.
    rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string())?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let timeout = args.header_read_timeout_ms.to_string();
    let server = ServerProcess::start_with(
        &server_bin,
        data.path(),
        &server::auth::random_secret(),
        SERVER_STARTUP_TIMEOUT,
        &[("ESTATE_SYNC_HEADER_READ_TIMEOUT_MS", &timeout)],
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(measure(args, server.address, server.pid()))?;
    server.stop(SERVER_STOP_TIMEOUT)?;
    print_summary(&report);
    crate::report::write_json(args.json.as_ref(), &report)?;
    Ok(report.served_again)
}

async fn measure(
    args: &IdleConnectionsArgs,
    server: SocketAddr,
    pid: u32,
) -> Result<IdleConnectionsReport, String> {
    eprintln!(
        "opening {} idle connections from {} addresses …",
        args.per_address * usize::from(args.addresses),
        args.addresses
    );
    // All opened first, then all watched together: well within the
    // server's idle timeout, so that none is closed before the count.
    let mut opened = Vec::new();
    let mut failed = 0;
    for address in 0..args.addresses {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + address));
        for _ in 0..args.per_address {
            match connect_from(source, server).await {
                Ok(stream) => opened.push(stream),
                Err(_) => failed += 1,
            }
        }
    }
    // Refused ones were answered at once; accepted ones hear nothing.
    let mut watching = JoinSet::new();
    for mut stream in opened {
        watching.spawn(async move {
            let mut first = [0u8; 12];
            match tokio::time::timeout(REFUSAL_WAIT, stream.read(&mut first)).await {
                Err(_) => Some(stream),
                Ok(_) => None,
            }
        });
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for watched in watching.join_all().await {
        match watched {
            Some(stream) => held.push(stream),
            None => refused += 1,
        }
    }
    let filled_at = Instant::now();
    eprintln!(
        "{} held, {refused} refused; a new client while full …",
        held.len()
    );
    let (while_full_status, while_full_ms) = one_request(server).await;

    eprintln!("waiting for the server to close the idle connections …");
    let mut closing = JoinSet::new();
    for mut stream in held.drain(..) {
        closing.spawn(async move {
            let mut rest = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut rest)).await;
        });
    }
    let held_count = closing.len();
    closing.join_all().await;
    let all_closed_after_s = filled_at.elapsed().as_secs_f64();
    let (status, _) = one_request(server).await;
    Ok(IdleConnectionsReport {
        machine: crate::machine(),
        attempted: args.per_address * usize::from(args.addresses),
        held: held_count,
        refused_429: refused,
        failed,
        while_full_status,
        while_full_ms,
        all_closed_after_s,
        served_again: status.starts_with("HTTP/1.1 200"),
        server_open_files_limit: open_files_limit(pid),
    })
}

async fn connect_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(server))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

/// `GET /healthz` from a fresh address: the status line and how long the
/// answer took.
async fn one_request(server: SocketAddr) -> (String, f64) {
    let started = Instant::now();
    let answer = async {
        let mut stream = connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), server).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: loadgen\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    let status = match tokio::time::timeout(Duration::from_secs(30), answer).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        Ok(Err(error)) => format!("no answer: {error}"),
        Err(_) => "no answer within 30 s".to_owned(),
    };
    (status, started.elapsed().as_secs_f64() * 1000.0)
}

/// The server's own open-file limit, as it raised it.
fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn print_summary(report: &IdleConnectionsReport) {
    println!("machine: {}", report.machine);
    println!(
        "{} idle connections attempted: {} held, {} refused with 429, {} not made",
        report.attempted, report.held, report.refused_429, report.failed
    );
    println!(
        "a new client while full: {} in {:.1} ms",
        report.while_full_status, report.while_full_ms
    );
    println!(
        "every held connection closed by the server {:.1} s after the last was opened; served again: {}",
        report.all_closed_after_s, report.served_again
    );
    if let Some(limit) = report.server_open_files_limit {
        println!("the server's open-file limit: {limit}");
    }
}
