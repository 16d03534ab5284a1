//! The office console in a real browser: headless Chromium against the
//! real server, every office step through the pages, and every check on
//! the outcome reading what the server stored. The technician's part is
//! their handheld's push (the app has browser tests of its own).
//!
//! `CONSOLE_SCREENSHOTS=docs cargo test -p blackbox-tests --features browser
//! --test console_browser` also saves the console's screens, in Chinese and
//! in English, to `docs/console-*.png` (relative to the workspace).

mod browser;
mod common;

use browser::{
    ChromeDriver, PAGE_TIMEOUT, log_in, save_screenshot, switch_language, wait_for_text,
    wait_until, workspace,
};
use common::{Handheld, TestServer};
use fantoccini::{Client, Locator};
use serde_json::json;
use sync_protocol::{
    Area, Category, Charge, CompletionRecord, Material, Rating, Reporter, Source, Status, Ticket,
    TicketId, TicketKind,
};

const DESKTOP: (u32, u32) = (1280, 900);

async fn open_console(browser: &Client, server: &TestServer, user: &str, route: &str) {
    browser
        .goto(&server.url("/console"))
        .await
        .expect("the console loads");
    // A fresh session for each person: the console keeps it per tab.
    browser
        .execute("sessionStorage.clear(); location.hash = '';", Vec::new())
        .await
        .expect("the session is cleared");
    browser.refresh().await.expect("the page reloads");
    log_in(browser, user).await;
    wait_until(browser, "return document.querySelector('#nav a') !== null;").await;
    go(browser, route).await;
}

async fn go(browser: &Client, route: &str) {
    browser
        .execute(&format!("location.hash = '#/{route}';"), Vec::new())
        .await
        .expect("the route changes");
}

/// Chromium in an office computer's window; the driver lives as long as
/// the first half of the pair.
async fn desktop_browser() -> (ChromeDriver, Client) {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    browser
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("a desktop window");
    (driver, browser)
}

/// Fills a form: each field with its value, in order.
async fn fill(browser: &Client, fields: &[(&str, &str)]) {
    for (selector, value) in fields {
        set(browser, selector, value).await;
    }
}

async fn set(browser: &Client, selector: &str, value: &str) {
    let script = "const [selector, value] = arguments; const e = document.querySelector(selector); \
                  e.value = value; e.dispatchEvent(new Event('input', { bubbles: true })); \
                  e.dispatchEvent(new Event('change', { bubbles: true })); return true;";
    browser
        .execute(script, vec![json!(selector), json!(value)])
        .await
        .unwrap_or_else(|error| panic!("{selector}: {error}"));
}

/// Clicks `selector`; when the screen is redrawn under the click (an
/// answer arrived), finds it again, as a hand would click again.
async fn click(browser: &Client, selector: &str) {
    let started = std::time::Instant::now();
    loop {
        let clicked = match browser.find(Locator::Css(selector)).await {
            Ok(element) => element.click().await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(_) if started.elapsed() < PAGE_TIMEOUT => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => panic!("clicking {selector}: {error}"),
        }
    }
}

/// With `CONSOLE_SCREENSHOTS` set, saves what the browser shows in Chinese
/// and in English (`console-{name}-zh.png`, `-en.png`), waiting for
/// `selector` to show `english` after the switch.
async fn screenshots(
    browser: &Client,
    name: &str,
    (width, height): (u32, u32),
    selector: &str,
    english: &str,
) {
    let Some(directory) = std::env::var_os("CONSOLE_SCREENSHOTS") else {
        return;
    };
    let directory = workspace().join(directory);
    save_screenshot(
        browser,
        &directory.join(format!("console-{name}-zh.png")),
        width,
        height,
    )
    .await;
    switch_language(browser, "en").await;
    wait_for_text(browser, selector, english).await;
    save_screenshot(
        browser,
        &directory.join(format!("console-{name}-en.png")),
        width,
        height,
    )
    .await;
    switch_language(browser, "zh-CN").await;
    browser
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("the window resizes back");
}

/// The ticket the intake notice links to.
async fn recorded_ticket(browser: &Client) -> TicketId {
    let href = browser
        .execute(
            "return document.querySelector('#intake-recorded a').getAttribute('href');",
            Vec::new(),
        )
        .await
        .expect("the notice links the ticket");
    let href = href.as_str().expect("an href").to_owned();
    TicketId::parse(href.rsplit('/').next().unwrap()).expect("a ticket id")
}

async fn stored(server: &TestServer, id: &TicketId) -> Ticket {
    let token = server.login("kefu").await;
    server.ticket(&token, id).await
}

