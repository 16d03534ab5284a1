//! The due list over real HTTP (`GET /api/v1/due`): each role sees the
//! deadlines it acts on, a deadline done drops off, the window and the limit
//! are checked, and each estate's deadlines count in its own working
//! calendar (the `[calendars]` section of the configuration file).
//!
//! The demo estate's four tickets were dispatched seconds ago, so their R-P1
//! arrivals (15 minutes after dispatch) are due within an hour. Their R-K2
//! finish deadlines (the end of the local day) are only due within the hour
//! late in the evening, so the checks below look at the R-P1 items and only
//! ask of the others that they belong to the caller. The calendar tests
//! need no clock: a deadline is a function of the receipt time, which the
//! intake states, so a ticket received in the past shows it as overdue.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use chrono::{DateTime, TimeZone, Utc};
use common::{Handheld, Options, TestServer};
use reqwest::StatusCode;
use sync_protocol::time_rules::{Duty, RuleId};
use sync_protocol::{
    DeviceOp, DueList, DueState, EstateId, Outcome, Responsible, Ticket, TicketId, TicketKind,
    UserId,
};

async fn due_list(server: &TestServer, user: &str, query: &str) -> DueList {
    let token = server.login(user).await;
    server
        .get(&format!("/api/v1/due{query}"), Some(&token))
        .await
        .ok()
}

/// The tickets whose R-P1 arrival is on the list, insisting each is due soon.
fn arrivals(list: &DueList) -> BTreeSet<TicketId> {
    list.items
        .iter()
        .filter(|item| item.rule == RuleId::P1)
        .map(|item| {
            assert_eq!(item.duty, Duty::Arrival, "{item:?}");
            assert_eq!(item.state, DueState::DueSoon, "{item:?}");
            item.ticket_id.clone()
        })
        .collect()
}

fn ids(tickets: &[Ticket]) -> BTreeSet<TicketId> {
    tickets.iter().map(|ticket| ticket.id.clone()).collect()
}

