//! Time rules as time passes, over real HTTP: the server is stopped and
//! started again with its clock moved ahead (`--clock-shift-minutes`), so a
//! deadline falls due without the test sleeping through it, and the
//! scheduler meets it the way it would after a real night with the server
//! down. The R-P5 escalation, which no clock raises, is here too: its
//! evidence is a week of owner contacts and its joint talk a day's deadline.

mod common;

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use common::{Handheld, TestServer, free_result, intake};
use sync_protocol::time_rules::{Duty, EscalationReason, RuleId};
use sync_protocol::{
    Category, DueItem, DueList, DueState, HistoryEvent, Intake, OfficeOp, Rating, Responsible,
    Role, Status, SupervisionSnapshot, Ticket, TicketId, TicketKind, TrackingKind,
};

/// How long the scheduler may take to record a deadline that has passed:
/// its target is one second; this leaves room for a loaded CI machine.
const SCHEDULER_GRACE: StdDuration = StdDuration::from_secs(10);

async fn arrival_item(server: &TestServer, caller: &str, ticket: &TicketId) -> Option<DueState> {
    let token = server.login(caller).await;
    let list: DueList = server
        .get("/api/v1/due?window_minutes=60", Some(&token))
        .await
        .ok();
    list.items
        .into_iter()
        .find(|item| &item.ticket_id == ticket && item.rule == RuleId::P1)
        .map(|item| {
            assert_eq!(item.duty, Duty::Arrival);
            item.state
        })
}

