//! The reports over real HTTP: the daily unclosed list with a responsible
//! person per item (R-C4), the monthly statistics (R-A3, R-C5) and the
//! monthly archive (R-A2, R-A1), as JSON and as CSV and XLSX downloads with
//! bilingual headers; who may read them.

mod common;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use common::{DEMO_ESTATE, Handheld, TestServer, intake, paid_result, signature};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::reports::{ArchiveEntry, MonthlyArchive, RuleWindow};
use sync_protocol::time_rules::{Duty, RuleId};
use sync_protocol::{
    Change, Charge, Cursor, DailyUnclosed, DeviceOp, MonthlyStatistics, OfficeOp, Outcome,
    ReportMonth, Responsible, Status, Ticket, TicketId, UserId,
};

const XLSX_CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The demo estate's calendar for now: Asia/Shanghai, UTC+8 all year.
fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn shanghai_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&shanghai()).date_naive()
}

fn month_of(at: DateTime<Utc>) -> ReportMonth {
    let local = at.with_timezone(&shanghai());
    ReportMonth::parse(&local.format("%Y-%m").to_string()).unwrap()
}

/// The tickets of one morning: `closed` (paid, signed by the owner, closed
/// by the dispatcher), `open` (dispatched to zhang) and `cancelled`, all
/// received at `received_at`.
struct Morning {
    received_at: DateTime<Utc>,
    closed: Ticket,
    open: Ticket,
    cancelled: Ticket,
}

async fn a_morning_of_work(server: &TestServer) -> Morning {
    let agent = server.login("kefu").await;
    let dispatcher = server.login("diaodu").await;
    let li = server.login("li").await;
    let report = intake();
    let received_at = report.received_at;
    let create = |location: &str| {
        let mut at_location = report.clone();
        at_location.location = location.to_owned();
        at_location
    };
    let (to_close, to_leave_open, to_cancel) =
        (create("1-1-101"), create("2-2-202"), create("3-3-303"));

    // li's job: dispatched, done on site, paid, signed, closed.
    let to_close = server.create_ticket(&agent, &to_close).await;
    let dispatch_to = |technician: &str| OfficeOp::Dispatch {
        technician: UserId::parse(technician).unwrap(),
    };
    server
        .act(&dispatcher, &to_close.id, dispatch_to("li"))
        .await;
    let mut handheld = Handheld::new("hh-li-reports");
    let pulled = server.pull(&li, &handheld.id, Cursor(0)).await;
    let on_device = pulled
        .changes
        .iter()
        .find_map(|change| match change {
            Change::Upsert { ticket, .. } if ticket.id == to_close.id => Some((**ticket).clone()),
            _ => None,
        })
        .expect("li's handheld gets the new work order");
    let result = paid_result();
    let image = b"signature strokes for the report test".to_vec();
    let mutations = vec![
        handheld.record(&on_device, DeviceOp::RecordArrival { position: None }),
        handheld.record(
            &on_device,
            DeviceOp::Complete {
                result: result.clone(),
            },
        ),
        handheld.record(&on_device, signature(&image, &result)),
    ];
    let pushed = server.push(&li, &handheld.id, mutations).await;
    assert!(
        pushed
            .outcomes
            .iter()
            .all(|outcome| matches!(outcome.outcome, Outcome::Applied(_))),
        "{pushed:?}"
    );
    let upload = server.upload_blob(&li, &image).await;
    assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
    let closed = server
        .act(&dispatcher, &to_close.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);

    // zhang's job: dispatched, not done yet.
    let open = server.create_ticket(&agent, &to_leave_open).await;
    let open = server
        .act(&dispatcher, &open.id, dispatch_to("zhang"))
        .await;

    // The owner solved the third one himself.
    let cancelled = server.create_ticket(&agent, &to_cancel).await;
    let cancel = OfficeOp::Cancel {
        reason: "业主已自行解决 solved by the owner".to_owned(),
    };
    let cancelled = server.act(&agent, &cancelled.id, cancel).await;
    Morning {
        received_at,
        closed,
        open,
        cancelled,
    }
}

