//! The supervisors' dashboard in a real browser: headless Chromium driven
//! over WebDriver by chromedriver, against the real server. The page logs in,
//! loads the snapshot and follows the live feed; a simulated handheld's syncs
//! must show in the crew table without the page being reloaded.
//!
//! Chromium and chromedriver come from Debian (`.ci/run` installs them and
//! turns on the `browser` feature that builds this test). With the feature
//! on, a machine without them fails this test with the command to run: a
//! browser test that skips itself would pass without ever having run.
//!
//! `DASHBOARD_SCREENSHOT=docs/dashboard.png cargo test -p blackbox-tests
//! --features browser --test dashboard_browser` also saves what the browser
//! shows at the end (the path is relative to the workspace), and what a
//! phone shows beside it (`docs/dashboard-phone-zh.png`).

mod browser;
mod common;

use std::path::{Path, PathBuf};

use browser::{
    ChromeDriver, log_in, save_screenshot, switch_language, wait_for_text, wait_until, workspace,
};
use chrono::{Duration, Utc};
use common::{Handheld, TestServer, device_id, device_report, intake, note};
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::{
    Applied, Category, Cursor, DeviceReport, HistoryEvent, Intake, OfficeOp, Outcome,
    PROTOCOL_VERSION, PullRequest, TicketId, TicketKind, TrackingKind, UserId,
};

