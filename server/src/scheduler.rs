//! The time-rule scheduler: one background task that holds every open
//! deadline of every ticket in a `BTreeMap` ordered by due time, sleeps until
//! the earliest one has passed by the injected [`Clock`], and then asks the
//! writer to record `deadline_missed { rule, due_at }` on the ticket (R-P1,
//! R-K2, R-P3, R-P4, R-F1; for R-P1 the flag that customer service must book
//! an appointment). The core (`sync_protocol::due`) decides which deadlines a
//! ticket has and records a miss at most once per (rule, due_at), so a fire
//! that races with the ticket's own change is harmless.
//!
//! The map is filled at start from every ticket in the store and kept up to
//! date by the writer, which reports the tickets each flushed group changed
//! over a bounded channel ([`TicketChanges`]); when that channel is full the
//! scheduler rescans the store instead. Changes wake the task early through a
//! `Notify`. Modelled on mini-redis's expiry task.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sync_protocol::due::deadline_miss_recorded;
use sync_protocol::{RuleId, Ticket, TicketId, ticket_deadlines};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::calendars::estate_calendar;
use crate::clock::Clock;
use crate::store::{Store, StoreError};
use crate::writer::{Command, WriteError, Writer};

/// Changed-ticket notices the writer may queue before the scheduler rescans.
pub const CHANGE_QUEUE: usize = 4096;
/// Tickets read per page when scanning the store.
const SCAN_PAGE: usize = 1000;

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
}

/// The scheduler's receiving end, before its task starts: create it first,
/// give [`Scheduler::notices`] to the writer, then [`Scheduler::start`].
pub struct Scheduler {
    receiver: mpsc::Receiver<TicketId>,
    notices: TicketChanges,
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
        let (sender, receiver) = mpsc::channel(CHANGE_QUEUE);
        let shared = Arc::new(Shared {
            wake: Notify::new(),
            overflowed: AtomicBool::new(false),
            stop: Notify::new(),
            stopping: AtomicBool::new(false),
            passes: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        });
        Self {
            receiver,
            notices: TicketChanges { sender, shared },
        }
    }

    pub fn notices(&self) -> TicketChanges {
        self.notices.clone()
    }

    /// Load every open deadline from the store and start the task.
    pub fn start(
        self,
        store: Store,
        writer: Writer,
        clock: Arc<dyn Clock>,
    ) -> Result<SchedulerHandle, StoreError> {
        let shared = self.notices.shared.clone();
        let mut timers = Timers::default();
        timers.rescan(&store)?;
        let task = SchedulerTask {
            store,
            writer,
            clock,
            receiver: self.receiver,
            shared: shared.clone(),
            timers,
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
}

/// The pending deadlines, by due time and by ticket.
#[derive(Default)]
struct Timers {
    by_due: BTreeMap<(DateTime<Utc>, TicketId, RuleId), ()>,
    by_ticket: HashMap<TicketId, Vec<(DateTime<Utc>, RuleId)>>,
}

impl Timers {
    fn rescan(&mut self, store: &Store) -> Result<(), StoreError> {
        self.by_due.clear();
        self.by_ticket.clear();
        let mut after: Option<TicketId> = None;
        loop {
            let page = store.all_tickets(after.as_ref(), SCAN_PAGE)?;
            for ticket in &page {
                self.put(ticket);
            }
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE => after = Some(last.id.clone()),
                _ => return Ok(()),
            }
        }
    }

    fn refresh(&mut self, store: &Store, id: &TicketId) -> Result<(), StoreError> {
        self.remove(id);
        if let Some(ticket) = store.ticket(id)? {
            self.put(&ticket);
        }
        Ok(())
    }

    /// Hold the ticket's open deadlines whose miss is not recorded yet.
    fn put(&mut self, ticket: &Ticket) {
        let calendar = estate_calendar(&ticket.estate);
        let pending: Vec<(DateTime<Utc>, RuleId)> = ticket_deadlines(ticket, &calendar)
            .into_iter()
            .filter(|deadline| deadline.done_at.is_none())
            .filter(|deadline| !deadline_miss_recorded(ticket, deadline.rule, deadline.due_at))
            .map(|deadline| (deadline.due_at, deadline.rule))
            .collect();
        if pending.is_empty() {
            return;
        }
        for (due_at, rule) in &pending {
            self.by_due.insert((*due_at, ticket.id.clone(), *rule), ());
        }
        self.by_ticket.insert(ticket.id.clone(), pending);
    }

    fn remove(&mut self, id: &TicketId) {
        for (due_at, rule) in self.by_ticket.remove(id).unwrap_or_default() {
            self.by_due.remove(&(due_at, id.clone(), rule));
        }
    }

    /// The earliest deadline, if it has passed at `now`.
    fn pop_passed(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, TicketId, RuleId)> {
        let first = self.by_due.first_key_value()?.0;
        if now <= first.0 {
            return None;
        }
        let (key, ()) = self.by_due.pop_first()?;
        Some(key)
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.by_due.first_key_value().map(|(key, ())| key.0)
    }
}

