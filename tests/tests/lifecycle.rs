//! The end of a ticket's life over real HTTP: closure (R-C1, R-C3, R-K1),
//! the owner's signature as its precondition (R-P7), conversion of an
//! unfinished work order (R-C2), follow-ups and the reports they raise
//! (R-F2, R-F3), and the tracking of coordination tickets (R-P4, R-P5).

mod common;

use common::{
    Handheld, Options, TestServer, add_user, free_result, intake, paid_result, signature,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::{
    Applied, Category, Change, Cursor, DeviceOp, ErrorBody, HistoryEvent, Intake, LateReason,
    Lateness, OfficeOp, Outcome, PullResponse, Rating, RevokeReason, Source, Status, Ticket,
    TicketId, TicketKind, TrackingKind, UserId,
};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// The fields an `invalid_record` refusal names, in order.
fn problem_fields(body: &ErrorBody) -> Vec<String> {
    body.details.as_ref().expect("invalid_record has details")["problems"]
        .as_array()
        .expect("details.problems is a list")
        .iter()
        .map(|problem| problem["field"].as_str().expect("a field").to_owned())
        .collect()
}

/// The revocations of a pull page, as (ticket, reason).
fn revocations(pull: &PullResponse) -> Vec<(TicketId, RevokeReason)> {
    pull.changes
        .iter()
        .filter_map(|change| match change {
            Change::Revoked {
                ticket_id, reason, ..
            } => Some((ticket_id.clone(), *reason)),
            Change::Upsert { .. } => None,
        })
        .collect()
}

/// POST an office action written as raw JSON (the wire form clients send).
async fn act_json(server: &TestServer, token: &str, ticket: &TicketId, op: Value) -> Ticket {
    act_json_raw(server, token, ticket, op).await.ok()
}

async fn act_json_raw(
    server: &TestServer,
    token: &str,
    ticket: &TicketId,
    op: Value,
) -> common::Response {
    let path = format!("/api/v1/tickets/{ticket}/actions");
    server
        .post_json(&path, Some(token), &json!({ "op": op }))
        .await
}

/// li's first pull on a fresh handheld: the cursor and his two demo tickets.
async fn li_first_sync(server: &TestServer, handheld: &Handheld) -> (Cursor, Vec<Ticket>) {
    let li = server.login("li").await;
    let pull = server.pull(&li, &handheld.id, Cursor(0)).await;
    let tickets: Vec<Ticket> = pull
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::Upsert { ticket, .. } => Some((**ticket).clone()),
            Change::Revoked { .. } => None,
        })
        .collect();
    assert_eq!(
        tickets.len(),
        2,
        "the demo dispatches two work orders to li"
    );
    assert!(
        tickets
            .iter()
            .all(|ticket| ticket.status == Status::Dispatched)
    );
    (pull.next_cursor, tickets)
}

/// li arrives, completes with `result` and has the owner sign, in one push;
/// the signature image stays on the handheld. Returns the ticket after it.
async fn complete_and_sign(
    server: &TestServer,
    handheld: &mut Handheld,
    ticket: &Ticket,
    image: &[u8],
) -> Ticket {
    let li = server.login("li").await;
    let result = paid_result();
    let mutations = vec![
        handheld.record(ticket, DeviceOp::RecordArrival { position: None }),
        handheld.record(
            ticket,
            DeviceOp::Complete {
                result: result.clone(),
            },
        ),
        handheld.record(ticket, signature(image, &result)),
    ];
    let pushed = server.push(&li, &handheld.id, mutations).await;
    assert!(
        pushed.outcomes.iter().all(|outcome| matches!(
            outcome.outcome,
            Outcome::Applied(Applied { late: None, .. })
        )),
        "{pushed:?}"
    );
    let completed = server
        .ticket(&server.login("diaodu").await, &ticket.id)
        .await;
    assert_eq!(completed.status, Status::Completed);
    completed
}

