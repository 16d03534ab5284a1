//! The reports of an estate: read from the store a page at a time into the
//! core's builders (the numbers come from `sync_protocol::reports`, the due
//! list from `sync_protocol::due`), and lay the daily unclosed list (R-C4),
//! the monthly statistics (R-A3) and the monthly archive (R-A2) out as CSV
//! and XLSX, with headers in Chinese and English (`工单号 Ticket`).
//!
//! The daily list and the due list read the estate's tickets; the monthly
//! reports read only the report digests of their month, which the store
//! keeps beside the tickets (`Store::visit_received_digests`).
//!
//! Both formats show times on the estate's wall clock (`2026-11-27 09:05`,
//! the time zone in the column header) and kinds, statuses and roles as
//! bilingual labels. The CSV is UTF-8 with a byte-order mark, which Excel
//! needs to read Chinese; its free text (location, description) is
//! neutralized against formula injection by a leading `'` when it starts
//! with `=`, `+`, `-`, `@`, a tab or a carriage return. The XLSX stores every
//! text as a string, never as a formula, so it needs no such guard.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use sync_protocol::reports::{
    ArchiveSection, FeeTotalOverflow, HandedOut, MonthlyArchive, MonthlyArchiveBuilder,
    NumberingCheck,
};
use sync_protocol::time_rules::Duty;
use sync_protocol::{
    Area, Category, Charge, DailyUnclosed, DailyUnclosedBuilder, DueList, DueListBuilder, EstateId,
    MonthlyStatistics, MonthlyStatisticsBuilder, ReportMonth, Responsible, Role, SerialKind,
    Status, Ticket, TicketId, TicketKind, UnclosedItem, WorkingCalendar,
};

use crate::store::{Space, Store, StoreError};

pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";
pub const XLSX_CONTENT_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// Excel reads a CSV as UTF-8 only when it starts with this.
const UTF8_BOM: &str = "\u{feff}";

/// Tickets read from the estate index at a time while a report is built:
/// memory stays at a page, whatever the size of the estate.
pub const REPORT_PAGE_SIZE: usize = 1000;

/// R-C4: the daily unclosed list of `date` over the estate's tickets in the store.
pub fn daily_unclosed_of(
    store: &Store,
    estate: &EstateId,
    calendar: &WorkingCalendar,
    date: NaiveDate,
) -> Result<DailyUnclosed, StoreError> {
    let mut builder = DailyUnclosedBuilder::new(calendar, date);
    for_each_estate_ticket(store, estate, |ticket| builder.add(ticket))?;
    Ok(builder.finish())
}

/// R-A3: the statistics of `month` over the report digests of the estate's
/// tickets received in it, judged at `now`.
pub fn monthly_statistics_of(
    store: &Store,
    estate: &EstateId,
    calendar: &WorkingCalendar,
    month: ReportMonth,
    now: DateTime<Utc>,
) -> Result<MonthlyStatistics, StoreError> {
    let mut builder = MonthlyStatisticsBuilder::new(calendar, month, now);
    store.visit_received_digests(estate, month.bounds(calendar), |digest| {
        builder.add_digest(digest);
    })?;
    builder.finish().map_err(stored_fee_beyond_bound)
}

/// R-A2: the archive of `month`: the estate's forms numbered in it (and the
/// tickets received in it without a number), checked against the counters
/// of the month's series (R-A1).
pub fn monthly_archive_of(
    store: &Store,
    estate: &EstateId,
    calendar: &WorkingCalendar,
    month: ReportMonth,
    now: DateTime<Utc>,
) -> Result<MonthlyArchive, StoreError> {
    let mut builder = MonthlyArchiveBuilder::new(calendar, estate, month, now);
    // The counters first: a number handed out while the forms are read is
    // then a form beyond the counter, never a gap.
    let handed_out = HandedOut {
        work_orders: store.last_serial_sequence(builder.series(SerialKind::WorkOrder))?,
        coordination_tickets: store
            .last_serial_sequence(builder.series(SerialKind::CoordinationTicket))?,
    };
    store.visit_numbered_digests(estate, month.bounds(calendar), |digest| {
        builder.add_digest(digest);
    })?;
    builder.finish(handed_out).map_err(stored_fee_beyond_bound)
}

/// Fees are bounded where they come in; only a fee stored before the bound
/// can make a total overflow, and that is a record the store should not hold.
fn stored_fee_beyond_bound(overflow: FeeTotalOverflow) -> StoreError {
    StoreError::Corrupt {
        space: Space::ReportDigests,
        reason: overflow.to_string(),
    }
}

/// A caller's due list over the estate's tickets in the store; `builder`
/// knows the caller, the window and the limit. Read a page at a time like
/// the reports, so that it sees the same tickets.
pub fn due_list_of(
    store: &Store,
    estate: &EstateId,
    mut builder: DueListBuilder<'_>,
) -> Result<DueList, StoreError> {
    // Only the tickets with a deadline still to meet: the others have
    // nothing to list, and a due list costs what is open, not the history.
    for_each_active_ticket(store, estate, |ticket| builder.add(ticket))?;
    Ok(builder.finish())
}

/// A page of an estate's tickets after a ticket id, in id order.
type ReadPage = fn(&Store, &EstateId, Option<&TicketId>, usize) -> Result<Vec<Ticket>, StoreError>;