fn held_by(list: &DueList, technician: &str) -> bool {
    let technician = UserId::parse(technician).unwrap();
    list.items.iter().all(|item| {
        item.responsible
            == Responsible::Technician {
                user: technician.clone(),
            }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_each_role_sees_the_arrivals_it_acts_on_and_a_technician_only_his_own() {
    let server = TestServer::start();
    let of_li = server.tickets_of("li").await;
    let of_zhang = server.tickets_of("zhang").await;
    let dispatched: Vec<Ticket> = server
        .estate_snapshot()
        .await
        .into_iter()
        .filter(|ticket| ticket.assigned_technician.is_some())
        .collect();
    assert_eq!((of_li.len(), of_zhang.len(), dispatched.len()), (2, 1, 4));

    let li = due_list(&server, "li", "?window_minutes=60").await;
    assert_eq!(arrivals(&li), ids(&of_li), "{li:?}");
    assert!(held_by(&li, "li"), "{li:?}");

    let zhang = due_list(&server, "zhang", "?window_minutes=60").await;
    assert_eq!(arrivals(&zhang), ids(&of_zhang), "{zhang:?}");
    assert!(held_by(&zhang, "zhang"), "{zhang:?}");

    let supervisor = due_list(&server, "zhuguan", "?window_minutes=60").await;
    assert_eq!(arrivals(&supervisor), ids(&dispatched), "{supervisor:?}");

    let dispatcher = due_list(&server, "diaodu", "?window_minutes=60").await;
    assert_eq!(arrivals(&dispatcher), ids(&dispatched), "{dispatcher:?}");

    // Earliest first, as every caller gets it.
    assert!(
        supervisor
            .items
            .windows(2)
            .all(|pair| pair[0].due_at <= pair[1].due_at),
        "{supervisor:?}"
    );
    // The default window is the hour asked for above.
    assert_eq!(due_list(&server, "li", "").await, li);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_an_arrival_pushed_by_the_technician_takes_its_item_off_the_list() {
    let server = TestServer::start();
    let of_li = server.tickets_of("li").await;
    let arrived = &of_li[0];
    let token = server.login("li").await;
    let mut handheld = Handheld::new("hh-li-due");
    let mutation = handheld.record(arrived, DeviceOp::RecordArrival { position: None });
    let pushed = server.push(&token, &handheld.id, vec![mutation]).await;
    assert!(
        matches!(pushed.outcomes[0].outcome, Outcome::Applied(_)),
        "{pushed:?}"
    );

    let li = due_list(&server, "li", "?window_minutes=60").await;
    let still_due: BTreeSet<TicketId> = ids(&of_li[1..]);
    assert_eq!(arrivals(&li), still_due, "{li:?}");
    let supervisor = due_list(&server, "zhuguan", "?window_minutes=60").await;
    assert!(
        !arrivals(&supervisor).contains(&arrived.id),
        "{supervisor:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_zero_or_above_a_week_or_an_unknown_parameter_is_refused() {
    let server = TestServer::start();
    let token = server.login("li").await;
    for query in ["0", "-1", "10081", "soon"] {
        let path = format!("/api/v1/due?window_minutes={query}");
        server
            .get(&path, Some(&token))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_window");
    }
    server
        .get("/api/v1/due?window_minutes=10080", Some(&token))
        .await
        .ok::<DueList>();
    server
        .get("/api/v1/due?days=1", Some(&token))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_query");
    server
        .get("/api/v1/due", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_list_longer_than_its_limit_answers_the_most_urgent_items_and_counts_the_rest() {
    let server = TestServer::start();
    // A week's window takes in the R-K2 finish deadlines too.
    let everything = due_list(&server, "zhuguan", "?window_minutes=10080&limit=500").await;
    assert_eq!(everything.left_off, 0, "{everything:?}");
    assert!(everything.items.len() > 2, "{everything:?}");
    assert!(
        everything
            .items
            .windows(2)
            .all(|pair| pair[0].due_at <= pair[1].due_at),
        "the most urgent (earliest due) first: {everything:?}"
    );
    let first_two = due_list(&server, "zhuguan", "?window_minutes=10080&limit=2").await;
    assert_eq!(first_two.items, everything.items[..2]);
    assert_eq!(
        first_two.left_off,
        (everything.items.len() - 2) as u64,
        "{first_two:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_zero_above_five_hundred_or_not_a_number_is_refused() {
    let server = TestServer::start();
    let token = server.login("zhuguan").await;
    for limit in ["0", "-1", "501", "ten", ""] {
        let refusal = server
            .get(&format!("/api/v1/due?limit={limit}"), Some(&token))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_limit");
        assert!(refusal.message.contains("500"), "{refusal:?}");
    }
    let largest: DueList = server.get("/api/v1/due?limit=500", Some(&token)).await.ok();
    assert_eq!(largest.left_off, 0);
}

/// London, 09:00-17:00, with Christmas and Boxing Day 2025 off.
const LONDON_ESTATE_CONFIG: &str = r#"
[calendars.estates.E02]
time_zone = "Europe/London"
working_hours = { start = "09:00", end = "17:00" }
working_weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]
public_holidays = ["2025-12-25", "2025-12-26"]
"#;

/// A coordination ticket of `estate` received at `received_at`, created by
/// `agent`; its R-P3 site-inspection deadline as `supervisor` sees it.
async fn r_p3_site_inspection_due_at(
    server: &TestServer,
    (estate, agent, supervisor): (&str, &str, &str),
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut intake = common::intake();
    intake.estate = EstateId::parse(estate).unwrap();
    intake.kind = TicketKind::CoordinationTicket;
    intake.received_at = received_at;
    let ticket = server
        .create_ticket(&server.login(agent).await, &intake)
        .await;
    let list = due_list(server, supervisor, "?limit=500").await;
    let item = list
        .items
        .iter()
        .find(|item| {
            item.ticket_id == ticket.id
                && item.rule == RuleId::P3
                && item.duty == Duty::BookSiteInspection
        })
        .unwrap_or_else(|| panic!("{} has an overdue R-P3 inspection: {list:?}", ticket.id));
    assert_eq!(item.state, DueState::Overdue, "{item:?}");
    item.due_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p3_an_estate_in_another_zone_with_a_holiday_judges_half_a_working_day_by_its_calendar() {
    let data_dir = tempfile::tempdir().unwrap();
    common::add_user(
        data_dir.path(),
        "kefu-london",
        "customer_service_agent",
        "E02",
    );
    common::add_user(data_dir.path(), "zhuguan-london", "supervisor", "E02");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("estate-sync.toml");
    std::fs::write(&config, LONDON_ESTATE_CONFIG).unwrap();
    let options = Options {
        env: vec![("ESTATE_SYNC_CONFIG", config.display().to_string())],
        ..Options::default()
    };
    let server = TestServer::start_with(data_dir, options);
    // Wednesday 24 December 2025, 15:00 in London (GMT) and 23:00 in Shanghai.
    let received_at = Utc.with_ymd_and_hms(2025, 12, 24, 15, 0, 0).unwrap();

    let london = ("E02", "kefu-london", "zhuguan-london");
    // Half of an 8-hour day: 2 hours on Wednesday, nothing on the two
    // holidays or the weekend, 2 hours from 09:00 on Monday 29 December.
    assert_eq!(
        r_p3_site_inspection_due_at(&server, london, received_at).await,
        Utc.with_ymd_and_hms(2025, 12, 29, 11, 0, 0).unwrap()
    );
    // The demo estate, not configured, keeps Shanghai's calendar: half of a
    // 9-hour day from Thursday's 08:30 opening, 13:00 local.
    let shanghai = ("E01", "kefu", "zhuguan");
    assert_eq!(
        r_p3_site_inspection_due_at(&server, shanghai, received_at).await,
        Utc.with_ymd_and_hms(2025, 12, 25, 5, 0, 0).unwrap()
    );
}

#[test]
fn a_configuration_with_an_invalid_calendar_stops_the_server_at_start_naming_the_estate() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("estate-sync.toml");
    std::fs::write(
        &config,
        LONDON_ESTATE_CONFIG.replace("Europe/London", "Europe/Londres"),
    )
    .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(common::server_binary());
    let output = common::clean_env(&mut command)
        .arg("--data-dir")
        .arg(data_dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
        .env("ESTATE_SYNC_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("the server binary runs");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("calendars.estates.E02"), "{stderr}");
    assert!(stderr.contains("unknown time zone"), "{stderr}");
    assert!(stderr.contains("Europe/Londres"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening on"),
        "{output:?}"
    );
}
