//! A technician's day with no signal: what the handheld recorded reaches the
//! ticket whatever the office did meanwhile (SPEC "Field work without signal",
//! R-P1, R-P6, R-P7).

mod common;

use common::{Handheld, TestServer, free_result, note, paid_result, signature};
use reqwest::StatusCode;
use sync_protocol::{
    Applied, BlobReceipt, Change, Charge, Cursor, DeviceOp, DeviceSeq, Fact, HistoryEvent,
    LateReason, Lateness, MutationId, OfficeOp, Outcome, PullResponse, RevokeReason, Sha256Hex,
    Status, StatusChange, Ticket, UserId,
};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// The tickets a pull hands over, in feed order.
fn upserts(pull: &PullResponse) -> Vec<&Ticket> {
    pull.changes
        .iter()
        .filter_map(|change| match change {
            Change::Upsert { ticket, .. } => Some(&**ticket),
            Change::Revoked { .. } => None,
        })
        .collect()
}

/// The first pull of a fresh handheld, and the first ticket it got.
async fn first_sync(server: &TestServer, token: &str, handheld: &Handheld) -> (Cursor, Ticket) {
    let pull = server.pull(token, &handheld.id, Cursor(0)).await;
    assert!(!pull.has_more);
    let ticket = upserts(&pull)
        .first()
        .map(|ticket| (*ticket).clone())
        .expect("the demo dispatches tickets to the technician");
    assert_eq!(ticket.status, Status::Dispatched);
    (pull.next_cursor, ticket)
}

fn assert_fact_by<T>(fact: &Fact<T>, by: &str, handheld: &Handheld, late: Option<&Lateness>) {
    assert_eq!(fact.recorded_by, user(by));
    assert_eq!(fact.device, handheld.id);
    assert_eq!(fact.late.as_ref(), late);
}

