//! The time-rule scheduler: one background task that holds every open
//! deadline of every ticket in a `BTreeSet` ordered by due time, sleeps until
//! the earliest one has passed by the injected [`Clock`], and then asks the
//! writer to record `deadline_missed { rule, due_at }` on the ticket (R-P1,
//! R-P2, R-K2, R-C2, R-C1, R-P3, R-P4, R-P5, R-F1; for R-P1 the flag that
//! customer service must book an appointment). The core
//! (`sync_protocol::due`) decides which deadlines a ticket has, in its
//! estate's working calendar ([`Calendars`]), and records a miss at most
//! once per (rule, due_at), so a fire that races with the ticket's own
//! change is harmless.
//!
//! The set is filled at start from every ticket in the store and kept up to
//! date by the writer, which reports the tickets each flushed group changed
//! over a bounded channel ([`TicketChanges`]); when that channel is full the
//! scheduler rescans the store instead. Changes wake the task early through a
//! `Notify`. Store reads (sled blocks, and a scan takes seconds) run on
//! tokio's blocking pool, never on the task itself (on the task only in a
//! simulation, [`Execution::Inline`]). Deadlines that pass
//! together (every same-day work order at the end of the day) are submitted
//! together, so that they share the writer's group commits. Modelled on
//! mini-redis's expiry task.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sync_protocol::due::deadline_miss_recorded;
use sync_protocol::{LiveEventBody, RuleId, Ticket, TicketId, ticket_deadlines};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::calendars::Calendars;
use crate::clock::Clock;
use crate::execution::Execution;
use crate::live::LiveHub;
use crate::store::{Store, StoreError};
use crate::writer::{Command, Reply, WriteError, Writer};

/// Changed-ticket notices the writer may queue before the scheduler rescans.
pub const CHANGE_QUEUE: usize = 4096;
/// Tickets read per page when scanning the store.
const SCAN_PAGE: usize = 1000;
/// Most `deadline_missed` commands waiting for the writer at once: enough to
/// fill its largest commit group, few enough to leave room for requests.
const MAX_FIRING: usize = 512;

/// Why the scheduler could not load the open deadlines.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the store on a blocking thread failed: {0}")]
    BlockingRead(String),
}

/// The writer's side: tells the scheduler which tickets changed. Never blocks
/// the writer: a full queue only makes the scheduler rescan.
#[derive(Clone)]
pub struct TicketChanges {
    sender: mpsc::Sender<TicketId>,
    shared: Arc<Shared>,
}

impl TicketChanges {
    pub fn changed(&self, tickets: Vec<TicketId>) {
        if tickets.is_empty() {
            return;
        }
        for ticket in tickets {
            if self.sender.try_send(ticket).is_err() {
                self.shared.overflowed.store(true, Ordering::Release);
                break;
            }
        }
        self.shared.wake.notify_one();
    }
}

struct Shared {
    wake: Notify,
    overflowed: AtomicBool,
    stop: Notify,
    stopping: AtomicBool,
    /// Passes of the loop so far (each: take changes, fire what is due).
    passes: AtomicU64,
    /// `deadline_missed` commands the writer has answered.
    fired: AtomicU64,
    /// Deadlines held at the end of the last pass.
    pending: AtomicU64,
}

/// The scheduler's receiving end, before its task starts: create it first,
/// give [`Scheduler::notices`] to the writer, then [`Scheduler::start`].
pub struct Scheduler {
    receiver: mpsc::Receiver<TicketId>,
    notices: TicketChanges,
    execution: Execution,
    live: Option<LiveHub>,
}

/// The running task's owner: stop it with [`SchedulerHandle::stop`].
pub struct SchedulerHandle {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    pub fn new() -> Self {
        Self::with_execution(Execution::Threads)
    }

    /// A scheduler whose store reads run as `execution` says.
    pub fn with_execution(execution: Execution) -> Self {
        let (sender, receiver) = mpsc::channel(CHANGE_QUEUE);
        let shared = Arc::new(Shared {
            wake: Notify::new(),
            overflowed: AtomicBool::new(false),
            stop: Notify::new(),
            stopping: AtomicBool::new(false),
            passes: AtomicU64::new(0),
            fired: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        });
        Self {
            receiver,
            notices: TicketChanges { sender, shared },
            execution,
            live: None,
        }
    }

    /// Publish each missed deadline it records on the supervisors' live feed.
    pub fn publishing_to(mut self, live: LiveHub) -> Self {
        self.live = Some(live);
        self
    }

    pub fn notices(&self) -> TicketChanges {
        self.notices.clone()
    }

