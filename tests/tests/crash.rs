//! Acknowledged means durable: a server killed with SIGKILL (no graceful
//! shutdown, no last flush) and restarted on the same directory still has
//! everything it acknowledged, and the cursors it handed out stay valid.

mod common;

use common::{Handheld, TestServer, device_id, intake, note};
use sync_protocol::{
    Change, Cursor, DeviceMutation, DeviceOp, DeviceSeq, MutationOutcome, OfficeOp, Outcome,
    Ticket, Verdict,
};

/// One acknowledged push: who sent it, what, and the answer.
struct Acknowledged {
    token: String,
    device: sync_protocol::DeviceId,
    batch: Vec<DeviceMutation>,
    outcomes: Vec<MutationOutcome>,
}

/// A handheld's working morning: an arrival, then notes in small pushes.
async fn morning(
    server: &TestServer,
    user: &str,
    mut handheld: Handheld,
    ticket: Ticket,
) -> Vec<Acknowledged> {
    let token = server.login(user).await;
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let mut batch = Vec::new();
        if round == 0 {
            batch.push(handheld.record(&ticket, DeviceOp::RecordArrival { position: None }));
        }
        for n in 0..2 {
            let text = format!("{user} on {}: round {round} note {n}", handheld.id);
            batch.push(handheld.record(&ticket, note(&text)));
        }
        let pushed = server.push(&token, &handheld.id, batch.clone()).await;
        for outcome in &pushed.outcomes {
            assert!(
                matches!(outcome.outcome, Outcome::Applied(_)),
                "{outcome:?}"
            );
        }
        acknowledged.push(Acknowledged {
            token: token.clone(),
            device: handheld.id.clone(),
            batch,
            outcomes: pushed.outcomes,
        });
    }
    acknowledged
}

