//! The handheld library against the real server: offline work, lost
//! answers, revocations, restarts, images, refused tokens and the device
//! clock, each as a technician lives it.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{Duration, Utc};
use common::{FaultyNetwork, Office, Server, handheld_on, reopen};
use handheld::{
    Acknowledgement, FactState, Handheld, HandheldError, ManualClock, OwnerRating, ResultInput,
};
use sync_protocol::{LateReason, OfficeOp, Status, TicketId, UserId};
use tempfile::TempDir;

/// li's handheld, logged in and synced with the demo server.
struct Li {
    handheld: Handheld,
    network: Arc<FaultyNetwork>,
    clock: Arc<ManualClock>,
    data_dir: TempDir,
    /// li's two demo tickets, in id order.
    tickets: Vec<TicketId>,
}

const DEVICE: &str = "hh-li-test";

async fn li_synced(server: &Server) -> Li {
    let data_dir = tempfile::tempdir().unwrap();
    let network = FaultyNetwork::to(server.url());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let handheld = handheld_on(data_dir.path(), DEVICE, &network, &clock).unwrap();
    handheld
        .login("li".to_owned(), common::DEMO_PASSWORD.to_owned())
        .await
        .unwrap();
    let report = handheld.sync().await.unwrap();
    assert_eq!(report.tickets_updated, 2, "the demo gives li two tickets");
    let tickets = handheld
        .list()
        .unwrap()
        .into_iter()
        .map(|ticket| TicketId::parse(&ticket.ticket_id).unwrap())
        .collect();
    Li {
        handheld,
        network,
        clock,
        data_dir,
        tickets,
    }
}

impl Li {
    fn offline(&self, offline: bool) {
        self.network.offline.store(offline, Ordering::SeqCst);
    }

    /// A minute passes on the device.
    fn later(&self) {
        self.clock.advance(Duration::minutes(1));
    }
}

#[tokio::test]
async fn a_change_recorded_offline_is_on_disk_at_once_and_uploads_with_the_next_sync() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let ticket = li.tickets[0].to_string();

    li.offline(true);
    let arrival = li.handheld.arrive(ticket.clone()).unwrap();
    li.later();
    let note = li
        .handheld
        .note(ticket.clone(), "阀门锈死 the valve is seized".to_owned())
        .unwrap();
    assert_eq!((arrival.seq, note.seq), (1, 2));
    assert_eq!(note.pending_changes, 2);
    let shown = li.handheld.show(ticket.clone()).unwrap();
    assert_eq!(
        shown.summary.status, "in_progress",
        "the overlay shows the arrival"
    );
    assert_eq!(shown.server_status, "dispatched");
    assert!(
        shown
            .facts
            .iter()
            .all(|fact| fact.state == FactState::Pending)
    );
    let failed = li.handheld.sync().await.unwrap_err();
    assert_eq!(failed.code(), "offline");
    assert_eq!(li.handheld.status().unwrap().pending_changes, 2);

    li.offline(false);
    let report = li.handheld.sync().await.unwrap();
    assert_eq!(report.outcomes.len(), 2);
    assert!(report.outcomes.iter().all(|outcome| matches!(
        outcome.acknowledgement,
        Acknowledgement::Applied { .. }
    ) && !outcome.needs_attention));
    assert_eq!(report.pending_changes, 0);
    let shown = li.handheld.show(ticket.clone()).unwrap();
    assert_eq!(
        shown.server_status, "in_progress",
        "the pulled copy has them"
    );
    assert!(
        shown
            .facts
            .iter()
            .all(|fact| fact.state == FactState::OnServer)
    );
    let on_server = Office::of(&server).ticket(&li.tickets[0]).await;
    assert_eq!(on_server.status, Status::InProgress);
    assert_eq!((on_server.arrivals.len(), on_server.notes.len()), (1, 1));
    assert_eq!(li.handheld.status().unwrap().oldest_pending_age, None);
}

#[tokio::test]
async fn a_push_whose_answer_was_lost_goes_again_with_the_same_numbers_and_is_answered_duplicate() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let ticket = li.tickets[0].to_string();
    li.handheld.arrive(ticket.clone()).unwrap();
    li.handheld
        .note(ticket.clone(), "more pipe needed 需要加管".to_owned())
        .unwrap();

    li.network.push_answers_to_lose.store(1, Ordering::SeqCst);
    let lost = li.handheld.sync().await.unwrap_err();
    assert_eq!(lost.code(), "offline");
    assert_eq!(li.handheld.status().unwrap().pending_changes, 2);
    li.handheld
        .note(ticket.clone(), "recorded after the lost answer".to_owned())
        .unwrap();

    let report = li.handheld.sync().await.unwrap();
    let answers: Vec<(u64, bool)> = report
        .outcomes
        .iter()
        .map(|outcome| (outcome.seq, outcome.duplicate))
        .collect();
    assert_eq!(answers, vec![(1, true), (2, true), (3, false)]);
    assert!(
        report
            .outcomes
            .iter()
            .all(|outcome| matches!(outcome.acknowledgement, Acknowledgement::Applied { .. }))
    );
    let on_server = Office::of(&server).ticket(&li.tickets[0]).await;
    assert_eq!(on_server.arrivals.len(), 1, "no fact stored twice");
    assert_eq!(on_server.notes.len(), 2);
    let facts_recorded = on_server
        .history
        .iter()
        .filter(|entry| {
            matches!(
                entry.event,
                sync_protocol::HistoryEvent::FactRecorded { .. }
            )
        })
        .count();
    assert_eq!(facts_recorded, 3);
}

