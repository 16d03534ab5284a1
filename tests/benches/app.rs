//! The technicians' app in headless Chromium, measured (docs/BENCHMARKS.md,
//! "The technicians' app"):
//! - the app opened from its service worker with the server stopped, to its
//!   ticket list drawn, with 200 tickets on the phone (10 openings);
//! - a fact recorded, from the tap to durable in IndexedDB (200 notes);
//! - the bytes of JavaScript and CSS the app ships, raw and gzip-compressed.
//!
//! `cargo bench -p blackbox-tests --features browser --bench app`
//! (Debian's Chromium and chromedriver, as for the browser tests.)

#[path = "../tests/browser/mod.rs"]
mod browser;
#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::Duration;

use browser::{ChromeDriver, log_in, wait_for_text, wait_until};
use common::{TestServer, intake};
use serde_json::{Value, json};
use sync_protocol::{OfficeOp, UserId};

const TICKETS_ON_THE_PHONE: usize = 200;
const OPENINGS: usize = 10;
const FACTS: usize = 200;
/// Taps this far apart: faster than a thumb, so that each fact meets the
/// screen still redrawing from the last one and the failed sync it started.
const TAP_INTERVAL_MS: u64 = 250;
/// The goals.
const OPEN_TARGET_MS: f64 = 1000.0;
const RECORD_P99_TARGET_MS: f64 = 50.0;
const SHIPPED_TARGET_BYTES: usize = 150 * 1024;
/// What the app ships besides its icons and manifest.
const SHIPPED: &[&str] = &[
    "/app",
    "/app/main.js",
    "/app/db.js",
    "/app/sync.js",
    "/app/i18n.js",
    "/app/record-hash.js",
    "/app/idb.js",
    "/app/signature_pad.js",
    "/app/style.css",
    "/app/sw.js",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut server = TestServer::start();
    let technician = "li";
    give_tickets(&server, technician).await;
    let (raw, compressed) = shipped_bytes(&server).await;

    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    browser
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    browser
        .goto(&server.url("/app"))
        .await
        .expect("the app opens");
    wait_for_text(&browser, "#login-form", "").await;
    log_in(&browser, technician).await;
    wait_for_rows(&browser, TICKETS_ON_THE_PHONE).await;
    wait_until(
        &browser,
        "return navigator.serviceWorker.controller !== null;",
    )
    .await;
    assert!(server.stop_gracefully(), "the server stops");

    let mut openings = Vec::new();
    for _ in 0..OPENINGS {
        browser.refresh().await.expect("the app opens again");
        wait_until(
            &browser,
            "return performance.getEntriesByName('ticket-list-shown').length > 0;",
        )
        .await;
        let shown = browser
            .execute(
                "const mark = performance.getEntriesByName('ticket-list-shown')[0]; \
                 return [mark.startTime, mark.detail.tickets];",
                Vec::new(),
            )
            .await
            .expect("the mark is read");
        assert_eq!(shown[1], json!(TICKETS_ON_THE_PHONE), "the whole list");
        openings.push(shown[0].as_f64().expect("milliseconds"));
    }

    let first = browser
        .execute(
            "return document.querySelector('#ticket-list li').dataset.ticket;",
            Vec::new(),
        )
        .await
        .expect("a ticket");
    let first = first.as_str().expect("an id");
    browser
        .goto(&server.url(&format!("/app#/t/{first}")))
        .await
        .expect("the ticket opens");
    wait_for_text(&browser, "#save-note", "").await;
    // The whole series runs as one script.
    let series = Duration::from_millis(TAP_INTERVAL_MS * FACTS as u64) * 2;
    browser
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(series),
            None,
            None,
        ))
        .await
        .expect("a longer script timeout");
    let timings = browser
        .execute_async(
            "const [count, interval, done] = arguments; const state = window.appState; \
             const start = state.recordTimings.length; let i = 0; \
             const next = () => { \
               if (state.recordTimings.length < start + i) { setTimeout(next, 2); return; } \
               if (i === count) { done(state.recordTimings.slice(start)); return; } \
               document.getElementById('note-text').value = `检查记录 check ${i}`; \
               document.getElementById('save-note').click(); i += 1; setTimeout(next, interval); \
             }; next();",
            vec![json!(FACTS), json!(TAP_INTERVAL_MS)],
        )
        .await
        .expect("the facts are recorded");
    let timings: Vec<f64> = timings
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(timings.len(), FACTS);
    browser.close().await.expect("the browser closes");

    let machine = machine();
    let open_median = percentile(&openings, 0.5);
    let record_p50 = percentile(&timings, 0.5);
    let record_p99 = percentile(&timings, 0.99);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let mut out = std::io::stdout().lock();
    writeln!(out, "machine: {machine}").unwrap();
    writeln!(
        out,
        "opened offline from the service worker to {TICKETS_ON_THE_PHONE} tickets listed, \
         {OPENINGS} openings: median {open_median:.0} ms (min {:.0}, max {:.0}); target ≤ {OPEN_TARGET_MS} ms: {}",
        percentile(&openings, 0.0),
        percentile(&openings, 1.0),
        verdict(open_median <= OPEN_TARGET_MS)
    )
    .unwrap();
    writeln!(
        out,
        "a fact from tap to durable in IndexedDB, {FACTS} notes: p50 {record_p50:.1} ms, \
         p99 {record_p99:.1} ms, max {:.1} ms; target p99 ≤ {RECORD_P99_TARGET_MS} ms: {}",
        percentile(&timings, 1.0),
        verdict(record_p99 <= RECORD_P99_TARGET_MS)
    )
    .unwrap();
    writeln!(
        out,
        "shipped JavaScript, CSS and page: {raw} bytes, {compressed} bytes gzip-compressed; \
         target ≤ {SHIPPED_TARGET_BYTES}: {}",
        verdict(compressed <= SHIPPED_TARGET_BYTES)
    )
    .unwrap();
}