const TECHNICIAN: &str = "li";
const HANDHELD: &str = "dev-li-dashboard";
/// Another technician's handheld, whose late fact awaits review.
const WANGS_HANDHELD: &str = "dev-wang-01";
/// A phone's screen, in CSS pixels.
const PHONE: (u32, u32) = (390, 844);
const CREW_ROWS: &str = "#crew-table tbody tr[data-device]";
const RISK_ROWS: &str = "#risk-table tbody tr[data-ticket]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_a_device_go_from_three_pending_to_in_sync_without_a_reload() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let mut handheld = Handheld::new(HANDHELD);
    let technician = server.login(TECHNICIAN).await;
    let ticket = server.tickets_of(TECHNICIAN).await.remove(0);
    let name = shown_name(&server, TECHNICIAN).await;
    // wang's handheld is known before the page opens: its later push is a
    // contact of a device already on the page, not a new row.
    let wang = server.login("wang").await;
    server
        .pull(&wang, &device_id(WANGS_HANDHELD), Cursor(0))
        .await;

    browser
        .goto(&server.url("/dashboard"))
        .await
        .expect("the dashboard opens");
    log_in(&browser, "zhuguan").await;
    wait_for_text(&browser, "#dashboard-view:not([hidden]) #crew-table", "").await;
    // A value only this document has: a reload would lose it.
    browser
        .execute("window.stillTheSamePage = true;", Vec::new())
        .await
        .expect("the script runs");

    // A fact flagged late by another device's push joins the review queue live.
    let (flagged, _) = a_late_fact_awaiting_review(&server).await;
    let review_row = format!("#review-table tr[data-mutation=\"{flagged}\"]");
    wait_for_text(&browser, &review_row, "离线期间已改派").await;

    // The handheld has recorded three notes offline and says so on a pull.
    let recorded = vec![
        handheld.record(&ticket, note("到场检查 checked on site")),
        handheld.record(&ticket, note("更换阀门 valve replaced")),
        handheld.record(&ticket, note("试水正常 tested, no leak")),
    ];
    let waiting = DeviceReport {
        outbox_depth: 3,
        oldest_pending_age_ms: Some(20 * 60 * 1000),
        ..device_report(&handheld.id)
    };
    server
        .pull_raw(
            &technician,
            &PullRequest {
                protocol_version: PROTOCOL_VERSION,
                device: waiting,
                cursor: Cursor(0),
                limit: None,
            },
        )
        .await
        .ok::<Value>();
    let row = format!("#crew-table tr[data-device=\"{HANDHELD}\"] .pending");
    wait_for_text(&browser, &row, "3 待上传").await;

    // The supervisor switches to English; the row keeps its state.
    switch_to_english(&browser).await;
    wait_for_text(&browser, &row, "3 pending").await;

    // The device reconnects and uploads its outbox.
    server.push(&technician, &handheld.id, recorded).await;
    wait_for_text(&browser, &row, "in sync").await;

    let same_page = browser
        .execute("return window.stillTheSamePage === true;", Vec::new())
        .await
        .expect("the script runs");
    assert_eq!(
        same_page,
        json!(true),
        "the row changed without the page being reloaded"
    );

    // The drill-down of the technician lists the device, now in sync.
    browser
        .find(Locator::Css(&format!(
            "#crew-table tr[data-device=\"{HANDHELD}\"] th button"
        )))
        .await
        .expect("the technician's name is a button")
        .click()
        .await
        .expect("the drill-down opens");
    wait_for_text(&browser, "#detail:not([hidden])", HANDHELD).await;
    wait_for_text(&browser, "#detail-heading", &format!("Technician {name}")).await;

    // Back to Chinese, the default, which the screenshot shows.
    switch_language(&browser, "zh-CN").await;
    wait_for_text(&browser, "#detail-heading", &format!("技术员 {name}")).await;
    wait_for_text(&browser, &row, "已同步").await;

    if let Some(path) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        // Tall enough for the whole page at the width of an office screen.
        save_screenshot(&browser, &workspace().join(path), 1280, 1200).await;
    }
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p5_an_escalated_ticket_is_on_the_supervisors_board_in_chinese_and_in_english() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let escalated = an_escalated_coordination_ticket(&server).await;

    browser
        .goto(&server.url("/dashboard"))
        .await
        .expect("the dashboard opens");
    log_in(&browser, "zhuguan").await;
    let row = format!("#risk-table tr[data-ticket=\"{escalated}\"][data-rule=\"R-P5\"]");
    wait_for_text(&browser, &row, "R-P5 升级：联合约谈业主").await;
    wait_for_text(&browser, &row, "即将到期").await;
    switch_to_english(&browser).await;
    wait_for_text(&browser, &row, "R-P5 Escalated: joint talk with the owner").await;
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_sort_by_a_clicked_heading_and_filter_and_keep_both_through_live_updates() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    // Four handhelds, each with a different number of changes waiting; one
    // clock 3 min 12 s ahead, one 15 minutes behind (not trusted).
    report_contact(&server, "li", "dev-li-01", 1, 192_400).await;
    report_contact(&server, "li", "dev-li-02", 0, 0).await;
    report_contact(&server, "wang", "dev-wang-02", 2, -15 * 60 * 1000).await;
    report_contact(&server, "zhang", "dev-zhang-01", 5, 0).await;
    let li = shown_name(&server, "li").await;

    browser
        .goto(&server.url("/dashboard"))
        .await
        .expect("the dashboard opens");
    log_in(&browser, "zhuguan").await;
    wait_until(
        &browser,
        &format!("return document.querySelectorAll({CREW_ROWS:?}).length === 4;"),
    )
    .await;

    // Names, with the user id in the tooltip; offsets (server minus device)
    // in minutes and seconds, and in words in the tooltip.
    let li_row = "#crew-table tr[data-device=\"dev-li-01\"]";
    wait_for_text(&browser, &format!("{li_row} th button[title=\"li\"]"), &li).await;
    wait_for_text(&browser, &format!("{li_row} .offset"), "−3 分 12 秒").await;
    wait_for_text(
        &browser,
        &format!("{li_row} .offset[title=\"设备时钟快 3 分 12 秒\"]"),
        "",
    )
    .await;
    let untrusted = "#crew-table tr[data-device=\"dev-wang-02\"] .offset.alert-text";
    wait_for_text(&browser, untrusted, "+15 分钟").await;

    // A click on a heading sorts by it; a second click turns the order round.
    click(&browser, "#crew-table th[data-sort=\"pending\"] button").await;
    let ascending = ["dev-li-02", "dev-li-01", "dev-wang-02", "dev-zhang-01"];
    wait_for_order(&browser, CREW_ROWS, "data-device", &ascending).await;
    wait_for_sort(&browser, "crew", "pending", "ascending").await;
    click(&browser, "#crew-table th[data-sort=\"pending\"] button").await;
    let descending = ["dev-zhang-01", "dev-wang-02", "dev-li-01", "dev-li-02"];
    wait_for_order(&browser, CREW_ROWS, "data-device", &descending).await;
    wait_for_sort(&browser, "crew", "pending", "descending").await;

    // A live contact re-renders the table in the order chosen.
    report_contact(&server, "li", "dev-li-01", 9, 192_400).await;
    wait_for_text(&browser, &format!("{li_row} .pending"), "9 待上传").await;
    let after_contact = ["dev-li-01", "dev-zhang-01", "dev-wang-02", "dev-li-02"];
    wait_for_order(&browser, CREW_ROWS, "data-device", &after_contact).await;

    // The filter finds a technician by id behind the name, and stays on
    // through a live contact.
    type_into(&browser, "#crew-filter", "zhang").await;
    wait_for_order(&browser, CREW_ROWS, "data-device", &["dev-zhang-01"]).await;
    wait_for_text(&browser, "#crew-note", "显示 1 / 4").await;
    report_contact(&server, "zhang", "dev-zhang-01", 3, 0).await;
    let zhang_pending = "#crew-table tr[data-device=\"dev-zhang-01\"] .pending";
    wait_for_text(&browser, zhang_pending, "3 待上传").await;
    wait_for_order(&browser, CREW_ROWS, "data-device", &["dev-zhang-01"]).await;
    type_into(&browser, "#crew-filter", " nobody").await;
    wait_for_text(&browser, "#crew-table tbody", "没有符合筛选条件的行。").await;
    clear_filter(&browser, "#crew-filter").await;

    // Only the devices needing attention: the calm one, in sync, goes.
    click(&browser, "#crew-attention").await;
    let needing_attention = ["dev-li-01", "dev-zhang-01", "dev-wang-02"];
    wait_for_order(&browser, CREW_ROWS, "data-device", &needing_attention).await;
    wait_for_text(&browser, "#crew-note", "显示 3 / 4").await;
    click(&browser, "#crew-attention").await;
    wait_for_order(&browser, CREW_ROWS, "data-device", &after_contact).await;

    // Tickets at risk: the number opens the ticket in the office console.
    let ticket = server.tickets_of("li").await.remove(0);
    let label = ticket
        .serial_number
        .as_ref()
        .map_or_else(|| ticket.id.to_string(), ToString::to_string);
    let link = format!("#risk-table tr[data-ticket=\"{}\"] th a", ticket.id);
    wait_for_text(&browser, &link, &label).await;
    assert_eq!(
        href_of(&browser, &link).await,
        format!("/console#/tickets/{}", ticket.id)
    );

    // Sorted by technician, either way; a ticket nobody holds stays last.
    click(&browser, "#risk-table th[data-sort=\"technician\"] button").await;
    wait_for_sort(&browser, "risk", "technician", "ascending").await;
    let technicians = risk_technicians(&browser).await;
    let mut held: Vec<String> = technicians
        .iter()
        .filter(|user| !user.is_empty())
        .cloned()
        .collect();
    held.dedup();
    assert_eq!(
        held,
        ["li", "wang", "zhang"],
        "in the order of their names: {technicians:?}"
    );
    assert_eq!(technicians, sorted_with_nobody_last(&technicians, false));
    click(&browser, "#risk-table th[data-sort=\"technician\"] button").await;
    wait_for_sort(&browser, "risk", "technician", "descending").await;
    let technicians = risk_technicians(&browser).await;
    assert_eq!(technicians, sorted_with_nobody_last(&technicians, true));
    assert_eq!(technicians.first().map(String::as_str), Some("zhang"));

    // The review queue: its ticket links too, and its filter.
    let (flagged, flagged_ticket) = a_late_fact_awaiting_review(&server).await;
    let review_row = format!("#review-table tr[data-mutation=\"{flagged}\"]");
    wait_for_text(&browser, &review_row, "离线期间已改派").await;
    assert_eq!(
        href_of(&browser, &format!("{review_row} th a")).await,
        format!("/console#/tickets/{flagged_ticket}")
    );
    type_into(&browser, "#review-filter", "wang").await;
    wait_for_text(&browser, &review_row, "离线期间已改派").await;
    clear_filter(&browser, "#review-filter").await;
    type_into(&browser, "#review-filter", "zhang").await;
    wait_for_text(&browser, "#review-table tbody", "没有符合筛选条件的行。").await;
    wait_for_text(&browser, "#review-note", "显示 0 / 1").await;
    browser.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_tables_turn_into_cards_and_the_page_never_scrolls_sideways() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    browser
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("a phone-sized window");
    let server = TestServer::start();
    report_contact(&server, TECHNICIAN, HANDHELD, 3, 192_400).await;
    let (flagged, _) = a_late_fact_awaiting_review(&server).await;

    browser
        .goto(&server.url("/dashboard"))
        .await
        .expect("the dashboard opens");
    log_in(&browser, "zhuguan").await;
    let row = format!("#crew-table tr[data-device=\"{HANDHELD}\"]");
    wait_for_text(&browser, &format!("{row} .pending"), "3 待上传").await;
    let review_row = format!("#review-table tr[data-mutation=\"{flagged}\"]");
    wait_for_text(&browser, &review_row, "离线期间已改派").await;
    wait_until(
        &browser,
        &format!("return document.querySelectorAll({RISK_ROWS:?}).length > 0;"),
    )
    .await;
    assert_fits_the_phone(&browser).await;
    // Each value is a line of its card, under its column's name.
    let label = browser
        .execute(
            "return getComputedStyle(document.querySelector(arguments[0]), '::before').content;",
            vec![json!(format!("{row} .pending"))],
        )
        .await
        .expect("the script runs");
    assert_eq!(label, json!("\"待上传\""));
    // The headings still sort, as a row of buttons above the cards: the
    // device with changes waiting comes first.
    click(&browser, "#crew-table th[data-sort=\"pending\"] button").await;
    wait_for_sort(&browser, "crew", "pending", "ascending").await;
    click(&browser, "#crew-table th[data-sort=\"pending\"] button").await;
    wait_for_sort(&browser, "crew", "pending", "descending").await;
    wait_until(
        &browser,
        &format!("return document.querySelector({CREW_ROWS:?}).dataset.device === {HANDHELD:?};"),
    )
    .await;
    if let Some(path) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        let path = phone_screenshot(&workspace().join(path));
        save_screenshot(&browser, &path, PHONE.0, PHONE.1).await;
    }

    // English is longer; the drill-down adds its lists.
    switch_language(&browser, "en").await;
    wait_for_text(&browser, &format!("{row} .pending"), "3 pending").await;
    click(&browser, &format!("{row} th button")).await;
    wait_for_text(&browser, "#detail:not([hidden])", HANDHELD).await;
    assert_fits_the_phone(&browser).await;
    browser.close().await.expect("the browser closes");
}