struct SchedulerTask {
    store: Store,
    writer: Writer,
    clock: Arc<dyn Clock>,
    receiver: mpsc::Receiver<TicketId>,
    shared: Arc<Shared>,
    timers: Timers,
}

impl SchedulerTask {
    async fn run(mut self) {
        loop {
            if self.shared.stopping.load(Ordering::Acquire) {
                return;
            }
            if let Err(error) = self.take_changes() {
                tracing::error!(%error, "the scheduler could not read the store");
            }
            let now = self.clock.now();
            while let Some((due_at, ticket_id, rule)) = self.timers.pop_passed(now) {
                let command = Command::DeadlineMissed {
                    ticket_id: ticket_id.clone(),
                    rule,
                    due_at,
                };
                match self.writer.submit(command).await {
                    Ok(_) => {}
                    Err(WriteError::Stopped) => return,
                    Err(error) => {
                        tracing::warn!(%error, ticket_id = %ticket_id, rule = %rule, "recording a missed deadline failed");
                    }
                }
                self.shared.fired.fetch_add(1, Ordering::AcqRel);
            }
            self.shared.passes.fetch_add(1, Ordering::AcqRel);
            // Wake just after the earliest deadline: it is missed only once
            // `now` is past `due_at`.
            let sleep = self.timers.next_due().map(|due_at| {
                let wait = (due_at - self.clock.now()).to_std().unwrap_or_default();
                tokio::time::Instant::now() + wait + std::time::Duration::from_millis(1)
            });
            tokio::select! {
                () = self.shared.stop.notified() => return,
                () = self.shared.wake.notified() => {}
                () = sleep_until(sleep) => {}
            }
        }
    }

    /// Apply the writer's notices, or rescan after an overflow.
    fn take_changes(&mut self) -> Result<(), StoreError> {
        let mut changed = Vec::new();
        while let Ok(id) = self.receiver.try_recv() {
            changed.push(id);
        }
        if self.shared.overflowed.swap(false, Ordering::AcqRel) {
            return self.timers.rescan(&self.store);
        }
        for id in &changed {
            self.timers.refresh(&self.store, id)?;
        }
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
    use crate::test_support::{at, intake, user};
    use crate::writer::Reply;
    use chrono::Duration;
    use std::thread::JoinHandle as ThreadHandle;
    use sync_protocol::{
        DeviceId, DeviceMutation, DeviceOp, DeviceReport, DeviceSeq, EstateId, HistoryEvent,
        OfficeActionRequest, OfficeOp, Version,
    };

    struct Fixture {
        store: Store,
        writer: Writer,
        clock: Arc<ManualClock>,
        scheduler: SchedulerHandle,
        writer_thread: ThreadHandle<()>,
    }

    fn start() -> Fixture {
        let store = Store::in_memory();
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let scheduler = Scheduler::new();
        let (writer, writer_thread) =
            Writer::start_with_notices(store.clone(), clock.clone(), 16, Some(scheduler.notices()))
                .unwrap();
        let scheduler = scheduler
            .start(store.clone(), writer.clone(), clock.clone())
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
        async fn dispatched_work_order(&self) -> TicketId {
            let intake = intake();
            let command = Command::CreateTicket {
                by: user("kefu"),
                intake,
            };
            let Ok(Reply::Ticket(ticket)) = self.writer.submit(command).await else {
                panic!("expected a ticket");
            };
            self.office(
                &ticket.id,
                OfficeOp::Dispatch {
                    technician: user("li"),
                },
            )
            .await;
            ticket.id
        }

        async fn office(&self, ticket_id: &TicketId, op: OfficeOp) {
            let command = Command::Office {
                by: user("diaodu"),
                ticket_id: ticket_id.clone(),
                request: OfficeActionRequest {
                    expected_version: None,
                    op,
                },
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
                    op: DeviceOp::RecordArrival {},
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
        let fixture = start();
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
        let fixture = start();
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
        let fixture = start();
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
        let fixture = start();
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
            .start(store.clone(), writer.clone(), clock.clone())
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
}