/// Every ticket of the estate, in id order, a page at a time.
pub(crate) fn for_each_estate_ticket(
    store: &Store,
    estate: &EstateId,
    visit: impl FnMut(&Ticket),
) -> Result<(), StoreError> {
    for_each_page(store, estate, Store::estate_tickets, visit)
}

/// Every ticket of the estate that may still have a deadline to meet
/// (`sync_protocol::has_pending_duties`), in id order, a page at a time.
pub(crate) fn for_each_active_ticket(
    store: &Store,
    estate: &EstateId,
    visit: impl FnMut(&Ticket),
) -> Result<(), StoreError> {
    for_each_page(store, estate, Store::active_tickets, visit)
}

fn for_each_page(
    store: &Store,
    estate: &EstateId,
    read: ReadPage,
    mut visit: impl FnMut(&Ticket),
) -> Result<(), StoreError> {
    let mut after: Option<TicketId> = None;
    loop {
        let page = read(store, estate, after.as_ref(), REPORT_PAGE_SIZE)?;
        page.iter().for_each(&mut visit);
        if page.len() < REPORT_PAGE_SIZE {
            return Ok(());
        }
        after = page.last().map(|ticket| ticket.id.clone());
    }
}

/// A report export failed; only the XLSX writer can fail.
#[derive(Debug, thiserror::Error)]
#[error("writing the XLSX workbook: {0}")]
pub struct ExportError(#[from] XlsxError);

/// `daily-unclosed-E01-2026-11-27.csv`: ASCII only, so it needs no quoting
/// beyond the plain `filename="…"`.
pub fn daily_unclosed_filename(estate: &EstateId, list: &DailyUnclosed, extension: &str) -> String {
    format!("daily-unclosed-{estate}-{}.{extension}", list.date)
}

/// `monthly-statistics-E01-2026-11.xlsx`.
pub fn monthly_statistics_filename(
    estate: &EstateId,
    statistics: &MonthlyStatistics,
    extension: &str,
) -> String {
    format!(
        "monthly-statistics-{estate}-{}.{extension}",
        statistics.month
    )
}

/// `monthly-archive-E01-2026-11.csv`.
pub fn monthly_archive_filename(
    estate: &EstateId,
    archive: &MonthlyArchive,
    extension: &str,
) -> String {
    format!("monthly-archive-{estate}-{}.{extension}", archive.month)
}

// ---- Tables ---------------------------------------------------------------

/// One cell of an exported table.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    /// Text this server wrote (labels, ids, times).
    Text(String),
    /// Text someone typed in (location, description): guarded in CSV.
    Input(String),
    Count(u64),
    /// An amount of money in yuan, shown with two decimals.
    Yuan(u64),
    /// A percentage with two decimals; empty when there is none.
    Percent(Option<f64>),
}