/// A coordination ticket whose owner rejected two proposals: escalated (R-P5).
async fn an_escalated_coordination_ticket(server: &TestServer) -> TicketId {
    let agent = server.login("kefu").await;
    let report = Intake {
        kind: TicketKind::CoordinationTicket,
        category: Category::Repair,
        ..intake()
    };
    let ticket = server.create_ticket(&agent, &report).await;
    let specialist = server.login("zhuanyuan").await;
    let rejected = || OfficeOp::Track {
        kind: TrackingKind::OwnerContact {
            reached: true,
            proposal_rejected: true,
        },
        note: "业主不接受方案 the owner rejects the proposal".to_owned(),
    };
    server.act(&specialist, &ticket.id, rejected()).await;
    let escalated = server.act(&specialist, &ticket.id, rejected()).await;
    assert!(matches!(
        escalated.history.last().map(|entry| &entry.event),
        Some(HistoryEvent::Escalated { .. })
    ));
    ticket.id
}

/// Another technician's device uploads a note recorded on a ticket that was
/// reassigned while the device was offline: the note is kept, flagged late,
/// and awaits a supervisor's review. Its mutation id, as the wire writes it,
/// and its ticket.
async fn a_late_fact_awaiting_review(server: &TestServer) -> (String, TicketId) {
    let wang = server.login("wang").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new(WANGS_HANDHELD);
    let ticket = server.tickets_of("wang").await.remove(0);
    let offline = handheld.record(&ticket, note("业主不在家 owner not at home"));
    let reassign = OfficeOp::Reassign {
        technician: UserId::parse("zhang").expect("a valid user id"),
        reason: "wang does not answer the radio 对讲无应答".to_owned(),
    };
    server.act(&dispatcher, &ticket.id, reassign).await;
    let pushed = server.push(&wang, &handheld.id, vec![offline]).await;
    assert!(
        matches!(
            &pushed.outcomes[0].outcome,
            Outcome::Applied(Applied { late: Some(_), .. })
        ),
        "the note is kept but late: {pushed:?}"
    );
    (format!("{}#1", handheld.id), ticket.id)
}

