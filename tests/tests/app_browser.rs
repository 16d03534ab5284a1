//! The technicians' app in a real browser: headless Chromium on a phone-sized
//! window, against the real server. A visit is recorded with the server
//! stopped and the tab closed in between; answers are lost and replayed; a
//! ticket is reassigned while the phone is offline. Every check on the
//! outcome reads what the server stored.
//!
//! `APP_SCREENSHOTS=docs cargo test -p blackbox-tests --features browser
//! --test app_browser` also saves the phone screens, in Chinese and in
//! English, to `docs/app-*.png` (relative to the workspace).

mod browser;
mod common;

use std::time::Duration;

use base64::Engine;
use browser::{
    ChromeDriver, PAGE_TIMEOUT, holds_within, log_in, save_screenshot, switch_language,
    wait_for_text, wait_until, workspace,
};
use common::TestServer;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use sync_protocol::{
    Charge, LateReason, OfficeOp, PhotoStage, Position, Sha256Hex, Ticket, TicketId, UserId,
};

const TECHNICIAN: &str = "li";
/// A phone's screen, in CSS pixels.
const PHONE: (u32, u32) = (390, 844);
/// How long the app may take to sync by itself once the server is back
/// (its retries after a failed sync start at 3 s and double).
const RESYNC_TIMEOUT: Duration = Duration::from_secs(45);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_recorded_with_the_server_stopped_and_the_tab_closed_arrives_once_and_whole() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    browser
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("a phone-sized window");
    let mut server = TestServer::start();
    let ticket = server.tickets_of(TECHNICIAN).await.remove(0);

    open_app_and_log_in(&browser, &server).await;
    let row = format!("#ticket-list li[data-ticket=\"{}\"]", ticket.id);
    wait_for_text(&browser, &row, &ticket.location).await;
    wait_until(
        &browser,
        "return navigator.serviceWorker.controller !== null;",
    )
    .await;
    // The deadlines come with the sync: R-P1's countdown on the row.
    wait_for_text(&browser, &format!("{row} .due"), "R-P1").await;
    wait_for_text(&browser, "#last-sync", "上次同步").await;
    if let Some(directory) = std::env::var_os("APP_SCREENSHOTS") {
        let directory = workspace().join(directory);
        save_screenshot(&browser, &directory.join("app-zh.png"), PHONE.0, PHONE.1).await;
        switch_language(&browser, "en").await;
        wait_for_text(&browser, "#status", "waiting").await;
        save_screenshot(&browser, &directory.join("app-en.png"), PHONE.0, PHONE.1).await;
        switch_language(&browser, "zh-CN").await;
    }

    // Truly offline: the server is gone, and the page comes from the
    // service worker.
    assert!(server.stop_gracefully(), "the server stops cleanly");
    browser.refresh().await.expect("the page reloads");
    wait_for_text(&browser, &row, &ticket.location).await;

    open_ticket(&browser, &server, &ticket.id).await;
    // The phone's satellite position, as a phone would give it.
    browser
        .execute(
            "navigator.geolocation.getCurrentPosition = (found) => found({ coords: \
             { latitude: 31.230416, longitude: 121.473701, accuracy: 12.4 } });",
            Vec::new(),
        )
        .await
        .expect("the position is given");
    click(&browser, "#arrive").await;
    wait_for_text(&browser, "#recorded", "到场").await;
    fill(
        &browser,
        "#note-text",
        "阀门锈死，已更换 the seized valve was replaced",
    )
    .await;
    click(&browser, "#save-note").await;
    wait_for_text(&browser, "#recorded", "备注").await;
    let photo = workspace().join("server/assets/app/icon-512.png");
    // The camera's picture, as the file input hands it over.
    fill(
        &browser,
        "#photo-input",
        photo.to_str().expect("a UTF-8 path"),
    )
    .await;
    wait_for_text(&browser, "#recorded", "照片").await;

    click(&browser, "#go-complete").await;
    fill(
        &browser,
        "#work-done",
        "更换厨房水管阀门 replaced the kitchen valve",
    )
    .await;
    fill(&browser, ".material-name", "阀门 DN20 valve").await;
    fill(&browser, ".material-quantity", "1").await;
    click(&browser, "#charge-paid").await;
    fill(&browser, "#fee-yuan", "35").await;
    click(&browser, "#save-complete").await;
    wait_for_text(&browser, "#signed-summary", "更换厨房水管阀门").await;
    draw_a_signature(&browser).await;
    if let Some(directory) = std::env::var_os("APP_SCREENSHOTS") {
        let path = workspace().join(directory).join("app-signature-zh.png");
        save_screenshot(&browser, &path, PHONE.0, PHONE.1).await;
    }
    click(&browser, "#confirm-signature").await;
    wait_for_text(&browser, "#waiting", "待上传 5").await;
    wait_for_text(&browser, "#net", "离线").await;

    // The tab is closed and another one opened: IndexedDB keeps everything.
    let old = browser.window().await.expect("the tab");
    let new = browser.new_window(true).await.expect("a new tab");
    browser.close_window().await.expect("the tab closes");
    browser
        .switch_to_window(new.handle)
        .await
        .expect("the new tab");
    assert_ne!(old, browser.window().await.expect("the tab"));
    browser
        .goto(&server.url("/app"))
        .await
        .expect("the app opens offline");
    wait_for_text(&browser, "#waiting", "待上传 5").await;
    let device = app_device_id(&browser).await;

    // The server comes back on its address; the app notices by itself.
    server.start_again_on_the_same_address();
    wait_for_text_within(&browser, "#waiting", "待上传 0", RESYNC_TIMEOUT).await;

    let office = server.login("diaodu").await;
    let stored = server.ticket(&office, &ticket.id).await;
    let by_app = |recorded_by: &UserId, device_of: &sync_protocol::DeviceId| {
        recorded_by.as_str() == TECHNICIAN && device_of.as_str() == device
    };
    assert_eq!(stored.arrivals.len(), 1, "one arrival: {stored:?}");
    let arrival = stored.arrivals.values().next().unwrap();
    assert!(by_app(&arrival.recorded_by, &arrival.device));
    assert_eq!(
        arrival.body.position,
        Some(Position {
            latitude_e6: 31_230_416,
            longitude_e6: 121_473_701,
            accuracy_m: 12
        })
    );
    assert_eq!(stored.notes.len(), 1);
    let note = stored.notes.values().next().unwrap();
    assert!(by_app(&note.recorded_by, &note.device));
    assert_eq!(
        note.body.text,
        "阀门锈死，已更换 the seized valve was replaced"
    );
    assert_eq!(stored.photos.len(), 1);
    let photo_fact = stored.photos.values().next().unwrap();
    assert_eq!(photo_fact.body.stage, PhotoStage::Before);
    assert_eq!(stored.results.len(), 1);
    let result = stored.results.values().next().unwrap();
    assert_eq!(result.body.charge, Charge::Paid { fee_fen: 3500 });
    assert_eq!(result.body.materials.len(), 1);
    assert_eq!(stored.signatures.len(), 1);
    let signature = stored.signatures.values().next().unwrap();
    assert!(by_app(&signature.recorded_by, &signature.device));
    assert_eq!(
        signature.body.signed_record,
        result.body.record_hash(),
        "bound to the result"
    );
    assert_eq!(stored.signature_of_current_result(), Some(signature));

    // The images on the server are the phone's, byte for byte.
    let technician = server.login(TECHNICIAN).await;
    let png = server
        .get(
            &format!("/api/v1/blobs/{}", signature.body.blob),
            Some(&technician),
        )
        .await;
    assert_eq!(png.status, 200);
    assert_eq!(png.body, app_blob(&browser, &signature.body.blob).await);
    assert!(png.body.starts_with(b"\x89PNG"), "a PNG image");
    let strokes = signature
        .body
        .strokes
        .as_ref()
        .expect("the strokes are kept");
    let strokes: Value = serde_json::from_slice(
        &server
            .get(&format!("/api/v1/blobs/{strokes}"), Some(&technician))
            .await
            .body,
    )
    .expect("the strokes are JSON");
    assert!(
        strokes["strokes"][0]
            .as_array()
            .is_some_and(|points| points.len() > 10)
    );
    let photo_bytes = server
        .get(
            &format!("/api/v1/blobs/{}", photo_fact.body.blob),
            Some(&technician),
        )
        .await;
    assert_eq!(photo_bytes.status, 200);
    assert_eq!(Sha256Hex::of(&photo_bytes.body), photo_fact.body.blob);
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_answer_was_lost_is_sent_again_and_answered_duplicate() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let ticket = server.tickets_of(TECHNICIAN).await.remove(0);
    open_app_and_log_in(&browser, &server).await;
    wait_for_text(&browser, "#last-sync", "上次同步").await;

    // The server applies the push and flushes it; the answer never reaches
    // the page, as when the connection drops after the server answered.
    browser
        .execute(
            "const realFetch = window.fetch.bind(window); window.answersLost = 0; \
             window.fetch = async (path, init) => { const answer = await realFetch(path, init); \
               if (String(path).endsWith('/sync/push') && window.answersLost === 0) { \
                 window.answersLost += 1; throw new TypeError('the connection dropped'); } \
               return answer; };",
            Vec::new(),
        )
        .await
        .expect("the network is made to lose an answer");
    open_ticket(&browser, &server, &ticket.id).await;
    fill(&browser, "#note-text", "第一条 the first note").await;
    click(&browser, "#save-note").await;
    wait_until(&browser, "return window.answersLost === 1;").await;
    // The app tries again by itself and gets the first answers back.
    wait_for_text_within(&browser, "#waiting", "待上传 0", RESYNC_TIMEOUT).await;

    let answers = app_outcomes(&browser).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["outcome"]["outcome"], "duplicate", "{answers:?}");
    assert_eq!(answers[0]["outcome"]["first"]["outcome"], "applied");
    let office = server.login("diaodu").await;
    let stored = server.ticket(&office, &ticket.id).await;
    let notes: Vec<_> = stored
        .notes
        .values()
        .filter(|note| note.body.text == "第一条 the first note")
        .collect();
    assert_eq!(notes.len(), 1, "nothing doubled");
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_reassigned_while_the_phone_was_offline_leaves_the_list_and_its_facts_are_kept_late()
 {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let ticket = server.tickets_of(TECHNICIAN).await.remove(0);
    open_app_and_log_in(&browser, &server).await;
    let row = format!("#ticket-list li[data-ticket=\"{}\"]", ticket.id);
    wait_for_text(&browser, &row, &ticket.location).await;

    // No signal: every call fails as in a basement.
    set_signal(&browser, false).await;
    open_ticket(&browser, &server, &ticket.id).await;
    fill(&browser, "#note-text", "业主不在家 the owner is out").await;
    click(&browser, "#save-note").await;
    wait_for_text(&browser, "#waiting", "待上传 1").await;

    let dispatcher = server.login("diaodu").await;
    let reassign = OfficeOp::Reassign {
        technician: UserId::parse("zhang").expect("a user id"),
        reason: "李师傅在地下室联系不上 li cannot be reached".to_owned(),
    };
    server.act(&dispatcher, &ticket.id, reassign).await;

    set_signal(&browser, true).await;
    click(&browser, "#sync").await;
    wait_for_text(&browser, "#waiting", "待上传 0").await;
    click(&browser, "#inbox-button").await;
    wait_for_text(&browser, "#inbox", "离线期间已改派").await;
    wait_for_text(&browser, "#inbox", "zhang").await;
    browser
        .goto(&server.url("/app#/"))
        .await
        .expect("the list opens");
    wait_until(
        &browser,
        &format!("return document.querySelector('{row}') === null && document.getElementById('view').textContent.length > 0;"),
    )
    .await;

    let stored: Ticket = server.ticket(&dispatcher, &ticket.id).await;
    let note = stored
        .notes
        .values()
        .find(|note| note.body.text == "业主不在家 the owner is out")
        .expect("the note is kept");
    let late = note.late.as_ref().expect("flagged late");
    assert_eq!(late.reason, LateReason::ReassignedAway);
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_session_ends_the_app_asks_for_a_login_and_uploads_what_it_kept() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let ticket = server.tickets_of(TECHNICIAN).await.remove(0);
    open_app_and_log_in(&browser, &server).await;
    open_ticket(&browser, &server, &ticket.id).await;
    set_signal(&browser, false).await;
    fill(
        &browser,
        "#note-text",
        "水泵房检查完毕 the pump room is checked",
    )
    .await;
    click(&browser, "#save-note").await;
    wait_for_text(&browser, "#waiting", "待上传 1").await;

    // Meanwhile an administrator ends li's sessions: tokens and refresh.
    let ended = server.end_sessions(TECHNICIAN).await;
    assert_eq!(ended.status, 200, "{ended:?}");

    set_signal(&browser, true).await;
    click(&browser, "#sync").await;
    wait_for_text(&browser, "#login-form", "登录已过期").await;
    wait_for_text(&browser, "#waiting", "待上传 1").await;
    log_in(&browser, TECHNICIAN).await;
    wait_for_text_within(&browser, "#waiting", "待上传 0", RESYNC_TIMEOUT).await;

    let office = server.login("diaodu").await;
    let stored = server.ticket(&office, &ticket.id).await;
    assert!(
        stored
            .notes
            .values()
            .any(|note| note.body.text == "水泵房检查完毕 the pump room is checked"),
        "the note recorded before the session ended is on the server"
    );
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_hashes_completion_records_as_the_protocol_does() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    browser
        .goto(&server.url("/app"))
        .await
        .expect("the app opens");
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(
            workspace().join("sync-protocol/tests/vectors/completion_record_hashes.json"),
        )
        .expect("the frozen vectors"),
    )
    .expect("JSON");
    let computed = browser
        .execute_async(
            "const [vectors, done] = arguments; \
             import('/app/record-hash.js').then(async ({ canonicalRecord, recordHash }) => \
               done(await Promise.all(vectors.map(async (v) => \
                 [canonicalRecord(v.record), await recordHash(v.record)]))));",
            vec![vectors.clone()],
        )
        .await
        .expect("the page hashes");
    let vectors = vectors.as_array().expect("a list");
    assert!(vectors.len() >= 4);
    for (vector, computed) in vectors.iter().zip(computed.as_array().expect("a list")) {
        assert_eq!(
            computed[0], vector["canonical"],
            "canonical form of {vector}"
        );
        assert_eq!(computed[1], vector["sha256"], "hash of {vector}");
    }
    browser.close().await.expect("the browser closes");
}

