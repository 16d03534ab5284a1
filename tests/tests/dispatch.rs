//! R-D3 over real HTTP: the dispatch queue puts owners' jobs before internal
//! ones (先业主后内部), and suggestions rank technicians by efficiency
//! (效率最高); both only for the roles that dispatch the ticket (R-D1).
//!
//! The demo estate starts with li holding 3-1-502 and 5-2-1101, zhang
//! `B2 水泵房`, wang 7-1-302, and one repair waiting at `2号楼大堂`.

mod common;

use chrono::{Duration, Utc};
use common::{TestServer, intake};
use reqwest::StatusCode;
use sync_protocol::{
    Category, DispatchQueue, DispatchSuggestions, Intake, OfficeOp, Priority, Source, Ticket,
    TicketId, TicketKind, UserId,
};

const QUEUE: &str = "/api/v1/dispatch-queue";

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn suggestions_path(ticket: &TicketId) -> String {
    format!("/api/v1/tickets/{ticket}/suggestions")
}

/// A report taken by the agent, received `minutes_ago`.
async fn report(server: &TestServer, source: Source, location: &str, minutes_ago: i64) -> Ticket {
    let kefu = server.login("kefu").await;
    let intake = Intake {
        source,
        location: location.to_owned(),
        received_at: Utc::now() - Duration::minutes(minutes_ago),
        ..intake()
    };
    server.create_ticket(&kefu, &intake).await
}

async fn queue_of(server: &TestServer, user: &str) -> DispatchQueue {
    let token = server.login(user).await;
    server.get(QUEUE, Some(&token)).await.ok()
}

fn queued_ids(queue: &DispatchQueue) -> Vec<TicketId> {
    queue
        .tickets
        .iter()
        .map(|entry| entry.ticket_id.clone())
        .collect()
}