/// A work order li completed, the owner signed (image uploaded) and the
/// dispatcher closed (R-C1).
async fn closed_work_order(server: &TestServer) -> Ticket {
    let mut handheld = Handheld::new("hh-li-closing");
    let (_, tickets) = li_first_sync(server, &handheld).await;
    let image = b"signature strokes of Mr Zhao".to_vec();
    let completed = complete_and_sign(server, &mut handheld, &tickets[0], &image).await;
    let upload = server.upload_blob(&server.login("li").await, &image).await;
    assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
    let dispatcher = server.login("diaodu").await;
    let closed = server
        .act(&dispatcher, &completed.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
    closed
}

/// A coordination ticket recorded by kefu (R-K3), category repair.
async fn coordination_ticket(server: &TestServer) -> Ticket {
    let agent = server.login("kefu").await;
    let report = Intake {
        kind: TicketKind::CoordinationTicket,
        category: Category::Repair,
        description: "外墙渗水需要协调施工 Exterior wall seeps; works need the owner's consent"
            .to_owned(),
        ..intake()
    };
    let ticket = server.create_ticket(&agent, &report).await;
    assert_eq!(ticket.kind, TicketKind::CoordinationTicket);
    assert_eq!(ticket.status, Status::Received);
    ticket
}

// ---- Closure ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c1_r_p7_the_dispatcher_closes_a_signed_work_order_once_the_signature_image_is_on_the_server()
 {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let agent = server.login("kefu").await;
    let mut handheld = Handheld::new("hh-li-01");
    let (cursor, tickets) = li_first_sync(&server, &handheld).await;

    // Signed, but the image is still on the handheld: the record is incomplete (R-P7).
    let image = b"signature strokes of Ms Wang".to_vec();
    let completed = complete_and_sign(&server, &mut handheld, &tickets[0], &image).await;
    let before = server.estate_snapshot().await;
    let refused = server
        .act_raw(&dispatcher, &completed.id, OfficeOp::Close {})
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(problem_fields(&refused), ["signatures"]);
    // Customer service does not close engineering work orders (R-C1).
    server
        .act_raw(&agent, &completed.id, OfficeOp::Close {})
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.estate_snapshot().await, before);

    let upload = server.upload_blob(&li, &image).await;
    assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
    let closed = server
        .act(&dispatcher, &completed.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
    let closure = closed.closed.as_ref().expect("the closure is recorded");
    assert_eq!(closure.by, user("diaodu"));
    assert_eq!(closed.version.0, completed.version.0 + 1);
    let last = closed.history.last().unwrap();
    assert_eq!(last.event, HistoryEvent::Closed);
    let change = last
        .status_change
        .as_ref()
        .expect("closing moves the status");
    assert_eq!(
        (change.from, change.to),
        (Status::Completed, Status::Closed)
    );
    assert_eq!(server.ticket(&dispatcher, &closed.id).await, closed);

    // li's handheld lets go of the closed ticket.
    let pull = server.pull(&li, &handheld.id, cursor).await;
    assert_eq!(
        revocations(&pull),
        vec![(closed.id.clone(), RevokeReason::Closed)]
    );
    // A closed ticket takes no second closure.
    server
        .act_raw(&dispatcher, &closed.id, OfficeOp::Close {})
        .await
        .error(StatusCode::CONFLICT, "transition_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p6_a_second_result_replaces_the_first_and_the_ticket_says_which_counts() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-twice");
    let ticket = server.tickets_of("li").await.remove(0);
    let first = paid_result();
    let corrected = free_result();
    let now = chrono::Utc::now();
    let mutations = vec![
        handheld.record_at(
            &ticket,
            DeviceOp::Complete { result: first },
            now - chrono::Duration::minutes(10),
        ),
        handheld.record_at(
            &ticket,
            DeviceOp::Complete {
                result: corrected.clone(),
            },
            now - chrono::Duration::minutes(2),
        ),
    ];
    let ids: Vec<String> = mutations
        .iter()
        .map(|mutation| format!("{}#{}", handheld.id, mutation.seq.0))
        .collect();
    server.push(&li, &handheld.id, mutations).await;

    let stored = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(stored.results.len(), 2, "the first result is kept");
    let current = stored
        .current_result
        .as_ref()
        .expect("the ticket names its current result");
    assert_eq!(current.to_string(), ids[1]);
    assert_eq!(stored.current_result().unwrap().body, corrected);
    // The technician's own view says the same.
    let shown = server.ticket(&li, &ticket.id).await;
    assert_eq!(shown.current_result, stored.current_result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c1_r_p7_an_unfinished_or_unsigned_work_order_is_not_closed() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-01");
    let (_, tickets) = li_first_sync(&server, &handheld).await;
    let ticket = &tickets[1];

    let arrival = handheld.record(ticket, DeviceOp::RecordArrival { position: None });
    server.push(&li, &handheld.id, vec![arrival]).await;
    let in_progress = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(in_progress.status, Status::InProgress);
    let refused = server
        .act_raw(&dispatcher, &ticket.id, OfficeOp::Close {})
        .await
        .error(StatusCode::CONFLICT, "transition_not_allowed");
    assert!(refused.message.contains("in_progress"), "{refused:?}");

    // Completed without the owner's signature (R-P7).
    let completion = handheld.record(
        &in_progress,
        DeviceOp::Complete {
            result: free_result(),
        },
    );
    server.push(&li, &handheld.id, vec![completion]).await;
    let completed = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(completed.status, Status::Completed);
    let refused = server
        .act_raw(&dispatcher, &ticket.id, OfficeOp::Close {})
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(problem_fields(&refused), ["signatures"]);
    assert_eq!(server.ticket(&dispatcher, &ticket.id).await, completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c3_a_completed_coordination_ticket_is_signed_off_by_the_department_manager_then_closed_by_the_cs_manager()
 {
    let server = TestServer::start();
    let li = server.login("li").await;
    let environment_manager = server.login("huanjing").await;
    let department_manager = server.login("banzhang").await;
    let cs_manager = server.login("kefu-jingli").await;
    let dispatcher = server.login("diaodu").await;
    let ticket = coordination_ticket(&server).await;

    // R-D1: coordination tickets go to the environment manager.
    let dispatched = server
        .act(
            &environment_manager,
            &ticket.id,
            OfficeOp::Dispatch {
                technician: user("li"),
            },
        )
        .await;
    let mut handheld = Handheld::new("hh-li-01");
    let mutations = vec![
        handheld.record(&dispatched, DeviceOp::RecordArrival { position: None }),
        handheld.record(
            &dispatched,
            DeviceOp::Complete {
                result: free_result(),
            },
        ),
    ];
    server.push(&li, &handheld.id, mutations).await;
    let completed = server.ticket(&cs_manager, &ticket.id).await;
    assert_eq!(completed.status, Status::Completed);

    // Not before the department manager signed it off.
    let refused = server
        .act_raw(&cs_manager, &ticket.id, OfficeOp::Close {})
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(problem_fields(&refused), ["sign_offs"]);
    // The dispatcher neither signs off nor closes a coordination ticket.
    act_json_raw(
        &server,
        &dispatcher,
        &ticket.id,
        json!({ "type": "sign_off", "note": "looks done" }),
    )
    .await
    .error(StatusCode::FORBIDDEN, "forbidden");
    server
        .act_raw(&dispatcher, &ticket.id, OfficeOp::Close {})
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.ticket(&cs_manager, &ticket.id).await, completed);

    let signed = act_json(
        &server,
        &department_manager,
        &ticket.id,
        json!({ "type": "sign_off", "note": "外墙已修复 wall repaired and checked" }),
    )
    .await;
    assert_eq!(signed.status, Status::Completed);
    assert_eq!(signed.sign_offs.len(), 1);
    assert_eq!(signed.sign_offs[0].by, user("banzhang"));
    assert_eq!(
        signed.sign_offs[0].note,
        "外墙已修复 wall repaired and checked"
    );
    assert_eq!(
        signed.history.last().unwrap().event,
        HistoryEvent::SignedOff
    );

    let closed = server
        .act(&cs_manager, &ticket.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(closed.closed.as_ref().unwrap().by, user("kefu-jingli"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_k1_a_verbal_dispatch_is_closed_by_whoever_took_the_report_and_by_nobody_else() {
    // A second agent in the demo estate, added before the server seeds it.
    let data_dir = tempfile::tempdir().unwrap();
    add_user(
        data_dir.path(),
        "kefu2",
        "customer_service_agent",
        common::DEMO_ESTATE,
    );
    let server = TestServer::start_with(data_dir, Options::default());
    let agent = server.login("kefu").await;
    let other_agent = server.login("kefu2").await;
    let specialist = server.login("zhuanyuan").await;

    let report = Intake {
        kind: TicketKind::VerbalDispatch,
        category: Category::Security,
        location: "东门 East gate".to_owned(),
        description: "搬家车辆放行 Let the removal van in".to_owned(),
        ..intake()
    };
    let ticket = server.create_ticket(&agent, &report).await;
    assert_eq!(ticket.status, Status::Received);
    for token in [&specialist, &other_agent] {
        server
            .act_raw(token, &ticket.id, OfficeOp::Close {})
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(server.ticket(&agent, &ticket.id).await, ticket);

    // The radio says done: no technician, no result, no signature needed.
    let closed = server.act(&agent, &ticket.id, OfficeOp::Close {}).await;
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(closed.closed.as_ref().unwrap().by, user("kefu"));
    let change = closed.history.last().unwrap().status_change.unwrap();
    assert_eq!((change.from, change.to), (Status::Received, Status::Closed));

    // A specialist who took a verbal report on a follow-up call closes it too.
    let taken_by_specialist = server.create_ticket(&specialist, &report).await;
    server
        .act_raw(&agent, &taken_by_specialist.id, OfficeOp::Close {})
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let closed = server
        .act(&specialist, &taken_by_specialist.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(closed.closed.as_ref().unwrap().by, user("zhuanyuan"));
}

// ---- Conversion -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c2_an_unfinished_work_order_converted_into_a_coordination_ticket_keeps_its_history_and_later_facts()
 {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-01");
    let (cursor, tickets) = li_first_sync(&server, &handheld).await;
    let work_order = &tickets[0];
    let before = server.ticket(&dispatcher, &work_order.id).await;
    // A technician converts nothing.
    act_json_raw(
        &server,
        &li,
        &work_order.id,
        json!({ "type": "convert", "reason": "no part" }),
    )
    .await
    .error(StatusCode::FORBIDDEN, "forbidden");

    let reason = "需厂家配件，当天无法完成 needs a part from the supplier";
    let converted = act_json(
        &server,
        &dispatcher,
        &work_order.id,
        json!({ "type": "convert", "reason": reason }),
    )
    .await;
    assert_eq!(converted.status, Status::Converted);
    assert_eq!(converted.kind, TicketKind::WorkOrder);
    let coordination_id = converted
        .converted_to
        .clone()
        .expect("the work order names its coordination ticket");
    assert_ne!(coordination_id, work_order.id);
    assert_eq!(
        converted.history.last().unwrap().event,
        HistoryEvent::ConvertedTo {
            to: coordination_id.clone(),
            reason: reason.to_owned(),
        }
    );

    let coordination = server.ticket(&dispatcher, &coordination_id).await;
    assert_eq!(coordination.kind, TicketKind::CoordinationTicket);
    assert_eq!(coordination.status, Status::Received);
    assert_eq!(coordination.converted_from, Some(work_order.id.clone()));
    assert_eq!(coordination.assigned_technician, None);
    assert_eq!(coordination.location, before.location);
    assert_eq!(coordination.description, before.description);
    assert_eq!(
        &coordination.history[..before.history.len()],
        &before.history[..],
        "the coordination ticket starts with the work order's history"
    );
    assert_eq!(
        coordination.history.last().unwrap().event,
        HistoryEvent::ConvertedFrom {
            from: work_order.id.clone(),
        }
    );
    assert!(
        server
            .estate_snapshot()
            .await
            .iter()
            .any(|ticket| ticket.id == coordination_id)
    );
    // A converted work order is not converted again.
    act_json_raw(
        &server,
        &dispatcher,
        &work_order.id,
        json!({ "type": "convert", "reason": "again" }),
    )
    .await
    .error(StatusCode::CONFLICT, "transition_not_allowed");

    // li's handheld lets go of the work order.
    let pull = server.pull(&li, &handheld.id, cursor).await;
    assert_eq!(
        revocations(&pull),
        vec![(work_order.id.clone(), RevokeReason::Converted)]
    );

    // What li recorded offline on the work order still reaches it, flagged late.
    let offline = vec![
        handheld.record(work_order, DeviceOp::RecordArrival { position: None }),
        handheld.record(
            work_order,
            common::note("拆开检查，缺配件 opened up, part missing"),
        ),
    ];
    let pushed = server.push(&li, &handheld.id, offline).await;
    let late = Lateness {
        reason: LateReason::Converted,
        assigned_now: Some(user("li")),
    };
    for (offset, outcome) in pushed.outcomes.iter().enumerate() {
        let expected = Outcome::Applied(Applied {
            ticket_version: sync_protocol::Version(converted.version.0 + 1 + offset as u64),
            late: Some(late.clone()),
        });
        assert_eq!(outcome.outcome, expected, "seq {}", outcome.seq);
    }
    let stored = server.ticket(&dispatcher, &work_order.id).await;
    assert_eq!(stored.status, Status::Converted, "late facts move nothing");
    assert_eq!(stored.arrivals.len(), 1);
    assert_eq!(stored.notes.len(), 1);
    let arrival = stored.arrivals.values().next().unwrap();
    assert_eq!(arrival.recorded_by, user("li"));
    assert_eq!(arrival.late.as_ref(), Some(&late));
    let note = stored.notes.values().next().unwrap();
    assert_eq!(note.body.text, "拆开检查，缺配件 opened up, part missing");
    assert_eq!(note.late.as_ref(), Some(&late));
}

// ---- Follow-ups -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_f2_a_follow_up_is_recorded_on_a_closed_ticket_and_refused_on_an_open_one() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let closed = closed_work_order(&server).await;
    let open = server.tickets_of("li").await;
    let open = open
        .iter()
        .find(|ticket| ticket.status.is_open())
        .expect("li's second demo ticket is still open");

    let follow_up = OfficeOp::RecordFollowUp {
        reached: true,
        rating: Some(Rating::Satisfied),
        note: "业主表示已不漏水 the owner says the leak is gone".to_owned(),
    };
    server
        .act_raw(&agent, &open.id, follow_up.clone())
        .await
        .error(StatusCode::CONFLICT, "transition_not_allowed");

    let followed = server.act(&agent, &closed.id, follow_up).await;
    assert_eq!(followed.status, Status::Closed);
    assert_eq!(followed.follow_ups.len(), 1);
    let recorded = &followed.follow_ups[0];
    assert_eq!(recorded.by, user("kefu"));
    assert!(recorded.reached);
    assert_eq!(recorded.rating, Some(Rating::Satisfied));
    assert_eq!(
        recorded.note,
        "业主表示已不漏水 the owner says the leak is gone"
    );
    assert_eq!(
        followed.history.last().unwrap().event,
        HistoryEvent::FollowedUp { reached: true }
    );
    // Technicians do not call owners back.
    let li = server.login("li").await;
    let as_json = json!({ "type": "record_follow_up", "reached": false });
    act_json_raw(&server, &li, &closed.id, as_json)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_f3_a_report_raised_during_a_follow_up_and_its_ticket_name_each_other() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let closed = closed_work_order(&server).await;

    let report = Intake {
        source: Source::FollowUp,
        follow_up_of: Some(closed.id.clone()),
        description:
            "回访时业主反映卫生间也漏水 On the call-back the owner reported a bathroom leak"
                .to_owned(),
        ..intake()
    };
    let raised = server.create_ticket(&agent, &report).await;
    assert_eq!(raised.source, Source::FollowUp);
    assert_eq!(raised.follow_up_of, Some(closed.id.clone()));
    assert_eq!(raised.status, Status::Received);
    let original = server.ticket(&agent, &closed.id).await;
    assert_eq!(original.follow_up_reports, vec![raised.id.clone()]);
    assert_eq!(original.status, Status::Closed, "linking changes no status");
    assert_eq!(original.version.0, closed.version.0 + 1);
    assert_eq!(
        original.history.last().unwrap().event,
        HistoryEvent::FollowUpReportRaised {
            report: raised.id.clone(),
        }
    );

    // A report from a follow-up names its ticket, and that ticket exists.
    let before = server.estate_snapshot().await;
    let unlinked = Intake {
        source: Source::FollowUp,
        ..intake()
    };
    let refused = server
        .post_json("/api/v1/tickets", Some(&agent), &unlinked)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(problem_fields(&refused), ["follow_up_of"]);
    let dangling = Intake {
        source: Source::FollowUp,
        follow_up_of: Some(TicketId::parse("tk99999999").unwrap()),
        ..intake()
    };
    server
        .post_json("/api/v1/tickets", Some(&agent), &dangling)
        .await
        .error(StatusCode::NOT_FOUND, "ticket_not_found");
    assert_eq!(server.estate_snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_f3_a_report_cannot_name_a_ticket_of_another_estate() {
    // An agent of estate E02 beside the demo estate E01.
    let data_dir = tempfile::tempdir().unwrap();
    add_user(data_dir.path(), "kefu-e02", "customer_service_agent", "E02");
    let server = TestServer::start_with(data_dir, Options::default());
    let e02_agent = server.login("kefu-e02").await;
    let agent = server.login("kefu").await;
    let elsewhere = Intake {
        estate: sync_protocol::EstateId::parse("E02").unwrap(),
        ..intake()
    };
    let foreign = server.create_ticket(&e02_agent, &elsewhere).await;

    let report = Intake {
        source: Source::FollowUp,
        follow_up_of: Some(foreign.id.clone()),
        ..intake()
    };
    let before = server.estate_snapshot().await;
    server
        .post_json("/api/v1/tickets", Some(&agent), &report)
        .await
        .error(StatusCode::NOT_FOUND, "ticket_not_found");
    assert_eq!(server.ticket(&e02_agent, &foreign.id).await, foreign);
    assert_eq!(server.estate_snapshot().await, before);
}

// ---- Tracking -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p4_r_p5_the_specialist_records_tracking_on_a_coordination_ticket_only() {
    let server = TestServer::start();
    let specialist = server.login("zhuanyuan").await;
    let li = server.login("li").await;
    let ticket = coordination_ticket(&server).await;

    let contact = json!({
        "type": "track",
        "kind": { "type": "owner_contact", "reached": true, "proposal_rejected": true },
        "note": "业主不同意局部修补 the owner rejects a partial repair",
    });
    let tracked = act_json(&server, &specialist, &ticket.id, contact.clone()).await;
    assert_eq!(tracked.status, Status::Received, "tracking moves no status");
    assert_eq!(tracked.tracking.len(), 1);
    let record = &tracked.tracking[0];
    assert_eq!(record.by, user("zhuanyuan"));
    let kind = TrackingKind::OwnerContact {
        reached: true,
        proposal_rejected: true,
    };
    assert_eq!(record.kind, kind);
    assert_eq!(
        record.note,
        "业主不同意局部修补 the owner rejects a partial repair"
    );
    assert_eq!(
        tracked.history.last().unwrap().event,
        HistoryEvent::Tracked { kind }
    );

    // A work order is not tracked this way; a technician tracks nothing.
    let work_order = &server.tickets_of("li").await[0];
    let refused = act_json_raw(&server, &specialist, &work_order.id, contact.clone())
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record");
    assert_eq!(problem_fields(&refused), ["kind"]);
    act_json_raw(&server, &li, &work_order.id, contact)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.ticket(&specialist, &ticket.id).await, tracked);
}