async fn open_app_and_log_in(browser: &Client, server: &TestServer) {
    browser
        .goto(&server.url("/app"))
        .await
        .expect("the app opens");
    // The page draws its login form once its store is open.
    wait_for_text(browser, "#login-form", "").await;
    log_in(browser, TECHNICIAN).await;
    wait_for_text(browser, "#view h1", "我的工单").await;
    wait_for_text(browser, "#status", "在线").await;
}

async fn click(browser: &Client, selector: &str) {
    on_element(
        browser,
        selector,
        |element| async move { element.click().await },
    )
    .await;
}

async fn fill(browser: &Client, selector: &str, text: &str) {
    on_element(browser, selector, |element| async move {
        element.send_keys(text).await
    })
    .await;
}

/// Finds `selector` and acts on it; when the screen was redrawn between
/// the two (new data arrived) or the element is not reachable yet, finds it
/// again, as a thumb would tap again.
async fn on_element<F, Fut>(browser: &Client, selector: &str, act: F)
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
{
    let started = std::time::Instant::now();
    loop {
        let element = match browser.find(Locator::Css(selector)).await {
            Ok(element) => element,
            // The screen is still being drawn: wait for it, as a thumb would.
            Err(_) if started.elapsed() < PAGE_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => panic!("{selector}: {error}"),
        };
        match act(element).await {
            Ok(()) => return,
            // Redrawn meanwhile, or not yet laid out where a thumb can reach
            // it (a screen still appearing): try again, within the timeout.
            Err(error)
                if started.elapsed() < PAGE_TIMEOUT
                    && ["stale element", "not interactable"]
                        .iter()
                        .any(|cause| error.to_string().contains(cause)) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{selector}: {error}"),
        }
    }
}