#[tokio::test]
async fn a_revoked_ticket_keeps_its_pending_facts_until_the_server_has_answered_them() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let taken = li.tickets[1].clone();
    li.handheld
        .note(
            taken.to_string(),
            "灯座烧坏 the lamp holder is burnt".to_owned(),
        )
        .unwrap();
    let office = Office::of(&server);
    let reassign = OfficeOp::Reassign {
        technician: UserId::parse("zhang").unwrap(),
        reason: "li is in the basement 李师傅在地下室".to_owned(),
    };
    office.act("diaodu", &taken, reassign).await;

    // The pull gets through, the push does not.
    li.network.pushes_lost.store(true, Ordering::SeqCst);
    assert_eq!(li.handheld.sync().await.unwrap_err().code(), "offline");
    let kept = li.handheld.show(taken.to_string()).unwrap();
    assert_eq!(kept.summary.revoked.as_deref(), Some("reassigned"));
    assert_eq!(kept.summary.pending_changes, 1);
    assert_eq!(kept.facts.len(), 1);
    assert_eq!(kept.facts[0].state, FactState::Pending);
    let refused = li.handheld.arrive(taken.to_string()).unwrap_err();
    assert_eq!(refused.code(), "ticket_revoked");

    li.network.pushes_lost.store(false, Ordering::SeqCst);
    let report = li.handheld.sync().await.unwrap();
    assert_eq!(report.outcomes.len(), 1);
    let outcome = &report.outcomes[0];
    assert_eq!(
        outcome.acknowledgement,
        Acknowledgement::AppliedLate {
            ticket_version: outcome_version(&outcome.acknowledgement),
            reason: "reassigned_away".to_owned(),
            assigned_now: Some("zhang".to_owned()),
        }
    );
    assert!(
        outcome.message.contains("已改派给 zhang"),
        "{}",
        outcome.message
    );
    let gone = li.handheld.show(taken.to_string()).unwrap_err();
    assert_eq!(gone.code(), "ticket_not_found", "it left once answered");
    assert_eq!(li.handheld.list().unwrap().len(), 1);
    assert_eq!(li.handheld.status().unwrap().needs_attention.len(), 1);
    let on_server = office.ticket(&taken).await;
    let note = on_server.notes.values().next().expect("li's note is kept");
    assert_eq!(
        note.late.as_ref().map(|late| late.reason),
        Some(LateReason::ReassignedAway)
    );
}

fn outcome_version(acknowledgement: &Acknowledgement) -> u64 {
    match acknowledgement {
        Acknowledgement::Applied { ticket_version }
        | Acknowledgement::AppliedLate { ticket_version, .. } => *ticket_version,
        Acknowledgement::Rejected { .. } => 0,
    }
}

#[tokio::test]
async fn a_reopened_handheld_keeps_its_outbox_and_goes_on_numbering() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let ticket = li.tickets[0].to_string();
    li.offline(true);
    li.handheld.arrive(ticket.clone()).unwrap();
    li.handheld
        .note(ticket.clone(), "before the battery died 没电前".to_owned())
        .unwrap();
    let Li {
        handheld,
        network,
        clock,
        data_dir,
        ..
    } = li;
    drop(handheld);

    let handheld = reopen(data_dir.path(), DEVICE, &network, &clock);
    let status = handheld.status().unwrap();
    assert_eq!(status.pending_changes, 2);
    assert!(!status.needs_attention.iter().any(|_| true));
    let third = handheld
        .note(ticket.clone(), "after the restart 重启后".to_owned())
        .unwrap();
    assert_eq!(third.seq, 3);
    network.offline.store(false, Ordering::SeqCst);
    let report = handheld.sync().await.unwrap();
    let seqs: Vec<u64> = report.outcomes.iter().map(|outcome| outcome.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(report.outcomes.iter().all(|outcome| !outcome.duplicate));
}

