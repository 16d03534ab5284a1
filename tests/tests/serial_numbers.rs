//! R-A1 over real HTTP: every work order and coordination ticket gets a
//! serial number, unique per estate, kind and month, never skipped — also
//! when many reports arrive at once — and never reused after a crash.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{TestServer, intake};
use sync_protocol::{Category, Intake, SerialNumber, SerialSeries, Ticket, TicketKind};
use tokio::task::JoinSet;

/// How many reports customer service records at the same moment.
const CONCURRENT_INTAKES: usize = 50;

/// The estate's serial numbers, grouped by series, each series sorted.
fn numbers_by_series(tickets: &[Ticket]) -> BTreeMap<SerialSeries, Vec<u64>> {
    let mut series: BTreeMap<SerialSeries, Vec<u64>> = BTreeMap::new();
    for number in tickets
        .iter()
        .filter_map(|ticket| ticket.serial_number.as_ref())
    {
        series
            .entry(number.series().clone())
            .or_default()
            .push(number.sequence());
    }
    for sequences in series.values_mut() {
        sequences.sort_unstable();
    }
    series
}

/// R-A1 itself: each series holds exactly 1, 2, …, n.
fn assert_every_series_runs_from_one_without_gaps(tickets: &[Ticket]) {
    for (series, sequences) in numbers_by_series(tickets) {
        let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(sequences, expected, "series {series} has a gap or a repeat");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r_a1_concurrent_intakes_get_distinct_consecutive_numbers_never_reused_after_a_crash() {
    let server = Arc::new(TestServer::start());
    let agent = server.login("kefu").await;
    let before = numbers_by_series(&server.estate_snapshot().await);

    // Each intake on its own task, so that they truly race on the runtime's
    // threads and reach the writer together.
    let mut intakes = JoinSet::new();
    for _ in 0..CONCURRENT_INTAKES {
        let (server, agent) = (server.clone(), agent.clone());
        intakes.spawn(async move { server.create_ticket(&agent, &intake()).await });
    }
    let created: Vec<Ticket> = intakes.join_all().await;
    let mut server = Arc::into_inner(server).expect("every intake task has finished");

    let mut fresh: BTreeMap<SerialSeries, Vec<u64>> = BTreeMap::new();
    for ticket in &created {
        let number = ticket
            .serial_number
            .as_ref()
            .unwrap_or_else(|| panic!("work order {} has no serial number", ticket.id));
        fresh
            .entry(number.series().clone())
            .or_default()
            .push(number.sequence());
    }
    // Normally one series (this month's work orders of E01); two if the
    // month turned in Shanghai while the test ran.
    let mut total = 0;
    for (series, sequences) in &mut fresh {
        sequences.sort_unstable();
        let last_before = before
            .get(series)
            .and_then(|numbers| numbers.last())
            .copied()
            .unwrap_or(0);
        let expected: Vec<u64> = (last_before + 1..=last_before + sequences.len() as u64).collect();
        assert_eq!(
            *sequences, expected,
            "the intakes continue series {series} without a gap or a repeat"
        );
        total += sequences.len();
    }
    assert_eq!(total, CONCURRENT_INTAKES, "every intake has its own number");
    let estate = server.estate_snapshot().await;
    assert_every_series_runs_from_one_without_gaps(&estate);

    server.kill_hard();
    server.restart();

    let agent = server.login("kefu").await;
    let after_crash = server.create_ticket(&agent, &intake()).await;
    let number: &SerialNumber = after_crash
        .serial_number
        .as_ref()
        .expect("a work order is numbered");
    let last_acknowledged = created
        .iter()
        .filter_map(|ticket| ticket.serial_number.clone())
        .max()
        .expect("numbers were handed out");
    if number.series() == last_acknowledged.series() {
        assert_eq!(
            number.sequence(),
            last_acknowledged.sequence() + 1,
            "{number} continues after {last_acknowledged}"
        );
    } else {
        // The month turned in Shanghai meanwhile: a new series starts at 1.
        assert!(
            number > &last_acknowledged,
            "{number} after {last_acknowledged}"
        );
        assert_eq!(number.sequence(), 1);
    }
    let estate = server.estate_snapshot().await;
    assert_every_series_runs_from_one_without_gaps(&estate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a1_a_verbal_dispatch_has_no_serial_number_and_takes_none_from_work_orders() {
    let server = TestServer::start();
    let agent = server.login("kefu").await;
    let before = server.create_ticket(&agent, &intake()).await;
    let verbal = Intake {
        kind: TicketKind::VerbalDispatch,
        category: Category::Security,
        description: "访客车辆放行 let a visitor's car through the gate".to_owned(),
        ..intake()
    };
    let dispatched = server.create_ticket(&agent, &verbal).await;
    assert_eq!(dispatched.serial_number, None);
    let after = server.create_ticket(&agent, &intake()).await;
    let (before, after) = (
        before.serial_number.expect("numbered"),
        after.serial_number.expect("numbered"),
    );
    if before.series() == after.series() {
        assert_eq!(after.sequence(), before.sequence() + 1);
    }
}
