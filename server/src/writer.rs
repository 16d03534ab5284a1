//! The single writer with group commit.
//!
//! Every change goes through one thread, so each one reads the state the
//! previous left and applies atomically. The thread takes all requests that
//! are waiting, applies each as its own atomic group, hands the storage engine
//! the whole group as one atomic batch, flushes once, and only then answers:
//! durability costs one batch and one fsync per group, not per request.
//!
//! Each flush runs under a watchdog (`crate::flush_watchdog`): one that
//! fails, or does not return within its bound, stops the writer.
//!
//! A deterministic simulation starts it inline instead ([`Writer::start_inline`],
//! `crate::execution`): the same commands, applied and flushed on the task
//! that submits them, one per group.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sync_protocol::serial::{SerialKind, SerialMonth, SerialSeries};
use sync_protocol::{
    AnsweredRequest, BatchError, BlobReceipt, Cursor, DeviceId, DeviceMutation, DeviceReport,
    DeviceSeq, EstateId, IDEMPOTENCY_WINDOW_HOURS, Intake, Ledger, NamedRequest,
    OfficeActionRequest, OfficeOp, PROTOCOL_VERSION, PushResponse, Recorder, Replay, ReviewError,
    ReviewRequest, Reviewed, Role, RuleId, Sha256Hex, StoredOutcome, Ticket, TicketAccess,
    TicketId, TicketKind, TicketVersion, UserChange, UserId, Version, WorkflowError, apply_batch,
    apply_office_op, check_batch, convert_work_order, create_ticket, link_follow_up_report,
    record_deadline_missed, ticket_access,
};
use tokio::sync::{mpsc, oneshot};

use crate::auth::refresh::{MAX_SESSIONS_PER_USER, RefreshToken, Refusal, refresh};
use crate::calendars::Calendars;
use crate::clock::Clock;
use crate::flush_watchdog::{FlushError, FlushWatchdog};
use crate::scheduler::TicketChanges;
use crate::store::{
    Changes, Counters, DeviceRecord, MAX_PENDING_BLOBS_PER_USER, OpenWork, SessionRecord, Store,
    StoreError, UserRecord,
};
use crate::users::UserDirectory;

/// Most requests committed by one flush.
const MAX_GROUP: usize = 512;

/// Expired named writes forgotten by each new one (more than one, so that
/// a backlog shrinks).
const FORGET_PER_WRITE: usize = 4;

/// How long the writer waits for a flush unless configured
/// (`[limits] flush_timeout_ms`).
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A change to make.
pub enum Command {
    Push {
        user: UserId,
        estate: EstateId,
        report: DeviceReport,
        mutations: Vec<DeviceMutation>,
    },
    /// A device pulled: record the contact. Answered after the flush like
    /// everything else, so the `last_seq` a pull reports is durable.
    Pulled {
        user: UserId,
        estate: EstateId,
        report: DeviceReport,
    },
    /// `named`: the client's `Idempotency-Key`, answered once.
    CreateTicket {
        by: UserId,
        intake: Intake,
        named: Option<NamedRequest>,
    },
    Office {
        by: UserId,
        ticket_id: TicketId,
        request: OfficeActionRequest,
        named: Option<NamedRequest>,
    },
    /// A blob uploaded by `by`, its hash checked.
    PutBlob {
        by: UserId,
        hash: Sha256Hex,
        bytes: Vec<u8>,
    },
    /// Store a user as given (the demo's seeding).
    PutUser { user: UserRecord },
    /// Add a user; refused when the id is taken.
    AddUser { user: UserRecord },
    /// Change a user's name, role, estate or `disabled` (already checked).
    ChangeUser { id: UserId, change: UserChange },
    /// A new password hash for a user.
    SetPassword { id: UserId, password_hash: String },
    /// End every session of a user: tokens and refresh tokens.
    EndSessions { id: UserId },
    /// A refresh session after a password login.
    StartSession { session: SessionRecord },
    /// Exchange `presented` for `next` (`auth::refresh`).
    Refresh {
        presented: RefreshToken,
        device: Option<DeviceId>,
        next: RefreshToken,
        ttl: chrono::Duration,
    },
    /// The scheduler saw a deadline pass: record `deadline_missed` on the
    /// ticket, unless it was done meanwhile or is recorded already.
    DeadlineMissed {
        ticket_id: TicketId,
        rule: RuleId,
        due_at: DateTime<Utc>,
    },
    /// A supervisor reviewed a flagged fact (`sync_protocol::supervision`).
    Review {
        by: UserId,
        ticket_id: TicketId,
        request: ReviewRequest,
    },
}

pub enum Reply {
    /// The answer, and the device record as the push left it (for the live feed).
    Push {
        response: PushResponse,
        device: Box<DeviceRecord>,
    },
    Device(DeviceRecord),
    Ticket(Box<Ticket>),
    /// A named office write made before: the ticket as it is now.
    Replayed(Box<Ticket>),
    Blob(BlobReceipt),
    User(Box<UserRecord>),
    /// The user and the rotated session, or why the refresh was refused.
    Refreshed(Result<(Box<UserRecord>, Box<SessionRecord>), Refusal>),
    /// `recorded` is false for a review that was recorded before.
    Reviewed {
        ticket: Box<Ticket>,
        recorded: bool,
    },
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error("no such ticket")]
    TicketNotFound,
    #[error("this Idempotency-Key was used for another request")]
    IdempotencyKeyReused,
    #[error("the ticket is at version {}, not {}", actual.0, expected.0)]
    VersionConflict { expected: Version, actual: Version },
    #[error("device {0} belongs to another user")]
    DeviceOfAnotherUser(String),
    #[error("all {limit} devices of the technician have changes waiting to upload")]
    TooManyDevices { limit: usize },
    #[error("{limit} uploaded blobs are waiting for the changes that use them")]
    TooManyPendingBlobs { limit: usize },
    #[error("{0} is not an enabled technician of this estate")]
    UnknownTechnician(UserId),
    #[error("no such user")]
    UserNotFound,
    #[error("a user with this name exists already")]
    UserExists,
    #[error("the last enabled administrator cannot be disabled or given another role")]
    LastAdministrator,
    #[error(
        "the technician still holds {} open tickets and has {} handhelds with changes to upload",
        .0.held_tickets,
        .0.devices_with_pending_changes
    )]
    TechnicianHoldsWork(OpenWork),
    #[error("the writer has stopped")]
    Stopped,
    #[error("applying the command panicked")]
    Panicked,
}

struct Job {
    command: Command,
    reply: oneshot::Sender<Result<Reply, WriteError>>,
}

/// The handle the HTTP layer uses; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    route: Route,
    durable_cursor: Arc<AtomicU64>,
    fault: StorageFault,
}

/// Whether the writer stopped after a storage fault: a flush that failed
/// or did not return within its bound. Still readable once every
/// [`Writer`] handle is gone.
#[derive(Clone, Default)]
pub struct StorageFault(Arc<AtomicBool>);

