//! A token is only as good as the user it names, now: changing a user's
//! role, estate or password, disabling them or ending their sessions stops
//! every token at once; handhelds renew short access tokens with refresh
//! tokens bound to the device; and administrators manage users with the
//! server running.

mod common;

use common::{DEMO_PASSWORD, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::{LoginRequest, LoginResponse, RefreshRequest, Role, UserPage};

const QUEUE: &str = "/api/v1/dispatch-queue";
const REFRESH: &str = "/api/v1/auth/refresh";
const USERS: &str = "/api/v1/admin/users";

async fn login_on(server: &TestServer, user: &str, device: Option<&str>) -> LoginResponse {
    let request = LoginRequest {
        username: user.to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        device_id: device.map(common::device_id),
    };
    server
        .post_json("/api/v1/auth/login", None, &request)
        .await
        .ok()
}

fn refresh_of(token: &str, device: Option<&str>) -> RefreshRequest {
    RefreshRequest {
        refresh_token: token.to_owned(),
        device_id: device.map(common::device_id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_dispatcher_token_stops_dispatching_the_moment_the_role_changes() {
    let server = TestServer::start();
    let old = login_on(&server, "diaodu", None).await;
    assert_eq!(
        server.get(QUEUE, Some(&old.token)).await.status,
        StatusCode::OK
    );

    let changed = server
        .change_user("diaodu", &json!({ "role": "customer_service_agent" }))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let refused = server.get(QUEUE, Some(&old.token)).await;
    refused.error(StatusCode::UNAUTHORIZED, "token_revoked");
    // Its refresh token went with it.
    server
        .post_json(REFRESH, None, &refresh_of(&old.refresh_token, None))
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    let again = login_on(&server, "diaodu", None).await;
    assert_eq!(again.role, Role::CustomerServiceAgent);
    // An agent dispatches verbal dispatches only: the queue is theirs now.
    assert_eq!(
        server.get(QUEUE, Some(&again.token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_every_session_and_only_the_new_password_logs_in() {
    let server = TestServer::start();
    let old = login_on(&server, "kefu", None).await;
    let admin = server.login("guanli").await;
    let reset = server
        .post_json(
            &format!("{USERS}/kefu/password"),
            Some(&admin),
            &json!({ "password": "a new long password" }),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{reset:?}");
    server
        .get("/api/v1/tickets", Some(&old.token))
        .await
        .error(StatusCode::UNAUTHORIZED, "token_revoked");
    server
        .post_json(REFRESH, None, &refresh_of(&old.refresh_token, None))
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let wrong = LoginRequest {
        username: "kefu".to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        device_id: None,
    };
    server
        .post_json("/api/v1/auth/login", None, &wrong)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let new = server.login_as("kefu", "a new long password").await;
    assert_eq!(
        server.get("/api/v1/tickets", Some(&new.token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_sessions_or_disabling_them_stops_every_token_at_once() {
    let server = TestServer::start();
    let phone = login_on(&server, "zhang", Some("hh-zhang-phone")).await;
    let tablet = login_on(&server, "zhang", Some("hh-zhang-tablet")).await;
    let ended = server.end_sessions("zhang").await;
    assert_eq!(ended.status, StatusCode::OK, "{ended:?}");
    for session in [&phone, &tablet] {
        server
            .get("/api/v1/tickets", Some(&session.token))
            .await
            .error(StatusCode::UNAUTHORIZED, "token_revoked");
    }

    let fresh = login_on(&server, "zhang", None).await;
    let disabled = server
        .change_user("zhang", &json!({ "disabled": true }))
        .await;
    let summary: Value = disabled.ok();
    assert_eq!(summary["disabled"], json!(true));
    assert!(
        summary.get("password_hash").is_none(),
        "no hash leaves the server"
    );
    server
        .get("/api/v1/tickets", Some(&fresh.token))
        .await
        .error(StatusCode::UNAUTHORIZED, "token_revoked");
    let request = LoginRequest {
        username: "zhang".to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        device_id: None,
    };
    let refused = server.post_json("/api/v1/auth/login", None, &request).await;
    refused.error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    server
        .change_user("zhang", &json!({ "disabled": false }))
        .await
        .ok::<Value>();
    login_on(&server, "zhang", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_renews_once_a_lost_answer_costs_nothing_and_a_replayed_one_ends_the_session()
 {
    let server = TestServer::start();
    let device = Some("hh-li-refresh");
    let first = login_on(&server, "li", device).await;
    let refresh = |token: &str| {
        let request = refresh_of(token, device);
        let server = &server;
        async move { server.post_json(REFRESH, None, &request).await }
    };

    let second: LoginResponse = refresh(&first.refresh_token).await.ok();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.user.as_str(), "li");
    assert_eq!(
        server
            .get("/api/v1/tickets", Some(&second.token))
            .await
            .status,
        StatusCode::OK
    );
    // The answer with `second` never arrived: `first` works once more.
    let third: LoginResponse = refresh(&first.refresh_token).await.ok();
    let fourth: LoginResponse = refresh(&third.refresh_token).await.ok();
    // `third` was used, so `first` is stale: a copy in other hands. The
    // session ends, for the copy and for the device alike.
    refresh(&first.refresh_token)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    refresh(&fourth.refresh_token)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_works_only_on_its_device_and_survives_a_restart_with_a_new_key() {
    let mut server = TestServer::start();
    let session = login_on(&server, "li", Some("hh-li-bound")).await;
    for other in [Some("hh-someone-else"), None] {
        server
            .post_json(REFRESH, None, &refresh_of(&session.refresh_token, other))
            .await
            .error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }
    for made_up in [
        "",
        "rt1.x.y",
        &format!("rt1.{}.{}", "0".repeat(32), "0".repeat(64)),
    ] {
        server
            .post_json(REFRESH, None, &refresh_of(made_up, Some("hh-li-bound")))
            .await
            .error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }

    server.restart_with("ESTATE_SYNC_JWT_SECRET", &"another-signing-key-".repeat(3));
    server
        .get("/api/v1/tickets", Some(&session.token))
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_token");
    let renewed: LoginResponse = server
        .post_json(
            REFRESH,
            None,
            &refresh_of(&session.refresh_token, Some("hh-li-bound")),
        )
        .await
        .ok();
    assert_eq!(
        server
            .get("/api/v1/tickets", Some(&renewed.token))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_lists_adds_and_changes_users_and_nobody_else_may() {
    let server = TestServer::start();
    let admin = server.login("guanli").await;
    let added = server.add_user_by_api("wu-e02", "technician", "E02").await;
    assert_eq!(added.estate.as_str(), "E02");
    login_on(&server, "wu-e02", None).await;

    let e02: UserPage = server
        .get(&format!("{USERS}?estate=E02"), Some(&admin))
        .await
        .ok();
    let ids: Vec<&str> = e02.users.iter().map(|user| user.id.as_str()).collect();
    assert_eq!(ids, ["wu-e02"]);
    let mut seen = Vec::new();
    let mut path = format!("{USERS}?limit=5");
    loop {
        let page: UserPage = server.get(&path, Some(&admin)).await.ok();
        seen.extend(page.users.into_iter().map(|user| user.id.to_string()));
        match page.next_after {
            Some(after) => path = format!("{USERS}?limit=5&after={after}"),
            None => break,
        }
    }
    // The demo's eleven and the one added, each once, in id order.
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "{seen:?}");

    let body = json!({
        "username": "wu-e02", "display_name": "吴", "role": "technician",
        "estate": "E02", "password": DEMO_PASSWORD,
    });
    server
        .post_json(USERS, Some(&admin), &body)
        .await
        .error(StatusCode::CONFLICT, "user_exists");
    let incomplete = json!({
        "username": "nobody", "display_name": " ", "role": "technician",
        "estate": "E02", "password": "short",
    });
    let problems = server
        .post_json(USERS, Some(&admin), &incomplete)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_user")
        .details
        .unwrap()["problems"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(problems, 2, "every problem at once");

    // The last enabled administrator stays one.
    server
        .change_user("guanli", &json!({ "disabled": true }))
        .await
        .error(StatusCode::CONFLICT, "last_administrator");
    server
        .change_user("nobody", &json!({ "disabled": true }))
        .await
        .error(StatusCode::NOT_FOUND, "user_not_found");

    for role_user in ["diaodu", "zhuguan", "li"] {
        let token = server.login(role_user).await;
        server
            .get(USERS, Some(&token))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
        server
            .post_json(USERS, Some(&token), &body)
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    // The administrator reads no ticket.
    let tickets: sync_protocol::TicketPage = server.get("/api/v1/tickets", Some(&admin)).await.ok();
    assert!(tickets.tickets.is_empty());
}