/// The last acknowledged push, sent again, is a replay: the server knows it.
async fn last_push_is_known(server: &TestServer, acknowledged: &[Acknowledged]) {
    let last = acknowledged.last().expect("pushes were acknowledged");
    let replay = server
        .push(&last.token, &last.device, last.batch.clone())
        .await;
    for outcome in &replay.outcomes {
        assert!(
            matches!(outcome.outcome, Outcome::Duplicate { .. }),
            "{outcome:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_mutation_survives_a_sigkill_and_a_restart() {
    let mut server = TestServer::start();
    let li_tickets = server.tickets_of("li").await;
    let zhang_ticket = server.tickets_of("zhang").await.remove(0);
    let wang_ticket = server.tickets_of("wang").await.remove(0);
    for user in ["li", "zhang", "wang", "kefu", "diaodu"] {
        server.login(user).await;
    }

    // Four handhelds (two of them li's) push at once, so that the writer
    // commits several of them per flush.
    let (li_a, li_b, zhang, wang) = tokio::join!(
        morning(
            &server,
            "li",
            Handheld::new("hh-li-a"),
            li_tickets[0].clone()
        ),
        morning(
            &server,
            "li",
            Handheld::new("hh-li-b"),
            li_tickets[1].clone()
        ),
        morning(
            &server,
            "zhang",
            Handheld::new("hh-zhang-a"),
            zhang_ticket.clone()
        ),
        morning(&server, "wang", Handheld::new("hh-wang-a"), wang_ticket),
    );
    // Office work is acknowledged the same way.
    let agent = server.login("kefu").await;
    let created = server.create_ticket(&agent, &intake()).await;
    let extra_note = OfficeOp::AddNote {
        text: "owner asks for the morning 业主希望上午上门".to_owned(),
    };
    server.act(&agent, &zhang_ticket.id, extra_note).await;
    let before = server.estate_snapshot().await;

    server.kill_hard();
    server.restart();

    let after = server.estate_snapshot().await;
    assert_eq!(after, before, "every acknowledged change is on disk");
    assert!(after.iter().any(|ticket| ticket.id == created.id));

    // Every acknowledged mutation is known: its replay gets its first answer.
    let all: Vec<Acknowledged> = [li_a, li_b, zhang, wang].into_iter().flatten().collect();
    let mut fact_count = 0;
    for push in &all {
        let replay = server
            .push(&push.token, &push.device, push.batch.clone())
            .await;
        for (replayed, original) in replay.outcomes.iter().zip(&push.outcomes) {
            let Outcome::Applied(applied) = &original.outcome else {
                unreachable!("checked when pushed");
            };
            assert_eq!(
                replayed.outcome,
                Outcome::Duplicate {
                    first: Verdict::Applied(applied.clone())
                }
            );
            fact_count += 1;
        }
    }
    let stored_facts: usize = after
        .iter()
        .map(|ticket| ticket.arrivals.len() + ticket.notes.len())
        .sum();
    assert_eq!(stored_facts, fact_count);
    assert_eq!(
        server.estate_snapshot().await,
        before,
        "replays change nothing"
    );

    // Each device continues after its last acknowledged sequence number.
    let li = server.login("li").await;
    let pull = server.pull(&li, &device_id("hh-li-a"), Cursor(0)).await;
    assert_eq!(pull.last_seq, DeviceSeq(7));
    let current = server.ticket(&li, &li_tickets[0].id).await;
    let next = DeviceMutation {
        seq: DeviceSeq(8),
        ..Handheld::new("hh-li-a").record(&current, note("after the restart"))
    };
    let pushed = server.push(&li, &device_id("hh-li-a"), vec![next]).await;
    assert!(matches!(pushed.outcomes[0].outcome, Outcome::Applied(_)));

    // Ticket numbers are never reused (R-A1).
    let newer = server.create_ticket(&agent, &intake()).await;
    assert!(newer.id > created.id, "{} after {}", newer.id, created.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_cursor_from_before_a_crash_stays_valid_and_is_never_reused() {
    let mut server = TestServer::start();
    let li = server.login("li").await;
    let agent = server.login("kefu").await;
    let handheld = device_id("hh-li-cursor");
    let first = server.pull(&li, &handheld, Cursor(0)).await;
    let ticket_id = match &first.changes[0] {
        Change::Upsert { ticket, .. } => ticket.id.clone(),
        other => panic!("a first sync hands over tickets: {other:?}"),
    };
    let add_note = |text: &str| OfficeOp::AddNote {
        text: text.to_owned(),
    };
    server
        .act(&agent, &ticket_id, add_note("before the crash"))
        .await;
    let second = server.pull(&li, &handheld, first.next_cursor).await;
    assert_eq!(second.changes.len(), 1);
    assert!(second.next_cursor > first.next_cursor);
    let saved = second.next_cursor;

    server.kill_hard();
    server.restart();

    // The saved cursor is still a valid place in the feed, with nothing after it.
    let resumed = server.pull(&li, &handheld, saved).await;
    assert!(resumed.changes.is_empty(), "{:?}", resumed.changes);
    assert!(!resumed.has_more);
    assert_eq!(resumed.next_cursor, saved);

    // A change after the restart lands after every cursor handed out before it.
    let noted = server
        .act(&agent, &ticket_id, add_note("after the crash"))
        .await;
    let fresh = server.pull(&li, &handheld, saved).await;
    assert_eq!(fresh.changes.len(), 1, "{:?}", fresh.changes);
    let Change::Upsert { cursor, ticket } = &fresh.changes[0] else {
        panic!("expected the changed ticket: {:?}", fresh.changes);
    };
    assert!(*cursor > saved, "cursor {cursor:?} was handed out before");
    assert_eq!(**ticket, noted);
    assert_eq!(ticket.office_notes.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_cleanly_and_keeps_every_acknowledged_write() {
    let mut server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    let acknowledged = morning(&server, "li", Handheld::new("hh-li-term"), ticket).await;
    let before = server.estate_snapshot().await;

    assert!(server.stop_gracefully(), "the server exits 0 on SIGTERM");
    server.start_again();

    assert_eq!(server.estate_snapshot().await, before);
    last_push_is_known(&server, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_interrupted_by_a_full_disk_does_not_stop_the_next_start_once_space_is_free() {
    let mut server = TestServer::start();
    let ticket = server.tickets_of("li").await.remove(0);
    let acknowledged = morning(&server, "li", Handheld::new("hh-li-snap"), ticket).await;
    let before = server.estate_snapshot().await;
    server.kill_hard();

    // A start on a full disk gets as far as creating the store's new
    // snapshot file (named after the log position) and fails to write it:
    // this empty file is what it leaves behind.
    let unfinished = server.data_dir().join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"").expect("the data directory is writable");
    server.start_again();

    assert_eq!(server.estate_snapshot().await, before);
    last_push_is_known(&server, &acknowledged).await;
}