/// A header row and its rows; one CSV section or one worksheet.
struct Table {
    /// The worksheet's name, bilingual (at most 31 characters).
    sheet: &'static str,
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// The header of a table of named numbers (the monthly counts, the archive's summary).
const STATISTIC_HEADER: [&str; 3] = ["统计项 Statistic", "分项 Item", "数值 Value"];

fn text(value: impl Into<String>) -> Cell {
    Cell::Text(value.into())
}

fn headers(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

// ---- R-C4: the daily list ---------------------------------------------------

/// R-C4: one table, the work orders first, then the coordination tickets.
pub fn daily_unclosed_csv(list: &DailyUnclosed, calendar: &WorkingCalendar) -> Vec<u8> {
    let mut table = unclosed_table("未完结 Unclosed", calendar);
    for item in list.work_orders.iter().chain(&list.coordination_tickets) {
        table.rows.push(unclosed_row(item, calendar));
    }
    csv(&[table])
}

/// R-C4: a sheet of work orders and a sheet of coordination tickets.
pub fn daily_unclosed_xlsx(
    list: &DailyUnclosed,
    calendar: &WorkingCalendar,
) -> Result<Vec<u8>, ExportError> {
    let mut work_orders = unclosed_table("工单 Work orders", calendar);
    work_orders.rows = list
        .work_orders
        .iter()
        .map(|item| unclosed_row(item, calendar))
        .collect();
    let mut coordination = unclosed_table("协调单 Coordination tickets", calendar);
    coordination.rows = list
        .coordination_tickets
        .iter()
        .map(|item| unclosed_row(item, calendar))
        .collect();
    xlsx(&[work_orders, coordination])
}

// ---- R-A3: the monthly statistics ---------------------------------------------

/// R-A3: four sections, each with its own header row, separated by an
/// empty line: the counts, the timeliness per rule, the closed work orders
/// without a signature, and the unclosed analysis.
pub fn monthly_statistics_csv(
    statistics: &MonthlyStatistics,
    calendar: &WorkingCalendar,
) -> Vec<u8> {
    csv(&monthly_tables(statistics, calendar))
}

/// R-A3: the same four tables as worksheets.
pub fn monthly_statistics_xlsx(
    statistics: &MonthlyStatistics,
    calendar: &WorkingCalendar,
) -> Result<Vec<u8>, ExportError> {
    xlsx(&monthly_tables(statistics, calendar))
}

fn monthly_tables(statistics: &MonthlyStatistics, calendar: &WorkingCalendar) -> Vec<Table> {
    let mut unclosed = unclosed_table("未完结分析 Unclosed analysis", calendar);
    unclosed.rows = statistics
        .unclosed
        .iter()
        .map(|item| unclosed_row(item, calendar))
        .collect();
    vec![
        counts_table(statistics, calendar),
        timeliness_table(statistics),
        missing_signatures_table(statistics),
        unclosed,
    ]
}

fn counts_table(statistics: &MonthlyStatistics, calendar: &WorkingCalendar) -> Table {
    let mut rows = Vec::new();
    let mut row = |statistic: &str, item: &str, value: Cell| {
        rows.push(vec![text(statistic), text(item), value]);
    };
    let month = statistics.month.to_string();
    row("月份 Month", &month, text(""));
    row("时区 Time zone", &statistics.time_zone, text(""));
    let generated = local_time(calendar, statistics.generated_at);
    row("统计时间 Generated", &generated, text(""));
    row("受理总数 Received", "", Cell::Count(statistics.received));

    let kinds = &statistics.by_kind;
    for (kind, count) in [
        (TicketKind::VerbalDispatch, kinds.verbal_dispatch),
        (TicketKind::WorkOrder, kinds.work_order),
        (TicketKind::CoordinationTicket, kinds.coordination_ticket),
    ] {
        row("按类型 By kind", kind_label(kind), Cell::Count(count));
    }
    let categories = &statistics.by_category;
    for (category, count) in [
        (Category::Repair, categories.repair),
        (Category::Rework, categories.rework),
        (Category::Environment, categories.environment),
        (Category::Security, categories.security),
        (Category::OwnerCommunication, categories.owner_communication),
        (Category::HomeService, categories.home_service),
        (Category::PrivateGarden, categories.private_garden),
    ] {
        row(
            "按类别 By category",
            category_label(category),
            Cell::Count(count),
        );
    }
    let statuses = &statistics.by_status;
    for (status, count) in [
        (Status::Received, statuses.received),
        (Status::Dispatched, statuses.dispatched),
        (Status::InProgress, statuses.in_progress),
        (Status::Completed, statuses.completed),
        (Status::Closed, statuses.closed),
        (Status::Converted, statuses.converted),
        (Status::Cancelled, statuses.cancelled),
    ] {
        row("按状态 By status", status_label(status), Cell::Count(count));
    }

    let charges = &statistics.charges;
    let paid_free = "有偿/无偿 Paid/free (R-C5)";
    row(paid_free, "有偿 Paid", Cell::Count(charges.paid));
    row(paid_free, "无偿 Free", Cell::Count(charges.free));
    row(
        paid_free,
        "未记录 Not recorded",
        Cell::Count(charges.not_recorded),
    );
    row(
        paid_free,
        "有偿金额(元) Fees (CNY)",
        Cell::Yuan(charges.paid_fee_fen),
    );

    let closure = &statistics.closure;
    let closing = "完结 Closure";
    row(closing, "已完结 Closed", Cell::Count(closure.closed));
    row(closing, "已取消 Cancelled", Cell::Count(closure.cancelled));
    row(
        closing,
        "已转协调单 Converted",
        Cell::Count(closure.converted),
    );
    row(closing, "应完结 Closable", Cell::Count(closure.closable));
    row(
        closing,
        "完结率 Closure rate (%)",
        Cell::Percent(closure.closure_rate_percent),
    );
    row(
        "缺业主签字 Missing owner signatures",
        "",
        Cell::Count(statistics.missing_signatures.len() as u64),
    );
    row(
        "未完结 Unclosed",
        "",
        Cell::Count(statistics.unclosed.len() as u64),
    );
    Table {
        sheet: "统计 Statistics",
        header: headers(&STATISTIC_HEADER),
        rows,
    }
}

fn timeliness_table(statistics: &MonthlyStatistics) -> Table {
    let rows = statistics
        .timeliness
        .iter()
        .map(|tally| {
            vec![
                text(tally.rule.as_str()),
                text(duty_label(tally.duty)),
                Cell::Count(tally.met),
                Cell::Count(tally.missed),
                Cell::Count(tally.pending),
            ]
        })
        .collect();
    Table {
        sheet: "时效 Timeliness",
        header: headers(&[
            "规则 Rule",
            "事项 Duty",
            "达标 Met",
            "超时 Missed",
            "未到期 Pending",
        ]),
        rows,
    }
}

fn missing_signatures_table(statistics: &MonthlyStatistics) -> Table {
    let rows = statistics
        .missing_signatures
        .iter()
        .map(|reference| {
            vec![
                text(reference.ticket_id.as_str()),
                text(serial_text(reference.serial_number.as_ref())),
            ]
        })
        .collect();
    Table {
        sheet: "缺签字 Missing signatures",
        header: headers(&["工单号 Ticket", "编号 Serial number"]),
        rows,
    }
}

// ---- R-A2: the monthly archive ----------------------------------------------------

/// R-A2: four sections: the summary per kind, the work orders' forms and the
/// coordination tickets' forms (closed paid, free and not recorded, then
/// not closed, each in serial-number order), and the numbering problems (R-A1).
pub fn monthly_archive_csv(archive: &MonthlyArchive, calendar: &WorkingCalendar) -> Vec<u8> {
    csv(&archive_tables(archive, calendar))
}

/// R-A2: the same four tables as worksheets.
pub fn monthly_archive_xlsx(
    archive: &MonthlyArchive,
    calendar: &WorkingCalendar,
) -> Result<Vec<u8>, ExportError> {
    xlsx(&archive_tables(archive, calendar))
}

fn archive_tables(archive: &MonthlyArchive, calendar: &WorkingCalendar) -> Vec<Table> {
    vec![
        archive_summary_table(archive, calendar),
        forms_table("派工单 Work orders", &archive.work_orders, calendar),
        forms_table(
            "协调单 Coordination tickets",
            &archive.coordination_tickets,
            calendar,
        ),
        numbering_table(archive),
    ]
}

fn archive_summary_table(archive: &MonthlyArchive, calendar: &WorkingCalendar) -> Table {
    let mut rows = Vec::new();
    let mut row = |statistic: &str, item: &str, value: Cell| {
        rows.push(vec![text(statistic), text(item), value]);
    };
    row("月份 Month", &archive.month.to_string(), text(""));
    row("时区 Time zone", &archive.time_zone, text(""));
    let generated = local_time(calendar, archive.generated_at);
    row("归档时间 Generated", &generated, text(""));
    let sections = [
        (TicketKind::WorkOrder, &archive.work_orders),
        (
            TicketKind::CoordinationTicket,
            &archive.coordination_tickets,
        ),
    ];
    for (kind, section) in sections {
        let kind = kind_label(kind);
        let count = |entries: &[_]| Cell::Count(entries.len() as u64);
        let numbering = &section.numbering;
        row(kind, "编号序列 Series", text(section.series.clone()));
        row(kind, "有偿 Paid", count(&section.paid));
        row(kind, "无偿 Free", count(&section.free));
        row(kind, "未记录 Not recorded", count(&section.not_recorded));
        row(
            kind,
            "有偿金额(元) Fees (CNY)",
            Cell::Yuan(section.paid_fee_fen),
        );
        row(kind, "未完结 Not closed", count(&section.not_closed));
        row(
            kind,
            "已发编号 Numbers handed out",
            Cell::Count(numbering.handed_out),
        );
        row(
            kind,
            "缺号 Missing numbers",
            Cell::Count(numbering.missing_count),
        );
        row(
            kind,
            "重号 Duplicated numbers",
            Cell::Count(numbering.duplicated.len() as u64),
        );
        row(
            kind,
            "无编号 Unnumbered",
            Cell::Count(numbering.unnumbered.len() as u64),
        );
        row(
            kind,
            "编号连续 Numbers run with no gap",
            text(yes_or_no(numbering.complete)),
        );
    }
    row(
        kind_label(TicketKind::VerbalDispatch),
        "受理(无编号) Received (not numbered)",
        Cell::Count(archive.verbal_dispatches),
    );
    Table {
        sheet: "归档汇总 Summary",
        header: headers(&STATISTIC_HEADER),
        rows,
    }
}

/// One kind's forms: closed paid, free, not recorded, then not closed.
fn forms_table(sheet: &'static str, section: &ArchiveSection, calendar: &WorkingCalendar) -> Table {
    let zone = calendar.time_zone().name();
    let header = vec![
        "编号 Serial number".to_owned(),
        "工单号 Ticket".to_owned(),
        "归档 Filed as".to_owned(),
        "类别 Category".to_owned(),
        "状态 Status".to_owned(),
        format!("受理时间 Received ({zone})"),
        format!("完结时间 Closed ({zone})"),
        "金额(元) Fee (CNY)".to_owned(),
    ];
    let files = [
        ("有偿 Paid", &section.paid),
        ("无偿 Free", &section.free),
        ("未记录 Not recorded", &section.not_recorded),
        ("未完结 Not closed", &section.not_closed),
    ];
    let mut rows = Vec::new();
    for (filed_as, entries) in files {
        for entry in entries {
            let closed_at = entry.closed_at.map(|at| local_time(calendar, at));
            let fee = match &entry.charge {
                Some(Charge::Paid { fee_fen }) => Cell::Yuan(*fee_fen),
                Some(Charge::Free {}) | None => text(""),
            };
            rows.push(vec![
                text(serial_text(entry.serial_number.as_ref())),
                text(entry.ticket_id.as_str()),
                text(filed_as),
                text(category_label(entry.category)),
                text(status_label(entry.status)),
                text(local_time(calendar, entry.received_at)),
                text(closed_at.unwrap_or_default()),
                fee,
            ]);
        }
    }
    Table {
        sheet,
        header,
        rows,
    }
}

/// R-A1: one row per missing, duplicated or unnumbered form.
fn numbering_table(archive: &MonthlyArchive) -> Table {
    let mut rows = Vec::new();
    for section in [&archive.work_orders, &archive.coordination_tickets] {
        let NumberingCheck {
            missing,
            missing_count,
            duplicated,
            unnumbered,
            ..
        } = &section.numbering;
        let mut row = |problem: &str, value: Cell| {
            rows.push(vec![text(section.series.clone()), text(problem), value]);
        };
        for number in missing {
            row("缺号 Missing", text(number.to_string()));
        }
        let not_listed = missing_count - missing.len() as u64;
        if not_listed > 0 {
            row("缺号(未列出) Missing, not listed", Cell::Count(not_listed));
        }
        for number in duplicated {
            row("重号 Duplicated", text(number.to_string()));
        }
        for ticket in unnumbered {
            row("无编号 Unnumbered", text(ticket.as_str()));
        }
    }
    Table {
        sheet: "编号核对 Numbering",
        header: headers(&[
            "编号序列 Series",
            "问题 Problem",
            "编号或工单号 Number or ticket",
        ]),
        rows,
    }
}

// ---- Unclosed items -------------------------------------------------------------

fn unclosed_table(sheet: &'static str, calendar: &WorkingCalendar) -> Table {
    let zone = calendar.time_zone().name();
    let header = vec![
        "工单号 Ticket".to_owned(),
        "编号 Serial number".to_owned(),
        "类型 Kind".to_owned(),
        "类别 Category".to_owned(),
        "区域 Area".to_owned(),
        "位置 Location".to_owned(),
        "描述 Description".to_owned(),
        "状态 Status".to_owned(),
        format!("受理时间 Received ({zone})"),
        "账龄(天) Age (days)".to_owned(),
        "责任人 Responsible".to_owned(),
        "时限规则 Rule".to_owned(),
        format!("截止时间 Due ({zone})"),
        "已超时 Missed".to_owned(),
    ];
    Table {
        sheet,
        header,
        rows: Vec::new(),
    }
}

fn unclosed_row(item: &UnclosedItem, calendar: &WorkingCalendar) -> Vec<Cell> {
    let mut row = vec![
        text(item.ticket_id.as_str()),
        text(serial_text(item.serial_number.as_ref())),
        text(kind_label(item.kind)),
        text(category_label(item.category)),
        text(area_label(item.area)),
        Cell::Input(item.location.clone()),
        Cell::Input(item.description.clone()),
        text(status_label(item.status)),
        text(local_time(calendar, item.received_at)),
        Cell::Count(item.age_days.into()),
        Cell::Input(responsible_label(&item.responsible)),
    ];
    match &item.window {
        Some(window) => row.extend([
            text(format!(
                "{} {}",
                window.rule.as_str(),
                duty_label(window.duty)
            )),
            text(local_time(calendar, window.due_at)),
            text(yes_or_no(window.missed)),
        ]),
        None => row.extend([text(""), text(""), text("")]),
    }
    row
}

fn serial_text(serial_number: Option<&sync_protocol::SerialNumber>) -> String {
    serial_number.map(ToString::to_string).unwrap_or_default()
}

fn yes_or_no(yes: bool) -> &'static str {
    if yes { "是 Yes" } else { "否 No" }
}

/// `2026-11-27 09:05` on the estate's wall clock.
fn local_time(calendar: &WorkingCalendar, at: DateTime<Utc>) -> String {
    calendar.local_time(at).format("%Y-%m-%d %H:%M").to_string()
}

// ---- Labels -----------------------------------------------------------------------

fn kind_label(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::VerbalDispatch => "口头派工 Verbal dispatch",
        TicketKind::WorkOrder => "派工单 Work order",
        TicketKind::CoordinationTicket => "协调单 Coordination ticket",
    }
}