/// A finger drawing a name across the canvas: pointer events as a touch
/// screen sends them, 20 ms apart.
async fn draw_a_signature(browser: &Client) {
    browser
        .execute_async(
            "const done = arguments[0]; \
             const canvas = document.getElementById('signature-pad'); \
             const box = canvas.getBoundingClientRect(); \
             const touch = (type, x, y, buttons) => canvas.dispatchEvent(new PointerEvent(type, { \
               clientX: box.left + x, clientY: box.top + y, pointerId: 7, pointerType: 'touch', \
               isPrimary: true, buttons, bubbles: true, cancelable: true })); \
             touch('pointerdown', 20, 60, 1); \
             let i = 0; \
             const step = () => { \
               i += 1; \
               if (i > 30) { touch('pointerup', 260, 80, 0); done(true); return; } \
               touch('pointermove', 20 + i * 8, 60 + Math.sin(i / 3) * 30, 1); \
               setTimeout(step, 20); \
             }; \
             setTimeout(step, 20);",
            Vec::new(),
        )
        .await
        .expect("the signature is drawn");
}

/// Opens ticket `id` in the app and waits for its screen.
async fn open_ticket(browser: &Client, server: &TestServer, id: &TicketId) {
    browser
        .goto(&server.url(&format!("/app#/t/{id}")))
        .await
        .expect("the ticket opens");
    wait_for_text(browser, "#arrive", "到场").await;
}