    /// Load every open deadline from the store and start the task.
    pub async fn start(
        self,
        store: Store,
        writer: Writer,
        clock: Arc<dyn Clock>,
        calendars: Calendars,
    ) -> Result<SchedulerHandle, SchedulerError> {
        let shared = self.notices.shared.clone();
        let execution = self.execution;
        let timers = {
            let (store, calendars) = (store.clone(), calendars.clone());
            read_blocking(execution, move || Timers::scan(&store, &calendars)).await?
        };
        shared.pending.store(timers.len() as u64, Ordering::Release);
        let task = SchedulerTask {
            store,
            writer,
            clock,
            calendars,
            execution,
            receiver: self.receiver,
            shared: shared.clone(),
            timers,
            live: self.live,
        };
        let task = tokio::spawn(task.run());
        Ok(SchedulerHandle { shared, task })
    }
}

impl SchedulerHandle {
    /// Stop the task and wait for it; it lets go of its writer handle.
    pub async fn stop(self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the scheduler task failed");
        }
    }

    /// Passes of the scheduler's loop so far; for tests that wait for it.
    pub fn passes(&self) -> u64 {
        self.shared.passes.load(Ordering::Acquire)
    }

    /// `deadline_missed` commands answered so far.
    pub fn fired(&self) -> u64 {
        self.shared.fired.load(Ordering::Acquire)
    }

    /// Open deadlines held at the end of the last pass (each (ticket, rule,
    /// due time) once).
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Acquire)
    }
}

/// One pending deadline: when it is due, whose, and which rule. Two duties
/// of one rule due at the same instant (R-P4's check and reply) are one
/// timer, as the core records one miss per (rule, due_at).
type Timer = (DateTime<Utc>, TicketId, RuleId);

/// The pending deadlines, by due time and by ticket.
#[derive(Default)]
struct Timers {
    by_due: BTreeSet<Timer>,
    by_ticket: HashMap<TicketId, Vec<(DateTime<Utc>, RuleId)>>,
}

impl Timers {
    /// Every ticket's open deadlines, a page of the store at a time.
    fn scan(store: &Store, calendars: &Calendars) -> Result<Self, StoreError> {
        let mut timers = Self::default();
        let mut after: Option<TicketId> = None;
        loop {
            let page = store.all_tickets(after.as_ref(), SCAN_PAGE)?;
            for ticket in &page {
                timers.replace(ticket.id.clone(), pending_deadlines(ticket, calendars));
            }
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE => after = Some(last.id.clone()),
                _ => return Ok(timers),
            }
        }
    }

    /// Hold `pending` for the ticket instead of what was held for it.
    fn replace(&mut self, id: TicketId, pending: Vec<(DateTime<Utc>, RuleId)>) {
        for (due_at, rule) in self.by_ticket.remove(&id).unwrap_or_default() {
            self.by_due.remove(&(due_at, id.clone(), rule));
        }
        if pending.is_empty() {
            return;
        }
        for (due_at, rule) in &pending {
            self.by_due.insert((*due_at, id.clone(), *rule));
        }
        self.by_ticket.insert(id, pending);
    }

    /// The earliest deadline, if it has passed at `now`. The ticket keeps
    /// its entry until the writer's notice of the recorded miss refreshes it.
    fn pop_passed(&mut self, now: DateTime<Utc>) -> Option<Timer> {
        let first = self.by_due.first()?;
        if now <= first.0 {
            return None;
        }
        self.by_due.pop_first()
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.by_due.first().map(|timer| timer.0)
    }

    fn len(&self) -> usize {
        self.by_due.len()
    }
}

/// The ticket's open deadlines whose miss is not recorded yet.
fn pending_deadlines(ticket: &Ticket, calendars: &Calendars) -> Vec<(DateTime<Utc>, RuleId)> {
    ticket_deadlines(ticket, calendars.of(&ticket.estate))
        .into_iter()
        .filter(|deadline| deadline.done_at.is_none())
        .filter(|deadline| !deadline_miss_recorded(ticket, deadline.rule, deadline.due_at))
        .map(|deadline| (deadline.due_at, deadline.rule))
        .collect()
}

/// Run a store read on tokio's blocking pool (or inline, in a simulation).
async fn read_blocking<T: Send + 'static>(
    execution: Execution,
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SchedulerError> {
    match execution.run_blocking(read).await {
        Ok(result) => Ok(result?),
        Err(failed) => Err(SchedulerError::BlockingRead(failed.to_string())),
    }
}

struct SchedulerTask {
    store: Store,
    writer: Writer,
    clock: Arc<dyn Clock>,
    calendars: Calendars,
    execution: Execution,
    receiver: mpsc::Receiver<TicketId>,
    shared: Arc<Shared>,
    timers: Timers,
    live: Option<LiveHub>,
}

