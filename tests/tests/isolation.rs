//! One estate's data never reaches another estate, or a caller who may not
//! read it: blobs belong to the tickets that refer to them, push answers
//! describe only the tickets the technician holds, and another estate's
//! ticket looks exactly like one that does not exist.

mod common;

use common::{Handheld, TestServer, note, paid_result, signature};
use reqwest::StatusCode;
use serde_json::json;
use sync_protocol::{
    BlobReceipt, Change, Cursor, DeviceOp, Outcome, PROTOCOL_VERSION, PullRequest, PullResponse,
    RejectCode, Sha256Hex, Ticket, TicketId,
};

/// E01's li finishes one of his tickets on site and has the owner sign; the
/// ticket and the signature image.
async fn signed_ticket(server: &TestServer, upload: bool) -> (Ticket, Vec<u8>) {
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("hh-li-iso");
    let result = paid_result();
    let image = format!("owner's signature on {}", ticket.id).into_bytes();
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
    if upload {
        assert_eq!(server.upload_blob(&li, &image).await.status, StatusCode::OK);
    }
    (ticket, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_image_is_downloaded_only_by_someone_who_may_read_its_ticket() {
    let server = TestServer::start();
    server
        .add_user_by_api("kefu-e02", "customer_service_agent", "E02")
        .await;
    let (_, image) = signed_ticket(&server, true).await;
    let hash = Sha256Hex::of(&image);
    let path = format!("/api/v1/blobs/{hash}");

    for reader in ["diaodu", "kefu", "li"] {
        let token = server.login(reader).await;
        let download = server.get(&path, Some(&token)).await;
        assert_eq!(download.status, StatusCode::OK, "{reader}: {download:?}");
        assert_eq!(download.body, image);
    }
    // Another estate's office, a technician who does not hold the ticket,
    // and the administrator: the same answer as for bytes never uploaded.
    let never = format!("/api/v1/blobs/{}", Sha256Hex::of(b"never uploaded"));
    for outsider in ["kefu-e02", "zhang", "guanli"] {
        let token = server.login(outsider).await;
        let refused = server.get(&path, Some(&token)).await;
        let body = refused.error(StatusCode::NOT_FOUND, "blob_not_found");
        let missing = server.get(&never, Some(&token)).await;
        assert_eq!(missing.error(StatusCode::NOT_FOUND, "blob_not_found"), body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_answered_alike_whether_or_not_another_estate_holds_the_bytes() {
    let server = TestServer::start();
    server.add_user_by_api("li-e02", "technician", "E02").await;
    let (_, image) = signed_ticket(&server, true).await;
    let outsider = server.login("li-e02").await;
    let fresh = b"an image nobody uploaded before".to_vec();

    let known = server.upload_blob(&outsider, &image).await;
    let unknown = server.upload_blob(&outsider, &fresh).await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.status, StatusCode::OK);
    let known: serde_json::Value = known.json();
    let unknown: serde_json::Value = unknown.json();
    let keys = |value: &serde_json::Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&known), keys(&unknown), "no field tells the two apart");
    let receipt: BlobReceipt = serde_json::from_value(known).unwrap();
    assert_eq!(receipt.sha256, Sha256Hex::of(&image));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_answer_describes_only_the_tickets_the_technician_holds() {
    let server = TestServer::start();
    // li's ticket carries a signature whose image never arrived.
    let (lis_ticket, image) = signed_ticket(&server, false).await;
    let zhang = server.login("zhang").await;
    let mut handheld = Handheld::new("hh-zhang-iso");
    let batch = vec![handheld.record(&lis_ticket, note("not mine"))];
    let pushed = server.push(&zhang, &handheld.id, batch).await;
    let Outcome::Rejected(rejection) = &pushed.outcomes[0].outcome else {
        panic!("expected a rejection: {pushed:?}");
    };
    assert_eq!(rejection.code, RejectCode::NotYourTicket);
    assert!(pushed.ticket_versions.is_empty(), "{pushed:?}");
    assert!(pushed.missing_blobs.is_empty(), "{pushed:?}");

    // li himself is told what the server still needs of his own signature.
    let li = server.login("li").await;
    let mut own = Handheld::new("hh-li-iso-2");
    let batch = vec![own.record(&lis_ticket, note("image follows"))];
    let pushed = server.push(&li, &own.id, batch).await;
    assert_eq!(pushed.missing_blobs, vec![Sha256Hex::of(&image)]);
    assert_eq!(pushed.ticket_versions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_estates_ticket_looks_exactly_like_one_that_does_not_exist() {
    let server = TestServer::start();
    server.add_user_by_api("li-e02", "technician", "E02").await;
    server
        .add_user_by_api("diaodu-e02", "dispatcher", "E02")
        .await;
    let e01_ticket = server.tickets_of("li").await.remove(0);
    let before = server.estate_snapshot().await;
    let mut nowhere = e01_ticket.clone();
    nowhere.id = TicketId::parse("tk99999999").unwrap();

    let technician = server.login("li-e02").await;
    let mut handheld = Handheld::new("hh-li-e02");
    let batch = vec![
        handheld.record(&e01_ticket, note("probing")),
        handheld.record(&nowhere, note("probing")),
    ];
    let pushed = server.push(&technician, &handheld.id, batch).await;
    let rejections: Vec<_> = pushed
        .outcomes
        .iter()
        .map(|outcome| match &outcome.outcome {
            Outcome::Rejected(rejection) => rejection.clone(),
            other => panic!("expected a rejection, got {other:?}"),
        })
        .collect();
    assert_eq!(rejections[0].code, RejectCode::TicketNotFound);
    assert_eq!(rejections[0], rejections[1], "the same answer for both");
    assert!(pushed.ticket_versions.is_empty() && pushed.missing_blobs.is_empty());

    let office = server.login("diaodu-e02").await;
    let shown = |id: &TicketId| format!("/api/v1/tickets/{id}");
    let existing = server.get(&shown(&e01_ticket.id), Some(&office)).await;
    let missing = server.get(&shown(&nowhere.id), Some(&office)).await;
    assert_eq!(
        existing.error(StatusCode::NOT_FOUND, "ticket_not_found"),
        missing.error(StatusCode::NOT_FOUND, "ticket_not_found")
    );
    let dispatch = json!({ "op": { "type": "add_note", "text": "probing" } });
    let acted = server
        .post_json(
            &format!("/api/v1/tickets/{}/actions", e01_ticket.id),
            Some(&office),
            &dispatch,
        )
        .await;
    acted.error(StatusCode::NOT_FOUND, "ticket_not_found");
    assert_eq!(server.estate_snapshot().await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_moved_to_another_estate_neither_pulls_nor_writes_the_old_estates_tickets() {
    let mut server = TestServer::start();
    let old_token = server.login("li").await;
    let lis_ticket = server.tickets_of("li").await.remove(0);
    let before = server
        .ticket(&server.login("diaodu").await, &lis_ticket.id)
        .await;

    // With the server stopped, the command line moves li to E02: it refuses
    // while he holds open tickets, unless told to all the same.
    assert!(server.stop_gracefully());
    let refused = common::run_add_user(
        server.data_dir(),
        "li",
        "technician",
        "E02",
        "维修 李师傅 Li",
        &format!("{}\n", common::DEMO_PASSWORD),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("open tickets"));
    common::add_user_with(server.data_dir(), "li", "technician", "E02", &["--force"]);
    server.start_again();
    server.forget_token("li");

    // The token of the old li names an older generation of his record.
    let device = common::device_id("hh-li-moved");
    let first_pull = PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: common::device_report(&device),
        cursor: Cursor(0),
        limit: None,
    };
    server
        .pull_raw(&old_token, &first_pull)
        .await
        .error(StatusCode::UNAUTHORIZED, "token_revoked");

    let li = server.login("li").await;
    let pulled: PullResponse = server.pull_raw(&li, &first_pull).await.ok();
    assert!(
        pulled.changes.iter().all(|change| !matches!(
            change,
            Change::Upsert { ticket, .. } if ticket.estate.as_str() == "E01"
        )),
        "{pulled:?}"
    );
    let mut handheld = Handheld::new("hh-li-moved");
    let batch = vec![handheld.record(&lis_ticket, note("from E02"))];
    let pushed = server.push(&li, &handheld.id, batch).await;
    let Outcome::Rejected(rejection) = &pushed.outcomes[0].outcome else {
        panic!("expected a rejection: {pushed:?}");
    };
    assert_eq!(rejection.code, RejectCode::TicketNotFound);
    let after = server
        .ticket(&server.login("diaodu").await, &lis_ticket.id)
        .await;
    assert_eq!(after, before, "nothing was written on the E01 ticket");
    assert!(server.list_tickets(&li).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_cannot_move_a_technician_who_still_holds_open_tickets() {
    let server = TestServer::start();
    let held = server.tickets_of("li").await.len();
    assert!(held > 0);
    let refused = server.change_user("li", &json!({ "estate": "E02" })).await;
    let body = refused.error(StatusCode::CONFLICT, "technician_holds_tickets");
    assert_eq!(body.details.unwrap()["held"], json!(held));
    let also = server
        .change_user("li", &json!({ "role": "dispatcher" }))
        .await;
    also.error(StatusCode::CONFLICT, "technician_holds_tickets");
    // Nothing changed: his token still works.
    let li = server.login("li").await;
    assert_eq!(server.list_tickets(&li).await.len(), held);

    // A technician without tickets whose handheld still has changes to
    // upload stays too, until it has synced.
    server.add_user_by_api("tian", "technician", "E01").await;
    let tian = server.login("tian").await;
    let device = common::device_id("hh-tian");
    let mut waiting = common::device_report(&device);
    waiting.outbox_depth = 2;
    let pull = |report: sync_protocol::DeviceReport| PullRequest {
        protocol_version: PROTOCOL_VERSION,
        device: report,
        cursor: Cursor(0),
        limit: None,
    };
    server
        .pull_raw(&tian, &pull(waiting))
        .await
        .ok::<PullResponse>();
    let refused = server
        .change_user("tian", &json!({ "estate": "E02" }))
        .await;
    let body = refused.error(StatusCode::CONFLICT, "technician_has_pending_changes");
    assert_eq!(body.details.unwrap()["devices"], json!(1));
    server
        .pull_raw(&tian, &pull(common::device_report(&device)))
        .await
        .ok::<PullResponse>();
    let moved = server
        .change_user("tian", &json!({ "estate": "E02" }))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{moved:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_someone_elses_image_in_a_signature_opens_nothing_and_tells_nothing() {
    let server = TestServer::start();
    let (_, image) = signed_ticket(&server, true).await;
    let hash = Sha256Hex::of(&image);
    // zhang completes one of his own tickets and has a "signature" name the
    // hash of li's owner's signature, whose bytes he never had.
    let zhang = server.login("zhang").await;
    let his = server.tickets_of("zhang").await.remove(0);
    let mut handheld = Handheld::new("hh-zhang-names");
    let result = paid_result();
    let naming = sync_protocol::DeviceOp::AttachSignature {
        blob: hash.clone(),
        signed_record: result.record_hash(),
        signer_name: "业主 Owner".into(),
        rating: None,
        strokes: None,
    };
    let batch = vec![
        handheld.record(&his, DeviceOp::Complete { result }),
        handheld.record(&his, naming),
    ];
    let pushed = server.push(&zhang, &handheld.id, batch).await;
    assert_eq!(
        pushed.missing_blobs,
        vec![hash.clone()],
        "still his to upload"
    );
    let path = format!("/api/v1/blobs/{hash}");
    server
        .get(&path, Some(&zhang))
        .await
        .error(StatusCode::NOT_FOUND, "blob_not_found");
    // The office reads it through li's ticket, as before.
    let dispatcher = server.login("diaodu").await;
    assert_eq!(server.get(&path, Some(&dispatcher)).await.body, image);
}