async fn daily_list(server: &TestServer, token: &str, date: NaiveDate) -> DailyUnclosed {
    let path = format!("/api/v1/reports/daily-unclosed?date={date}");
    server.get(&path, Some(token)).await.ok()
}

async fn monthly(server: &TestServer, token: &str, month: ReportMonth) -> MonthlyStatistics {
    let path = format!("/api/v1/reports/monthly?month={month}");
    server.get(&path, Some(token)).await.ok()
}

fn listed<'a>(list: &'a DailyUnclosed, id: &TicketId) -> Option<&'a sync_protocol::UnclosedItem> {
    list.work_orders.iter().find(|item| &item.ticket_id == id)
}

fn header(response: &common::Response, name: &str) -> String {
    response
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {response:?}"))
        .to_owned()
}

const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// GET a download: insists on 200, its content type and its file name.
async fn download(
    server: &TestServer,
    token: &str,
    path: &str,
    content_type: &str,
    filename: &str,
) -> common::Response {
    let response = server.get(path, Some(token)).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {response:?}");
    assert_eq!(header(&response, "content-type"), content_type);
    assert_eq!(
        header(&response, "content-disposition"),
        format!("attachment; filename=\"{filename}\"")
    );
    response
}

/// The CSV's records, read by an independent parser after the byte-order mark.
fn csv_records(body: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(body).expect("the CSV is UTF-8");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("the CSV starts with a UTF-8 byte-order mark for Excel");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .map(|record| {
            record
                .expect("every CSV record parses")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c4_the_daily_list_after_a_morning_of_work_has_the_open_work_order_with_its_technician() {
    let server = TestServer::start();
    let morning = a_morning_of_work(&server).await;
    let manager = server.login("kefu-jingli").await;
    let today = shanghai_date(Utc::now());

    let list = daily_list(&server, &manager, today).await;

    assert_eq!(list.date, today);
    assert_eq!(list.time_zone, "Asia/Shanghai");
    let open = listed(&list, &morning.open.id).expect("the open work order is listed");
    assert_eq!(
        open.responsible,
        Responsible::Technician {
            user: UserId::parse("zhang").unwrap()
        }
    );
    assert_eq!(open.status, Status::Dispatched);
    assert_eq!(open.serial_number, morning.open.serial_number);
    assert_eq!(
        i64::from(open.age_days),
        (today - shanghai_date(morning.received_at)).num_days()
    );
    // R-K2: due by the end of the day it was received.
    let window: RuleWindow = open.window.expect("a work order has its R-K2 window");
    assert_eq!((window.rule, window.duty), (RuleId::K2, Duty::Finish));
    assert!(!window.missed || today > shanghai_date(morning.received_at));
    assert!(listed(&list, &morning.closed.id).is_none(), "closed");
    assert!(listed(&list, &morning.cancelled.id).is_none(), "cancelled");
    // The demo's undispatched lobby door: the engineering dispatcher must act (R-D1).
    let undispatched: Vec<_> = list
        .work_orders
        .iter()
        .filter(|item| item.status == Status::Received)
        .collect();
    assert!(!undispatched.is_empty(), "{list:?}");
    assert!(undispatched.iter().all(|item| item.responsible
        == Responsible::Role {
            role: sync_protocol::Role::Dispatcher
        }));
    assert!(list.coordination_tickets.is_empty());

    // The front desk reads it too, and today is the default day.
    let agent = server.login("kefu").await;
    let by_default: DailyUnclosed = server
        .get("/api/v1/reports/daily-unclosed", Some(&agent))
        .await
        .ok();
    assert!(listed(&by_default, &morning.open.id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a3_r_c5_the_monthly_statistics_count_kinds_paid_free_and_the_closure_rate() {
    let server = TestServer::start();
    let manager = server.login("kefu-jingli").await;
    // Counted as differences, so the demo's own tickets do not matter.
    let month = month_of(intake().received_at);
    let before = monthly(&server, &manager, month).await;
    let morning = a_morning_of_work(&server).await;
    assert_eq!(month_of(morning.received_at), month);

    let after = monthly(&server, &manager, month).await;

    assert_eq!(after.month, month);
    assert_eq!(after.received - before.received, 3);
    assert_eq!(after.by_kind.work_order - before.by_kind.work_order, 3);
    assert_eq!(
        after.by_kind.verbal_dispatch,
        before.by_kind.verbal_dispatch
    );
    assert_eq!(
        after.by_kind.coordination_ticket,
        before.by_kind.coordination_ticket
    );
    assert_eq!(after.by_category.repair - before.by_category.repair, 3);
    // R-C5: the closed engineering work order was paid (35.00 CNY).
    assert_eq!(after.charges.paid - before.charges.paid, 1);
    assert_eq!(after.charges.free, before.charges.free);
    assert_eq!(
        after.charges.paid_fee_fen - before.charges.paid_fee_fen,
        3500
    );
    let closure = after.closure;
    assert_eq!(closure.closed - before.closure.closed, 1);
    assert_eq!(closure.cancelled - before.closure.cancelled, 1);
    assert_eq!(
        closure.closable,
        after.received - closure.cancelled - closure.converted
    );
    let rate = (closure.closed as f64 * 100.0 / closure.closable as f64 * 100.0).round() / 100.0;
    assert_eq!(closure.closure_rate_percent, Some(rate));
    // R-P1: li arrived at once; R-F1: the paid order's follow-up is pending.
    let tally = |statistics: &MonthlyStatistics, rule, duty| {
        let tally = statistics
            .timeliness
            .iter()
            .find(|tally| (tally.rule, tally.duty) == (rule, duty))
            .expect("every duty has a tally");
        (tally.met, tally.missed, tally.pending)
    };
    let (met, missed, _) = tally(&after, RuleId::P1, Duty::Arrival);
    let (met_before, missed_before, _) = tally(&before, RuleId::P1, Duty::Arrival);
    assert_eq!((met - met_before, missed - missed_before), (1, 0));
    let follow_up = tally(&after, RuleId::F1, Duty::FollowUp);
    assert_eq!(
        follow_up.2 - tally(&before, RuleId::F1, Duty::FollowUp).2,
        1
    );
    // Review point: the closed order carries the owner's signature.
    assert!(after.missing_signatures.is_empty());
    // The analysis lists the open order with its technician, not the others.
    let unclosed: Vec<&TicketId> = after.unclosed.iter().map(|item| &item.ticket_id).collect();
    assert!(unclosed.contains(&&morning.open.id));
    assert!(!unclosed.contains(&&morning.closed.id));
    assert!(!unclosed.contains(&&morning.cancelled.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c4_r_a3_the_csv_downloads_have_bilingual_headers_and_parse() {
    let server = TestServer::start();
    let morning = a_morning_of_work(&server).await;
    let supervisor = server.login("zhuguan").await;
    let today = shanghai_date(Utc::now());

    let path = format!("/api/v1/reports/daily-unclosed?date={today}&format=csv");
    let filename = format!("daily-unclosed-{DEMO_ESTATE}-{today}.csv");
    let response = download(&server, &supervisor, &path, CSV_CONTENT_TYPE, &filename).await;
    let records = csv_records(&response.body);
    assert_eq!(
        records[0],
        [
            "工单号 Ticket",
            "编号 Serial number",
            "类型 Kind",
            "类别 Category",
            "区域 Area",
            "位置 Location",
            "描述 Description",
            "状态 Status",
            "受理时间 Received (Asia/Shanghai)",
            "账龄(天) Age (days)",
            "责任人 Responsible",
            "时限规则 Rule",
            "截止时间 Due (Asia/Shanghai)",
            "已超时 Missed",
        ]
    );
    let open = records
        .iter()
        .find(|record| record[0] == morning.open.id.as_str())
        .expect("the open work order has a row");
    assert_eq!(open.len(), records[0].len());
    assert_eq!(open[2], "派工单 Work order");
    assert_eq!(open[5], "2-2-202");
    assert_eq!(open[7], "已派工 Dispatched");
    assert_eq!(open[10], "维修人员 Technician: zhang");
    assert!(open[11].starts_with("R-K2"), "{open:?}");
    assert!(
        records
            .iter()
            .all(|record| record[0] != morning.closed.id.as_str())
    );

    let manager = server.login("kefu-jingli").await;
    let month = month_of(morning.received_at);
    let path = format!("/api/v1/reports/monthly?month={month}&format=csv");
    let filename = format!("monthly-statistics-{DEMO_ESTATE}-{month}.csv");
    let response = download(&server, &manager, &path, CSV_CONTENT_TYPE, &filename).await;
    let statistics = monthly(&server, &manager, month).await;
    let records = csv_records(&response.body);
    assert_eq!(records[0], ["统计项 Statistic", "分项 Item", "数值 Value"]);
    let value_of = |statistic: &str, item: &str| -> String {
        records
            .iter()
            .find(|record| record.len() == 3 && record[0] == statistic && record[1] == item)
            .unwrap_or_else(|| panic!("no row {statistic} / {item}: {records:?}"))[2]
            .clone()
    };
    assert_eq!(
        value_of("按类型 By kind", "派工单 Work order"),
        statistics.by_kind.work_order.to_string()
    );
    assert_eq!(
        value_of("有偿/无偿 Paid/free (R-C5)", "有偿 Paid"),
        statistics.charges.paid.to_string()
    );
    assert_eq!(
        value_of("有偿/无偿 Paid/free (R-C5)", "有偿金额(元) Fees (CNY)"),
        format!("{}.00", statistics.charges.paid_fee_fen / 100)
    );
    assert_eq!(
        value_of("完结 Closure", "完结率 Closure rate (%)"),
        format!("{:.2}", statistics.closure.closure_rate_percent.unwrap())
    );
    // The other tables follow, each after an empty line with its own header.
    for header in [
        vec![
            "规则 Rule",
            "事项 Duty",
            "达标 Met",
            "超时 Missed",
            "未到期 Pending",
        ],
        vec!["工单号 Ticket", "编号 Serial number"],
    ] {
        assert!(
            records.iter().any(|record| *record == header),
            "{header:?} in {records:?}"
        );
    }
    let analysis = records
        .iter()
        .position(|record| record[0] == "工单号 Ticket" && record.len() > 2)
        .expect("the unclosed analysis has its header");
    assert!(
        records[analysis..]
            .iter()
            .any(|record| record[0] == morning.open.id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c4_r_a3_the_xlsx_downloads_are_workbooks() {
    let server = TestServer::start();
    let department_manager = server.login("banzhang").await;
    let month = month_of(Utc::now());
    for (path, sheets) in [
        ("/api/v1/reports/daily-unclosed?format=xlsx".to_owned(), 2),
        (
            format!("/api/v1/reports/monthly?month={month}&format=xlsx"),
            4,
        ),
    ] {
        let response = server.get(&path, Some(&department_manager)).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {response:?}");
        assert_eq!(header(&response, "content-type"), XLSX_CONTENT_TYPE);
        let disposition = header(&response, "content-disposition");
        assert!(
            disposition.starts_with("attachment; filename=\"") && disposition.ends_with(".xlsx\""),
            "{disposition}"
        );
        assert!(
            is_workbook_with_sheets(&response.body, sheets),
            "{path}: a sheet per table"
        );
    }
}

/// An XLSX file is a ZIP archive with the workbook's parts: a worksheet
/// part per sheet, and no more.
fn is_workbook_with_sheets(body: &[u8], sheets: usize) -> bool {
    let holds = |name: &str| {
        body.windows(name.len())
            .any(|window| window == name.as_bytes())
    };
    let sheet = |number: usize| holds(&format!("xl/worksheets/sheet{number}.xml"));
    body.starts_with(b"PK\x03\x04")
        && holds("xl/workbook.xml")
        && (1..=sheets).all(sheet)
        && !sheet(sheets + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c4_r_a3_technicians_may_not_read_the_reports_and_dispatchers_not_the_statistics() {
    let server = TestServer::start();
    let li = server.login("li").await;
    for path in [
        "/api/v1/reports/daily-unclosed",
        "/api/v1/reports/daily-unclosed?format=csv",
        "/api/v1/reports/monthly",
        "/api/v1/reports/monthly?format=xlsx",
    ] {
        server
            .get(path, Some(&li))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    let dispatcher = server.login("diaodu").await;
    server
        .get("/api/v1/reports/monthly", Some(&dispatcher))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let agent = server.login("kefu").await;
    server
        .get("/api/v1/reports/monthly", Some(&agent))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    server
        .get("/api/v1/reports/monthly", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c4_r_a3_a_bad_month_date_or_format_is_refused() {
    let server = TestServer::start();
    let manager = server.login("kefu-jingli").await;
    let next_year = shanghai_date(Utc::now())
        .format("%Y")
        .to_string()
        .parse::<i32>()
        .unwrap()
        + 1;
    let refusals = [
        ("/api/v1/reports/monthly?month=2026-13", "invalid_month"),
        ("/api/v1/reports/monthly?month=2026-1", "invalid_month"),
        ("/api/v1/reports/monthly?month=november", "invalid_month"),
        (
            &*format!("/api/v1/reports/monthly?month={next_year}-01"),
            "invalid_month",
        ),
        ("/api/v1/reports/monthly?format=pdf", "invalid_format"),
        ("/api/v1/reports/monthly?months=2026-11", "invalid_query"),
        (
            "/api/v1/reports/daily-unclosed?date=2026-02-30",
            "invalid_date",
        ),
        (
            "/api/v1/reports/daily-unclosed?date=27.11.2026",
            "invalid_date",
        ),
        (
            &*format!("/api/v1/reports/daily-unclosed?date={next_year}-01-01"),
            "invalid_date",
        ),
        (
            "/api/v1/reports/daily-unclosed?format=XLSX",
            "invalid_format",
        ),
    ];
    for (path, code) in refusals {
        let body = server
            .get(path, Some(&manager))
            .await
            .error(StatusCode::BAD_REQUEST, code);
        assert!(!body.message.is_empty(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c4_r_a3_r_a2_the_served_reports_match_their_openapi_schemas() {
    let server = TestServer::start();
    a_morning_of_work(&server).await;
    let manager = server.login("kefu-jingli").await;
    let document: Value = server.get("/api/v1/openapi.json", None).await.ok();
    for (path, schema) in [
        ("/api/v1/reports/daily-unclosed", "DailyUnclosed"),
        ("/api/v1/reports/monthly", "MonthlyStatistics"),
        ("/api/v1/reports/monthly-archive", "MonthlyArchive"),
    ] {
        let report: Value = server.get(path, Some(&manager)).await.ok();
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{schema}"),
            "components": { "schemas": document["components"]["schemas"] },
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .expect("the schema compiles");
        let violations: Vec<String> = validator
            .iter_errors(&report)
            .map(|error| format!("at {}: {error}", error.instance_path().as_str()))
            .collect();
        assert!(violations.is_empty(), "{path}: {violations:?}\n{report:#}");
    }
}

// ---- R-A2: the monthly archive ------------------------------------------------

async fn archive(server: &TestServer, token: &str, month: ReportMonth) -> MonthlyArchive {
    let path = format!("/api/v1/reports/monthly-archive?month={month}");
    server.get(&path, Some(token)).await.ok()
}

/// The month a form is filed in: the month of its serial number (R-A1).
fn month_of_number(ticket: &Ticket) -> ReportMonth {
    let number = ticket
        .serial_number
        .as_ref()
        .expect("a work order is numbered");
    let month = number.series().month;
    ReportMonth::new(month.year().into(), month.month().into()).unwrap()
}

fn filed<'a>(entries: &'a [ArchiveEntry], ticket: &Ticket) -> Option<&'a ArchiveEntry> {
    entries.iter().find(|entry| entry.ticket_id == ticket.id)
}

fn in_number_order(entries: &[ArchiveEntry]) -> bool {
    entries
        .windows(2)
        .all(|pair| pair[0].serial_number < pair[1].serial_number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a2_the_archive_files_the_closed_paid_form_apart_from_the_open_and_cancelled_ones_by_number()
 {
    let server = TestServer::start();
    let morning = a_morning_of_work(&server).await;
    let manager = server.login("kefu-jingli").await;
    let month = month_of_number(&morning.closed);

    let archive = archive(&server, &manager, month).await;

    assert_eq!(archive.month, month);
    assert_eq!(archive.time_zone, "Asia/Shanghai");
    let forms = &archive.work_orders;
    let yyyymm = month.to_string().replace('-', "");
    assert_eq!(forms.series, format!("{DEMO_ESTATE}-WO-{yyyymm}"));
    // The pink copy of the closed order goes with the paid ones (R-C5).
    let closed = filed(&forms.paid, &morning.closed).expect("the closed order is filed as paid");
    assert_eq!(closed.serial_number, morning.closed.serial_number);
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(closed.charge, Some(Charge::Paid { fee_fen: 3500 }));
    assert!(closed.closed_at.is_some());
    assert!(forms.paid_fee_fen >= 3500);
    assert!(filed(&forms.free, &morning.closed).is_none());
    // The open and the cancelled ones are filed too, as not closed.
    let open = filed(&forms.not_closed, &morning.open).expect("the open order is listed");
    assert_eq!(open.status, Status::Dispatched);
    let cancelled =
        filed(&forms.not_closed, &morning.cancelled).expect("the cancelled order is listed");
    assert_eq!(cancelled.status, Status::Cancelled);
    for entries in [
        &forms.paid,
        &forms.free,
        &forms.not_recorded,
        &forms.not_closed,
    ] {
        assert!(in_number_order(entries), "{entries:?}");
    }
    // R-A1: every number the month handed out is on exactly one form.
    let numbering = &forms.numbering;
    assert!(numbering.complete, "{numbering:?}");
    assert!(numbering.handed_out >= 3);
    assert_eq!(numbering.numbered, numbering.handed_out);
    let listed = forms.paid.len() + forms.free.len() + forms.not_recorded.len();
    assert_eq!(
        (listed + forms.not_closed.len()) as u64,
        numbering.numbered,
        "{forms:?}"
    );
    assert!(archive.coordination_tickets.numbering.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a2_r_a1_a_work_order_converted_next_month_is_filed_there_as_its_coordination_ticket() {
    let mut server = TestServer::start();
    let morning = a_morning_of_work(&server).await;
    let this_month = month_of_number(&morning.open);
    // Let the clock run to two days into next month (the server's clock
    // numbers the forms).
    let next_month = this_month.next().expect("a month follows");
    let next_month_starts = next_month
        .first_day()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(shanghai())
        .unwrap()
        .with_timezone(&Utc);
    let minutes = (next_month_starts - Utc::now()).num_minutes() + 2 * 24 * 60;
    server.let_time_pass(minutes);

    let dispatcher = server.login("diaodu").await;
    let convert = OfficeOp::Convert {
        reason: "需订货 needs a part from the supplier".to_owned(),
    };
    let converted = server.act(&dispatcher, &morning.open.id, convert).await;
    let coordination_id = converted.converted_to.clone().expect("converted");
    let coordination = server.ticket(&dispatcher, &coordination_id).await;
    assert_eq!(month_of_number(&coordination), next_month);

    let manager = server.login("kefu-jingli").await;
    let this_archive = archive(&server, &manager, this_month).await;
    let work_order = filed(&this_archive.work_orders.not_closed, &morning.open)
        .expect("the work order keeps its form in its own month");
    assert_eq!(work_order.status, Status::Converted);
    assert!(filed(&this_archive.coordination_tickets.not_closed, &coordination).is_none());

    let next_archive = archive(&server, &manager, next_month).await;
    let filed_next = filed(&next_archive.coordination_tickets.not_closed, &coordination)
        .expect("the coordination ticket is filed in the month of its number");
    assert_eq!(filed_next.serial_number, coordination.serial_number);
    assert_eq!(filed_next.received_at, morning.open.received_at);
    assert!(
        next_archive.coordination_tickets.numbering.complete,
        "{next_archive:?}"
    );
    assert!(filed(&next_archive.work_orders.not_closed, &morning.open).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a2_the_archive_downloads_as_csv_and_xlsx_with_bilingual_headers() {
    let server = TestServer::start();
    let morning = a_morning_of_work(&server).await;
    let supervisor = server.login("zhuguan").await;
    let month = month_of_number(&morning.closed);

    let path = format!("/api/v1/reports/monthly-archive?month={month}&format=csv");
    let filename = format!("monthly-archive-{DEMO_ESTATE}-{month}.csv");
    let response = download(&server, &supervisor, &path, CSV_CONTENT_TYPE, &filename).await;
    let records = csv_records(&response.body);
    assert_eq!(records[0], ["统计项 Statistic", "分项 Item", "数值 Value"]);
    assert!(
        records.iter().any(|record| *record
            == [
                "派工单 Work order",
                "编号连续 Numbers run with no gap",
                "是 Yes"
            ]),
        "{records:?}"
    );
    let forms_header = [
        "编号 Serial number",
        "工单号 Ticket",
        "归档 Filed as",
        "类别 Category",
        "状态 Status",
        "受理时间 Received (Asia/Shanghai)",
        "完结时间 Closed (Asia/Shanghai)",
        "金额(元) Fee (CNY)",
    ];
    assert_eq!(
        records
            .iter()
            .filter(|record| **record == forms_header)
            .count(),
        2,
        "a table of work orders and one of coordination tickets"
    );
    let closed = records
        .iter()
        .find(|record| record.len() == 8 && record[1] == morning.closed.id.as_str())
        .expect("the closed order has a row");
    assert_eq!(
        closed[0],
        morning.closed.serial_number.as_ref().unwrap().to_string()
    );
    assert_eq!(closed[2], "有偿 Paid");
    assert_eq!(closed[4], "已完结 Closed");
    assert_eq!(closed[7], "35.00");
    assert!(records.iter().any(|record| *record
        == [
            "编号序列 Series",
            "问题 Problem",
            "编号或工单号 Number or ticket"
        ]));

    let path = format!("/api/v1/reports/monthly-archive?month={month}&format=xlsx");
    let filename = format!("monthly-archive-{DEMO_ESTATE}-{month}.xlsx");
    let response = download(&server, &supervisor, &path, XLSX_CONTENT_TYPE, &filename).await;
    assert!(
        is_workbook_with_sheets(&response.body, 4),
        "a sheet per table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a2_a_technician_may_not_read_the_archive_and_a_bad_month_or_format_is_refused() {
    let server = TestServer::start();
    for (user, paths) in [
        (
            "li",
            [
                "/api/v1/reports/monthly-archive",
                "/api/v1/reports/monthly-archive?format=csv",
            ],
        ),
        (
            "diaodu",
            [
                "/api/v1/reports/monthly-archive",
                "/api/v1/reports/monthly-archive?format=xlsx",
            ],
        ),
        (
            "kefu",
            [
                "/api/v1/reports/monthly-archive",
                "/api/v1/reports/monthly-archive?format=json",
            ],
        ),
    ] {
        let token = server.login(user).await;
        for path in paths {
            let body = server
                .get(path, Some(&token))
                .await
                .error(StatusCode::FORBIDDEN, "forbidden");
            assert!(body.message.contains("R-A2"), "{user} {path}: {body:?}");
        }
    }
    server
        .get("/api/v1/reports/monthly-archive", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");

    let department_manager = server.login("banzhang").await;
    let next_year = shanghai_date(Utc::now())
        .format("%Y")
        .to_string()
        .parse::<i32>()
        .unwrap()
        + 1;
    for (path, code) in [
        (
            "/api/v1/reports/monthly-archive?month=2026-13".to_owned(),
            "invalid_month",
        ),
        (
            format!("/api/v1/reports/monthly-archive?month={next_year}-01"),
            "invalid_month",
        ),
        (
            "/api/v1/reports/monthly-archive?format=pdf".to_owned(),
            "invalid_format",
        ),
        (
            "/api/v1/reports/monthly-archive?serial=1".to_owned(),
            "invalid_query",
        ),
    ] {
        server
            .get(&path, Some(&department_manager))
            .await
            .error(StatusCode::BAD_REQUEST, code);
    }
    // The default month is this one.
    let this_month: MonthlyArchive = server
        .get("/api/v1/reports/monthly-archive", Some(&department_manager))
        .await
        .ok();
    assert_eq!(this_month.month, month_of(Utc::now()));
}