/// The writer stopped: nothing more can be recorded.
struct WriterStopped;

/// A submitted deadline and the writer's answer.
type Fired = (Timer, Result<Reply, WriteError>);

impl SchedulerTask {
    async fn run(mut self) {
        let shared = self.shared.clone();
        loop {
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            // A scan takes seconds: a stop does not wait for it. Branches
            // in order (`biased`), so that a simulation replays the same
            // choice; a stop comes first anyway.
            tokio::select! {
                biased;
                () = shared.stop.notified() => return,
                () = self.take_changes() => {}
            }
            if let Err(WriterStopped) = self.fire_passed().await {
                return;
            }
            shared
                .pending
                .store(self.timers.len() as u64, Ordering::Release);
            shared.passes.fetch_add(1, Ordering::AcqRel);
            // Wake just after the earliest deadline: it is missed only once
            // `now` is past `due_at`.
            let sleep = self.timers.next_due().map(|due_at| {
                let wait = (due_at - self.clock.now()).to_std().unwrap_or_default();
                tokio::time::Instant::now() + wait + std::time::Duration::from_millis(1)
            });
            tokio::select! {
                biased;
                () = shared.stop.notified() => return,
                () = shared.wake.notified() => {}
                () = sleep_until(sleep) => {}
            }
        }
    }

    /// Apply the writer's notices, or rescan after an overflow. A failed
    /// read is logged and leaves a rescan for the next pass, so that no
    /// change is lost.
    async fn take_changes(&mut self) {
        let mut changed = Vec::new();
        while let Ok(id) = self.receiver.try_recv() {
            changed.push(id);
        }
        let (store, calendars) = (self.store.clone(), self.calendars.clone());
        if self.shared.overflowed.swap(false, Ordering::AcqRel) {
            match read_blocking(self.execution, move || Timers::scan(&store, &calendars)).await {
                Ok(timers) => self.timers = timers,
                Err(error) => self.read_failed(&error),
            }
            return;
        }
        if changed.is_empty() {
            return;
        }
        changed.sort_unstable();
        changed.dedup();
        let read = read_blocking(self.execution, move || {
            let mut refreshed = Vec::with_capacity(changed.len());
            for id in changed {
                let pending = match store.ticket(&id)? {
                    Some(ticket) => pending_deadlines(&ticket, &calendars),
                    None => Vec::new(),
                };
                refreshed.push((id, pending));
            }
            Ok(refreshed)
        });
        match read.await {
            Ok(refreshed) => {
                for (id, pending) in refreshed {
                    self.timers.replace(id, pending);
                }
            }
            Err(error) => self.read_failed(&error),
        }
    }

    fn read_failed(&self, error: &SchedulerError) {
        tracing::error!(%error, "the scheduler could not read the store; it will rescan");
        self.shared.overflowed.store(true, Ordering::Release);
    }

    /// Submit every deadline that has passed, up to [`MAX_FIRING`] at a time.
    async fn fire_passed(&mut self) -> Result<(), WriterStopped> {
        let now = self.clock.now();
        let mut firing: JoinSet<Fired> = JoinSet::new();
        while let Some(timer) = self.timers.pop_passed(now) {
            // A burst can take seconds: a stop does not wait for all of it.
            if self.shared.stopping.load(Ordering::Acquire) {
                return Ok(());
            }
            if firing.len() >= MAX_FIRING {
                self.answered(firing.join_next().await)?;
            }
            let writer = self.writer.clone();
            firing.spawn(async move {
                let (due_at, ticket_id, rule) = timer.clone();
                let command = Command::DeadlineMissed {
                    ticket_id,
                    rule,
                    due_at,
                };
                (timer, writer.submit(command).await)
            });
        }
        while !firing.is_empty() {
            self.answered(firing.join_next().await)?;
        }
        Ok(())
    }

