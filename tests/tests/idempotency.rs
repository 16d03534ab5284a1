//! Retries are harmless: a replayed push gets its first answer and changes
//! nothing, a repeated blob upload stores nothing new, and a sequence number
//! reused for other content is refused rather than mistaken for a replay.

mod common;

use common::{Handheld, TestServer, note, paid_result, push_request, signature};
use reqwest::StatusCode;
use sync_protocol::{
    BlobReceipt, Cursor, DeviceOp, DeviceSeq, MutationOutcome, Outcome, PushRequest, RejectCode,
    Sha256Hex, Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The verdict a first-time outcome stands for.
fn verdict(outcome: &MutationOutcome) -> Verdict {
    match &outcome.outcome {
        Outcome::Applied(applied) => Verdict::Applied(applied.clone()),
        Outcome::Rejected(rejection) => Verdict::Rejected(rejection.clone()),
        Outcome::Duplicate { .. } => panic!("expected a first-time outcome, got {outcome:?}"),
    }
}

/// What a replay of `first` must answer.
fn duplicates_of(first: &[MutationOutcome]) -> Vec<MutationOutcome> {
    first
        .iter()
        .map(|outcome| MutationOutcome {
            seq: outcome.seq,
            ticket_id: outcome.ticket_id.clone(),
            outcome: Outcome::Duplicate {
                first: verdict(outcome),
            },
        })
        .collect()
}

/// How a client loses the answer to a push.
enum Lost {
    /// The server began to answer; the client hung up without reading it.
    AfterTheFirstByte,
    /// The client hung up right after sending.
    RightAfterSending,
}

/// Send a push over a raw connection and hang up without reading the answer,
/// as a handheld does when its signal drops mid-request.
async fn push_and_hang_up(server: &TestServer, token: &str, request: &PushRequest, lost: Lost) {
    let body = serde_json::to_vec(request).unwrap();
    let head = format!(
        "POST /api/v1/sync/push HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        server.address(),
        body.len()
    );
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();
    if let Lost::AfterTheFirstByte = lost {
        let mut first_byte = [0u8; 1];
        let read = stream.read(&mut first_byte).await.unwrap();
        assert_eq!(read, 1, "the server began to answer");
    }
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_replayed_three_times_even_after_a_lost_response_is_applied_once() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-idem-1");
    let ticket = server.tickets_of("li").await.remove(0);
    let batch = vec![
        handheld.record(&ticket, DeviceOp::RecordArrival { position: None }),
        handheld.record(&ticket, note("checked the valve")),
        // Refused (an empty note): a refusal is a first answer too.
        handheld.record(&ticket, note("   ")),
        handheld.record(
            &ticket,
            DeviceOp::Complete {
                result: paid_result(),
            },
        ),
    ];
    let request = push_request(&handheld.id, batch.clone());

    let original = server.push(&li, &handheld.id, batch.clone()).await;
    assert!(matches!(original.outcomes[0].outcome, Outcome::Applied(_)));
    let Outcome::Rejected(refusal) = &original.outcomes[2].outcome else {
        panic!("an empty note is refused: {:?}", original.outcomes[2]);
    };
    assert_eq!(refusal.code, RejectCode::InvalidContent);
    let after_original = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(after_original.version.0, ticket.version.0 + 3);

    // Replay 1: the answer never reaches the client.
    push_and_hang_up(&server, &li, &request, Lost::AfterTheFirstByte).await;
    // Replays 2 and 3: the client gets the first answers again.
    let expected = duplicates_of(&original.outcomes);
    for replay in 2..=3 {
        let again = server.push(&li, &handheld.id, batch.clone()).await;
        assert_eq!(again.outcomes, expected, "replay {replay}");
        assert_eq!(again.last_seq, DeviceSeq(4));
        assert_eq!(again.ticket_versions, original.ticket_versions);
        assert_eq!(again.missing_blobs, original.missing_blobs);
    }

    let now = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(
        now, after_original,
        "replays change nothing, not even updated_at"
    );
    assert_eq!(now.arrivals.len(), 1);
    assert_eq!(now.notes.len(), 1);
    assert_eq!(now.results.len(), 1);
    let pull = server.pull(&li, &handheld.id, Cursor(0)).await;
    assert_eq!(pull.last_seq, DeviceSeq(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_abandoned_right_after_sending_is_applied_at_most_once() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-idem-2");
    let ticket = server.tickets_of("li").await.remove(0);
    let batch = vec![
        handheld.record(&ticket, note("first note")),
        handheld.record(&ticket, note("second note")),
    ];

    // The server may or may not have processed it when the client vanished.
    push_and_hang_up(
        &server,
        &li,
        &push_request(&handheld.id, batch.clone()),
        Lost::RightAfterSending,
    )
    .await;
    let retried = server.push(&li, &handheld.id, batch.clone()).await;
    let first_answers: Vec<MutationOutcome> = match &retried.outcomes[0].outcome {
        // It was processed before: the retry is told the first answers.
        Outcome::Duplicate { .. } => retried
            .outcomes
            .iter()
            .map(|outcome| {
                let Outcome::Duplicate { first } = &outcome.outcome else {
                    panic!("a batch is processed whole or not at all: {retried:?}");
                };
                MutationOutcome {
                    seq: outcome.seq,
                    ticket_id: outcome.ticket_id.clone(),
                    outcome: first.clone().into(),
                }
            })
            .collect(),
        // It was not: the retry is the first time.
        _ => retried.outcomes.clone(),
    };
    for outcome in &first_answers {
        assert!(
            matches!(outcome.outcome, Outcome::Applied(_)),
            "{first_answers:?}"
        );
    }

    let settled = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(settled.notes.len(), 2, "each note exactly once");
    assert_eq!(settled.version.0, ticket.version.0 + 2);
    let again = server.push(&li, &handheld.id, batch).await;
    assert_eq!(again.outcomes, duplicates_of(&first_answers));
    assert_eq!(server.ticket(&dispatcher, &ticket.id).await, settled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_uploaded_twice_is_stored_once_and_both_uploads_get_the_same_answer() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-idem-blob");
    let ticket = server.tickets_of("li").await.remove(0);
    let result = paid_result();
    let image = b"the same signature image, sent twice".to_vec();
    let hash = Sha256Hex::of(&image);

    let first = server.upload_blob(&li, &image).await;
    let second = server.upload_blob(&li, &image).await;
    for upload in [&first, &second] {
        assert_eq!(upload.status, StatusCode::OK, "{upload:?}");
        let receipt: BlobReceipt = upload.json();
        assert_eq!(receipt.sha256, hash);
        assert_eq!(receipt.size_bytes, image.len() as u64);
    }
    assert_eq!(first.body, second.body, "a repeat reveals nothing new");

    // The image becomes readable with the signature that refers to it.
    let batch = vec![
        handheld.record(
            &ticket,
            DeviceOp::Complete {
                result: result.clone(),
            },
        ),
        handheld.record(&ticket, signature(&image, &result)),
    ];
    server.push(&li, &handheld.id, batch).await;
    let stored = server
        .get(&format!("/api/v1/blobs/{hash}"), Some(&dispatcher))
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.body, image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_number_reused_for_other_content_is_refused_as_sequence_reused() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-idem-3");
    let ticket = server.tickets_of("li").await.remove(0);
    let original = vec![
        handheld.record(&ticket, note("the real note")),
        handheld.record(&ticket, note("another real note")),
    ];
    let first = server.push(&li, &handheld.id, original.clone()).await;
    let before = server.estate_snapshot().await;

    // A reinstalled app that forgot its outbox reuses seq 2 for something else.
    let mut reused = original.clone();
    reused[1].op = note("something else entirely");
    let refused = server
        .push_raw(&li, &push_request(&handheld.id, reused))
        .await;
    let error = refused.error(StatusCode::CONFLICT, "sequence_reused");
    assert_eq!(error.details, Some(serde_json::json!({ "seq": 2 })));
    assert_eq!(server.estate_snapshot().await, before, "nothing changed");

    // The genuine replay is still recognised, and the device's place is kept.
    let replay = server.push(&li, &handheld.id, original).await;
    assert_eq!(replay.outcomes, duplicates_of(&first.outcomes));
    let stored = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(stored.notes.len(), 2);
    assert!(
        stored
            .notes
            .values()
            .all(|fact| fact.body.text != "something else entirely")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_a_push_sent_at_once_are_applied_once() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let dispatcher = server.login("diaodu").await;
    let mut handheld = Handheld::new("hh-li-idem-4");
    let ticket = server.tickets_of("li").await.remove(0);
    let batch = vec![
        handheld.record(&ticket, DeviceOp::RecordArrival { position: None }),
        handheld.record(&ticket, note("sent twice by a nervous retry loop")),
    ];

    let (first, second) = tokio::join!(
        server.push(&li, &handheld.id, batch.clone()),
        server.push(&li, &handheld.id, batch.clone()),
    );
    // One of them came first; the other is its duplicate.
    let (original, duplicate) = match first.outcomes[0].outcome {
        Outcome::Duplicate { .. } => (second, first),
        _ => (first, second),
    };
    assert_eq!(duplicate.outcomes, duplicates_of(&original.outcomes));
    let stored = server.ticket(&dispatcher, &ticket.id).await;
    assert_eq!(stored.version.0, ticket.version.0 + 2);
    assert_eq!(stored.arrivals.len(), 1);
    assert_eq!(stored.notes.len(), 1);
}
