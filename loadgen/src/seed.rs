//! Seeding: users and dispatched tickets written straight into the sled
//! directory before the server starts, so that no measured phase pays for it.
//!
//! Tickets are real: made by `create_ticket` and dispatched by
//! `apply_office_op`, staged with their indexes and feed entries by
//! `Store::stage_ticket`, exactly as the writer would. Unlike the writer, the
//! seeder applies thousands of tickets per atomic group and flushes once.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use server::store::{Changes, Store, StoreError, UserRecord};
use sync_protocol::{
    Area, Category, EstateId, Intake, OfficeOp, Reporter, Role, Source, Ticket, TicketId,
    TicketKind, UserId, WorkflowError, WorkingCalendar, apply_office_op, create_ticket,
};

/// The estate every seeded user and ticket belongs to.
pub const ESTATE: &str = "E01";
/// The customer-service agent who recorded every seeded ticket.
pub const AGENT: &str = "kefu";
/// The dispatcher who dispatched them.
pub const DISPATCHER: &str = "diaodu";
/// An office user whose token reads the device list during verification.
pub const SUPERVISOR: &str = "zhuguan";
/// Stored instead of an argon2 hash: it never verifies, so nobody can log in
/// as a seeded user. The load generator mints its tokens itself.
const NO_PASSWORD: &str = "!";
/// Tickets per atomic group; big groups and a single flush make seeding fast.
const TICKETS_PER_GROUP: usize = 2_000;

/// Who gets how many tickets.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Technicians whose devices take part in the benchmark.
    pub technicians: usize,
    pub tickets_per_technician: usize,
    /// Tickets in the store; those beyond `technicians * tickets_per_technician`
    /// go to other technicians, `tickets_per_technician` each.
    pub tickets_total: usize,
}

impl Plan {
    pub fn benchmark_tickets(&self) -> usize {
        self.technicians * self.tickets_per_technician
    }

    pub fn other_tickets(&self) -> usize {
        self.tickets_total - self.benchmark_tickets()
    }

    pub fn other_technicians(&self) -> usize {
        self.other_tickets().div_ceil(self.tickets_per_technician)
    }

    /// The technician of every ticket, in ticket-number order. Assignment is
    /// round-robin over all technicians, so that a benchmark technician's
    /// tickets are spread over the whole key space, as they would be when
    /// tickets arrive over time, rather than sitting together.
    fn assignments(&self) -> impl Iterator<Item = UserId> + '_ {
        let technicians_total = self.technicians + self.other_technicians();
        (0..self.tickets_per_technician).flat_map(move |round| {
            (0..technicians_total).filter_map(move |index| {
                if index < self.technicians {
                    return Some(technician_id(index));
                }
                let other = index - self.technicians;
                (other * self.tickets_per_technician + round < self.other_tickets())
                    .then(|| other_technician_id(other))
            })
        })
    }
}

/// What seeding did.
#[derive(Clone, Copy, Debug)]
pub struct Seeded {
    pub tickets: usize,
    pub users: usize,
    pub elapsed: Duration,
}

#[derive(Debug)]
pub enum SeedError {
    Store(StoreError),
    Workflow(WorkflowError),
    /// Seeding only fills a fresh directory, so that runs stay comparable.
    NotEmpty,
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeedError::Store(error) => write!(f, "store: {error}"),
            SeedError::Workflow(error) => write!(f, "ticket rules: {error}"),
            SeedError::NotEmpty => f.write_str("the data directory already holds tickets"),
        }
    }
}

impl std::error::Error for SeedError {}

impl From<StoreError> for SeedError {
    fn from(error: StoreError) -> Self {
        SeedError::Store(error)
    }
}

impl From<WorkflowError> for SeedError {
    fn from(error: WorkflowError) -> Self {
        SeedError::Workflow(error)
    }
}

pub fn technician_id(index: usize) -> UserId {
    UserId::parse(&format!("tech-{index:05}")).expect("generated user ids are valid")
}

pub fn other_technician_id(index: usize) -> UserId {
    UserId::parse(&format!("other-{index:06}")).expect("generated user ids are valid")
}