    fn answered(
        &self,
        done: Option<Result<Fired, tokio::task::JoinError>>,
    ) -> Result<(), WriterStopped> {
        match done {
            Some(Ok(((due_at, ticket_id, rule), Ok(Reply::Ticket(ticket))))) => {
                if let Some(live) = &self.live {
                    let body = LiveEventBody::DeadlineMissed {
                        ticket_id,
                        rule,
                        due_at,
                        technician: ticket.assigned_technician.clone(),
                    };
                    live.publish(&ticket.estate, ticket.updated_at, body);
                }
            }
            Some(Ok((_, Ok(_)))) => {}
            Some(Ok((_, Err(WriteError::Stopped)))) => return Err(WriterStopped),
            Some(Ok(((_, ticket_id, rule), Err(error)))) => {
                tracing::warn!(%error, ticket_id = %ticket_id, rule = %rule, "recording a missed deadline failed");
            }
            Some(Err(join_error)) => {
                tracing::error!(error = %join_error, "submitting a missed deadline failed");
            }
            None => return Ok(()),
        }
        self.shared.fired.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::test_support::{at, intake, store_with_crew, user};
    use crate::writer::AfterCommit;
    use chrono::Duration;
    use std::thread::JoinHandle as ThreadHandle;
    use sync_protocol::{
        DeviceId, DeviceMutation, DeviceOp, DeviceReport, DeviceSeq, EstateId, HistoryEvent,
        OfficeActionRequest, OfficeOp, TicketKind, Version, WorkingCalendar,
    };

    struct Fixture {
        store: Store,
        writer: Writer,
        clock: Arc<ManualClock>,
        scheduler: SchedulerHandle,
        writer_thread: ThreadHandle<()>,
    }

    async fn start() -> Fixture {
        start_with(Calendars::default()).await
    }

    async fn start_with(calendars: Calendars) -> Fixture {
        let store = store_with_crew();
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let scheduler = Scheduler::new();
        let (writer, writer_thread) = Writer::start_with_notices(
            store.clone(),
            clock.clone(),
            16,
            calendars.clone().into(),
            AfterCommit {
                tickets: Some(scheduler.notices()),
                users: None,
            },
        )
        .unwrap();
        let scheduler = scheduler
            .start(store.clone(), writer.clone(), clock.clone(), calendars)
            .await
            .unwrap();
        Fixture {
            store,
            writer,
            clock,
            scheduler,
            writer_thread,
        }
    }

    impl Fixture {
        async fn received(&self, kind: TicketKind) -> TicketId {
            let mut intake = intake();
            intake.kind = kind;
            let command = Command::CreateTicket {
                by: user("kefu"),
                intake,
                named: None,
            };
            let Ok(Reply::Ticket(ticket)) = self.writer.submit(command).await else {
                panic!("expected a ticket");
            };
            ticket.id
        }

        async fn dispatched_work_order(&self) -> TicketId {
            let ticket_id = self.received(TicketKind::WorkOrder).await;
            self.office(
                &ticket_id,
                OfficeOp::Dispatch {
                    technician: user("li"),
                },
            )
            .await;
            ticket_id
        }

        async fn office(&self, ticket_id: &TicketId, op: OfficeOp) {
            let command = Command::Office {
                by: user("diaodu"),
                ticket_id: ticket_id.clone(),
                request: OfficeActionRequest {
                    expected_version: None,
                    op,
                },
                named: None,
            };
            self.writer.submit(command).await.unwrap();
        }

        async fn arrive(&self, ticket_id: &TicketId) {
            let command = Command::Push {
                user: user("li"),
                estate: EstateId::parse("E01").unwrap(),
                report: DeviceReport {
                    device_id: DeviceId::parse("hh-li").unwrap(),
                    app_version: "1.0".into(),
                    outbox_depth: 1,
                    oldest_pending_age_ms: None,
                    device_time: self.clock.now(),
                },
                mutations: vec![DeviceMutation {
                    seq: DeviceSeq(1),
                    ticket_id: ticket_id.clone(),
                    base_version: Version(2),
                    recorded_at: self.clock.now(),
                    op: DeviceOp::RecordArrival { position: None },
                }],
            };
            self.writer.submit(command).await.unwrap();
        }

        /// Move the injected clock and tokio's paused time together, then
        /// let the scheduler finish two passes at the new time.
        async fn advance(&self, by: Duration) {
            self.clock.advance(by);
            tokio::time::advance(by.to_std().unwrap()).await;
            self.settle().await;
        }

        /// Wait (by yielding, not sleeping) until the scheduler has taken
        /// every notice and fired what is due: two more passes of its loop.
        async fn settle(&self) {
            let target = self.scheduler.passes() + 2;
            self.scheduler.shared.wake.notify_one();
            let started = std::time::Instant::now();
            while self.scheduler.passes() < target {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "the scheduler did not settle"
                );
                self.scheduler.shared.wake.notify_one();
                tokio::task::yield_now().await;
            }
        }

        fn misses(&self, ticket_id: &TicketId) -> Vec<(RuleId, DateTime<Utc>)> {
            let ticket = self.store.ticket(ticket_id).unwrap().unwrap();
            ticket
                .history
                .iter()
                .filter_map(|entry| match entry.event {
                    HistoryEvent::DeadlineMissed { rule, due_at } => Some((rule, due_at)),
                    _ => None,
                })
                .collect()
        }

        async fn stop(self) {
            self.scheduler.stop().await;
            drop(self.writer);
            self.writer_thread.join().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn r_p1_a_technician_not_arrived_15_minutes_after_dispatch_gets_exactly_one_miss() {
        let fixture = start().await;
        let ticket_id = fixture.dispatched_work_order().await;
        fixture.settle().await;
        fixture.advance(Duration::minutes(14)).await;
        assert!(fixture.misses(&ticket_id).is_empty());
        fixture.advance(Duration::minutes(2)).await;
        fixture.settle().await;
        assert_eq!(fixture.misses(&ticket_id), vec![(RuleId::P1, at(9, 15))]);
        fixture.advance(Duration::minutes(30)).await;
        assert_eq!(fixture.misses(&ticket_id), vec![(RuleId::P1, at(9, 15))]);
        fixture.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn r_p1_an_arrival_before_the_deadline_records_no_miss() {
        let fixture = start().await;
        let ticket_id = fixture.dispatched_work_order().await;
        fixture.advance(Duration::minutes(10)).await;
        fixture.arrive(&ticket_id).await;
        fixture.settle().await;
        fixture.advance(Duration::minutes(30)).await;
        assert!(fixture.misses(&ticket_id).is_empty());
        assert_eq!(fixture.scheduler.fired(), 0);
        fixture.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn r_p1_an_appointment_moves_the_deadline() {
        let fixture = start().await;
        let ticket_id = fixture.dispatched_work_order().await;
        fixture.advance(Duration::minutes(5)).await;
        let appointment = OfficeOp::SetAppointment {
            at: at(11, 0),
            note: String::new(),
        };
        fixture.office(&ticket_id, appointment).await;
        fixture.settle().await;
        fixture.advance(Duration::minutes(30)).await;
        assert!(fixture.misses(&ticket_id).is_empty());
        fixture.advance(Duration::hours(2)).await;
        assert_eq!(fixture.misses(&ticket_id), vec![(RuleId::P1, at(11, 0))]);
        fixture.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_scheduler_finds_the_open_deadlines_in_the_store() {
        let fixture = start().await;
        let ticket_id = fixture.dispatched_work_order().await;
        let Fixture {
            store,
            writer,
            clock,
            scheduler,
            writer_thread,
        } = fixture;
        scheduler.stop().await;
        // A new scheduler without notices: all it knows comes from the scan.
        let scheduler = Scheduler::new()
            .start(
                store.clone(),
                writer.clone(),
                clock.clone(),
                Calendars::default(),
            )
            .await
            .unwrap();
        let fixture = Fixture {
            store,
            writer,
            clock,
            scheduler,
            writer_thread,
        };
        fixture.advance(Duration::minutes(16)).await;
        assert_eq!(fixture.misses(&ticket_id), vec![(RuleId::P1, at(9, 15))]);
        fixture.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn r_p1_deadlines_passing_together_are_each_recorded_once() {
        let fixture = start().await;
        let mut tickets = Vec::new();
        for _ in 0..40 {
            tickets.push(fixture.dispatched_work_order().await);
        }
        fixture.settle().await;
        fixture.advance(Duration::minutes(16)).await;
        fixture.settle().await;
        for ticket_id in &tickets {
            assert_eq!(fixture.misses(ticket_id), vec![(RuleId::P1, at(9, 15))]);
        }
        assert_eq!(fixture.scheduler.fired(), 40);
        fixture.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn r_p3_a_site_inspection_is_judged_in_the_working_calendar_of_the_tickets_estate() {
        // London is on GMT in November: working time opens at 09:00 UTC.
        let london: WorkingCalendar = serde_json::from_value(serde_json::json!({
            "time_zone": "Europe/London",
            "working_hours": { "start": "09:00", "end": "17:00" }
        }))
        .unwrap();
        let calendars = Calendars::new(
            WorkingCalendar::default(),
            [(EstateId::parse("E01").unwrap(), london)],
        );
        let fixture = start_with(calendars).await;
        // Received at 08:55: half of the 8-hour day is 09:00-13:00 (in
        // Shanghai it would be Monday morning).
        let ticket_id = fixture.received(TicketKind::CoordinationTicket).await;
        fixture.settle().await;
        fixture.advance(Duration::minutes(3 * 60 + 59)).await;
        assert!(fixture.misses(&ticket_id).is_empty());
        fixture.advance(Duration::minutes(2)).await;
        assert_eq!(fixture.misses(&ticket_id), vec![(RuleId::P3, at(13, 0))]);
        fixture.stop().await;
    }
}
