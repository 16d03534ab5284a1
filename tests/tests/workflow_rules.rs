//! Intake, classification and the windows of each kind over real HTTP:
//! sources (R-I1), kinds and categories (R-S1, R-K2, R-K3), the coordination
//! ticket's two holders (R-D2), the recorded result (R-P6) and which closed
//! tickets are due for a follow-up call (R-F1).

mod common;

use std::collections::BTreeSet;

use chrono::{Duration, FixedOffset, Utc};
use common::{Handheld, TestServer, free_result, intake, paid_result};
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::time_rules::{Duty, RuleId};
use sync_protocol::{
    Area, Category, Charge, CompletionRecord, DeviceOp, DispatchQueue, DueItem, DueList, Intake,
    OfficeOp, Outcome, Rating, RejectCode, Source, Status, Ticket, TicketId, TicketKind,
    TrackingKind, UserId,
};

/// The widest window the due list allows: a week.
const A_WEEK: &str = "?window_minutes=10080";

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

async fn due_items(server: &TestServer, caller: &str) -> Vec<DueItem> {
    let token = server.login(caller).await;
    let list: DueList = server
        .get(&format!("/api/v1/due{A_WEEK}"), Some(&token))
        .await
        .ok();
    list.items
}

/// The items of `ticket` for `rule` on `caller`'s due list.
async fn due_for(
    server: &TestServer,
    caller: &str,
    ticket: &TicketId,
    rule: RuleId,
) -> Vec<DueItem> {
    due_items(server, caller)
        .await
        .into_iter()
        .filter(|item| &item.ticket_id == ticket && item.rule == rule)
        .collect()
}

async fn queue_of(server: &TestServer, caller: &str) -> BTreeSet<TicketId> {
    let token = server.login(caller).await;
    let queue: DispatchQueue = server
        .get("/api/v1/dispatch-queue", Some(&token))
        .await
        .ok();
    queue
        .tickets
        .into_iter()
        .map(|queued| queued.ticket_id)
        .collect()
}

/// A work order taken by the agent and dispatched to li.
async fn work_order_for_li(server: &TestServer, area: Area) -> Ticket {
    let agent = server.login("kefu").await;
    let report = Intake { area, ..intake() };
    let ticket = server.create_ticket(&agent, &report).await;
    let dispatcher = server.login("diaodu").await;
    let technician = user("li");
    server
        .act(&dispatcher, &ticket.id, OfficeOp::Dispatch { technician })
        .await
}