/// The ticket once its history holds a missed `rule` deadline, which the
/// scheduler records on its own task shortly after the server starts.
async fn once_the_miss_is_recorded(server: &TestServer, ticket: &TicketId, rule: RuleId) -> Ticket {
    let token = server.login("diaodu").await;
    let give_up_at = std::time::Instant::now() + SCHEDULER_GRACE;
    loop {
        let current = server.ticket(&token, ticket).await;
        let recorded = current.history.iter().any(|entry| {
            matches!(
                entry.event,
                HistoryEvent::DeadlineMissed { rule: missed, .. } if missed == rule
            )
        });
        if recorded {
            return current;
        }
        assert!(
            std::time::Instant::now() < give_up_at,
            "no missed {rule} deadline in the history: {:?}",
            current.history
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// The items of `ticket` for `rule` on `caller`'s due list (the default
/// window of an hour).
async fn due_for(
    server: &TestServer,
    caller: &str,
    ticket: &TicketId,
    rule: RuleId,
) -> Vec<DueItem> {
    let token = server.login(caller).await;
    let list: DueList = server.get("/api/v1/due", Some(&token)).await.ok();
    list.items
        .into_iter()
        .filter(|item| &item.ticket_id == ticket && item.rule == rule)
        .collect()
}

/// The one item of `ticket` for `rule` that each of `callers` has, and
/// that none of `others` has.
async fn the_item_of(
    server: &TestServer,
    ticket: &TicketId,
    rule: RuleId,
    callers: &[&str],
    others: &[&str],
) -> DueItem {
    let mut seen = Vec::new();
    for caller in callers {
        let items = due_for(server, caller, ticket, rule).await;
        assert_eq!(items.len(), 1, "{caller}: {items:?}");
        seen.push(items[0].clone());
    }
    assert!(seen.windows(2).all(|pair| pair[0] == pair[1]), "{seen:?}");
    for caller in others {
        let items = due_for(server, caller, ticket, rule).await;
        assert!(items.is_empty(), "{caller} does not act on it: {items:?}");
    }
    seen.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_a_missed_arrival_is_kept_in_the_history_put_to_customer_service_and_the_appointment_becomes_the_deadline()
 {
    let mut server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    let dispatched_at = ticket.dispatched_at.expect("the demo dispatched it");
    assert_eq!(
        arrival_item(&server, "li", &ticket.id).await,
        Some(DueState::DueSoon)
    );
    assert_eq!(
        arrival_item(&server, "kefu", &ticket.id).await,
        None,
        "customer service has nothing to do while the technician can still make it"
    );

    // Twenty minutes later nobody has arrived: R-P1's 15 minutes are over.
    server.let_time_pass(20);
    let flagged = once_the_miss_is_recorded(&server, &ticket.id, RuleId::P1).await;
    let missed = flagged
        .history
        .iter()
        .find_map(|entry| match entry.event {
            HistoryEvent::DeadlineMissed {
                rule: RuleId::P1,
                due_at,
            } => Some(due_at),
            _ => None,
        })
        .unwrap();
    assert_eq!(missed, dispatched_at + Duration::minutes(15));
    assert_eq!(
        arrival_item(&server, "li", &ticket.id).await,
        Some(DueState::Overdue)
    );
    assert_eq!(
        arrival_item(&server, "kefu", &ticket.id).await,
        Some(DueState::Overdue),
        "customer service is asked to book an appointment with the owner"
    );

    // The agent books the owner for half an hour from the server's now.
    let agent = server.login("kefu").await;
    let appointment_at = Utc::now() + Duration::minutes(20 + 30);
    let booked = server
        .act(
            &agent,
            &ticket.id,
            OfficeOp::SetAppointment {
                at: appointment_at,
                note: "业主约定半小时后 the owner is home in half an hour".to_owned(),
            },
        )
        .await;
    assert_eq!(booked.appointment.as_ref().unwrap().at, appointment_at);
    assert_eq!(
        arrival_item(&server, "li", &ticket.id).await,
        Some(DueState::DueSoon)
    );
    assert_eq!(arrival_item(&server, "kefu", &ticket.id).await, None);
    // The miss stays on the record.
    let history_after = server.ticket(&agent, &ticket.id).await.history;
    assert!(history_after.iter().any(|entry| matches!(
        entry.event,
        HistoryEvent::DeadlineMissed {
            rule: RuleId::P1,
            ..
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c2_a_work_order_unfinished_at_the_end_of_its_day_is_due_for_conversion_to_whoever_may_convert()
 {
    let mut server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);

    // A day later li has not finished it: R-K2's window is over.
    server.let_time_pass(24 * 60);
    let finish = the_item_of(&server, &ticket.id, RuleId::K2, &["diaodu"], &[]).await;
    let conversion = the_item_of(
        &server,
        &ticket.id,
        RuleId::C2,
        &["diaodu", "kefu", "zhuanyuan", "zhuguan"],
        &["li", "huanjing", "kefu-jingli"],
    )
    .await;
    assert_eq!(
        (conversion.duty, conversion.state, conversion.due_at),
        (Duty::Convert, DueState::Overdue, finish.due_at)
    );
    assert_eq!(
        conversion.responsible,
        Responsible::Role {
            role: Role::Dispatcher
        }
    );
    once_the_miss_is_recorded(&server, &ticket.id, RuleId::C2).await;

    // Converted, the work order has nothing more due.
    let dispatcher = server.login("diaodu").await;
    let convert = OfficeOp::Convert {
        reason: "需订配件 needs a part from the supplier".to_owned(),
    };
    server.act(&dispatcher, &ticket.id, convert).await;
    assert!(
        due_for(&server, "diaodu", &ticket.id, RuleId::C2)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_c1_a_signed_order_not_closed_days_after_completion_is_due_to_the_dispatcher_and_the_department_lead()
 {
    let mut server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("hh-li-returns");
    let completed = server
        .finish_on_site(
            "li",
            &mut handheld,
            &ticket,
            free_result(),
            Some(Rating::Satisfied),
        )
        .await;
    assert_eq!(completed.status, Status::Completed);

    // Three days on, nobody has closed it.
    server.let_time_pass(3 * 24 * 60);
    let returned = the_item_of(
        &server,
        &ticket.id,
        RuleId::C1,
        &["diaodu", "banzhang", "zhuguan"],
        &["li", "kefu", "kefu-jingli"],
    )
    .await;
    assert_eq!(
        (returned.duty, returned.state),
        (Duty::ReturnToDispatcher, DueState::Overdue)
    );
    assert_eq!(
        returned.responsible,
        Responsible::Role {
            role: Role::Dispatcher
        }
    );
    once_the_miss_is_recorded(&server, &ticket.id, RuleId::C1).await;

    let dispatcher = server.login("diaodu").await;
    let closed = server
        .act(&dispatcher, &ticket.id, OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
    assert!(
        due_for(&server, "diaodu", &ticket.id, RuleId::C1)
            .await
            .is_empty()
    );
}

fn owner_contact(reached: bool, proposal_rejected: bool) -> OfficeOp {
    OfficeOp::Track {
        kind: TrackingKind::OwnerContact {
            reached,
            proposal_rejected,
        },
        note: "业主 owner".to_owned(),
    }
}

fn escalations(ticket: &Ticket) -> Vec<(EscalationReason, chrono::DateTime<Utc>)> {
    ticket
        .history
        .iter()
        .filter_map(|entry| match entry.event {
            HistoryEvent::Escalated { reason, since } => Some((reason, since)),
            _ => None,
        })
        .collect()
}

async fn at_risk(server: &TestServer, ticket: &TicketId) -> Vec<DueItem> {
    let token = server.login("zhuguan").await;
    let snapshot: SupervisionSnapshot = server.get("/api/v1/supervision", Some(&token)).await.ok();
    snapshot
        .at_risk
        .into_iter()
        .map(|risk| risk.due)
        .filter(|due| &due.ticket_id == ticket && due.rule == RuleId::P5)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p5_rejected_proposals_or_an_owner_out_of_reach_escalate_to_the_customer_service_manager_and_the_supervisors_board()
 {
    let mut server = TestServer::start();
    let agent = server.login("kefu").await;
    let coordination = Intake {
        kind: TicketKind::CoordinationTicket,
        category: Category::Repair,
        description: "外墙渗水需要协调施工 Exterior wall seeps; works need the owner's consent"
            .to_owned(),
        ..intake()
    };
    let rejecting = server.create_ticket(&agent, &coordination).await;
    let out_of_reach = server.create_ticket(&agent, &coordination).await;
    let specialist = server.login("zhuanyuan").await;
    let first_rejection = server
        .act(&specialist, &rejecting.id, owner_contact(true, true))
        .await;
    let first_attempt = server
        .act(&specialist, &out_of_reach.id, owner_contact(false, false))
        .await;
    assert!(escalations(&first_rejection).is_empty());
    assert!(
        due_for(&server, "kefu-jingli", &rejecting.id, RuleId::P5)
            .await
            .is_empty()
    );

    // A day and an hour later: the owner rejects the second proposal, and
    // the other owner is still out of reach.
    server.let_time_pass(25 * 60);
    let escalated = server
        .act(&specialist, &rejecting.id, owner_contact(true, true))
        .await;
    let last = escalated.history.last().unwrap();
    assert_eq!(
        last.event,
        HistoryEvent::Escalated {
            reason: EscalationReason::ProposalsRejected,
            since: first_rejection.tracking[0].at,
        }
    );
    let unreachable = server
        .act(&specialist, &out_of_reach.id, owner_contact(false, false))
        .await;
    assert_eq!(
        escalations(&unreachable),
        [(
            EscalationReason::OwnerUnreachable,
            first_attempt.tracking[0].at
        )]
    );

    // Due at once to the customer-service manager, and on the board.
    for ticket in [&rejecting.id, &out_of_reach.id] {
        let joint_talk = the_item_of(
            &server,
            ticket,
            RuleId::P5,
            &["kefu-jingli", "zhuguan"],
            &["kefu", "zhuanyuan", "huanjing"],
        )
        .await;
        assert_eq!(
            (joint_talk.duty, joint_talk.state),
            (Duty::JointTalk, DueState::DueSoon)
        );
        assert_eq!(
            joint_talk.responsible,
            Responsible::Role {
                role: Role::CustomerServiceManager
            }
        );
        assert_eq!(at_risk(&server, ticket).await, [joint_talk]);
    }

    // One case, one escalation, however often it is told.
    let again = server
        .act(&specialist, &rejecting.id, owner_contact(true, true))
        .await;
    assert_eq!(escalations(&again).len(), 1);

    // The joint talk ends the case; the other one is missed a day later.
    let manager = server.login("kefu-jingli").await;
    let talk = OfficeOp::Track {
        kind: TrackingKind::JointTalk {},
        note: "客服经理与专员共同约谈业主 met the owner together".to_owned(),
    };
    server.act(&manager, &rejecting.id, talk).await;
    assert!(
        due_for(&server, "kefu-jingli", &rejecting.id, RuleId::P5)
            .await
            .is_empty()
    );
    assert!(at_risk(&server, &rejecting.id).await.is_empty());
    server.let_time_pass(25 * 60);
    once_the_miss_is_recorded(&server, &out_of_reach.id, RuleId::P5).await;
    let overdue = due_for(&server, "kefu-jingli", &out_of_reach.id, RuleId::P5).await;
    assert_eq!(overdue[0].state, DueState::Overdue);
}