impl StorageFault {
    pub fn occurred(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn record(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Where a submitted command goes.
#[derive(Clone)]
enum Route {
    /// To the queue of the writer thread.
    Thread(mpsc::Sender<Job>),
    /// Applied on the submitting task; `None` once a flush failed.
    Inline(Arc<Mutex<Option<WriterState>>>),
}

impl Writer {
    /// Start the writer thread. It stops, after a last flush, when every
    /// handle is dropped; join the returned handle to wait for that.
    pub fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        queue: usize,
    ) -> Result<(Self, JoinHandle<()>), StoreError> {
        Self::start_with_notices(
            store,
            clock,
            queue,
            WriterSettings::default(),
            AfterCommit::default(),
        )
    }

    /// [`Writer::start`] with the estates' working calendars (R-A1 months),
    /// telling `notices` (the scheduler, the user directory) what each
    /// flushed group changed, and waiting for each flush at most
    /// `settings.flush_timeout`.
    pub fn start_with_notices(
        store: Store,
        clock: Arc<dyn Clock>,
        queue: usize,
        settings: WriterSettings,
        notices: AfterCommit,
    ) -> Result<(Self, JoinHandle<()>), StoreError> {
        let state = WriterState::open(store, clock, settings, notices, Watched::Yes)?;
        let durable_cursor = state.durable_cursor.clone();
        let fault = state.fault.clone();
        let (jobs, receiver) = mpsc::channel(queue);
        let thread = std::thread::Builder::new()
            .name("group-commit".to_owned())
            .spawn(move || state.run(receiver))
            .expect("the writer thread starts");
        Ok((
            Self {
                route: Route::Thread(jobs),
                durable_cursor,
                fault,
            },
            thread,
        ))
    }

    /// A writer without a thread: each command is applied and flushed on
    /// the task that submits it, as a group of one, before `submit`
    /// returns (`Execution::Inline`, for a single-threaded simulation over
    /// the in-memory store). Nothing is ever held unflushed between two
    /// commands, so dropping the server at any await point loses exactly
    /// what was never answered.
    pub fn start_inline(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: WriterSettings,
        notices: AfterCommit,
    ) -> Result<Self, StoreError> {
        // The in-memory store's flush cannot hang: no watchdog thread.
        let state = WriterState::open(store, clock, settings, notices, Watched::No)?;
        Ok(Self {
            durable_cursor: state.durable_cursor.clone(),
            fault: state.fault.clone(),
            route: Route::Inline(Arc::new(Mutex::new(Some(state)))),
        })
    }

    /// Apply a command; answers once it is durable (contacts: once applied).
    pub async fn submit(&self, command: Command) -> Result<Reply, WriteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { command, reply };
        match &self.route {
            Route::Thread(jobs) => jobs.send(job).await.map_err(|_| WriteError::Stopped)?,
            Route::Inline(state) => commit_inline(state, job),
        }
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Whether the writer has stopped (after a storage fault, or at shutdown).
    pub fn is_stopped(&self) -> bool {
        self.fault.occurred()
            || match &self.route {
                Route::Thread(jobs) => jobs.is_closed(),
                Route::Inline(state) => lock(state).is_none(),
            }
    }

    /// Whether, in the end, the writer stopped after a storage fault.
    pub fn storage_fault(&self) -> StorageFault {
        self.fault.clone()
    }

    /// Feed entries up to here are on disk; pulls never show anything later,
    /// so a cursor a device holds can never be lost in a crash and reused.
    pub fn durable_cursor(&self) -> Cursor {
        Cursor(self.durable_cursor.load(Ordering::Acquire))
    }
}

/// Commit `job` as a group of one. After a failed flush the writer stops as
/// the thread does: this and every later job is dropped unanswered, which
/// its submitter sees as [`WriteError::Stopped`].
fn commit_inline(state: &Mutex<Option<WriterState>>, job: Job) {
    let mut state = lock(state);
    if let Some(writer) = state.as_mut()
        && writer.commit_group(vec![job]).is_err()
    {
        *state = None;
    }
}

fn lock(state: &Mutex<Option<WriterState>>) -> std::sync::MutexGuard<'_, Option<WriterState>> {
    // A panicking command is caught inside `commit_group`; the state stays whole.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

struct WriterState {
    store: Store,
    /// Where the store is flushed, when not on the writer's own thread.
    watchdog: Option<FlushWatchdog>,
    fault: StorageFault,
    clock: Arc<dyn Clock>,
    calendars: Calendars,
    settings: WriterSettings,
    counters: Counters,
    durable_cursor: Arc<AtomicU64>,
    notices: AfterCommit,
    /// Tickets the current group changed; told to `notices` after the flush.
    changed_tickets: Vec<TicketId>,
    /// Users the current group changed; told to `notices` after the flush.
    changed_users: Vec<UserId>,
}

/// What the writer decides by besides the store: the estates' working
/// calendars (R-A1 months, bookings) and the limits it keeps.
#[derive(Clone)]
pub struct WriterSettings {
    pub calendars: Calendars,
    /// Active handhelds one technician keeps (`make_room_for_device`).
    pub max_devices_per_user: usize,
    /// The longest a flush may take before the writer stops (`FlushWatchdog`).
    pub flush_timeout: Duration,
}

/// Whether the writer's flushes run under the watchdog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watched {
    Yes,
    /// The in-memory store of a simulation, whose flush cannot hang.
    No,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Calendars::default().into()
    }
}

impl From<Calendars> for WriterSettings {
    fn from(calendars: Calendars) -> Self {
        Self {
            calendars,
            max_devices_per_user: crate::config::Limits::default().max_devices_per_user,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }
}

/// Who hears, after each flush and before anyone is answered, what the
/// flushed group changed.
#[derive(Clone, Default)]
pub struct AfterCommit {
    /// The time-rule scheduler: the tickets.
    pub tickets: Option<TicketChanges>,
    /// The user directory: the users, so that a changed user's old tokens
    /// are refused from the moment the change is acknowledged.
    pub users: Option<UserDirectory>,
}

type Pending = (
    oneshot::Sender<Result<Reply, WriteError>>,
    Result<Reply, WriteError>,
);

impl WriterState {
    fn open(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: WriterSettings,
        notices: AfterCommit,
        watched: Watched,
    ) -> Result<Self, StoreError> {
        let counters = store.counters()?;
        // Each command's writes are held and reach the backend with the
        // group's flush, as one batch: sled writes its log out around
        // every batch, so a batch per command cost two disk writes each.
        let store = store.staged();
        let watchdog = (watched == Watched::Yes)
            .then(|| FlushWatchdog::start(store.clone(), settings.flush_timeout));
        Ok(Self {
            store,
            watchdog,
            fault: StorageFault::default(),
            clock,
            calendars: settings.calendars.clone(),
            settings,
            counters,
            durable_cursor: Arc::new(AtomicU64::new(counters.feed)),
            notices,
            changed_tickets: Vec::new(),
            changed_users: Vec::new(),
        })
    }

    fn run(mut self, mut receiver: mpsc::Receiver<Job>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            if self.commit_group(group).is_err() {
                // Dropping the receiver makes every waiting and later
                // submission answer `Stopped`.
                return;
            }
        }
        if let Err(error) = self.flush() {
            self.fault.record();
            tracing::error!(%error, "final flush failed");
        }
    }

    /// Make everything applied durable, under the watchdog if there is one.
    fn flush(&self) -> Result<(), FlushError> {
        match &self.watchdog {
            Some(watchdog) => watchdog.flush(),
            None => Ok(self.store.flush()?),
        }
    }