/// A work order li finished with `result` and the owner signed with
/// `rating`, closed by the dispatcher (R-C1).
async fn closed_work_order(
    server: &TestServer,
    handheld: &mut Handheld,
    result: CompletionRecord,
    rating: Option<Rating>,
) -> Ticket {
    let dispatched = work_order_for_li(server, Area::PrivateUnit).await;
    server
        .finish_on_site("li", handheld, &dispatched, result, rating)
        .await;
    let dispatcher = server.login("diaodu").await;
    let closed = server
        .act(&dispatcher, &dispatched.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
    closed
}

// ---- Intake and classification -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_i1_reports_by_phone_walk_in_and_self_inspection_keep_their_source_and_others_are_refused()
 {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    for source in [Source::Phone, Source::WalkIn, Source::SelfInspection] {
        let report = Intake { source, ..intake() };
        let ticket = server.create_ticket(&agent, &report).await;
        assert_eq!(ticket.source, source);
        assert_eq!(ticket.received_by, user("kefu"), "who took it is recorded");
        assert_eq!(ticket.received_at, report.received_at);
    }

    // Walk-ins need no phone number; a phone report names the caller's.
    let walk_in = Intake {
        source: Source::WalkIn,
        reporter: sync_protocol::Reporter {
            phone: None,
            ..intake().reporter
        },
        ..intake()
    };
    server.create_ticket(&agent, &walk_in).await;

    let before = server.estate_snapshot().await;
    let mut by_email = serde_json::to_value(intake()).unwrap();
    by_email["source"] = json!("email");
    let refused = server
        .post_json("/api/v1/tickets", Some(&agent), &by_email)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_body");
    assert!(refused.message.contains("source"), "{refused:?}");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_s1_each_report_is_classified_by_kind_and_category_and_a_pair_that_cannot_go_together_is_refused()
 {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let classified = [
        (TicketKind::VerbalDispatch, Category::Security),
        (TicketKind::VerbalDispatch, Category::Environment),
        (TicketKind::VerbalDispatch, Category::HomeService),
        (TicketKind::WorkOrder, Category::Repair),
        (TicketKind::WorkOrder, Category::Rework),
        (TicketKind::WorkOrder, Category::Environment),
        (TicketKind::CoordinationTicket, Category::Repair),
        (TicketKind::CoordinationTicket, Category::OwnerCommunication),
    ];
    for (kind, category) in classified {
        let report = Intake {
            kind,
            category,
            ..intake()
        };
        let ticket = server.create_ticket(&agent, &report).await;
        assert_eq!((ticket.kind, ticket.category), (kind, category));
        // Numbered in its kind's series (R-A1); a verbal dispatch has none.
        let series = ticket
            .serial_number
            .as_ref()
            .map(|number| number.to_string()[4..6].to_owned());
        let expected = match kind {
            TicketKind::VerbalDispatch => None,
            TicketKind::WorkOrder => Some("WO".to_owned()),
            TicketKind::CoordinationTicket => Some("CT".to_owned()),
        };
        assert_eq!(series, expected, "{ticket:?}");
    }

    let before = server.estate_snapshot().await;
    let refusals = [
        (TicketKind::WorkOrder, Category::OwnerCommunication),
        (TicketKind::VerbalDispatch, Category::Repair),
    ];
    for (kind, category) in refusals {
        let report = Intake {
            kind,
            category,
            ..intake()
        };
        let body = server
            .post_json("/api/v1/tickets", Some(&agent), &report)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
        let problems = &body.details.as_ref().unwrap()["problems"];
        assert_eq!(problems[0]["field"], "kind", "{body:?}");
    }
    assert_eq!(server.estate_snapshot().await, before);
}

// ---- The three kinds ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_k2_a_work_order_is_due_by_the_end_of_its_day_and_in_a_public_area_three_days_later() {
    let server = TestServer::start();
    let private = work_order_for_li(&server, Area::PrivateUnit).await;
    let public = work_order_for_li(&server, Area::PublicArea).await;

    let finish = |items: Vec<DueItem>| -> DueItem {
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].duty, Duty::Finish);
        items[0].clone()
    };
    let private_due = finish(due_for(&server, "diaodu", &private.id, RuleId::K2).await);
    let public_due = finish(due_for(&server, "diaodu", &public.id, RuleId::K2).await);

    // The demo estate works on Beijing time: the day ends at local midnight.
    let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
    let received_day = private.received_at.with_timezone(&beijing).date_naive();
    let last_instant = private_due.due_at - Duration::seconds(1);
    assert_eq!(
        last_instant.with_timezone(&beijing).date_naive(),
        received_day
    );
    assert!(private_due.due_at > Utc::now());
    assert_eq!(public_due.due_at - private_due.due_at, Duration::days(3));

    // The technician holding it sees it too; finishing takes it off.
    assert_eq!(
        due_for(&server, "li", &private.id, RuleId::K2).await.len(),
        1
    );
    let mut handheld = Handheld::new("hh-li-k2");
    server
        .finish_on_site("li", &mut handheld, &private, free_result(), None)
        .await;
    assert!(
        due_for(&server, "diaodu", &private.id, RuleId::K2)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_k3_a_coordination_ticket_issued_directly_goes_to_its_department_and_starts_its_cadences()
{
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let report = Intake {
        kind: TicketKind::CoordinationTicket,
        category: Category::Repair,
        description: "外墙渗水需协调施工 Exterior wall seeps; works need the owner's consent"
            .to_owned(),
        ..intake()
    };
    let ticket = server.create_ticket(&agent, &report).await;
    assert_eq!(ticket.kind, TicketKind::CoordinationTicket);
    assert!(
        ticket.converted_from.is_none(),
        "issued directly, not converted"
    );

    // R-D1: the environment manager dispatches it, the engineering dispatcher does not.
    assert!(queue_of(&server, "huanjing").await.contains(&ticket.id));
    assert!(!queue_of(&server, "diaodu").await.contains(&ticket.id));

    // R-P3 starts at once: a site inspection to book and a reply to the owner.
    let deadlines: Vec<Duty> = due_items(&server, "zhuguan")
        .await
        .into_iter()
        .filter(|item| item.ticket_id == ticket.id && item.rule == RuleId::P3)
        .map(|item| item.duty)
        .collect();
    assert_eq!(deadlines.len(), 2, "{deadlines:?}");
    assert!(
        deadlines.contains(&Duty::BookSiteInspection),
        "{deadlines:?}"
    );
    assert!(deadlines.contains(&Duty::ReplyToOwner), "{deadlines:?}");
}

// ---- Dispatch: two holders ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d2_the_department_signs_for_a_coordination_ticket_and_the_specialist_tracks_it() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let report = Intake {
        kind: TicketKind::CoordinationTicket,
        category: Category::Repair,
        ..intake()
    };
    let ticket = server.create_ticket(&agent, &report).await;
    let manager = server.login("huanjing").await;
    let technician = user("wang");
    let dispatched = server
        .act(&manager, &ticket.id, OfficeOp::Dispatch { technician })
        .await;
    assert_eq!(dispatched.assigned_technician, Some(user("wang")));

    let signed_for = OfficeOp::Track {
        kind: TrackingKind::CollectionAcknowledged {},
        note: "工程部已签收 engineering signed for it".to_owned(),
    };
    // The technician does not sign for the department.
    let wang = server.login("wang").await;
    server
        .act_raw(&wang, &ticket.id, signed_for.clone())
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");

    let department = server.login("banzhang").await;
    server.act(&department, &ticket.id, signed_for).await;
    let specialist = server.login("zhuanyuan").await;
    let check = OfficeOp::Track {
        kind: TrackingKind::Check {},
        note: "施工队已进场 the crew is on site".to_owned(),
    };
    let tracked = server.act(&specialist, &ticket.id, check).await;

    let records: Vec<(UserId, TrackingKind)> = tracked
        .tracking
        .iter()
        .map(|record| (record.by.clone(), record.kind.clone()))
        .collect();
    assert_eq!(
        records,
        [
            (user("banzhang"), TrackingKind::CollectionAcknowledged {}),
            (user("zhuanyuan"), TrackingKind::Check {}),
        ]
    );
    assert_eq!(tracked.assigned_technician, Some(user("wang")));
}

