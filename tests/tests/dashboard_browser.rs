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
//! shows at the end (the path is relative to the workspace).

mod browser;
mod common;

use browser::{ChromeDriver, log_in, save_screenshot, switch_language, wait_for_text, workspace};
use common::{Handheld, TestServer, device_id, device_report, intake, note};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use sync_protocol::{
    Applied, Category, Cursor, DeviceReport, HistoryEvent, Intake, OfficeOp, Outcome,
    PROTOCOL_VERSION, PullRequest, TicketId, TicketKind, TrackingKind, UserId,
};

const TECHNICIAN: &str = "li";
const HANDHELD: &str = "dev-li-dashboard";
/// Another technician's handheld, whose late fact awaits review.
const WANGS_HANDHELD: &str = "dev-wang-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_a_device_go_from_three_pending_to_in_sync_without_a_reload() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let mut handheld = Handheld::new(HANDHELD);
    let technician = server.login(TECHNICIAN).await;
    let ticket = server.tickets_of(TECHNICIAN).await.remove(0);
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
    let flagged = a_late_fact_awaiting_review(&server).await;
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
    wait_for_text(&browser, "#detail-heading", "Technician li").await;

    // Back to Chinese, the default, which the screenshot shows.
    switch_language(&browser, "zh-CN").await;
    wait_for_text(&browser, "#detail-heading", "技术员 li").await;
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
/// and awaits a supervisor's review. Its mutation id, as the wire writes it.
async fn a_late_fact_awaiting_review(server: &TestServer) -> String {
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
    format!("{}#1", handheld.id)
}

async fn switch_to_english(browser: &Client) {
    switch_language(browser, "en").await;
}