/// The demo repair nobody has been sent to yet.
async fn demo_lobby_ticket(server: &TestServer) -> Ticket {
    server
        .estate_snapshot()
        .await
        .into_iter()
        .find(|ticket| ticket.location == "2号楼大堂")
        .expect("the demo has the lobby door report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d3_owners_jobs_come_before_a_self_inspection_job_in_the_queue_even_when_it_is_older() {
    let server = TestServer::start();
    let inspection = report(&server, Source::SelfInspection, "B1 车库", 60).await;
    let phone = report(&server, Source::Phone, "3-2-601", 10).await;
    let lobby = demo_lobby_ticket(&server).await;

    let queue = queue_of(&server, "diaodu").await;
    assert_eq!(
        queued_ids(&queue),
        [phone.id.clone(), lobby.id, inspection.id.clone()],
        "owners' jobs first, the oldest of them first; the internal job last: {queue:?}"
    );
    let priorities: Vec<Priority> = queue.tickets.iter().map(|e| e.priority).collect();
    assert_eq!(
        priorities,
        [Priority::Owner, Priority::Owner, Priority::Internal]
    );
    assert_eq!(queue.waiting, 3);
    assert_eq!(queue.tickets[0].version, phone.version);

    // Once dispatched, a ticket no longer waits.
    let diaodu = server.login("diaodu").await;
    let dispatch = OfficeOp::Dispatch {
        technician: user("wang"),
    };
    server.act(&diaodu, &phone.id, dispatch).await;
    let queue = queue_of(&server, "diaodu").await;
    assert!(!queued_ids(&queue).contains(&phone.id), "{queue:?}");
    assert_eq!(queue.tickets.last().unwrap().ticket_id, inspection.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d1_r_d3_each_role_queues_only_the_tickets_it_dispatches() {
    let server = TestServer::start();
    let kefu = server.login("kefu").await;
    let environment = Intake {
        category: Category::Environment,
        location: "3号楼 门厅".to_owned(),
        description: "门厅地面有积水 water on the hall floor".to_owned(),
        ..intake()
    };
    let environment = server.create_ticket(&kefu, &environment).await;
    let verbal = Intake {
        kind: TicketKind::VerbalDispatch,
        category: Category::Security,
        location: "东门".to_owned(),
        description: "访客车辆放行 let a visitor's car in".to_owned(),
        ..intake()
    };
    let verbal = server.create_ticket(&kefu, &verbal).await;
    let lobby = demo_lobby_ticket(&server).await;

    let dispatcher = queue_of(&server, "diaodu").await;
    assert_eq!(queued_ids(&dispatcher), [lobby.id]);
    let environment_manager = queue_of(&server, "huanjing").await;
    assert_eq!(queued_ids(&environment_manager), [environment.id]);
    // A verbal dispatch goes out by radio (R-K1): it never waits in a queue.
    let agent = queue_of(&server, "kefu").await;
    assert!(!queued_ids(&agent).contains(&verbal.id), "{agent:?}");
    assert_eq!(agent.waiting, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d3_suggestions_for_a_job_in_building_3_rank_the_lightest_load_first_then_jobs_in_building_3()
 {
    let server = TestServer::start();
    let diaodu = server.login("diaodu").await;
    // li's job in building 3 goes to zhang, and li gets one in building 6:
    // li holds 5-2-1101 and 6-1-101, zhang `B2 水泵房` and 3-1-502, wang 7-1-302.
    let in_building_3 = server
        .tickets_of("li")
        .await
        .into_iter()
        .find(|ticket| ticket.location == "3-1-502")
        .expect("the demo gave li 3-1-502");
    let reassign = OfficeOp::Reassign {
        technician: user("zhang"),
        reason: "zhang is on that side of the estate 张师傅在附近".to_owned(),
    };
    server.act(&diaodu, &in_building_3.id, reassign).await;
    let elsewhere = report(&server, Source::Phone, "6-1-101", 3).await;
    let dispatch = OfficeOp::Dispatch {
        technician: user("li"),
    };
    server.act(&diaodu, &elsewhere.id, dispatch).await;

    let new_job = report(&server, Source::Phone, "3-2-601", 1).await;
    let answer: DispatchSuggestions = server
        .get(&suggestions_path(&new_job.id), Some(&diaodu))
        .await
        .ok();
    assert_eq!(answer.ticket_id, new_job.id);
    assert_eq!(answer.building.as_deref(), Some("3"));
    let ranking: Vec<(u32, &str, u32, u32)> = answer
        .suggestions
        .iter()
        .map(|s| {
            let who = s.technician.as_str();
            (s.rank, who, s.open_load, s.same_building_jobs)
        })
        .collect();
    assert_eq!(
        ranking,
        [(1, "wang", 1, 0), (2, "zhang", 2, 1), (3, "li", 2, 0)],
        "fewest open tickets first; among equal loads, the one already in building 3"
    );
    for suggestion in &answer.suggestions {
        assert!(!suggestion.display_name.is_empty(), "{suggestion:?}");
        assert!(!suggestion.reason.en.is_empty(), "{suggestion:?}");
        assert!(!suggestion.reason.zh_cn.is_empty(), "{suggestion:?}");
    }
    assert!(answer.suggestions[1].reason.en.contains("building 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d3_a_technician_gets_403_for_the_queue_and_for_suggestions() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let own = server.tickets_of("li").await.remove(0);
    server
        .get(QUEUE, Some(&li))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    server
        .get(&suggestions_path(&own.id), Some(&li))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    // Roles that dispatch nothing have no queue either.
    for role in ["zhuguan", "kefu-jingli", "banzhang"] {
        let token = server.login(role).await;
        server
            .get(QUEUE, Some(&token))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    server
        .get(QUEUE, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "missing_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d1_r_d3_the_dispatcher_gets_403_for_an_environment_tickets_suggestions() {
    let server = TestServer::start();
    let kefu = server.login("kefu").await;
    let environment = Intake {
        category: Category::Environment,
        location: "3-1 绿化带".to_owned(),
        description: "草坪需修剪 the lawn needs mowing".to_owned(),
        ..intake()
    };
    let environment = server.create_ticket(&kefu, &environment).await;
    let path = suggestions_path(&environment.id);
    let diaodu = server.login("diaodu").await;
    let refusal = server
        .get(&path, Some(&diaodu))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    assert!(refusal.message.contains("R-D1"), "{refusal:?}");
    // The environment manager dispatches it, so she gets the ranking.
    let huanjing = server.login("huanjing").await;
    let answer: DispatchSuggestions = server.get(&path, Some(&huanjing)).await.ok();
    assert_eq!(answer.suggestions.len(), 3, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_d3_a_cancelled_ticket_gets_no_suggestions_and_an_unknown_one_is_not_found() {
    let server = TestServer::start();
    let kefu = server.login("kefu").await;
    let diaodu = server.login("diaodu").await;
    let lobby = demo_lobby_ticket(&server).await;
    let cancel = OfficeOp::Cancel {
        reason: "the door was fixed by the supplier 厂家已修好".to_owned(),
    };
    server.act(&kefu, &lobby.id, cancel).await;
    server
        .get(&suggestions_path(&lobby.id), Some(&diaodu))
        .await
        .error(StatusCode::CONFLICT, "transition_not_allowed");
    server
        .get("/api/v1/tickets/tk99999999/suggestions", Some(&diaodu))
        .await
        .error(StatusCode::NOT_FOUND, "ticket_not_found");
}