pub fn estate() -> EstateId {
    EstateId::parse(ESTATE).expect("the estate code is valid")
}

/// A user record that no password opens; see [`NO_PASSWORD`].
pub fn user_record(id: UserId, role: Role, display_name: String) -> UserRecord {
    UserRecord {
        id,
        role,
        estate: estate(),
        display_name,
        password_hash: NO_PASSWORD.to_owned(),
        disabled: false,
        generation: 0,
    }
}

/// Fill a fresh sled directory with the plan's users and dispatched tickets,
/// flush once, and close it.
pub fn seed(data_dir: &Path, plan: &Plan, now: DateTime<Utc>) -> Result<Seeded, SeedError> {
    let started = Instant::now();
    let store = Store::open(data_dir)?;
    let mut counters = store.counters()?;
    if counters.tickets > 0 {
        return Err(SeedError::NotEmpty);
    }

    let users = seed_users(&store, plan)?;
    let agent = UserId::parse(AGENT).expect("valid");
    let dispatcher = UserId::parse(DISPATCHER).expect("valid");
    let mut changes = Changes::default();
    let mut in_group = 0;
    for technician in plan.assignments() {
        counters.tickets += 1;
        let ticket = dispatched_ticket(counters.tickets, technician, &agent, &dispatcher, now)?;
        store.stage_ticket(&mut changes, &mut counters, None, &ticket)?;
        in_group += 1;
        if in_group == TICKETS_PER_GROUP {
            changes.put_ticket_counter(&counters);
            store.apply(std::mem::take(&mut changes))?;
            in_group = 0;
        }
    }
    changes.put_ticket_counter(&counters);
    store.apply(changes)?;
    store.flush()?;
    Ok(Seeded {
        tickets: counters.tickets as usize,
        users,
        elapsed: started.elapsed(),
    })
}

/// Supervisor `index` of [`add_supervisors`].
pub fn supervisor_id(index: usize) -> UserId {
    UserId::parse(&format!("zhuguan-{index:04}")).expect("a valid id")
}

/// Add `count` supervisors (`zhuguan-0000` …) to a seeded directory: one per
/// dashboard, as a supervisor keeps only a few streams open.
pub fn add_supervisors(data_dir: &Path, count: usize) -> Result<(), SeedError> {
    let store = Store::open(data_dir)?;
    let mut changes = Changes::default();
    for index in 0..count {
        let name = format!("主管 {index}");
        changes.put_user(&user_record(supervisor_id(index), Role::Supervisor, name));
    }
    store.apply(changes)?;
    store.flush()?;
    Ok(())
}

fn seed_users(store: &Store, plan: &Plan) -> Result<usize, SeedError> {
    let office = [
        (AGENT, Role::CustomerServiceAgent, "客服 陈静 Chen Jing"),
        (DISPATCHER, Role::Dispatcher, "工程调度 孙强 Sun Qiang"),
        (SUPERVISOR, Role::Supervisor, "主管 郑伟 Zheng Wei"),
    ];
    let mut changes = Changes::default();
    let mut users = 0;
    for (login, role, name) in office {
        let id = UserId::parse(login).expect("valid");
        changes.put_user(&user_record(id, role, name.to_owned()));
        users += 1;
    }
    let benchmark = (0..plan.technicians).map(technician_id);
    let others = (0..plan.other_technicians()).map(other_technician_id);
    for id in benchmark.chain(others) {
        let name = format!("维修 {id}");
        changes.put_user(&user_record(id, Role::Technician, name));
        users += 1;
    }
    store.apply(changes)?;
    Ok(users)
}

/// The report of ticket number `number`: a kitchen leak in a flat whose
/// building, unit and room follow from the number.
pub fn repair_report(number: u64, received_at: DateTime<Utc>) -> Intake {
    let building = number % 30 + 1;
    let unit = number % 4 + 1;
    let room = 100 * (number % 28 + 1) + number % 4 + 1;
    Intake {
        estate: estate(),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: format!("业主 {building}-{unit}-{room}"),
            phone: Some(format!("138 0000 {:04}", number % 10_000)),
        },
        location: format!("{building}-{unit}-{room}"),
        description: format!(
            "厨房水管漏水 kitchen pipe leaking under the sink, ticket {number}; owner home after 9:00"
        ),
        received_at,
        follow_up_of: None,
        booking: None,
    }
}