    /// Apply and flush a group; `Err` when the flush failed (or did not
    /// return in time) and writing must stop.
    fn commit_group(&mut self, group: Vec<Job>) -> Result<(), ()> {
        let mut waiting: Vec<Pending> = Vec::with_capacity(group.len());
        for job in group {
            // A bug in one command must not take the writer down with it: the
            // command's writes are applied only at its very end, so after a
            // panic nothing of it is in the store and the next one can go on.
            let applied = panic::catch_unwind(AssertUnwindSafe(|| self.apply(job.command)));
            let result = applied.unwrap_or(Err(WriteError::Panicked));
            waiting.push((job.reply, result));
        }
        let flushed = self.flush();
        match flushed {
            Ok(()) => {
                self.durable_cursor
                    .store(self.counters.feed, Ordering::Release);
                let changed_tickets = std::mem::take(&mut self.changed_tickets);
                if let Some(tickets) = &self.notices.tickets {
                    tickets.changed(changed_tickets);
                }
                let changed_users = std::mem::take(&mut self.changed_users);
                if let Some(users) = &self.notices.users {
                    users.changed(&changed_users);
                }
                for (reply, result) in waiting {
                    // The requester may have gone (timeout); the write stands.
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                // The group's writes may or may not reach the disk later. To
                // never answer anything on top of that uncertainty, the writer
                // stops: every later write is refused until a restart, which
                // recovers to what the disk really has.
                self.fault.record();
                tracing::error!(%error, "flush failed; refusing every write until a restart");
                for (reply, _) in waiting {
                    let _ = reply.send(Err(WriteError::Store(StoreError::Engine(
                        error.to_string(),
                    ))));
                }
                return Err(());
            }
        }
        Ok(())
    }

    /// The ticket a named office write made or changed before, as it is
    /// now; `None` for a write to apply.
    fn replayed(
        &self,
        by: &UserId,
        named: Option<&NamedRequest>,
    ) -> Result<Option<Ticket>, WriteError> {
        let Some(named) = named else {
            return Ok(None);
        };
        match Replay::of(named, self.store.answered_request(by, &named.key)?.as_ref()) {
            Replay::Fresh => Ok(None),
            Replay::Answered(ticket_id) => Ok(Some(self.existing_ticket(&ticket_id)?)),
            Replay::KeyReused => Err(WriteError::IdempotencyKeyReused),
        }
    }

    /// Keep a named office write's answer with the write itself, and forget
    /// a few answers older than the window: each named write pays for the
    /// ones it outlives, so the records stay about a day's worth.
    fn answered(
        &self,
        changes: &mut Changes,
        by: &UserId,
        named: Option<NamedRequest>,
        ticket_id: &TicketId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(named) = named else {
            return Ok(());
        };
        let window = chrono::Duration::hours(IDEMPOTENCY_WINDOW_HOURS);
        self.store
            .forget_answered_before(changes, at - window, FORGET_PER_WRITE)?;
        let answered = AnsweredRequest {
            fingerprint: named.fingerprint,
            ticket_id: ticket_id.clone(),
            at,
        };
        changes.put_answered_request(by, &named.key, &answered);
        Ok(())
    }

    /// Apply one command as one atomic group of writes.
    fn apply(&mut self, command: Command) -> Result<Reply, WriteError> {
        let mut changes = Changes::default();
        // Work on a copy so a refused command leaves no trace in the counters.
        let mut counters = self.counters;
        let now = self.clock.now();
        let reply = match command {
            Command::Push {
                user,
                estate,
                report,
                mutations,
            } => self.push(
                &mut changes,
                &mut counters,
                (user, estate),
                report,
                mutations,
                now,
            )?,
            Command::Pulled {
                user,
                estate,
                report,
            } => {
                let mut device = self.device_for(&mut changes, (&user, &estate), &report, now)?;
                device.last_pull_at = Some(now);
                changes.put_device(&device);
                Reply::Device(device)
            }
            Command::CreateTicket { by, intake, named } => {
                if let Some(ticket) = self.replayed(&by, named.as_ref())? {
                    return Ok(Reply::Replayed(Box::new(ticket)));
                }
                counters.tickets += 1;
                let id = TicketId::parse(&format!("tk{:08}", counters.tickets))
                    .expect("generated ticket ids are valid");
                // Validate the record first, so that R-I2 lists every problem.
                let calendar = self.calendars.of(&intake.estate);
                let mut ticket = create_ticket(id, intake, by.clone(), calendar, now)?;
                // R-S2: the staff agreed with the owner can be dispatched.
                if let Some(staff) = ticket.booking.as_ref().and_then(|b| b.staff.as_ref()) {
                    self.require_technician(staff, &ticket.estate)?;
                }
                // R-F3: the report and the ticket it came from name each
                // other; another estate's ticket is as unknown as a missing one.
                let link = match &ticket.follow_up_of {
                    Some(original) => {
                        let original = self
                            .store
                            .estate_ticket(&ticket.estate, original)?
                            .ok_or(WriteError::TicketNotFound)?;
                        let linked = link_follow_up_report(&original, &ticket, &by, now)?;
                        Some((original, linked))
                    }
                    None => None,
                };
                self.assign_serial_number(&mut changes, &mut ticket, now)?;
                self.store
                    .stage_ticket(&mut changes, &mut counters, None, &ticket)?;
                if let Some((original, linked)) = link {
                    self.store.stage_ticket(
                        &mut changes,
                        &mut counters,
                        Some(&original),
                        &linked,
                    )?;
                }
                changes.put_ticket_counter(&counters);
                self.answered(&mut changes, &by, named, &ticket.id, now)?;
                Reply::Ticket(Box::new(ticket))
            }
            Command::Office {
                by,
                ticket_id,
                request,
                named,
            } => {
                if let Some(ticket) = self.replayed(&by, named.as_ref())? {
                    return Ok(Reply::Replayed(Box::new(ticket)));
                }
                let ticket = self.existing_ticket(&ticket_id)?;
                if let Some(expected) = request.expected_version
                    && expected != ticket.version
                {
                    return Err(WriteError::VersionConflict {
                        expected,
                        actual: ticket.version,
                    });
                }
                if let OfficeOp::Dispatch { technician } | OfficeOp::Reassign { technician, .. } =
                    &request.op
                {
                    self.require_technician(technician, &ticket.estate)?;
                }
                let next = match &request.op {
                    OfficeOp::Convert { reason } => {
                        // R-C2: the new coordination ticket gets the next ticket number.
                        counters.tickets += 1;
                        let id = TicketId::parse(&format!("tk{:08}", counters.tickets))
                            .expect("generated ticket ids are valid");
                        let (converted, mut coordination) =
                            convert_work_order(&ticket, id, reason, &by, now)?;
                        // R-A1: the new coordination ticket draws a CT number;
                        // the work order keeps its WO number.
                        self.assign_serial_number(&mut changes, &mut coordination, now)?;
                        self.store.stage_ticket(
                            &mut changes,
                            &mut counters,
                            None,
                            &coordination,
                        )?;
                        changes.put_ticket_counter(&counters);
                        converted
                    }
                    op => {
                        if matches!(op, OfficeOp::Close {}) && ticket.kind == TicketKind::WorkOrder
                        {
                            self.check_signature_image(&ticket)?;
                        }
                        let calendar = self.calendars.of(&ticket.estate);
                        apply_office_op(&ticket, op, &by, calendar, now)?
                    }
                };
                self.store
                    .stage_ticket(&mut changes, &mut counters, Some(&ticket), &next)?;
                self.answered(&mut changes, &by, named, &next.id, now)?;
                Reply::Ticket(Box::new(next))
            }
            Command::PutBlob { by, hash, bytes } => {
                let size_bytes = bytes.len() as u64;
                // Counted against the uploader until a ticket refers to it,
                // so that nobody fills the disk with blobs no ticket uses.
                let referred_to = !self.store.blob_referrers(&hash, 1)?.is_empty();
                if !referred_to && !self.store.is_pending_blob(&by, &hash)? {
                    let pending = self.store.pending_blobs(&by, MAX_PENDING_BLOBS_PER_USER)?;
                    if pending >= MAX_PENDING_BLOBS_PER_USER {
                        return Err(WriteError::TooManyPendingBlobs {
                            limit: MAX_PENDING_BLOBS_PER_USER,
                        });
                    }
                    changes.put_pending_blob(&by, &hash);
                }
                if !self.store.has_blob(&hash)? {
                    changes.put_blob(&hash, bytes);
                }
                changes.put_blob_upload(&hash, &by);
                Reply::Blob(BlobReceipt {
                    sha256: hash,
                    size_bytes,
                })
            }
            Command::PutUser { user } => {
                changes.put_user(&user);
                Reply::Done
            }
            Command::AddUser { user } => {
                if self.store.user(&user.id)?.is_some() {
                    return Err(WriteError::UserExists);
                }
                changes.put_user(&user);
                Reply::User(Box::new(user))
            }
            Command::ChangeUser { id, change } => {
                let user = self.change_user(&mut changes, &id, change)?;
                Reply::User(Box::new(user))
            }
            Command::SetPassword { id, password_hash } => {
                let mut user = self.existing_user(&id)?;
                user.password_hash = password_hash;
                self.end_sessions(&mut changes, &mut user)?;
                Reply::User(Box::new(user))
            }
            Command::EndSessions { id } => {
                let mut user = self.existing_user(&id)?;
                self.end_sessions(&mut changes, &mut user)?;
                Reply::User(Box::new(user))
            }
            Command::StartSession { session } => {
                self.start_session(&mut changes, &session, now)?;
                Reply::Done
            }
            Command::Refresh {
                presented,
                device,
                next,
                ttl,
            } => self.refresh(&mut changes, &presented, device.as_ref(), &next, ttl, now)?,
            Command::DeadlineMissed {
                ticket_id,
                rule,
                due_at,
            } => {
                let ticket = self.existing_ticket(&ticket_id)?;
                let calendar = self.calendars.of(&ticket.estate);
                match record_deadline_missed(&ticket, calendar, rule, due_at, now) {
                    Some(next) => {
                        self.store.stage_ticket(
                            &mut changes,
                            &mut counters,
                            Some(&ticket),
                            &next,
                        )?;
                        // The scheduler tells the live feed about a recorded miss.
                        Reply::Ticket(Box::new(next))
                    }
                    None => Reply::Done,
                }
            }
            Command::Review {
                by,
                ticket_id,
                request,
            } => {
                let ticket = self.existing_ticket(&ticket_id)?;
                match sync_protocol::review_fact(&ticket, &request, &by, now)? {
                    Reviewed::Recorded(next) => {
                        self.store.stage_ticket(
                            &mut changes,
                            &mut counters,
                            Some(&ticket),
                            &next,
                        )?;
                        Reply::Reviewed {
                            ticket: next,
                            recorded: true,
                        }
                    }
                    Reviewed::AlreadyRecorded => Reply::Reviewed {
                        ticket: Box::new(ticket),
                        recorded: false,
                    },
                }
            }
        };
        let changed_tickets = changes.take_changed_tickets();
        let changed_users = changes.take_changed_users();
        self.store.apply(changes)?;
        self.changed_tickets.extend(changed_tickets);
        self.changed_users.extend(changed_users);
        self.counters = counters;
        Ok(reply)
    }

    /// R-A1: give a work order or coordination ticket the next number of its
    /// series (estate, kind, month of the estate's calendar at `now`), and
    /// stage the series' counter in the same atomic group as the ticket. One
    /// thread runs every command, so no two tickets can draw the same number;
    /// a refused command never applies its group, so it uses up no number.
    /// Call it at most once per series in one command: the counter is read
    /// from the store, which does not see the command's own staged writes.
    fn assign_serial_number(
        &self,
        changes: &mut Changes,
        ticket: &mut Ticket,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(kind) = SerialKind::of(ticket.kind) else {
            return Ok(());
        };
        let calendar = self.calendars.of(&ticket.estate);
        let month = SerialMonth::of_local_date(calendar.local_date(now));
        let series = SerialSeries::new(ticket.estate.clone(), kind, month);
        let number = series.number(self.store.last_serial_sequence(&series)? + 1);
        changes.put_last_serial(&number);
        ticket.serial_number = Some(number);
        Ok(())
    }

    fn push(
        &self,
        changes: &mut Changes,
        counters: &mut Counters,
        (user, estate): (UserId, EstateId),
        report: DeviceReport,
        mutations: Vec<DeviceMutation>,
        now: DateTime<Utc>,
    ) -> Result<Reply, WriteError> {
        let mut device = self.device_for(changes, (&user, &estate), &report, now)?;
        let ledger = LoadedLedger::load(&self.store, &device, &mutations)?;
        // Another estate's ticket is never loaded: to the merge, and so in
        // every answer, it is a ticket that does not exist.
        let access = |ticket: &Ticket| ticket_access(&user, Role::Technician, &estate, ticket);
        let mut tickets = BTreeMap::new();
        for mutation in &mutations {
            if !tickets.contains_key(&mutation.ticket_id)
                && let Some(ticket) = self.store.estate_ticket(&estate, &mutation.ticket_id)?
            {
                tickets.insert(mutation.ticket_id.clone(), ticket);
            }
        }
        let before = tickets.clone();
        let recorder = Recorder {
            user: user.clone(),
            device: report.device_id.clone(),
            clock_offset_ms: device.clock_offset_ms,
        };
        let effects = apply_batch(&ledger, &mut tickets, &recorder, &mutations, now)?;

        for (id, ticket) in &effects.changed {
            self.store
                .stage_ticket(changes, counters, before.get(id), ticket)?;
        }
        for (seq, outcome) in &effects.new_outcomes {
            changes.put_outcome(&device.device_id, *seq, outcome);
        }
        device.last_seq = effects.last_seq;
        device.last_push_at = Some(now);
        changes.put_device(&device);

        // The answer describes only what the technician may know: the
        // versions of the tickets they hold, and the images of their own
        // signatures they have not uploaded themselves (whether anybody
        // else's bytes are the same is not told).
        let mut missing_blobs = Vec::new();
        for ticket in tickets.values() {
            for (blob, recorder) in ticket.blob_references() {
                if recorder == &user
                    && !missing_blobs.contains(blob)
                    && !self.store.uploaded_by(blob, &user)?
                {
                    missing_blobs.push(blob.clone());
                }
            }
        }
        let ticket_versions = tickets
            .values()
            .filter(|ticket| access(ticket) == TicketAccess::Readable)
            .map(|ticket| TicketVersion {
                ticket_id: ticket.id.clone(),
                version: ticket.version,
            })
            .collect();
        Ok(Reply::Push {
            response: PushResponse {
                protocol_version: PROTOCOL_VERSION,
                server_time: now,
                outcomes: effects.outcomes,
                ticket_versions,
                last_seq: effects.last_seq,
                missing_blobs,
            },
            device: Box::new(device),
        })
    }

    /// Only an enabled technician of the ticket's estate can be given it,
    /// as the user records are at the moment it is given.
    fn require_technician(&self, id: &UserId, estate: &EstateId) -> Result<(), WriteError> {
        let fits = self.store.user(id)?.is_some_and(|user| {
            user.role == Role::Technician && &user.estate == estate && !user.disabled
        });
        if fits {
            Ok(())
        } else {
            Err(WriteError::UnknownTechnician(id.clone()))
        }
    }

    fn existing_user(&self, id: &UserId) -> Result<UserRecord, WriteError> {
        self.store.user(id)?.ok_or(WriteError::UserNotFound)
    }

    /// Apply an administrator's change. A technician keeps their role and
    /// estate while they hold open tickets (their devices' facts must still
    /// reach them: reassign the tickets first), and the last enabled
    /// administrator stays one. A change of role, estate or `disabled` ends
    /// the user's sessions.
    fn change_user(
        &self,
        changes: &mut Changes,
        id: &UserId,
        change: UserChange,
    ) -> Result<UserRecord, WriteError> {
        let before = self.existing_user(id)?;
        let mut user = before.clone();
        if let Some(display_name) = change.display_name {
            user.display_name = display_name;
        }
        if let Some(role) = change.role {
            user.role = role;
        }
        if let Some(estate) = change.estate {
            user.estate = estate;
        }
        if let Some(disabled) = change.disabled {
            user.disabled = disabled;
        }
        let moved = user.role != before.role || user.estate != before.estate;
        if before.role == Role::Technician && moved {
            let work = self.store.open_work(&before)?;
            if !work.is_empty() {
                return Err(WriteError::TechnicianHoldsWork(work));
            }
        }
        let was_administrator = before.role == Role::Administrator && !before.disabled;
        let is_administrator = user.role == Role::Administrator && !user.disabled;
        if was_administrator && !is_administrator && self.enabled_administrators()? <= 1 {
            return Err(WriteError::LastAdministrator);
        }
        if moved || user.disabled != before.disabled {
            self.end_sessions(changes, &mut user)?;
        } else {
            changes.put_user(&user);
        }
        Ok(user)
    }

    fn enabled_administrators(&self) -> Result<usize, WriteError> {
        const PAGE: usize = 500;
        let mut count = 0;
        let mut after: Option<UserId> = None;
        loop {
            let page = self.store.users(after.as_ref(), PAGE)?;
            count += page
                .iter()
                .filter(|user| user.role == Role::Administrator && !user.disabled)
                .count();
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.id.clone()),
                _ => return Ok(count),
            }
        }
    }

    /// A new generation for the user (their access tokens stop working)
    /// and none of their refresh sessions left; stages the user.
    fn end_sessions(&self, changes: &mut Changes, user: &mut UserRecord) -> Result<(), WriteError> {
        user.generation += 1;
        for session in self.store.user_sessions(&user.id)? {
            changes.delete_session(&session);
        }
        changes.put_user(user);
        Ok(())
    }

    /// Keep `session`, ending the user's other session on the same device,
    /// expired ones, and the least recently used beyond the limit.
    fn start_session(
        &self,
        changes: &mut Changes,
        session: &SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<(), WriteError> {
        let mut kept = Vec::new();
        for other in self.store.user_sessions(&session.user)? {
            let same_device = session.device.is_some() && other.device == session.device;
            if same_device || other.expires_at <= now {
                changes.delete_session(&other);
            } else {
                kept.push(other);
            }
        }
        kept.sort_by_key(|other| other.refreshed_at);
        let excess = (kept.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
        for other in kept.iter().take(excess) {
            changes.delete_session(other);
        }
        changes.put_session(session);
        Ok(())
    }

    fn refresh(
        &self,
        changes: &mut Changes,
        presented: &RefreshToken,
        device: Option<&DeviceId>,
        next: &RefreshToken,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Reply, WriteError> {
        let Some(session) = self.store.session(&presented.session)? else {
            return Ok(Reply::Refreshed(Err(Refusal::Unknown)));
        };
        let user = self.store.user(&session.user)?;
        match refresh(&session, user.as_ref(), presented, device, next, now, ttl) {
            Ok(rotated) => {
                changes.put_session(&rotated);
                let user = user.expect("a refresh is granted only to a known user");
                Ok(Reply::Refreshed(Ok((Box::new(user), Box::new(rotated)))))
            }
            Err(refusal) => {
                if refusal.ends_session() {
                    changes.delete_session(&session);
                }
                Ok(Reply::Refreshed(Err(refusal)))
            }
        }
    }

    fn existing_ticket(&self, id: &TicketId) -> Result<Ticket, WriteError> {
        self.store.ticket(id)?.ok_or(WriteError::TicketNotFound)
    }

    /// R-P7: a work order closes only when the owner's signature image, not
    /// just its hash, is on the server.
    fn check_signature_image(&self, ticket: &Ticket) -> Result<(), WriteError> {
        if let Some(signature) = ticket.signature_of_current_result()
            && !self
                .store
                .uploaded_by(&signature.body.blob, &signature.recorded_by)?
        {
            return Err(WriteError::Workflow(WorkflowError::Invalid(vec![
                sync_protocol::FieldProblem::new(
                    "signatures",
                    "the owner's signature image has not been uploaded yet (R-P7, 签字图片未上传)",
                ),
            ])));
        }
        Ok(())
    }

    /// The device's record updated with what it just reported; a device is
    /// bound to the first technician who synced with it. A device new to
    /// the technician (or back after being retired) takes a place among
    /// their devices ([`WriterState::make_room_for_device`]); a technician
    /// moved to another estate takes the device along.
    fn device_for(
        &self,
        changes: &mut Changes,
        (user, estate): (&UserId, &EstateId),
        report: &DeviceReport,
        now: DateTime<Utc>,
    ) -> Result<DeviceRecord, WriteError> {
        let known = self.store.device(&report.device_id)?;
        if let Some(known) = &known
            && &known.user != user
        {
            return Err(WriteError::DeviceOfAnotherUser(
                report.device_id.to_string(),
            ));
        }
        let offset = now.signed_duration_since(report.device_time);
        let active = known
            .as_ref()
            .is_some_and(|device| device.retired_at.is_none());
        if !active {
            self.make_room_for_device(changes, user, estate, now)?;
        }
        let mut device = known.unwrap_or_else(|| DeviceRecord {
            device_id: report.device_id.clone(),
            user: user.clone(),
            estate: estate.clone(),
            last_seq: DeviceSeq(0),
            app_version: String::new(),
            protocol_version: PROTOCOL_VERSION,
            outbox_depth: 0,
            oldest_pending_age_ms: None,
            last_contact_at: now,
            last_push_at: None,
            last_pull_at: None,
            clock_offset_ms: 0,
            retired_at: None,
        });
        if &device.estate != estate {
            changes.unlist_device(&device);
            device.estate = estate.clone();
        }
        device.retired_at = None;
        device.app_version = report.app_version.chars().take(64).collect();
        device.protocol_version = PROTOCOL_VERSION;
        device.outbox_depth = report.outbox_depth;
        device.oldest_pending_age_ms = report.oldest_pending_age_ms;
        device.last_contact_at = now;
        device.clock_offset_ms = offset.num_milliseconds();
        Ok(device)
    }

    /// Keep a technician below `max_devices_per_user` active devices, so that
    /// made-up device ids cannot crowd the supervisors' crew table: retire
    /// the longest idle device that reported nothing waiting to upload, or
    /// refuse the new one when every device still has work to upload. A
    /// retired device keeps its record (its last sequence number and stored
    /// answers: a retry is still answered `duplicate`), leaves the crew
    /// table, and loses its refresh session; it comes back by syncing again.
    fn make_room_for_device(
        &self,
        changes: &mut Changes,
        user: &UserId,
        estate: &EstateId,
        now: DateTime<Utc>,
    ) -> Result<(), WriteError> {
        const PAGE: usize = 500;
        let limit = self.settings.max_devices_per_user;
        let mut theirs = Vec::new();
        let mut after: Option<DeviceId> = None;
        loop {
            let page = self.store.estate_devices(estate, after.as_ref(), PAGE)?;
            after = page.last().map(|device| device.device_id.clone());
            let full = page.len() == PAGE;
            theirs.extend(page.into_iter().filter(|device| &device.user == user));
            if !full {
                break;
            }
        }
        // Longest idle first, among those with nothing waiting to upload.
        let mut idle: Vec<DeviceRecord> = theirs
            .iter()
            .filter(|device| device.outbox_depth == 0)
            .cloned()
            .collect();
        idle.sort_by_key(|device| device.last_contact_at);
        let to_retire = (theirs.len() + 1).saturating_sub(limit);
        if to_retire > idle.len() {
            return Err(WriteError::TooManyDevices { limit });
        }
        let sessions = self.store.user_sessions(user)?;
        for mut device in idle.into_iter().take(to_retire) {
            tracing::info!(device = %device.device_id, %user, "device retired for a new one");
            device.retired_at = Some(now);
            changes.unlist_device(&device);
            changes.put_device_record(&device);
            for session in &sessions {
                if session.device.as_ref() == Some(&device.device_id) {
                    changes.delete_session(session);
                }
            }
        }
        Ok(())
    }
}

/// The device's ledger, loaded before the batch: its last sequence number and
/// the stored answers of the sequence numbers the batch replays.
struct LoadedLedger {
    last_seq: DeviceSeq,
    stored: BTreeMap<DeviceSeq, StoredOutcome>,
}

impl LoadedLedger {
    fn load(
        store: &Store,
        device: &DeviceRecord,
        batch: &[DeviceMutation],
    ) -> Result<Self, WriteError> {
        let replays = check_batch(device.last_seq, batch)?;
        let mut stored = BTreeMap::new();
        for seq in replays {
            if let Some(outcome) = store.stored_outcome(&device.device_id, DeviceSeq(seq))? {
                stored.insert(DeviceSeq(seq), outcome);
            }
        }
        Ok(Self {
            last_seq: device.last_seq,
            stored,
        })
    }
}

impl Ledger for LoadedLedger {
    fn last_seq(&self) -> DeviceSeq {
        self.last_seq
    }

    fn stored(&self, seq: DeviceSeq) -> Option<StoredOutcome> {
        self.stored.get(&seq).cloned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use sync_protocol::{
        Category, DeviceId, DeviceOp, EstateId, OfficeOp, Outcome, RevokeReason, TicketKind,
    };

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{Kv, MemoryKv, Space, Write};
    use crate::test_support::{at, intake, store_with_crew, technician_li, user};

    fn start() -> (Store, Writer, JoinHandle<()>) {
        let store = store_with_crew();
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let (writer, thread) = Writer::start(store.clone(), clock, 16).unwrap();
        (store, writer, thread)
    }

    async fn create(writer: &Writer) -> Ticket {
        let command = Command::CreateTicket {
            by: user("kefu"),
            intake: intake(),
            named: None,
        };
        match writer.submit(command).await.unwrap() {
            Reply::Ticket(ticket) => *ticket,
            _ => panic!("expected a ticket"),
        }
    }

    async fn office(writer: &Writer, ticket: &TicketId, op: OfficeOp) -> Result<Reply, WriteError> {
        let request = OfficeActionRequest {
            expected_version: None,
            op,
        };
        let command = Command::Office {
            by: user("diaodu"),
            ticket_id: ticket.clone(),
            request,
            named: None,
        };
        writer.submit(command).await
    }

    fn report(device: &str) -> DeviceReport {
        DeviceReport {
            device_id: DeviceId::parse(device).unwrap(),
            app_version: "1.0".into(),
            outbox_depth: 1,
            oldest_pending_age_ms: Some(60_000),
            device_time: at(8, 59),
        }
    }

    fn note(ticket: &TicketId, seq: u64) -> DeviceMutation {
        DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: ticket.clone(),
            base_version: Version(2),
            recorded_at: at(8, 30),
            op: DeviceOp::AddNote {
                text: "阀门已关 valve closed".into(),
            },
        }
    }

    #[tokio::test]
    async fn r_d1_only_an_enabled_technician_of_the_estate_can_be_given_a_ticket() {
        let (store, writer, _thread) = start();
        let mut changes = Changes::default();
        for (id, estate, role, disabled) in [
            ("wu", "E02", Role::Technician, false),
            ("zhao", "E01", Role::Technician, true),
            ("kefu", "E01", Role::CustomerServiceAgent, false),
        ] {
            changes.put_user(&UserRecord {
                id: user(id),
                estate: EstateId::parse(estate).unwrap(),
                role,
                disabled,
                ..technician_li(0)
            });
        }
        store.apply(changes).unwrap();
        let ticket = create(&writer).await;
        for name in ["wu", "zhao", "kefu", "nobody"] {
            let dispatch = OfficeOp::Dispatch {
                technician: user(name),
            };
            match office(&writer, &ticket.id, dispatch).await {
                Err(WriteError::UnknownTechnician(id)) => assert_eq!(id, user(name)),
                Err(other) => panic!("{name}: {other:?}"),
                Ok(_) => panic!("{name} was given the ticket"),
            }
        }
        assert_eq!(store.ticket(&ticket.id).unwrap(), Some(ticket.clone()));
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        office(&writer, &ticket.id, dispatch).await.unwrap();
    }

    #[tokio::test]
    async fn a_reassignment_revokes_the_ticket_from_the_old_holder_and_keeps_one_entry_each() {
        let (store, writer, _thread) = start();
        let ticket = create(&writer).await;
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        office(&writer, &ticket.id, dispatch).await.unwrap();
        let note = OfficeOp::AddNote {
            text: "owner home after 10".into(),
        };
        office(&writer, &ticket.id, note).await.unwrap();
        let reassign = OfficeOp::Reassign {
            technician: user("zhang"),
            reason: "li is off sick".into(),
        };
        office(&writer, &ticket.id, reassign).await.unwrap();

        let up_to = writer.durable_cursor();
        let li = store.feed(&user("li"), Cursor(0), up_to, 10).unwrap();
        assert_eq!(li.len(), 1, "one entry per technician and ticket: {li:?}");
        assert_eq!(li[0].1.revoked, Some(RevokeReason::Reassigned));
        let zhang = store.feed(&user("zhang"), Cursor(0), up_to, 10).unwrap();
        assert_eq!(zhang.len(), 1);
        assert_eq!(zhang[0].1.revoked, None);
        assert!(
            store
                .assigned_tickets(&user("li"), None, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .assigned_tickets(&user("zhang"), None, 10)
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_refused_intake_uses_no_ticket_number() {
        let (store, writer, _thread) = start();
        let mut bad = intake();
        bad.location = " ".into();
        let refused = writer
            .submit(Command::CreateTicket {
                by: user("kefu"),
                intake: bad,
                named: None,
            })
            .await;
        assert!(matches!(refused, Err(WriteError::Workflow(_))));
        let ticket = create(&writer).await;
        assert_eq!(ticket.id.as_str(), "tk00000001");
        assert_eq!(store.counters().unwrap().tickets, 1);
    }

    #[tokio::test]
    async fn a_replayed_push_gets_its_first_answer_and_changes_nothing() {
        let (store, writer, _thread) = start();
        let ticket = create(&writer).await;
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        office(&writer, &ticket.id, dispatch).await.unwrap();
        let push = || Command::Push {
            user: user("li"),
            estate: EstateId::parse("E01").unwrap(),
            report: report("hh-1"),
            mutations: vec![note(&ticket.id, 1)],
        };
        let Reply::Push {
            response: first, ..
        } = writer.submit(push()).await.unwrap()
        else {
            panic!("expected a push reply")
        };
        let after_first = store.ticket(&ticket.id).unwrap().unwrap();
        let Reply::Push {
            response: again, ..
        } = writer.submit(push()).await.unwrap()
        else {
            panic!("expected a push reply")
        };
        let Outcome::Applied(applied) = &first.outcomes[0].outcome else {
            panic!("expected applied")
        };
        assert_eq!(
            again.outcomes[0].outcome,
            Outcome::Duplicate {
                first: sync_protocol::Verdict::Applied(applied.clone())
            }
        );
        assert_eq!(store.ticket(&ticket.id).unwrap().unwrap(), after_first);
        let device = store.device(&report("hh-1").device_id).unwrap().unwrap();
        assert_eq!(device.last_seq, DeviceSeq(1));
        assert_eq!(device.clock_offset_ms, 60_000);
    }

    #[tokio::test]
    async fn a_device_stays_bound_to_its_first_technician() {
        let (_store, writer, _thread) = start();
        let pulled = |name: &str| Command::Pulled {
            user: user(name),
            estate: EstateId::parse("E01").unwrap(),
            report: report("hh-1"),
        };
        writer.submit(pulled("li")).await.unwrap();
        let refused = writer.submit(pulled("zhang")).await;
        assert!(matches!(refused, Err(WriteError::DeviceOfAnotherUser(_))));
    }

    #[tokio::test]
    async fn an_office_action_at_a_stale_version_is_refused() {
        let (_store, writer, _thread) = start();
        let ticket = create(&writer).await;
        let request = OfficeActionRequest {
            expected_version: Some(Version(7)),
            op: OfficeOp::Cancel {
                reason: "duplicate report".into(),
            },
        };
        let command = Command::Office {
            by: user("kefu"),
            ticket_id: ticket.id.clone(),
            request,
            named: None,
        };
        let refused = writer.submit(command).await;
        assert!(matches!(
            refused,
            Err(WriteError::VersionConflict {
                expected: Version(7),
                actual: Version(1)
            })
        ));
    }

    #[tokio::test]
    async fn the_writer_flushes_and_stops_when_the_last_handle_goes() {
        let (store, writer, thread) = start();
        create(&writer).await;
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.counters().unwrap().tickets, 1);
    }

    // ---- R-A1 serial numbers --------------------------------------------

    /// A writer whose clock the test moves.
    fn start_at(now: DateTime<Utc>) -> (Store, Writer, Arc<ManualClock>) {
        let store = Store::in_memory();
        let clock = Arc::new(ManualClock::new(now));
        let (writer, _thread) = Writer::start(store.clone(), clock.clone(), 64).unwrap();
        (store, writer, clock)
    }

    /// A valid report of `kind` for `estate`.
    fn report_of(estate: &str, kind: TicketKind) -> Intake {
        let category = match kind {
            TicketKind::VerbalDispatch => Category::Security,
            TicketKind::WorkOrder => Category::Repair,
            TicketKind::CoordinationTicket => Category::OwnerCommunication,
        };
        Intake {
            estate: EstateId::parse(estate).unwrap(),
            kind,
            category,
            ..intake()
        }
    }

    /// Record a report; its serial number as text, if it got one.
    async fn serial_of(writer: &Writer, intake: Intake) -> Option<String> {
        let command = Command::CreateTicket {
            by: user("kefu"),
            intake,
            named: None,
        };
        match writer.submit(command).await.unwrap() {
            Reply::Ticket(ticket) => ticket.serial_number.map(|number| number.to_string()),
            _ => panic!("expected a ticket"),
        }
    }

    fn expected(numbers: &[&str]) -> Vec<Option<String>> {
        numbers
            .iter()
            .map(|number| (!number.is_empty()).then(|| (*number).to_owned()))
            .collect()
    }

    fn series(estate: &str, kind: SerialKind, year: u16, month: u8) -> SerialSeries {
        let month = SerialMonth::new(year, month).unwrap();
        SerialSeries::new(EstateId::parse(estate).unwrap(), kind, month)
    }

    #[tokio::test]
    async fn a_named_write_is_answered_again_within_the_window_and_forgotten_after_it() {
        let (store, writer, clock) = start_at(at(9, 0));
        let named = |key: &str| {
            let key = sync_protocol::IdempotencyKey::parse(key).unwrap();
            Some(NamedRequest::new(key, &"the same report"))
        };
        let create = |named| Command::CreateTicket {
            by: user("kefu"),
            intake: report_of("E01", TicketKind::WorkOrder),
            named,
        };
        let Reply::Ticket(first) = writer.submit(create(named("k1"))).await.unwrap() else {
            panic!("a new ticket");
        };
        let Reply::Replayed(again) = writer.submit(create(named("k1"))).await.unwrap() else {
            panic!("the first answer");
        };
        assert_eq!(first.id, again.id);
        let key = sync_protocol::IdempotencyKey::parse("k1").unwrap();
        assert!(
            store
                .answered_request(&user("kefu"), &key)
                .unwrap()
                .is_some()
        );

        // A day later, the next named write forgets the old one.
        clock.advance(
            chrono::Duration::hours(IDEMPOTENCY_WINDOW_HOURS) + chrono::Duration::minutes(1),
        );
        writer.submit(create(named("k2"))).await.unwrap();
        assert!(
            store
                .answered_request(&user("kefu"), &key)
                .unwrap()
                .is_none()
        );
        let Reply::Ticket(anew) = writer.submit(create(named("k1"))).await.unwrap() else {
            panic!("a forgotten key names a new write");
        };
        assert_ne!(anew.id, first.id);
    }

    #[tokio::test]
    async fn r_a1_numbers_run_per_estate_kind_and_month_from_00001_without_gaps() {
        use TicketKind::{CoordinationTicket, VerbalDispatch, WorkOrder};
        let (store, writer, _clock) = start_at(at(9, 0));
        let mut numbers = Vec::new();
        for (estate, kind) in [
            ("E01", WorkOrder),
            ("E01", WorkOrder),
            ("E01", CoordinationTicket),
            ("E02", WorkOrder),
            ("E01", VerbalDispatch),
            ("E01", WorkOrder),
            ("E01", CoordinationTicket),
        ] {
            numbers.push(serial_of(&writer, report_of(estate, kind)).await);
        }
        assert_eq!(
            numbers,
            expected(&[
                "E01-WO-202611-00001",
                "E01-WO-202611-00002",
                "E01-CT-202611-00001",
                "E02-WO-202611-00001",
                "",
                "E01-WO-202611-00003",
                "E01-CT-202611-00002",
            ])
        );
        let work_orders = series("E01", SerialKind::WorkOrder, 2026, 11);
        assert_eq!(store.last_serial_sequence(&work_orders).unwrap(), 3);
    }

    #[tokio::test]
    async fn r_a1_a_verbal_dispatch_gets_no_serial_number_and_uses_none_up() {
        let (_store, writer, _clock) = start_at(at(9, 0));
        let verbal = report_of("E01", TicketKind::VerbalDispatch);
        assert_eq!(serial_of(&writer, verbal).await, None);
        let work_order = report_of("E01", TicketKind::WorkOrder);
        assert_eq!(
            serial_of(&writer, work_order).await.as_deref(),
            Some("E01-WO-202611-00001")
        );
    }

    #[tokio::test]
    async fn r_a1_a_refused_intake_skips_no_serial_number() {
        let (store, writer, _clock) = start_at(at(9, 0));
        let first = serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await;
        let mut incomplete = report_of("E01", TicketKind::WorkOrder);
        incomplete.location = " ".into();
        let refused = writer
            .submit(Command::CreateTicket {
                by: user("kefu"),
                intake: incomplete,
                named: None,
            })
            .await;
        assert!(matches!(refused, Err(WriteError::Workflow(_))));
        let next = serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await;
        assert_eq!(
            [first, next],
            [
                Some("E01-WO-202611-00001".to_owned()),
                Some("E01-WO-202611-00002".to_owned())
            ]
        );
        let work_orders = series("E01", SerialKind::WorkOrder, 2026, 11);
        assert_eq!(store.last_serial_sequence(&work_orders).unwrap(), 2);
    }

    #[tokio::test]
    async fn r_a1_a_new_month_of_the_estate_calendar_restarts_at_00001() {
        // 23:59 on 30 November in Shanghai (+08:00).
        let last_minute = Utc.with_ymd_and_hms(2026, 11, 30, 15, 59, 0).unwrap();
        let (store, writer, clock) = start_at(last_minute);
        let mut numbers = Vec::new();
        for kind in [TicketKind::WorkOrder, TicketKind::WorkOrder] {
            numbers.push(serial_of(&writer, report_of("E01", kind)).await);
        }
        numbers.push(serial_of(&writer, report_of("E01", TicketKind::CoordinationTicket)).await);
        // Midnight in Shanghai, still 30 November in UTC.
        clock.advance(chrono::Duration::minutes(1));
        numbers.push(serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await);
        numbers.push(serial_of(&writer, report_of("E01", TicketKind::CoordinationTicket)).await);
        numbers.push(serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await);
        assert_eq!(
            numbers,
            expected(&[
                "E01-WO-202611-00001",
                "E01-WO-202611-00002",
                "E01-CT-202611-00001",
                "E01-WO-202612-00001",
                "E01-CT-202612-00001",
                "E01-WO-202612-00002",
            ])
        );
        let november = series("E01", SerialKind::WorkOrder, 2026, 11);
        assert_eq!(store.last_serial_sequence(&november).unwrap(), 2);
    }

    #[tokio::test]
    async fn r_a1_intakes_committed_in_one_group_get_distinct_consecutive_numbers() {
        let (_store, writer, _clock) = start_at(at(9, 0));
        let mut intakes = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let writer = writer.clone();
            intakes.spawn(async move {
                serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await
            });
        }
        let mut numbers: Vec<String> = intakes
            .join_all()
            .await
            .into_iter()
            .map(|number| number.expect("a work order is numbered"))
            .collect();
        numbers.sort();
        let all: Vec<String> = (1..=40).map(|n| format!("E01-WO-202611-{n:05}")).collect();
        assert_eq!(numbers, all);
    }

    #[tokio::test]
    async fn r_a1_r_c2_a_converted_work_order_keeps_its_number_and_the_coordination_ticket_draws_a_ct_number()
     {
        let (store, writer, _clock) = start_at(at(9, 0));
        let work_order = create(&writer).await;
        let convert = OfficeOp::Convert {
            reason: "needs a part from the supplier 需等配件".into(),
        };
        let Reply::Ticket(converted) = office(&writer, &work_order.id, convert).await.unwrap()
        else {
            panic!("expected a ticket")
        };
        let number = |ticket: &Ticket| ticket.serial_number.as_ref().map(ToString::to_string);
        assert_eq!(number(&converted).as_deref(), Some("E01-WO-202611-00001"));
        let coordination_id = converted
            .converted_to
            .clone()
            .expect("linked to its coordination ticket");
        let coordination = store.ticket(&coordination_id).unwrap().unwrap();
        assert_eq!(
            number(&coordination).as_deref(),
            Some("E01-CT-202611-00001")
        );
        let next = serial_of(&writer, report_of("E01", TicketKind::CoordinationTicket)).await;
        assert_eq!(next.as_deref(), Some("E01-CT-202611-00002"));
    }

    #[tokio::test]
    async fn r_a1_a_restarted_writer_continues_the_series() {
        let store = Store::in_memory();
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let (writer, thread) = Writer::start(store.clone(), clock.clone(), 16).unwrap();
        for _ in 0..2 {
            serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await;
        }
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .unwrap()
            .unwrap();
        let (writer, _thread) = Writer::start(store, clock, 16).unwrap();
        let next = serial_of(&writer, report_of("E01", TicketKind::WorkOrder)).await;
        assert_eq!(next.as_deref(), Some("E01-WO-202611-00003"));
    }

    // ---- A storage fault ---------------------------------------------------

    /// An in-memory store whose flush fails, or does not return until the
    /// test lets it go (as sled's flush can wait for ever on a full disk).
    struct BrokenFlush {
        memory: MemoryKv,
        stuck_until: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
    }

    impl Kv for BrokenFlush {
        fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.memory.get(space, key)
        }

        fn contains(&self, space: Space, key: &[u8]) -> Result<bool, StoreError> {
            self.memory.contains(space, key)
        }

        fn range(
            &self,
            space: Space,
            from: &[u8],
            to: &[u8],
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
            self.memory.range(space, from, to, limit)
        }

        fn range_back(
            &self,
            space: Space,
            from: &[u8],
            to: &[u8],
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
            self.memory.range_back(space, from, to, limit)
        }

        fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
            self.memory.apply(writes)
        }

        fn flush(&self) -> Result<(), StoreError> {
            match &self.stuck_until {
                Some(release) => {
                    // Returns once the sender is dropped.
                    let _ = release.lock().unwrap().recv();
                    Ok(())
                }
                None => Err(StoreError::Engine("No space left on device".into())),
            }
        }

        fn size_on_disk(&self) -> Result<u64, StoreError> {
            self.memory.size_on_disk()
        }
    }

    /// A writer over a [`BrokenFlush`] that waits for a flush 100 ms at most.
    fn start_broken(
        stuck_until: Option<std::sync::mpsc::Receiver<()>>,
    ) -> (Writer, JoinHandle<()>) {
        let broken = BrokenFlush {
            memory: MemoryKv::new(),
            stuck_until: stuck_until.map(Mutex::new),
        };
        let store = Store::over(Arc::new(broken));
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let bound = Duration::from_millis(100);
        let settings = WriterSettings {
            flush_timeout: bound,
            ..WriterSettings::default()
        };
        Writer::start_with_notices(store, clock, 16, settings, AfterCommit::default()).unwrap()
    }

    /// The writer refuses everything and its thread ends, stuck flush or not.
    async fn assert_stopped_for_good(writer: &Writer, thread: JoinHandle<()>) {
        assert!(writer.is_stopped());
        assert!(writer.storage_fault().occurred());
        let command = Command::CreateTicket {
            by: user("kefu"),
            intake: intake(),
            named: None,
        };
        assert!(matches!(
            writer.submit(command).await,
            Err(WriteError::Stopped)
        ));
        let joined = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || thread.join()),
        );
        joined
            .await
            .expect("the writer thread ends")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_flush_that_does_not_return_within_its_bound_stops_the_writer_and_acknowledges_nothing()
     {
        let (release, stuck_until) = std::sync::mpsc::channel();
        let (writer, thread) = start_broken(Some(stuck_until));
        let command = Command::CreateTicket {
            by: user("kefu"),
            intake: intake(),
            named: None,
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), writer.submit(command))
            .await
            .expect("the writer answers once the bound has passed");
        assert!(matches!(answer, Err(WriteError::Store(_))));
        assert_stopped_for_good(&writer, thread).await;
        // The flush returning late changes nothing: the writer stays stopped.
        drop(release);
        assert!(writer.is_stopped());
    }

    #[tokio::test]
    async fn a_failed_flush_stops_the_writer_and_is_recorded_as_a_storage_fault() {
        let (writer, thread) = start_broken(None);
        let command = Command::CreateTicket {
            by: user("kefu"),
            intake: intake(),
            named: None,
        };
        let answer = writer.submit(command).await;
        assert!(matches!(answer, Err(WriteError::Store(_))));
        assert_stopped_for_good(&writer, thread).await;
    }

    #[tokio::test]
    async fn a_writer_stopped_at_shutdown_records_no_storage_fault() {
        let (_store, writer, thread) = start();
        create(&writer).await;
        let fault = writer.storage_fault();
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .unwrap()
            .unwrap();
        assert!(!fault.occurred());
    }

    // ---- Inline (a deterministic simulation) ----------------------------

    #[tokio::test]
    async fn an_inline_writer_answers_with_the_command_already_in_the_store() {
        let store = Store::in_memory();
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let writer = Writer::start_inline(
            store.clone(),
            clock,
            WriterSettings::default(),
            AfterCommit::default(),
        )
        .unwrap();
        let ticket = create(&writer).await;
        // Read from the store itself, not the writer's staged view: flushed.
        assert_eq!(store.ticket(&ticket.id).unwrap(), Some(ticket));
        assert_eq!(
            writer.durable_cursor(),
            Cursor(store.counters().unwrap().feed)
        );
        assert!(!writer.is_stopped());
    }

    #[tokio::test]
    async fn a_server_rebuilt_over_the_same_store_continues_from_what_the_inline_writer_flushed() {
        let store = store_with_crew();
        let clock = Arc::new(ManualClock::new(at(9, 0)));
        let first = Writer::start_inline(
            store.clone(),
            clock.clone(),
            WriterSettings::default(),
            AfterCommit::default(),
        )
        .unwrap();
        let ticket = create(&first).await;
        let dispatch = OfficeOp::Dispatch {
            technician: user("li"),
        };
        office(&first, &ticket.id, dispatch).await.unwrap();
        let cursor = first.durable_cursor();
        drop(first);
        let again = Writer::start_inline(
            store.clone(),
            clock,
            WriterSettings::default(),
            AfterCommit::default(),
        )
        .unwrap();
        assert_eq!(again.durable_cursor(), cursor);
        assert_eq!(create(&again).await.id.as_str(), "tk00000002");
    }
}