/// `TICKETS_ON_THE_PHONE` tickets held by `technician`: the demo's, and
/// more received by an agent and dispatched to them.
async fn give_tickets(server: &TestServer, technician: &str) {
    let agent = server.login("kefu").await;
    let dispatcher = server.login("diaodu").await;
    let held = server.tickets_of(technician).await.len();
    for n in held..TICKETS_ON_THE_PHONE {
        let mut report = intake();
        report.location = format!("{}-{}-{:03}", 1 + n % 9, 1 + n % 4, 101 + n);
        let ticket = server.create_ticket(&agent, &report).await;
        let dispatch = OfficeOp::Dispatch {
            technician: UserId::parse(technician).expect("a user id"),
        };
        server.act(&dispatcher, &ticket.id, dispatch).await;
    }
    assert_eq!(
        server.tickets_of(technician).await.len(),
        TICKETS_ON_THE_PHONE
    );
}

/// The bytes the app ships, raw and gzip-compressed (each file on its own,
/// as a server or proxy compresses them).
async fn shipped_bytes(server: &TestServer) -> (usize, usize) {
    let (mut raw, mut compressed) = (0, 0);
    for path in SHIPPED {
        let body = server.get(path, None).await.body;
        raw += body.len();
        let mut gzip = std::process::Command::new("gzip")
            .args(["-9", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip runs");
        gzip.stdin
            .take()
            .expect("stdin")
            .write_all(&body)
            .expect("gzip reads");
        compressed += gzip.wait_with_output().expect("gzip ends").stdout.len();
    }
    (raw, compressed)
}

async fn wait_for_rows(browser: &fantoccini::Client, rows: usize) {
    wait_until(
        browser,
        &format!("return document.querySelectorAll('#ticket-list li').length === {rows};"),
    )
    .await;
}

fn percentile(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[index]
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chromium = std::process::Command::new("/usr/bin/chromium")
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores, {model}; {chromium}")
}