fn category_label(category: Category) -> &'static str {
    match category {
        Category::Repair => "日常维修 Repair",
        Category::Rework => "返修 Rework",
        Category::Environment => "环境 Cleaning/greening",
        Category::Security => "秩序 Security/gate",
        Category::OwnerCommunication => "沟通 Owner communication",
        Category::HomeService => "家政 Home service",
        Category::PrivateGarden => "私家花园养护 Private garden",
    }
}

fn area_label(area: Area) -> &'static str {
    match area {
        Area::PrivateUnit => "户内 Private unit",
        Area::PublicArea => "公区 Public area",
    }
}

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Received => "已受理 Received",
        Status::Dispatched => "已派工 Dispatched",
        Status::InProgress => "处理中 In progress",
        Status::Completed => "已完成 Completed",
        Status::Closed => "已完结 Closed",
        Status::Converted => "已转协调单 Converted",
        Status::Cancelled => "已取消 Cancelled",
    }
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::CustomerServiceAgent => "客服前台 Customer-service agent",
        Role::CustomerServiceSpecialist => "客服专员 Customer-service specialist",
        Role::CustomerServiceManager => "客服经理 Customer-service manager",
        Role::Dispatcher => "工程部调度 Dispatcher",
        Role::Technician => "维修人员 Technician",
        Role::DepartmentManager => "部门经理 Department manager",
        Role::EnvironmentManager => "环境经理 Environment manager",
        Role::Supervisor => "主管 Supervisor",
        Role::Administrator => "系统管理员 Administrator",
    }
}