fn paid_repair() -> CompletionRecord {
    CompletionRecord {
        work_done: "更换三角阀，试水无渗漏".to_owned(),
        materials: vec![Material {
            name: "三角阀".to_owned(),
            quantity: "1 个".to_owned(),
        }],
        charge: Charge::Paid { fee_fen: 4500 },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_order_goes_from_intake_to_follow_up_in_the_console_alone() {
    let (_driver, browser) = desktop_browser().await;
    let server = TestServer::start();

    // 受理: the agent takes the call. The kind follows the category (R-K2).
    open_console(&browser, &server, "kefu", "intake").await;
    wait_until(
        &browser,
        "return document.querySelector('#intake-form') !== null;",
    )
    .await;
    // An empty record is refused with every problem at its field (R-I2).
    click(&browser, "#record-report").await;
    wait_for_text(&browser, "[data-field='location'] .field-problem", "必填").await;
    wait_for_text(
        &browser,
        "[data-field='description'] .field-problem",
        "必填",
    )
    .await;
    wait_until(
        &browser,
        "return document.querySelector('#unit').getAttribute('aria-invalid') === 'true';",
    )
    .await;
    fill(
        &browser,
        &[
            ("#reporter-name", "王女士"),
            ("#reporter-phone", "13800138000"),
            ("#unit", "5-2-1101"),
            ("#category", "repair"),
            ("#description", "卫生间水管漏水，楼下天花板滴水"),
        ],
    )
    .await;
    wait_for_text(&browser, "#kind-hint", "派工单").await;
    // A double submit (a double click, a retry) is one report.
    browser
        .execute(
            "const form = document.querySelector('#intake-form'); \
             form.requestSubmit(); form.requestSubmit(); return true;",
            Vec::new(),
        )
        .await
        .expect("the form submits twice");
    wait_for_text(&browser, "#intake-recorded", "已受理，编号").await;
    let id = recorded_ticket(&browser).await;
    let token = server.login("kefu").await;
    let estate = server.list_tickets(&token).await;
    let same: Vec<&Ticket> = estate
        .iter()
        .filter(|ticket| ticket.description == "卫生间水管漏水，楼下天花板滴水")
        .collect();
    assert_eq!(same.len(), 1, "one report, however often it was sent");
    let ticket = stored(&server, &id).await;
    assert_eq!(ticket.kind, TicketKind::WorkOrder);
    assert_eq!(ticket.reporter.name, "王女士");
    if std::env::var_os("CONSOLE_SCREENSHOTS").is_some() {
        set(&browser, "#unit", "5-2").await;
        wait_until(
            &browser,
            "return !document.querySelector('.unit-options').hidden;",
        )
        .await;
    }
    screenshots(
        &browser,
        "intake",
        (1280, 900),
        "#intake-form h2",
        "Record a report",
    )
    .await;

    // 分派: the dispatcher takes it from the queue with a suggestion (R-D3).
    open_console(&browser, &server, "diaodu", "dispatch").await;
    let serial = ticket.serial_number.as_ref().unwrap().to_string();
    wait_for_text(&browser, "#dispatch-table", &serial).await;
    go(&browser, &format!("tickets/{id}")).await;
    wait_until(
        &browser,
        "return document.querySelector('#dispatch-suggestions .use-suggestion') !== null;",
    )
    .await;
    let suggested = browser
        .execute(
            "return document.querySelector('#dispatch-suggestions .use-suggestion').dataset.technician;",
            Vec::new(),
        )
        .await
        .expect("a suggestion");
    let technician = suggested.as_str().unwrap().to_owned();
    click(&browser, "#dispatch-suggestions .use-suggestion").await;
    click(&browser, "#action-dispatch button[type=submit]").await;
    wait_for_text(&browser, "#ticket-status", "已派工").await;
    let ticket = stored(&server, &id).await;
    assert_eq!(ticket.status, Status::Dispatched);
    assert_eq!(
        ticket
            .assigned_technician
            .as_ref()
            .map(|user| user.as_str()),
        Some(technician.as_str())
    );

    // 处理: the technician's handheld records arrival, result and signature.
    let mut handheld = Handheld::new(&format!("hh-{technician}-console"));
    server
        .finish_on_site(
            &technician,
            &mut handheld,
            &ticket,
            paid_repair(),
            Some(Rating::Satisfied),
        )
        .await;

    // 完结: the dispatcher closes it (R-C1) and sees who recorded what.
    go(&browser, "dispatch").await;
    go(&browser, &format!("tickets/{id}")).await;
    wait_for_text(&browser, "#ticket-facts", "更换三角阀").await;
    wait_for_text(&browser, "#ticket-facts", "业主 Owner").await;
    wait_until(
        &browser,
        "const img = document.querySelector('#ticket-facts img.signature'); \
         return img !== null && img.complete && img.naturalWidth >= 0 && img.src.startsWith('blob:');",
    )
    .await;
    click(&browser, "#action-close button[type=submit]").await;
    wait_for_text(&browser, "#ticket-status", "已完结").await;
    assert_eq!(stored(&server, &id).await.status, Status::Closed);
    screenshots(&browser, "ticket", (1280, 1400), "#ticket-status", "Closed").await;
    if std::env::var_os("CONSOLE_SCREENSHOTS").is_some() {
        go(&browser, "tickets").await;
        wait_until(
            &browser,
            "return document.querySelector('#filter-status') !== null;",
        )
        .await;
        set(&browser, "#filter-status", "").await;
        wait_for_text(&browser, "#ticket-table", &serial).await;
    }
    screenshots(
        &browser,
        "tickets",
        (1280, 900),
        "#ticket-table",
        "Work order",
    )
    .await;

    // 回访: the paid order is followed up (R-F1); the owner raises a new
    // problem, which becomes a linked report (R-F2, R-F3).
    open_console(&browser, &server, "kefu-jingli", "follow-ups").await;
    wait_for_text(&browser, "#follow-up-table", &serial).await;
    go(&browser, &format!("tickets/{id}")).await;
    wait_until(
        &browser,
        "return document.querySelector('#action-record_follow_up') !== null;",
    )
    .await;
    set(&browser, "#record_follow_up-rating", "satisfied").await;
    set(
        &browser,
        "#record_follow_up-note",
        "业主满意；另反映楼道灯不亮",
    )
    .await;
    click(&browser, "#record_follow_up-new-problem").await;
    click(&browser, "#action-record_follow_up button[type=submit]").await;
    wait_until(
        &browser,
        "const e = document.querySelector('#follow-up-of'); return e !== null && e.value !== '';",
    )
    .await;
    fill(
        &browser,
        &[
            ("#reporter-name", "王女士"),
            ("#unit", "5-2 楼道"),
            ("#area", "public_area"),
            ("#category", "repair"),
            ("#description", "五楼楼道灯不亮"),
        ],
    )
    .await;
    click(&browser, "#record-report").await;
    wait_for_text(&browser, "#intake-recorded", "已受理").await;
    let raised = recorded_ticket(&browser).await;

    let original = stored(&server, &id).await;
    assert_eq!(original.follow_ups.len(), 1);
    assert_eq!(original.follow_ups[0].rating, Some(Rating::Satisfied));
    assert_eq!(original.follow_up_reports, vec![raised.clone()]);
    let new_report = stored(&server, &raised).await;
    assert_eq!(new_report.source, Source::FollowUp);
    assert_eq!(new_report.follow_up_of.as_ref(), Some(&id));
    go(&browser, &format!("tickets/{raised}")).await;
    wait_for_text(&browser, "#follow-up-of", id.as_str()).await;

    // 归档: the month's statistics (R-A3) and archive (R-A2) on the page.
    go(&browser, "reports").await;
    wait_for_text(&browser, "#monthly-statistics", "完结率").await;
    let series = serial.rsplit_once('-').unwrap().0.to_owned();
    wait_for_text(&browser, "#archive-table", &series).await;
    wait_for_text(&browser, "#archive-table", "连续无缺号").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordination_ticket_is_escalated_signed_off_and_closed_in_the_console() {
    let (_driver, browser) = desktop_browser().await;
    let server = TestServer::start();
    let specialist = server.login("zhuanyuan").await;
    let intake = sync_protocol::Intake {
        estate: sync_protocol::EstateId::parse(common::DEMO_ESTATE).unwrap(),
        kind: TicketKind::CoordinationTicket,
        category: Category::OwnerCommunication,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: "赵先生".to_owned(),
            phone: Some("13900139000".to_owned()),
        },
        location: "8-1-602".to_owned(),
        description: "对物业费调整有异议，要求当面沟通".to_owned(),
        received_at: chrono::Utc::now(),
        follow_up_of: None,
        booking: None,
    };
    let ticket = server.create_ticket(&specialist, &intake).await;
    let id = ticket.id.clone();

    // R-P5: the owner rejects two proposals in a week; the specialist
    // records both through the console.
    open_console(&browser, &server, "zhuanyuan", &format!("tickets/{id}")).await;
    for _ in 0..2 {
        wait_until(
            &browser,
            "return document.querySelector('#action-track') !== null;",
        )
        .await;
        set(&browser, "#track-kind", "owner_contact").await;
        click(&browser, "#track-rejected").await;
        click(&browser, "#action-track button[type=submit]").await;
        wait_until(
            &browser,
            "return document.querySelector('#action-track #track-rejected')?.checked === false;",
        )
        .await;
    }
    wait_for_text(&browser, "#ticket-history", "升级（R-P5）").await;

    // The customer-service manager sees the escalation on their due list.
    open_console(&browser, &server, "kefu-jingli", "due").await;
    wait_for_text(&browser, "#due-table", "R-P5").await;
    wait_for_text(&browser, "#due-table", "联合沟通").await;
    go(&browser, "tickets").await;
    wait_for_text(&browser, "#ticket-table", "已升级").await;

    // The specialist dispatches, the technician completes on site, the
    // department manager signs off, the manager closes (R-C3).
    open_console(&browser, &server, "zhuanyuan", &format!("tickets/{id}")).await;
    wait_until(
        &browser,
        "return document.querySelector('#dispatch-suggestions .use-suggestion') !== null;",
    )
    .await;
    set(&browser, "#dispatch-technician", "zhang").await;
    click(&browser, "#action-dispatch button[type=submit]").await;
    wait_for_text(&browser, "#ticket-status", "已派工").await;
    let dispatched = stored(&server, &id).await;
    let mut handheld = Handheld::new("hh-zhang-console");
    let record = CompletionRecord {
        work_done: "与业主当面沟通，解释调整依据".to_owned(),
        materials: Vec::new(),
        charge: Charge::Free {},
    };
    server
        .finish_on_site("zhang", &mut handheld, &dispatched, record, None)
        .await;

    open_console(&browser, &server, "banzhang", &format!("tickets/{id}")).await;
    wait_for_text(&browser, "#ticket-status", "已完成").await;
    assert!(
        browser.find(Locator::Css("#action-close")).await.is_err(),
        "the department manager signs off; closing is not theirs"
    );
    click(&browser, "#action-sign_off button[type=submit]").await;
    wait_for_text(&browser, "#ticket-history", "会签").await;

    open_console(&browser, &server, "kefu-jingli", &format!("tickets/{id}")).await;
    click(&browser, "#action-close button[type=submit]").await;
    wait_for_text(&browser, "#ticket-status", "已完结").await;
    let closed = stored(&server, &id).await;
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(closed.sign_offs.len(), 1);
    assert_eq!(closed.sign_offs[0].by.as_str(), "banzhang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_in_the_console_sees_only_their_own_tickets_and_the_way_to_the_app() {
    let driver = ChromeDriver::start();
    let browser = driver.open_browser().await;
    let server = TestServer::start();
    let own = server.tickets_of("li").await;
    assert!(!own.is_empty(), "the demo gives li tickets");

    open_console(&browser, &server, "li", "tickets").await;
    wait_for_text(&browser, "#open-app", "打开外勤 App").await;
    set(&browser, "#filter-status", "").await;
    wait_until(
        &browser,
        "return document.querySelector('#ticket-table') !== null;",
    )
    .await;
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('#ticket-table tbody a')].map(a => a.getAttribute('href').split('/').pop());",
            Vec::new(),
        )
        .await
        .expect("the list");
    let shown: Vec<String> = serde_json::from_value(shown).unwrap();
    let mut expected: Vec<String> = own.iter().map(|ticket| ticket.id.to_string()).collect();
    let mut shown_sorted = shown.clone();
    shown_sorted.sort();
    expected.sort();
    assert_eq!(shown_sorted, expected, "exactly li's tickets");
    let menu = browser
        .execute(
            "return [...document.querySelectorAll('#nav a')].map(a => a.getAttribute('href'));",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(menu, json!(["#/tickets", "#/due"]), "no office screens");

    // On a phone, the page never scrolls sideways: the list scrolls in its box.
    browser
        .set_window_size(390, 844)
        .await
        .expect("a phone window");
    for (route, shown) in [
        ("tickets".to_owned(), "#ticket-table"),
        (format!("tickets/{}", own[0].id), "#ticket-detail"),
    ] {
        go(&browser, &route).await;
        wait_until(
            &browser,
            &format!("return document.querySelector('{shown}') !== null;"),
        )
        .await;
        let width = browser
            .execute("return document.documentElement.scrollWidth;", Vec::new())
            .await
            .unwrap();
        assert!(width.as_u64().unwrap() <= 390, "{route}: {width}");
    }
}
