//! What the office console reads and how its writes are named, over real
//! HTTP: `Idempotency-Key` on intake and office actions, the ticket cards
//! with their search and filters, known units, people and permissions, and
//! the refusals of each, which reveal nothing of another estate.

mod common;

use common::{DEMO_ESTATE, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_protocol::{
    KnownUnits, OfferedActions, OfficeAction, People, Permissions, Ticket, TicketCardPage,
};

fn report(description: &str, location: &str) -> Value {
    json!({
        "estate": DEMO_ESTATE,
        "received_at": chrono::Utc::now().to_rfc3339(),
        "kind": "work_order",
        "category": "repair",
        "area": "private_unit",
        "source": "phone",
        "reporter": { "name": "钱先生", "phone": "139 0000 7777" },
        "location": location,
        "description": description,
    })
}

/// A report recorded by `token`'s holder; insists it is.
async fn record(server: &TestServer, token: &str, description: &str, location: &str) -> Ticket {
    server
        .post_json(
            "/api/v1/tickets",
            Some(token),
            &report(description, location),
        )
        .await
        .ok()
}

async fn post_named(
    server: &TestServer,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> common::Response {
    let request = server
        .client()
        .post(server.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body);
    server.send(request).await
}

async fn cards(server: &TestServer, token: &str, query: &str) -> TicketCardPage {
    server
        .get(&format!("/api/v1/ticket-cards?{query}"), Some(token))
        .await
        .ok()
}

#[tokio::test]
async fn a_named_report_sent_twice_is_one_ticket_and_its_key_fits_no_other_report() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let before = server.list_tickets(&agent).await.len();
    let body = report("阳台地漏堵塞，积水", "9-1-301");

    let first = post_named(&server, "/api/v1/tickets", &agent, "k-intake-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = post_named(&server, "/api/v1/tickets", &agent, "k-intake-1", &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let (first, again): (Ticket, Ticket) = (first.json(), again.json());
    assert_eq!(first.id, again.id);
    assert_eq!(first.serial_number, again.serial_number);
    assert_eq!(server.list_tickets(&agent).await.len(), before + 1);

    let other = report("另一件事", "9-1-302");
    post_named(&server, "/api/v1/tickets", &agent, "k-intake-1", &other)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    post_named(
        &server,
        "/api/v1/tickets",
        &agent,
        "key with spaces",
        &other,
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    assert_eq!(server.list_tickets(&agent).await.len(), before + 1);

    // A key is the user's own: another agent's same key is another write.
    let specialist = server.login("zhuanyuan").await;
    let theirs = post_named(&server, "/api/v1/tickets", &specialist, "k-intake-1", &body).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.json::<Ticket>().id, first.id);
}

#[tokio::test]
async fn a_named_dispatch_sent_twice_is_answered_as_the_first_not_refused_as_assigned() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let ticket: Ticket = record(&server, &agent, "入户门锁坏", "9-2-101").await;
    let dispatcher = server.login("diaodu").await;
    let path = format!("/api/v1/tickets/{}/actions", ticket.id);
    let body = json!({ "expected_version": ticket.version, "op": { "type": "dispatch", "technician": "li" } });
    let first = post_named(&server, &path, &dispatcher, "k-dispatch", &body).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let again = post_named(&server, &path, &dispatcher, "k-dispatch", &body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let stored = server.ticket(&dispatcher, &ticket.id).await;
    let dispatches = stored
        .history
        .iter()
        .filter(|entry| matches!(entry.event, sync_protocol::HistoryEvent::Dispatched { .. }))
        .count();
    assert_eq!(dispatches, 1);
    // Without a key, the same request is a second dispatch, and refused.
    server
        .act_raw(
            &dispatcher,
            &ticket.id,
            sync_protocol::OfficeOp::Dispatch {
                technician: sync_protocol::UserId::parse("li").unwrap(),
            },
        )
        .await
        .error(StatusCode::CONFLICT, "already_assigned");
}

#[tokio::test]
async fn the_ticket_list_finds_by_serial_unit_reporter_and_phone_and_pages_without_repeats() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let ticket: Ticket = record(&server, &agent, "客厅灯不亮", "12-3-808").await;
    let serial = ticket.serial_number.clone().unwrap().to_string();
    for query in [
        format!("q={}", serial.to_lowercase()),
        "q=12-3-8".to_owned(),
        "q=%E9%92%B1%E5%85%88%E7%94%9F".to_owned(), // 钱先生
        "q=7777".to_owned(),
    ] {
        let page = cards(&server, &agent, &query).await;
        assert!(
            page.cards.iter().any(|card| card.ticket_id == ticket.id),
            "{query}: {page:?}"
        );
    }
    assert!(
        cards(&server, &agent, "q=no-such-unit-anywhere")
            .await
            .cards
            .is_empty()
    );

    // Two at a time, newest first, every ticket once.
    let all = server.list_tickets(&agent).await.len();
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = cards(&server, &agent, &query).await;
        for pair in page.cards.windows(2) {
            assert!(pair[0].received_at >= pair[1].received_at);
        }
        seen.extend(page.cards.into_iter().map(|card| card.ticket_id));
        match page.next_after {
            Some(after) => query = format!("limit=2&after={after}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no ticket twice");
    assert_eq!(seen.len(), all);

    let open = cards(&server, &agent, "status=open&kind=work_order&limit=500").await;
    assert!(open.cards.iter().all(|card| card.status.is_open()));
    server
        .get("/api/v1/ticket-cards?after=zz", Some(&agent))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_cursor");
    server
        .get(
            &format!("/api/v1/ticket-cards?q={}", "x".repeat(65)),
            Some(&agent),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn each_role_reads_only_its_share_and_another_estate_is_never_found() {
    let server = TestServer::start();
    // Another estate with a ticket at a unit that E01 never saw.
    server
        .add_user_by_api("kefu-e02", "customer_service_agent", "E02")
        .await;
    let other_agent = server.login("kefu-e02").await;
    let mut elsewhere = report("另一小区的报事", "E02-unit-1");
    elsewhere["estate"] = json!("E02");
    let foreign: Ticket = server
        .post_json("/api/v1/tickets", Some(&other_agent), &elsewhere)
        .await
        .ok();
    let agent = server.login("kefu").await;
    let found = cards(&server, &agent, "q=E02-unit&limit=500").await;
    assert!(found.cards.is_empty(), "{found:?}");
    assert!(
        cards(&server, &agent, "limit=500")
            .await
            .cards
            .iter()
            .all(|card| card.ticket_id != foreign.id)
    );
    let units: KnownUnits = server
        .get("/api/v1/units?prefix=E02", Some(&agent))
        .await
        .ok();
    assert!(units.units.is_empty());
    let people: People = server.get("/api/v1/people", Some(&agent)).await.ok();
    assert!(
        people
            .people
            .iter()
            .all(|person| person.user.as_str() != "kefu-e02")
    );
    assert!(
        people
            .people
            .iter()
            .any(|person| person.user.as_str() == "li")
    );

    // A technician: their own tickets, only themselves, no units.
    let technician = server.login("li").await;
    let own = server.tickets_of("li").await;
    let page = cards(&server, &technician, "limit=500").await;
    assert_eq!(page.cards.len(), own.len());
    assert!(
        page.cards
            .iter()
            .all(|card| card.assigned_technician.as_ref().map(|u| u.as_str()) == Some("li"))
    );
    assert!(
        cards(&server, &technician, "technician=zhang")
            .await
            .cards
            .is_empty()
    );
    let people: People = server.get("/api/v1/people", Some(&technician)).await.ok();
    assert_eq!(people.people.len(), 1);
    let refused = server
        .get("/api/v1/units?prefix=5", Some(&technician))
        .await;
    let body = refused.error(StatusCode::FORBIDDEN, "forbidden");
    assert!(!body.message.contains("5-"), "{body:?}");

    // An administrator reads no tickets.
    let admin = server.login("guanli").await;
    server
        .get("/api/v1/ticket-cards", Some(&admin))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn permissions_are_the_table_the_server_checks() {
    let server = TestServer::start();
    let dispatcher = server.login("diaodu").await;
    let granted: Permissions = server
        .get("/api/v1/permissions", Some(&dispatcher))
        .await
        .ok();
    let actions_on = |kind: &str, category: &str| -> Vec<String> {
        granted
            .actions
            .iter()
            .find(|grant| {
                json!(grant.kind) == json!(kind) && json!(grant.category) == json!(category)
            })
            .map(|grant| {
                grant
                    .actions
                    .iter()
                    .map(|a| json!(a).as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(actions_on("work_order", "repair").contains(&"dispatch".to_owned()));
    assert!(
        !actions_on("coordination_ticket", "owner_communication").contains(&"dispatch".to_owned())
    );
    assert!(!granted.takes_reports);

    let technician = server.login("li").await;
    let granted: Permissions = server
        .get("/api/v1/permissions", Some(&technician))
        .await
        .ok();
    assert!(granted.actions.is_empty() && !granted.reads_estate);
    server
        .get("/api/v1/permissions", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
}

#[tokio::test]
async fn a_ticket_offers_what_the_role_may_do_in_its_state_and_the_same_action_then_applies() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let ticket: Ticket = record(&server, &agent, "窗户关不上", "9-3-201").await;
    let path = format!("/api/v1/tickets/{}/actions", ticket.id);
    let offered = |token: String| {
        let server = &server;
        let path = path.clone();
        async move { server.get(&path, Some(&token)).await.ok::<OfferedActions>() }
    };
    let dispatcher = server.login("diaodu").await;
    let before = offered(dispatcher.clone()).await;
    assert_eq!(before.version, ticket.version);
    assert!(before.actions.contains(&OfficeAction::Dispatch));
    assert!(
        !before.actions.contains(&OfficeAction::Close),
        "nothing to close yet"
    );
    assert!(
        !before.actions.contains(&OfficeAction::Reassign),
        "nobody to take it from"
    );
    // The agent who took it may not dispatch an engineering work order (R-D1).
    let by_agent = offered(agent.clone()).await;
    assert!(!by_agent.actions.contains(&OfficeAction::Dispatch));
    assert!(by_agent.actions.contains(&OfficeAction::Cancel));

    server
        .act(
            &dispatcher,
            &ticket.id,
            sync_protocol::OfficeOp::Dispatch {
                technician: sync_protocol::UserId::parse("li").unwrap(),
            },
        )
        .await;
    let after = offered(dispatcher.clone()).await;
    assert!(!after.actions.contains(&OfficeAction::Dispatch));
    assert!(after.actions.contains(&OfficeAction::Reassign));

    // A technician is offered nothing; another estate's ticket is not there.
    let technician = server.login("li").await;
    assert!(offered(technician).await.actions.is_empty());
    server
        .add_user_by_api("diaodu-e02", "dispatcher", "E02")
        .await;
    let elsewhere = server.login("diaodu-e02").await;
    server
        .get(&path, Some(&elsewhere))
        .await
        .error(StatusCode::NOT_FOUND, "ticket_not_found");
}
