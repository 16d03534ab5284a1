//! Photos of the work and an arrival's position, over HTTP: a photo is a
//! fact whose image travels as a blob, listed missing until uploaded and
//! readable only through the ticket; a position is kept on the arrival,
//! and only one off the globe is refused.

mod common;

use common::{Handheld, TestServer, device_id};
use reqwest::StatusCode;
use sync_protocol::{DeviceOp, Outcome, PhotoStage, Position, RejectCode, Sha256Hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_kept_listed_missing_until_uploaded_and_opens_only_in_its_estate() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("app-photo-1");
    let image = b"\xff\xd8\xff\xe0 a jpeg of the seized valve".to_vec();
    let hash = Sha256Hex::of(&image);
    let photo = handheld.record(
        &ticket,
        DeviceOp::AttachPhoto {
            blob: hash.clone(),
            stage: PhotoStage::Before,
        },
    );
    let pushed = server
        .push(&li, &device_id("app-photo-1"), vec![photo])
        .await;
    assert!(
        matches!(pushed.outcomes[0].outcome, Outcome::Applied(_)),
        "{pushed:?}"
    );
    assert_eq!(
        pushed.missing_blobs,
        vec![hash.clone()],
        "the image is asked for"
    );

    assert_eq!(server.upload_blob(&li, &image).await.status, StatusCode::OK);
    let office = server.login("diaodu").await;
    let stored = server.ticket(&office, &ticket.id).await;
    let fact = stored.photos.values().next().expect("the photo is a fact");
    assert_eq!(
        (&fact.body.blob, fact.body.stage),
        (&hash, PhotoStage::Before)
    );
    let seen = server
        .get(&format!("/api/v1/blobs/{hash}"), Some(&office))
        .await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body, image);

    server
        .add_user_by_api("kefu-e02", "customer_service_agent", "E02")
        .await;
    let elsewhere = server.login("kefu-e02").await;
    server
        .get(&format!("/api/v1/blobs/{hash}"), Some(&elsewhere))
        .await
        .error(StatusCode::NOT_FOUND, "blob_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_p1_an_arrival_keeps_the_phones_position_and_only_one_off_the_globe_is_refused() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let mut handheld = Handheld::new("app-gps-1");
    let position = Position {
        latitude_e6: 31_230_416,
        longitude_e6: 121_473_701,
        accuracy_m: 35,
    };
    let off_the_globe = handheld.record(
        &ticket,
        DeviceOp::RecordArrival {
            position: Some(Position {
                longitude_e6: 181_000_000,
                ..position
            }),
        },
    );
    let on_site = handheld.record(
        &ticket,
        DeviceOp::RecordArrival {
            position: Some(position),
        },
    );
    let pushed = server
        .push(&li, &device_id("app-gps-1"), vec![off_the_globe, on_site])
        .await;
    match &pushed.outcomes[0].outcome {
        Outcome::Rejected(rejection) => assert_eq!(rejection.code, RejectCode::InvalidContent),
        other => panic!("expected invalid_content, got {other:?}"),
    }
    assert!(matches!(pushed.outcomes[1].outcome, Outcome::Applied(_)));
    let office = server.login("diaodu").await;
    let stored = server.ticket(&office, &ticket.id).await;
    let arrival = stored.arrivals.values().next().expect("the arrival");
    assert_eq!(arrival.body.position, Some(position));
}