/// No signal (every call of the page fails, as in a basement), or the
/// signal back.
async fn set_signal(browser: &Client, present: bool) {
    browser
        .execute(
            "const [present] = arguments; \
             if (!window.realFetch) { \
               window.realFetch = window.fetch.bind(window); \
               window.fetch = (path, init) => window.noSignal \
                 ? Promise.reject(new TypeError('no signal')) : window.realFetch(path, init); \
             } \
             window.noSignal = !present;",
            vec![json!(present)],
        )
        .await
        .expect("the signal is set");
}

/// [`wait_for_text`] with a longer wait, for what the app does by itself.
async fn wait_for_text_within(browser: &Client, selector: &str, expected: &str, within: Duration) {
    let condition = format!(
        "const e = document.querySelector({}); return e !== null && e.textContent.includes({});",
        json!(selector),
        json!(expected)
    );
    if !holds_within(browser, &condition, within).await {
        // Says what the page shows instead.
        wait_for_text(browser, selector, expected).await;
    }
}

/// What the app keeps in IndexedDB, read by a script in the page.
async fn read_store(browser: &Client, script: &str, argument: Value) -> Value {
    let wrapped = format!(
        "const [argument, done] = arguments; \
         const opened = indexedDB.open('estate-sync-app'); \
         opened.onsuccess = () => {{ const db = opened.result; {script} }};"
    );
    browser
        .execute_async(&wrapped, vec![argument])
        .await
        .expect("the store is read")
}

async fn app_device_id(browser: &Client) -> String {
    let id = read_store(
        browser,
        "const got = db.transaction('meta').objectStore('meta').get('device_id'); \
         got.onsuccess = () => done(got.result);",
        Value::Null,
    )
    .await;
    id.as_str().expect("the app has a device id").to_owned()
}

async fn app_outcomes(browser: &Client) -> Vec<Value> {
    let answers = read_store(
        browser,
        "const got = db.transaction('outcomes').objectStore('outcomes').getAll(); \
         got.onsuccess = () => done(got.result);",
        Value::Null,
    )
    .await;
    answers.as_array().expect("a list").clone()
}

async fn app_blob(browser: &Client, hash: &Sha256Hex) -> Vec<u8> {
    let encoded = read_store(
        browser,
        "const got = db.transaction('blobs').objectStore('blobs').get(argument); \
         got.onsuccess = () => { let text = ''; for (const byte of got.result.bytes) \
           text += String.fromCharCode(byte); done(btoa(text)); };",
        json!(hash.as_str()),
    )
    .await;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().expect("base64"))
        .expect("valid base64")
}