/// A handheld's pull that says how many changes wait in its outbox, with a
/// clock `clock_ahead_ms` ahead of the server's (behind when negative).
async fn report_contact(
    server: &TestServer,
    user: &str,
    device: &str,
    outbox_depth: u32,
    clock_ahead_ms: i64,
) {
    let token = server.login(user).await;
    let report = DeviceReport {
        outbox_depth,
        oldest_pending_age_ms: (outbox_depth > 0).then_some(20 * 60 * 1000),
        device_time: Utc::now() + Duration::milliseconds(clock_ahead_ms),
        ..device_report(&device_id(device))
    };
    let request = PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: report,
        cursor: Cursor(0),
        limit: None,
    };
    server.pull_raw(&token, &request).await.ok::<Value>();
}

/// The name the page shows for `user`: the display name the estate's people
/// list gives, or the id from a server without that list (the page falls
/// back to ids).
async fn shown_name(server: &TestServer, user: &str) -> String {
    let token = server.login("zhuguan").await;
    let response = server.get("/api/v1/people", Some(&token)).await;
    if response.status == StatusCode::NOT_FOUND {
        return user.to_owned();
    }
    let answer: Value = response.ok();
    answer["people"]
        .as_array()
        .expect("a list of people")
        .iter()
        .find(|person| person["user"] == user)
        .and_then(|person| person["display_name"].as_str())
        .unwrap_or(user)
        .to_owned()
}

