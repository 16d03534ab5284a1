//! The pull feed: pages with `has_more` and `next_cursor`, resumes from a
//! saved cursor, and shows a technician their own tickets only.

mod common;

use std::collections::BTreeSet;

use common::{TestServer, device_id, intake};
use sync_protocol::{Change, Cursor, DeviceId, OfficeOp, RevokeReason, Ticket, TicketId, UserId};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// Every page from `cursor` on: the changes, the final cursor, the page count.
async fn pull_all(
    server: &TestServer,
    token: &str,
    device: &DeviceId,
    mut cursor: Cursor,
    limit: u32,
) -> (Vec<Change>, Cursor, usize) {
    let mut changes = Vec::new();
    let mut pages = 0;
    loop {
        let page = server.pull_page(token, device, cursor, Some(limit)).await;
        pages += 1;
        assert!(page.changes.len() <= limit as usize, "{page:?}");
        for change in &page.changes {
            assert!(change.cursor() > cursor, "cursors only grow: {page:?}");
            cursor = change.cursor();
        }
        if page.has_more {
            assert_eq!(
                Some(page.next_cursor),
                page.changes.last().map(Change::cursor),
                "a partial page resumes after its last change"
            );
        }
        assert!(page.next_cursor >= cursor);
        cursor = page.next_cursor;
        changes.extend(page.changes);
        if !page.has_more {
            return (changes, cursor, pages);
        }
        assert!(pages < 100, "the feed never ends");
    }
}

fn upserted_ids(changes: &[Change]) -> Vec<TicketId> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Upsert { ticket, .. } => Some(ticket.id.clone()),
            Change::Revoked { .. } => None,
        })
        .collect()
}

fn ids(tickets: &[Ticket]) -> BTreeSet<TicketId> {
    tickets.iter().map(|ticket| ticket.id.clone()).collect()
}

/// Give li a third and a fourth ticket: the undispatched demo one and a new one.
async fn four_tickets_for_li(server: &TestServer) -> Vec<Ticket> {
    let dispatcher = server.login("diaodu").await;
    let agent = server.login("kefu").await;
    let created = server.create_ticket(&agent, &intake()).await;
    let undispatched: Vec<Ticket> = server
        .estate_snapshot()
        .await
        .into_iter()
        .filter(|ticket| ticket.assigned_technician.is_none())
        .collect();
    assert_eq!(
        undispatched.len(),
        2,
        "the demo's lobby door and the new one"
    );
    assert!(undispatched.iter().any(|ticket| ticket.id == created.id));
    for ticket in &undispatched {
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        server.act(&dispatcher, &ticket.id, dispatch).await;
    }
    let tickets = server.tickets_of("li").await;
    assert_eq!(tickets.len(), 4);
    tickets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_with_limit_two_pages_through_every_ticket_and_then_has_nothing_new() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let tickets = four_tickets_for_li(&server).await;
    let handheld = device_id("hh-li-paging");

    let (changes, cursor, pages) = pull_all(&server, &li, &handheld, Cursor(0), 2).await;
    assert_eq!(pages, 2, "four tickets, two per page");
    let pulled = upserted_ids(&changes);
    assert_eq!(pulled.len(), 4, "each ticket once: {pulled:?}");
    assert_eq!(
        pulled.iter().cloned().collect::<BTreeSet<_>>(),
        ids(&tickets)
    );
    for change in &changes {
        let Change::Upsert { ticket, .. } = change else {
            panic!("nothing was taken from li yet: {change:?}");
        };
        let current = tickets.iter().find(|t| t.id == ticket.id).unwrap();
        assert_eq!(**ticket, *current, "the ticket as it is now");
    }

    let again = server.pull_page(&li, &handheld, cursor, Some(2)).await;
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert!(!again.has_more);
    assert_eq!(again.next_cursor, cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_later_shows_up_from_the_saved_cursor() {
    let server = TestServer::start();
    let li = server.login("li").await;
    let agent = server.login("kefu").await;
    let dispatcher = server.login("diaodu").await;
    let tickets = four_tickets_for_li(&server).await;
    let handheld = device_id("hh-li-resume");
    let (_, saved, _) = pull_all(&server, &li, &handheld, Cursor(0), 2).await;

    let noted = server
        .act(
            &agent,
            &tickets[2].id,
            OfficeOp::AddNote {
                text: "bring a ladder 带梯子".to_owned(),
            },
        )
        .await;
    let (changes, saved, _) = pull_all(&server, &li, &handheld, saved, 2).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let Change::Upsert { ticket, .. } = &changes[0] else {
        panic!("expected the noted ticket: {changes:?}");
    };
    assert_eq!(**ticket, noted);

    // Taking a ticket away shows up the same way, as a revocation.
    let reassign = OfficeOp::Reassign {
        technician: user("wang"),
        reason: "wang is closer".to_owned(),
    };
    server.act(&dispatcher, &tickets[0].id, reassign).await;
    let (changes, saved, _) = pull_all(&server, &li, &handheld, saved, 2).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(matches!(
        &changes[0],
        Change::Revoked { ticket_id, reason: RevokeReason::Reassigned, .. }
            if *ticket_id == tickets[0].id
    ));
    let (nothing, _, _) = pull_all(&server, &li, &handheld, saved, 2).await;
    assert!(nothing.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_never_sees_another_technicians_tickets() {
    let server = TestServer::start();
    let dispatcher = server.login("diaodu").await;
    let estate = server.estate_snapshot().await;
    assert_eq!(estate.len(), 5, "the demo estate's five tickets");

    let check = |name: &'static str, estate: Vec<Ticket>| {
        let server = &server;
        async move {
            let token = server.login(name).await;
            let own: BTreeSet<TicketId> = estate
                .iter()
                .filter(|ticket| ticket.assigned_technician == Some(user(name)))
                .map(|ticket| ticket.id.clone())
                .collect();
            let device = device_id(&format!("hh-{name}-visibility"));
            let (changes, _, _) = pull_all(server, &token, &device, Cursor(0), 1).await;
            for change in &changes {
                if let Change::Upsert { ticket, .. } = change {
                    assert_eq!(ticket.assigned_technician, Some(user(name)), "{name}");
                }
            }
            let pulled: BTreeSet<TicketId> = upserted_ids(&changes).into_iter().collect();
            assert_eq!(pulled, own, "{name} pulls exactly their own tickets");
            let listed = server.list_tickets(&token).await;
            assert_eq!(ids(&listed), own, "{name} lists exactly their own tickets");
            own
        }
    };
    let li_own = check("li", estate.clone()).await;
    assert_eq!(li_own.len(), 2);
    assert_eq!(check("zhang", estate.clone()).await.len(), 1);
    assert_eq!(check("wang", estate.clone()).await.len(), 1);

    // Once a ticket is handed from li to zhang, it moves between their views.
    let moved = li_own.first().unwrap().clone();
    let reassign = OfficeOp::Reassign {
        technician: user("zhang"),
        reason: "li went home ill".to_owned(),
    };
    server.act(&dispatcher, &moved, reassign).await;
    let estate = server.estate_snapshot().await;
    let li_now = check("li", estate.clone()).await;
    assert!(!li_now.contains(&moved));
    assert!(check("zhang", estate).await.contains(&moved));
}