fn duty_label(duty: Duty) -> &'static str {
    match duty {
        Duty::Arrival => "到场 Arrival",
        Duty::Finish => "完成 Finish",
        Duty::Convert => "转协调单 Convert",
        Duty::ReturnToDispatcher => "交回 Return to dispatcher",
        Duty::BookSiteInspection => "预约查看 Book site inspection",
        Duty::ReplyToOwner => "回复业主 Reply to owner",
        Duty::Check => "跟进检查 Check",
        Duty::JointTalk => "联合约谈 Joint talk",
        Duty::FollowUp => "回访 Follow-up",
    }
}

/// `维修人员 Technician: li`, or the role alone.
fn responsible_label(responsible: &Responsible) -> String {
    match responsible {
        Responsible::Technician { user } => format!("{}: {user}", role_label(Role::Technician)),
        Responsible::Agent { user } => format!("受理人 Agent: {user}"),
        Responsible::Role { role } => role_label(*role).to_owned(),
    }
}

// ---- Writers ----------------------------------------------------------------------

/// RFC 4180 CSV: CRLF line ends, a field quoted when it holds a comma, a
/// quote, a line break or surrounding spaces, quotes doubled; tables
/// separated by an empty line; the UTF-8 byte-order mark first.
fn csv(tables: &[Table]) -> Vec<u8> {
    let mut out = String::from(UTF8_BOM);
    for (index, table) in tables.iter().enumerate() {
        if index > 0 {
            out.push_str("\r\n");
        }
        let header: Vec<Cell> = table.header.iter().map(|name| text(name.clone())).collect();
        for row in std::iter::once(&header).chain(&table.rows) {
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    out.push(',');
                }
                write_csv_field(&mut out, cell);
            }
            out.push_str("\r\n");
        }
    }
    out.into_bytes()
}