fn mutation_id(handheld: &Handheld, seq: u64) -> MutationId {
    MutationId::new(handheld.id.clone(), DeviceSeq(seq))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_recorded_offline_are_kept_and_flagged_late_when_the_office_reassigned_the_ticket_meanwhile()
 {
    let server = TestServer::start();
    let li = server.login("li").await;
    let zhang = server.login("zhang").await;
    let dispatcher = server.login("diaodu").await;
    let agent = server.login("kefu").await;
    let mut handheld = Handheld::new("hh-li-01");
    let (li_cursor, ticket) = first_sync(&server, &li, &handheld).await;

    // Offline in the basement: arrival, two notes, the result and the owner's signature.
    let result = paid_result();
    let image = b"signature strokes of Ms Wang".to_vec();
    let offline = vec![
        handheld.record(&ticket, DeviceOp::RecordArrival { position: None }),
        handheld.record(&ticket, note("valve was seized 阀门锈死")),
        handheld.record(&ticket, note("replaced the joint, tested 30 min")),
        handheld.record(
            &ticket,
            DeviceOp::Complete {
                result: result.clone(),
            },
        ),
        handheld.record(&ticket, signature(&image, &result)),
    ];

    // Meanwhile the office moves on without him.
    let reassign = OfficeOp::Reassign {
        technician: user("zhang"),
        reason: "li does not answer the radio".to_owned(),
    };
    server.act(&dispatcher, &ticket.id, reassign).await;
    let appointment_at = chrono::Utc::now() + chrono::Duration::hours(2);
    let appointment = OfficeOp::SetAppointment {
        at: appointment_at,
        note: "owner home after 14:00".to_owned(),
    };
    server.act(&agent, &ticket.id, appointment).await;
    let office_note = OfficeOp::AddNote {
        text: "owner called again 业主再次来电".to_owned(),
    };
    let before_push = server.act(&agent, &ticket.id, office_note).await;
    assert_eq!(before_push.version.0, ticket.version.0 + 3);

    // Back in signal: the signature image first, then the outbox.
    let upload = server.upload_blob(&li, &image).await;
    assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
    let pushed = server.push(&li, &handheld.id, offline).await;

    let late = Lateness {
        reason: LateReason::ReassignedAway,
        assigned_now: Some(user("zhang")),
    };
    for (offset, outcome) in pushed.outcomes.iter().enumerate() {
        let expected = Outcome::Applied(Applied {
            ticket_version: sync_protocol::Version(before_push.version.0 + 1 + offset as u64),
            late: Some(late.clone()),
        });
        assert_eq!(outcome.outcome, expected, "seq {}", outcome.seq);
        assert_eq!(outcome.ticket_id, ticket.id);
    }
    assert_eq!(pushed.last_seq, DeviceSeq(5));
    assert!(
        pushed.missing_blobs.is_empty(),
        "{:?}",
        pushed.missing_blobs
    );

    // Every fact is on the ticket, attributed and flagged; the office's work stands.
    let stored = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(stored.version.0, before_push.version.0 + 5);
    assert!(
        pushed.ticket_versions.is_empty(),
        "the answer describes only tickets li holds: {:?}",
        pushed.ticket_versions
    );
    assert_eq!(stored.status, Status::Dispatched, "late facts move nothing");
    assert_eq!(stored.assigned_technician, Some(user("zhang")));
    assert!(stored.technicians_ever.contains(&user("li")));
    let booked = stored.appointment.as_ref().expect("the appointment stands");
    assert_eq!(booked.agreed_by, user("kefu"));
    assert_eq!(booked.note, "owner home after 14:00");
    assert_eq!(stored.office_notes.len(), 1);
    assert_eq!(stored.office_notes[0].by, user("kefu"));

    let arrival = &stored.arrivals[&mutation_id(&handheld, 1)];
    assert_fact_by(arrival, "li", &handheld, Some(&late));
    assert_eq!(arrival.base_version, ticket.version);
    assert_eq!(stored.notes.len(), 2);
    let first_note = &stored.notes[&mutation_id(&handheld, 2)];
    assert_fact_by(first_note, "li", &handheld, Some(&late));
    assert_eq!(first_note.body.text, "valve was seized 阀门锈死");
    let second_note = &stored.notes[&mutation_id(&handheld, 3)];
    assert_fact_by(second_note, "li", &handheld, Some(&late));
    let recorded_result = &stored.results[&mutation_id(&handheld, 4)];
    assert_fact_by(recorded_result, "li", &handheld, Some(&late));
    assert_eq!(recorded_result.body, result);
    assert_eq!(recorded_result.body.charge, Charge::Paid { fee_fen: 3500 });
    assert_eq!(
        stored.current_result(),
        None,
        "a late result is kept for review but does not count"
    );
    let signed = &stored.signatures[&mutation_id(&handheld, 5)];
    assert_fact_by(signed, "li", &handheld, Some(&late));
    assert_eq!(signed.body.signed_record, result.record_hash());
    assert_eq!(signed.body.blob, Sha256Hex::of(&image));

    // The history says who recorded what, and that none of it moved the status.
    let facts: Vec<_> = stored
        .history
        .iter()
        .filter(|entry| matches!(entry.event, HistoryEvent::FactRecorded { .. }))
        .collect();
    assert_eq!(facts.len(), 5);
    for entry in facts {
        assert_eq!(entry.status_change, None, "{entry:?}");
        assert!(matches!(
            entry.event,
            HistoryEvent::FactRecorded { late: true, .. }
        ));
    }

    // li's handheld is told to let go of the ticket; zhang's gets it whole.
    let li_pull = server.pull(&li, &handheld.id, li_cursor).await;
    let revoked: Vec<_> = li_pull
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::Revoked {
                ticket_id, reason, ..
            } => Some((ticket_id.clone(), *reason)),
            Change::Upsert { .. } => None,
        })
        .collect();
    assert_eq!(revoked, vec![(ticket.id.clone(), RevokeReason::Reassigned)]);
    assert!(upserts(&li_pull).iter().all(|t| t.id != ticket.id));

    let zhang_pull = server
        .pull(&zhang, &common::device_id("hh-zhang-01"), Cursor(0))
        .await;
    let handed_over = upserts(&zhang_pull)
        .into_iter()
        .find(|t| t.id == ticket.id)
        .expect("zhang's handheld receives the reassigned ticket");
    assert_eq!(handed_over, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_recorded_offline_on_a_ticket_cancelled_meanwhile_are_kept_and_flagged_cancelled() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let agent = server.login("kefu").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-02");
    let (li_cursor, ticket) = first_sync(&server, &li, &handheld).await;

    let result = free_result();
    let offline = vec![
        handheld.record(&ticket, DeviceOp::RecordArrival { position: None }),
        handheld.record(&ticket, note("owner not at home, left a card")),
        handheld.record(
            &ticket,
            DeviceOp::Complete {
                result: result.clone(),
            },
        ),
    ];
    let cancel = OfficeOp::Cancel {
        reason: "the owner fixed it himself 业主已自行修复".to_owned(),
    };
    let cancelled = server.act(&agent, &ticket.id, cancel).await;
    assert_eq!(cancelled.status, Status::Cancelled);

    let pushed = server.push(&li, &handheld.id, offline).await;
    let late = Lateness {
        reason: LateReason::Cancelled,
        assigned_now: Some(user("li")),
    };
    for outcome in &pushed.outcomes {
        let Outcome::Applied(applied) = &outcome.outcome else {
            panic!("a fact on a cancelled ticket is kept: {outcome:?}");
        };
        assert_eq!(applied.late.as_ref(), Some(&late));
    }

    let stored = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(stored.status, Status::Cancelled, "late facts move nothing");
    assert_eq!(stored.version.0, cancelled.version.0 + 3);
    assert_fact_by(
        &stored.arrivals[&mutation_id(&handheld, 1)],
        "li",
        &handheld,
        Some(&late),
    );
    assert_fact_by(
        &stored.notes[&mutation_id(&handheld, 2)],
        "li",
        &handheld,
        Some(&late),
    );
    let kept_result = &stored.results[&mutation_id(&handheld, 3)];
    assert_fact_by(kept_result, "li", &handheld, Some(&late));
    assert_eq!(kept_result.body, result);
    assert!(
        stored
            .history
            .iter()
            .skip(cancelled.history.len())
            .all(|entry| entry.status_change.is_none())
    );

    let li_pull = server.pull(&li, &handheld.id, li_cursor).await;
    assert!(
        li_pull.changes.iter().any(|change| matches!(
            change,
            Change::Revoked { ticket_id, reason: RevokeReason::Cancelled, .. }
                if *ticket_id == ticket.id
        )),
        "{:?}",
        li_pull.changes
    );
    assert!(upserts(&li_pull).iter().all(|t| t.id != ticket.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undisturbed_job_goes_dispatched_in_progress_completed_and_reports_the_missing_signature_blob()
 {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-03");
    let (_, ticket) = first_sync(&server, &li, &handheld).await;

    // R-P1: the arrival moves the ticket in progress.
    let arrival = handheld.record(&ticket, DeviceOp::RecordArrival { position: None });
    let pushed = server.push(&li, &handheld.id, vec![arrival]).await;
    assert_eq!(
        pushed.outcomes[0].outcome,
        Outcome::Applied(Applied {
            ticket_version: ticket.version.next(),
            late: None,
        })
    );
    let arrived = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(arrived.status, Status::InProgress);

    // R-P6: the result completes it.
    let result = free_result();
    let complete = handheld.record(
        &arrived,
        DeviceOp::Complete {
            result: result.clone(),
        },
    );
    server.push(&li, &handheld.id, vec![complete]).await;
    let completed = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(completed.status, Status::Completed);
    assert_eq!(completed.charge(), Some(&Charge::Free {}));
    assert_eq!(
        completed.current_result().map(|fact| &fact.body),
        Some(&result)
    );

    // R-P7: a signature pushed before its image names the image as missing …
    let image = b"owner signature, happy path".to_vec();
    let hash = Sha256Hex::of(&image);
    let signed = handheld.record(&completed, signature(&image, &result));
    let pushed = server.push(&li, &handheld.id, vec![signed]).await;
    assert!(matches!(
        &pushed.outcomes[0].outcome,
        Outcome::Applied(Applied { late: None, .. })
    ));
    assert_eq!(pushed.missing_blobs, vec![hash.clone()]);

    // … until it is uploaded.
    let upload = server.upload_blob(&li, &image).await;
    assert_eq!(upload.status, StatusCode::OK);
    let receipt: BlobReceipt = upload.json();
    assert_eq!(receipt.sha256, hash);
    assert_eq!(receipt.size_bytes, image.len() as u64);
    let after_upload = handheld.record(&completed, note("owner satisfied 业主满意"));
    let pushed = server.push(&li, &handheld.id, vec![after_upload]).await;
    assert!(
        pushed.missing_blobs.is_empty(),
        "{:?}",
        pushed.missing_blobs
    );

    let downloaded = server
        .get(&format!("/api/v1/blobs/{hash}"), Some(&dispatcher))
        .await;
    assert_eq!(downloaded.status, StatusCode::OK);
    assert_eq!(downloaded.body, image);

    let done = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(done.status, Status::Completed);
    let changes: Vec<StatusChange> = done
        .history
        .iter()
        .filter_map(|entry| entry.status_change)
        .collect();
    let path: Vec<Status> = changes.iter().map(|change| change.to).collect();
    assert_eq!(
        path,
        [Status::Dispatched, Status::InProgress, Status::Completed]
    );
    assert_eq!(changes[0].from, Status::Received);
    for fact in done.arrivals.values() {
        assert_fact_by(fact, "li", &handheld, None);
    }
    assert_eq!(done.signatures.len(), 1);
    assert_eq!(done.notes.len(), 1);
}