async fn click(browser: &Client, selector: &str) {
    browser
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("{selector} is on the page: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("{selector} takes a click: {error}"));
}

/// Types `text` at the end of what the input already holds, key by key.
async fn type_into(browser: &Client, selector: &str, text: &str) {
    browser
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("{selector} is on the page: {error}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|error| panic!("{selector} takes keys: {error}"));
}

/// Empties a filter as its clear button would.
async fn clear_filter(browser: &Client, selector: &str) {
    browser
        .execute(
            "const input = document.querySelector(arguments[0]); \
             input.value = ''; input.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![json!(selector)],
        )
        .await
        .expect("the script runs");
}

/// Waits until the rows `selector` are exactly `expected`, by `attribute`.
async fn wait_for_order(browser: &Client, selector: &str, attribute: &str, expected: &[&str]) {
    let expected = serde_json::to_string(expected).expect("JSON");
    wait_until(
        browser,
        &format!(
            "return JSON.stringify(Array.from(document.querySelectorAll({selector:?}), \
             (row) => row.getAttribute({attribute:?}))) === {expected:?};"
        ),
    )
    .await;
}

/// Waits until the column `column` of `table` says it sorts the table.
async fn wait_for_sort(browser: &Client, table: &str, column: &str, order: &str) {
    let header = format!("#{table}-table th[data-sort=\"{column}\"]");
    wait_until(
        browser,
        &format!(
            "return document.querySelector({header:?}).getAttribute('aria-sort') === {order:?} \
             && document.querySelectorAll('#{table}-table th[aria-sort]').length === 1;"
        ),
    )
    .await;
}

async fn href_of(browser: &Client, selector: &str) -> String {
    let href = browser
        .execute(
            "return document.querySelector(arguments[0]).getAttribute('href');",
            vec![json!(selector)],
        )
        .await
        .expect("the script runs");
    href.as_str()
        .unwrap_or_else(|| panic!("{selector} is a link: {href:?}"))
        .to_owned()
}

/// The technician of each ticket at risk, top to bottom ("" for none).
async fn risk_technicians(browser: &Client) -> Vec<String> {
    let users = browser
        .execute(
            &format!(
                "return Array.from(document.querySelectorAll({RISK_ROWS:?}), \
                 (row) => row.cells[4].querySelector('[data-user]')?.dataset.user ?? '');"
            ),
            Vec::new(),
        )
        .await
        .expect("the script runs");
    serde_json::from_value(users).expect("a list of user ids")
}

/// The demo technicians' names sort as their ids do (li, wang, zhang): in
/// Chinese by pinyin, in English by letter.
fn sorted_with_nobody_last(users: &[String], descending: bool) -> Vec<String> {
    let mut sorted: Vec<String> = users
        .iter()
        .filter(|user| !user.is_empty())
        .cloned()
        .collect();
    sorted.sort();
    if descending {
        sorted.reverse();
    }
    sorted.extend(users.iter().filter(|user| user.is_empty()).cloned());
    sorted
}

/// The page is no wider than the phone: nothing to scroll sideways.
async fn assert_fits_the_phone(browser: &Client) {
    let widths = browser
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            Vec::new(),
        )
        .await
        .expect("the script runs");
    let [viewport, page]: [u32; 2] = serde_json::from_value(widths).expect("two widths");
    assert!(
        viewport <= PHONE.0,
        "the window is phone-sized: {viewport}px"
    );
    assert!(
        page <= PHONE.0,
        "the page is {page}px wide on a {viewport}px phone"
    );
}

/// `docs/dashboard.png` → `docs/dashboard-phone-zh.png`.
fn phone_screenshot(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("dashboard");
    path.with_file_name(format!("{stem}-phone-zh.png"))
}

async fn switch_to_english(browser: &Client) {
    switch_language(browser, "en").await;
}