#[tokio::test]
async fn r_p7_a_signature_whose_image_upload_was_cut_off_is_resumed_by_hash_and_the_order_closes() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let ticket = li.tickets[0].to_string();
    li.handheld.arrive(ticket.clone()).unwrap();
    let result = ResultInput {
        work_done: "更换厨房水管接头 replaced the kitchen pipe joint".to_owned(),
        materials: vec![handheld::MaterialInput {
            name: "pipe joint DN20 水管接头".to_owned(),
            quantity: "1".to_owned(),
        }],
        fee_fen: Some(3500),
    };
    li.handheld.complete(ticket.clone(), result).unwrap();
    let image = b"\x89PNG signature strokes of Ms Wang".to_vec();
    li.handheld
        .sign(
            ticket.clone(),
            image.clone(),
            "王女士".to_owned(),
            Some(OwnerRating::Satisfied),
        )
        .unwrap();

    li.network.uploads_to_cut.store(1, Ordering::SeqCst);
    assert_eq!(li.handheld.sync().await.unwrap_err().code(), "offline");
    assert_eq!(li.handheld.status().unwrap().pending_changes, 3);

    let report = li.handheld.sync().await.unwrap();
    assert_eq!(report.images_uploaded, 1);
    assert_eq!(report.outcomes.len(), 3);
    let office = Office::of(&server);
    let on_server = office.ticket(&li.tickets[0]).await;
    let signature = on_server
        .signature_of_current_result()
        .expect("the signature binds to the result that counts");
    assert_eq!(office.blob(&signature.body.blob).await, image);
    let closed = office
        .act("diaodu", &li.tickets[0], OfficeOp::Close {})
        .await;
    assert_eq!(closed.status, Status::Closed);
}

#[tokio::test]
async fn a_refused_access_token_is_renewed_with_the_refresh_token_and_nothing_waits_for_a_password()
{
    let mut server = Server::start();
    let li = li_synced(&server).await;
    let ticket = li.tickets[0].to_string();
    li.handheld.arrive(ticket.clone()).unwrap();

    // Every access token issued before is refused by the restarted server.
    server.start_again_with_new_secret();
    li.network.retarget(server.url());
    let report = li.handheld.sync().await.unwrap();
    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(report.pending_changes, 0);
    assert!(li.handheld.status().unwrap().logged_in);
    // And again, with the renewed token.
    li.handheld.note(ticket, "still here".to_owned()).unwrap();
    assert_eq!(li.handheld.sync().await.unwrap().pending_changes, 0);
}

#[tokio::test]
async fn an_ended_session_asks_for_a_new_login_and_loses_nothing() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let ticket = li.tickets[0].to_string();
    li.handheld.arrive(ticket.clone()).unwrap();

    Office::of(&server).end_sessions("li").await;
    let refused = li.handheld.sync().await.unwrap_err();
    assert_eq!(refused, HandheldError::SessionExpired);
    let status = li.handheld.status().unwrap();
    assert!(!status.logged_in);
    assert_eq!(status.pending_changes, 1);
    assert_eq!(
        li.handheld.sync().await.unwrap_err(),
        HandheldError::NotLoggedIn
    );

    li.handheld
        .login("li".to_owned(), common::DEMO_PASSWORD.to_owned())
        .await
        .unwrap();
    let report = li.handheld.sync().await.unwrap();
    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(report.pending_changes, 0);
}

#[tokio::test]
async fn another_technician_cannot_log_in_on_a_handheld_that_is_not_theirs() {
    let server = Server::start();
    let li = li_synced(&server).await;
    let attempts = [
        ("zhang", common::DEMO_PASSWORD, "device_of_another_user"),
        ("diaodu", common::DEMO_PASSWORD, "not_a_technician"),
        ("li", "wrong password", "invalid_credentials"),
    ];
    for (user, password, code) in attempts {
        let refused = li
            .handheld
            .login(user.to_owned(), password.to_owned())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{user}: {refused}");
    }
    assert!(
        li.handheld.status().unwrap().logged_in,
        "li's session stays"
    );
}

#[tokio::test]
async fn r_p1_an_offline_arrival_is_judged_by_the_device_clock_corrected_by_its_reported_offset() {
    let server = Server::start();
    let li = li_synced(&server).await;
    // The device's clock runs three minutes slow; li arrived twenty minutes
    // ago, in a basement, and has signal again only now.
    let offset = Duration::minutes(3);
    let basement = Duration::minutes(20);
    li.clock.set(Utc::now() - offset - basement);
    li.offline(true);
    let arrival = li.handheld.arrive(li.tickets[0].to_string()).unwrap();
    li.clock.advance(basement);
    let status = li.handheld.status().unwrap();
    assert_eq!(
        status.oldest_pending_age,
        Some(std::time::Duration::from_secs(20 * 60))
    );

    li.offline(false);
    li.handheld.sync().await.unwrap();
    let devices = Office::of(&server).devices().await;
    let device = devices
        .devices
        .iter()
        .find(|device| device.device_id.as_str() == DEVICE)
        .expect("the device reported itself");
    assert!(
        (device.clock_offset_ms - offset.num_milliseconds()).abs() < 60_000,
        "the server measured the offset from device_time: {}",
        device.clock_offset_ms
    );
    let on_server = Office::of(&server).ticket(&li.tickets[0]).await;
    let fact = on_server.arrivals.values().next().expect("the arrival");
    let recorded_at: chrono::DateTime<Utc> = arrival.recorded_at.into();
    assert_eq!(fact.recorded_at, recorded_at);
    let event_time = fact.event_time.expect("the server judged the event time");
    assert!(event_time.trusted);
    assert!(
        (event_time.at - (recorded_at + offset)).num_seconds().abs() < 60,
        "the arrival counts when it happened, not when it synced: {event_time:?}"
    );
}