/// Ticket number `number`, recorded an hour ago and dispatched to `technician`.
fn dispatched_ticket(
    number: u64,
    technician: UserId,
    agent: &UserId,
    dispatcher: &UserId,
    now: DateTime<Utc>,
) -> Result<Ticket, WorkflowError> {
    // The writer's own id format, so seeded tickets look like served ones.
    let id = TicketId::parse(&format!("tk{number:08}")).expect("generated ticket ids are valid");
    let intake = repair_report(number, now - chrono::Duration::minutes(3));
    // Only a booking's dates depend on the estate's calendar, and a repair is none.
    let calendar = WorkingCalendar::default();
    let received = create_ticket(
        id,
        intake,
        agent.clone(),
        &calendar,
        now - chrono::Duration::minutes(3),
    )?;
    let dispatch = OfficeOp::Dispatch { technician };
    // Dispatched a moment ago, so that no R-P1 arrival deadline (15 minutes)
    // passes during a run: the server's scheduler would record it on the
    // ticket, and the run checks exact ticket versions.
    apply_office_op(
        &received,
        &dispatch,
        dispatcher,
        &calendar,
        now - chrono::Duration::minutes(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn count_by_technician(plan: &Plan) -> BTreeMap<UserId, usize> {
        let mut counts = BTreeMap::new();
        for technician in plan.assignments() {
            *counts.entry(technician).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn every_benchmark_technician_gets_exactly_their_tickets_and_the_total_is_exact() {
        let plan = Plan {
            technicians: 7,
            tickets_per_technician: 4,
            tickets_total: 7 * 4 + 10,
        };
        let counts = count_by_technician(&plan);
        assert_eq!(counts.values().sum::<usize>(), plan.tickets_total);
        for index in 0..plan.technicians {
            assert_eq!(counts[&technician_id(index)], 4);
        }
        assert_eq!(plan.other_technicians(), 3);
        assert_eq!(counts[&other_technician_id(2)], 2);
    }

    #[test]
    fn a_benchmark_technicians_tickets_are_spread_over_the_numbers() {
        let plan = Plan {
            technicians: 2,
            tickets_per_technician: 3,
            tickets_total: 12,
        };
        let first: Vec<usize> = plan
            .assignments()
            .enumerate()
            .filter(|(_, technician)| *technician == technician_id(0))
            .map(|(number, _)| number)
            .collect();
        assert_eq!(first, [0, 4, 8]);
    }

    #[test]
    fn seeded_tickets_are_dispatched_and_fed_to_their_technician() {
        let directory = tempfile::tempdir().unwrap();
        let plan = Plan {
            technicians: 3,
            tickets_per_technician: 2,
            tickets_total: 10,
        };
        let seeded = seed(&directory.path().join("data"), &plan, Utc::now()).unwrap();
        assert_eq!(seeded.tickets, 10);
        assert_eq!(seeded.users, 3 + 3 + 2);
        let store = Store::open(&directory.path().join("data")).unwrap();
        let mine = store
            .assigned_tickets(&technician_id(1), None, 100)
            .unwrap();
        assert_eq!(mine.len(), 2);
        assert!(
            mine.iter()
                .all(|t| t.status == sync_protocol::Status::Dispatched)
        );
        let up_to = sync_protocol::Cursor(store.counters().unwrap().feed);
        let feed = store
            .feed(&technician_id(1), sync_protocol::Cursor(0), up_to, 100)
            .unwrap();
        assert_eq!(feed.len(), 2);
        drop(store);
        assert!(matches!(
            seed(&directory.path().join("data"), &plan, Utc::now()),
            Err(SeedError::NotEmpty)
        ));
    }
}