// ---- Processing: the result -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p6_the_result_keeps_work_materials_and_paid_or_free_and_a_paid_result_needs_its_fee() {
    let server = TestServer::start();
    let ticket = work_order_for_li(&server, Area::PrivateUnit).await;
    let token = server.login("li").await;
    let mut handheld = Handheld::new("hh-li-p6");

    let incomplete = [
        CompletionRecord {
            charge: Charge::Paid { fee_fen: 0 },
            ..paid_result()
        },
        CompletionRecord {
            work_done: "  ".to_owned(),
            ..paid_result()
        },
    ];
    for result in incomplete {
        let mutation = handheld.record(&ticket, DeviceOp::Complete { result });
        let pushed = server.push(&token, &handheld.id, vec![mutation]).await;
        match &pushed.outcomes[0].outcome {
            Outcome::Rejected(rejection) => {
                assert_eq!(rejection.code, RejectCode::InvalidContent);
                assert!(!rejection.reason.is_empty());
            }
            other => panic!("an incomplete result is refused, got {other:?}"),
        }
    }
    let unchanged = server.ticket(&token, &ticket.id).await;
    assert!(unchanged.results.is_empty());

    let completed = server
        .finish_on_site("li", &mut handheld, &ticket, paid_result(), None)
        .await;
    let result = &completed.results.values().next().unwrap().body;
    assert_eq!(result, &paid_result());
    assert_eq!(result.charge, Charge::Paid { fee_fen: 3500 });
    assert_eq!(result.materials.len(), 1);
}

// ---- Follow-up --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_f1_paid_or_unrated_work_orders_are_due_for_a_follow_up_within_24_hours_and_satisfied_free_ones_are_not()
 {
    let server = TestServer::start();
    let mut handheld = Handheld::new("hh-li-f1");
    let paid = closed_work_order(&server, &mut handheld, paid_result(), None).await;
    let satisfied = closed_work_order(
        &server,
        &mut handheld,
        free_result(),
        Some(Rating::Satisfied),
    )
    .await;
    let unrated = closed_work_order(&server, &mut handheld, free_result(), None).await;
    let dissatisfied = closed_work_order(
        &server,
        &mut handheld,
        free_result(),
        Some(Rating::Dissatisfied),
    )
    .await;

    for ticket in [&paid, &unrated, &dissatisfied] {
        let items = due_for(&server, "kefu", &ticket.id, RuleId::F1).await;
        assert_eq!(items.len(), 1, "{:?}: {items:?}", ticket.id);
        assert_eq!(items[0].duty, Duty::FollowUp);
        let closed_at = ticket.closed.as_ref().expect("closed").at;
        assert_eq!(items[0].due_at, closed_at + Duration::hours(24));
    }
    assert!(
        due_for(&server, "kefu", &satisfied.id, RuleId::F1)
            .await
            .is_empty()
    );
    // Technicians do not call owners back: not on li's list.
    assert!(
        due_for(&server, "li", &paid.id, RuleId::F1)
            .await
            .is_empty()
    );

    // Recording the follow-up takes it off.
    let agent = server.login("kefu").await;
    let follow_up = OfficeOp::RecordFollowUp {
        reached: true,
        rating: Some(Rating::Satisfied),
        note: "业主满意 the owner is satisfied".to_owned(),
    };
    server.act(&agent, &paid.id, follow_up).await;
    assert!(
        due_for(&server, "kefu", &paid.id, RuleId::F1)
            .await
            .is_empty()
    );
}