fn write_csv_field(out: &mut String, cell: &Cell) {
    let value = match cell {
        Cell::Text(value) => value.clone(),
        Cell::Input(value) => neutralize_formula(value),
        Cell::Count(count) => count.to_string(),
        Cell::Yuan(fen) => format!("{}.{:02}", fen / 100, fen % 100),
        Cell::Percent(Some(percent)) => format!("{percent:.2}"),
        Cell::Percent(None) => String::new(),
    };
    let needs_quotes =
        value.contains([',', '"', '\r', '\n']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        out.push('"');
        for character in value.chars() {
            if character == '"' {
                out.push('"');
            }
            out.push(character);
        }
        out.push('"');
    } else {
        let _ = write!(out, "{value}");
    }
}

/// A spreadsheet would run a cell that starts like a formula: prefix `'`.
fn neutralize_formula(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// One worksheet per table: a bold, frozen header row and an autofilter.
fn xlsx(tables: &[Table]) -> Result<Vec<u8>, ExportError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("0.00");
    for table in tables {
        let sheet = workbook.add_worksheet();
        sheet.set_name(table.sheet)?;
        for (column, name) in table.header.iter().enumerate() {
            let column = column_number(column);
            sheet.write_string_with_format(0, column, name, &bold)?;
            sheet.set_column_width(column, column_width(name))?;
        }
        for (index, row) in table.rows.iter().enumerate() {
            let row_number =
                u32::try_from(index + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
            for (column, cell) in row.iter().enumerate() {
                write_xlsx_cell(sheet, row_number, column_number(column), cell, &money)?;
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        let last_row =
            u32::try_from(table.rows.len()).map_err(|_| XlsxError::RowColumnLimitError)?;
        let last_column = column_number(table.header.len().saturating_sub(1));
        sheet.autofilter(0, 0, last_row, last_column)?;
    }
    Ok(workbook.save_to_buffer()?)
}

fn write_xlsx_cell(
    sheet: &mut Worksheet,
    row: u32,
    column: u16,
    cell: &Cell,
    money: &Format,
) -> Result<(), XlsxError> {
    match cell {
        Cell::Text(value) | Cell::Input(value) if value.is_empty() => {}
        Cell::Text(value) | Cell::Input(value) => {
            sheet.write_string(row, column, value)?;
        }
        Cell::Count(count) => {
            sheet.write_number(row, column, *count as f64)?;
        }
        Cell::Yuan(fen) => {
            sheet.write_number_with_format(row, column, *fen as f64 / 100.0, money)?;
        }
        Cell::Percent(Some(percent)) => {
            sheet.write_number(row, column, *percent)?;
        }
        Cell::Percent(None) => {}
    }
    Ok(())
}

/// Tables here have a handful of columns; Excel's limit is 16,384.
fn column_number(column: usize) -> u16 {
    u16::try_from(column).expect("a report table has few columns")
}

/// Wide enough for the header; Chinese characters count double.
fn column_width(header: &str) -> f64 {
    let units: usize = header
        .chars()
        .map(|character| if character.is_ascii() { 1 } else { 2 })
        .sum();
    (units as f64 + 2.0).clamp(10.0, 40.0)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use sync_protocol::reports::{DailyUnclosed, RuleWindow, UnclosedItem};
    use sync_protocol::time_rules::RuleId;
    use sync_protocol::{ReportMonth, TicketId, UserId, monthly_statistics};

    use super::*;

    fn csv_text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    fn item(location: &str, description: &str) -> UnclosedItem {
        UnclosedItem {
            ticket_id: TicketId::parse("tk00000042").unwrap(),
            serial_number: None,
            kind: TicketKind::WorkOrder,
            category: Category::Repair,
            area: Area::PublicArea,
            location: location.to_owned(),
            description: description.to_owned(),
            status: Status::Dispatched,
            received_at: Utc.with_ymd_and_hms(2026, 11, 27, 1, 5, 0).unwrap(),
            age_days: 0,
            responsible: Responsible::Technician {
                user: UserId::parse("li").unwrap(),
            },
            window: Some(RuleWindow {
                rule: RuleId::K2,
                duty: Duty::Finish,
                due_at: Utc.with_ymd_and_hms(2026, 11, 30, 15, 59, 59).unwrap(),
                missed: false,
            }),
        }
    }

    fn list(items: Vec<UnclosedItem>) -> DailyUnclosed {
        DailyUnclosed {
            date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            time_zone: "Asia/Shanghai".to_owned(),
            as_of: Utc.with_ymd_and_hms(2026, 11, 27, 15, 59, 59).unwrap(),
            work_orders: items,
            coordination_tickets: Vec::new(),
        }
    }

    #[test]
    fn r_c4_the_csv_starts_with_a_bom_and_a_bilingual_header_and_shows_local_times() {
        let calendar = WorkingCalendar::asia_shanghai();
        let text = csv_text(daily_unclosed_csv(
            &list(vec![item("B2", "漏水")]),
            &calendar,
        ));
        let mut lines = text.split("\r\n");
        let header = lines.next().unwrap();
        assert!(header.starts_with("\u{feff}工单号 Ticket,编号 Serial number,类型 Kind,"));
        assert!(header.ends_with(",时限规则 Rule,截止时间 Due (Asia/Shanghai),已超时 Missed"));
        assert_eq!(
            lines.next().unwrap(),
            "tk00000042,,派工单 Work order,日常维修 Repair,公区 Public area,B2,漏水,\
             已派工 Dispatched,2026-11-27 09:05,0,维修人员 Technician: li,R-K2 完成 Finish,\
             2026-11-30 23:59,否 No"
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be_and_formulas_are_neutralized() {
        let calendar = WorkingCalendar::asia_shanghai();
        let tricky = item("3-1-502, \"east\"", "=HYPERLINK(\"http://x\")\nline two");
        let text = csv_text(daily_unclosed_csv(&list(vec![tricky]), &calendar));
        assert!(text.contains(",\"3-1-502, \"\"east\"\"\","), "{text}");
        assert!(
            text.contains(",\"'=HYPERLINK(\"\"http://x\"\")\nline two\","),
            "{text}"
        );
        for (raw, safe) in [
            ("+86", "'+86"),
            ("-1F", "'-1F"),
            ("@a", "'@a"),
            ("B2", "B2"),
            ("", ""),
        ] {
            assert_eq!(neutralize_formula(raw), safe);
        }
    }

    #[test]
    fn r_a3_the_monthly_csv_has_four_tables_and_money_in_yuan() {
        let calendar = WorkingCalendar::asia_shanghai();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let month = ReportMonth::parse("2026-11").unwrap();
        let mut statistics = monthly_statistics([], &calendar, month, now).unwrap();
        statistics.charges.paid_fee_fen = 12_305;
        let text = csv_text(monthly_statistics_csv(&statistics, &calendar));
        assert!(text.starts_with("\u{feff}统计项 Statistic,分项 Item,数值 Value\r\n"));
        assert!(text.contains("\r\n有偿/无偿 Paid/free (R-C5),有偿金额(元) Fees (CNY),123.05\r\n"));
        assert!(text.contains("\r\n完结 Closure,完结率 Closure rate (%),\r\n"));
        assert!(text.contains("\r\nR-P1,到场 Arrival,0,0,0\r\n"));
        assert_eq!(text.matches("\r\n\r\n").count(), 3, "{text}");
    }

    #[test]
    fn the_xlsx_is_a_zip_with_one_sheet_per_table() {
        let calendar = WorkingCalendar::asia_shanghai();
        let bytes = daily_unclosed_xlsx(&list(vec![item("B2", "=1+1")]), &calendar).unwrap();
        assert!(bytes.starts_with(b"PK\x03\x04"));
        let holds = |name: &[u8]| bytes.windows(name.len()).any(|window| window == name);
        assert!(holds(b"xl/worksheets/sheet1.xml") && holds(b"xl/worksheets/sheet2.xml"));
        assert!(!holds(b"xl/worksheets/sheet3.xml"));
    }

    // ---- The monthly reports from the store -----------------------------------

    /// Moments in Shanghai, 2026.
    fn shanghai(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap() - chrono::Duration::hours(8)
    }

    /// The tickets of an estate as the writer leaves them: each state
    /// written over the one before, with the R-A1 counters.
    struct Estate {
        store: Store,
        calendar: WorkingCalendar,
        tickets: Vec<Ticket>,
    }

    impl Estate {
        fn new() -> Self {
            Self {
                store: Store::in_memory(),
                calendar: WorkingCalendar::asia_shanghai(),
                tickets: Vec::new(),
            }
        }

        fn write(&mut self, ticket: Ticket) {
            let old = self.tickets.iter().position(|held| held.id == ticket.id);
            let mut changes = crate::store::Changes::default();
            let mut counters = self.store.counters().unwrap();
            let previous = old.map(|index| self.tickets[index].clone());
            self.store
                .stage_ticket(&mut changes, &mut counters, previous.as_ref(), &ticket)
                .unwrap();
            if let Some(number) = &ticket.serial_number {
                changes.put_last_serial(number);
            }
            self.store.apply(changes).unwrap();
            match old {
                Some(index) => self.tickets[index] = ticket,
                None => self.tickets.push(ticket),
            }
        }

        fn receive(
            &mut self,
            number: u64,
            kind: TicketKind,
            category: Category,
            at: DateTime<Utc>,
            serial: Option<(SerialKind, u64)>,
        ) -> Ticket {
            let mut intake = crate::test_support::intake();
            (intake.kind, intake.category, intake.received_at) = (kind, category, at);
            let id = TicketId::parse(&format!("tk{number:08}")).unwrap();
            let agent = UserId::parse("kefu").unwrap();
            let mut ticket =
                sync_protocol::create_ticket(id, intake, agent, &self.calendar, at).unwrap();
            ticket.serial_number = serial.map(|(kind, sequence)| self.number(kind, at, sequence));
            self.write(ticket.clone());
            ticket
        }

        fn number(
            &self,
            kind: SerialKind,
            at: DateTime<Utc>,
            sequence: u64,
        ) -> sync_protocol::SerialNumber {
            let month = sync_protocol::SerialMonth::of_local_date(self.calendar.local_date(at));
            let estate = sync_protocol::EstateId::parse("E01").unwrap();
            sync_protocol::SerialSeries::new(estate, kind, month).number(sequence)
        }

        fn act(
            &mut self,
            ticket: &Ticket,
            by: &str,
            op: sync_protocol::OfficeOp,
            at: DateTime<Utc>,
        ) -> Ticket {
            let by = UserId::parse(by).unwrap();
            let next =
                sync_protocol::apply_office_op(ticket, &op, &by, &self.calendar, at).unwrap();
            self.write(next.clone());
            next
        }
    }

    #[test]
    fn r_a3_r_a2_the_monthly_reports_read_from_the_digests_equal_those_from_the_tickets_after_every_change()
     {
        use sync_protocol::OfficeOp;
        let mut estate = Estate::new();
        let dispatch = |technician: &str| OfficeOp::Dispatch {
            technician: UserId::parse(technician).unwrap(),
        };
        let cancel = OfficeOp::Cancel {
            reason: "业主已自行解决 solved by the owner".into(),
        };
        let wo = Some((SerialKind::WorkOrder, 1));
        let open = estate.receive(
            1,
            TicketKind::WorkOrder,
            Category::Repair,
            shanghai(11, 3, 9),
            wo,
        );
        estate.act(&open, "diaodu", dispatch("li"), shanghai(11, 3, 9));
        let wo = Some((SerialKind::WorkOrder, 2));
        let cancelled = estate.receive(
            2,
            TicketKind::WorkOrder,
            Category::Repair,
            shanghai(11, 4, 9),
            wo,
        );
        let cancelled = estate.act(&cancelled, "diaodu", dispatch("zhang"), shanghai(11, 4, 10));
        estate.act(&cancelled, "kefu", cancel, shanghai(11, 4, 11));
        // Received on 29 November, converted on 2 December: the coordination
        // ticket is numbered in December.
        let wo = Some((SerialKind::WorkOrder, 3));
        let to_convert = estate.receive(
            3,
            TicketKind::WorkOrder,
            Category::Repair,
            shanghai(11, 29, 18),
            wo,
        );
        let to_convert = estate.act(&to_convert, "diaodu", dispatch("li"), shanghai(11, 29, 19));
        let (converted, mut coordination) = sync_protocol::convert_work_order(
            &to_convert,
            TicketId::parse("tk00000004").unwrap(),
            "需订货 needs a part",
            &UserId::parse("diaodu").unwrap(),
            shanghai(12, 2, 9),
        )
        .unwrap();
        coordination.serial_number =
            Some(estate.number(SerialKind::CoordinationTicket, shanghai(12, 2, 9), 1));
        estate.write(converted);
        estate.write(coordination.clone());
        let track = |kind| OfficeOp::Track {
            kind,
            note: String::new(),
        };
        let coordination = estate.act(
            &coordination,
            "zhuanyuan",
            track(sync_protocol::TrackingKind::OwnerReply {}),
            shanghai(12, 2, 15),
        );
        estate.act(
            &coordination,
            "zhuanyuan",
            track(sync_protocol::TrackingKind::Check {}),
            shanghai(12, 4, 10),
        );
        let verbal = estate.receive(
            5,
            TicketKind::VerbalDispatch,
            Category::Security,
            shanghai(11, 30, 23),
            None,
        );
        estate.act(&verbal, "kefu", OfficeOp::Close {}, shanghai(12, 1, 0));
        let ct = Some((SerialKind::CoordinationTicket, 1));
        estate.receive(
            6,
            TicketKind::CoordinationTicket,
            Category::OwnerCommunication,
            shanghai(11, 20, 9),
            ct,
        );

        let estate_id = sync_protocol::EstateId::parse("E01").unwrap();
        let now = shanghai(12, 5, 10);
        for month in ["2026-11", "2026-12"] {
            let month = ReportMonth::parse(month).unwrap();
            let calendar = &estate.calendar;
            let from_store =
                monthly_statistics_of(&estate.store, &estate_id, calendar, month, now).unwrap();
            assert_eq!(
                from_store,
                monthly_statistics(&estate.tickets, calendar, month, now).unwrap(),
                "{month}"
            );

            let archive =
                monthly_archive_of(&estate.store, &estate_id, calendar, month, now).unwrap();
            let mut builder = MonthlyArchiveBuilder::new(calendar, &estate_id, month, now);
            let handed_out = HandedOut {
                work_orders: estate
                    .store
                    .last_serial_sequence(builder.series(SerialKind::WorkOrder))
                    .unwrap(),
                coordination_tickets: estate
                    .store
                    .last_serial_sequence(builder.series(SerialKind::CoordinationTicket))
                    .unwrap(),
            };
            for ticket in &estate.tickets {
                builder.add_digest(sync_protocol::reports::ReportDigest::of(ticket));
            }
            assert_eq!(archive, builder.finish(handed_out).unwrap(), "{month}");
        }
        let november = monthly_statistics_of(
            &estate.store,
            &estate_id,
            &estate.calendar,
            ReportMonth::parse("2026-11").unwrap(),
            now,
        )
        .unwrap();
        assert_eq!(
            (
                november.received,
                november.closure.closed,
                november.closure.cancelled,
                november.closure.converted
            ),
            (6, 1, 1, 1)
        );
        let december = monthly_archive_of(
            &estate.store,
            &estate_id,
            &estate.calendar,
            ReportMonth::parse("2026-12").unwrap(),
            now,
        )
        .unwrap();
        let filed: Vec<&str> = december
            .coordination_tickets
            .not_closed
            .iter()
            .map(|entry| entry.ticket_id.as_str())
            .collect();
        assert_eq!(filed, ["tk00000004"]);
        assert!(december.coordination_tickets.numbering.complete);
    }
}
