//! A technician with a handheld, as a simulated host: the real
//! `handheld::Device` over storage that outlives the host, so that a crash
//! of the host is a flat battery and its restart opens the same outbox. The
//! technician records what the job calls for on one of their tickets, or
//! syncs, with pauses between; at the end of the run they sync until
//! nothing is left to upload or pull.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use handheld::{Device, HandheldError, MemoryStorage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sync_protocol::{
    Charge, CompletionRecord, DeviceId, DeviceMutation, DeviceOp, Material, Rating, Status, UserId,
};

use crate::clock::SimClock;
use crate::estate;
use crate::http::HttpClient;
use crate::shared::{Phase, Shared};
use crate::transport::{SimTransport, TransportDice};

const APP_VERSION: &str = "simulated-handheld/1";
/// How often a technician waiting for the next phase looks again.
const IDLE: Duration = Duration::from_millis(500);

/// A technician and their handheld: everything that outlives a restart.
pub struct Technician {
    /// The host's name in the simulation, and the observer's in the journal.
    pub name: String,
    pub user: UserId,
    pub device_id: DeviceId,
    pub storage: MemoryStorage,
    /// How far the handheld's clock is off.
    pub skew: chrono::Duration,
    rng: Mutex<ChaCha8Rng>,
    dice: Arc<TransportDice>,
    /// Every mutation the handheld recorded, as `record` returned it.
    recorded: Mutex<Vec<DeviceMutation>>,
    /// The last draining round this handheld finished.
    drained_round: AtomicU64,
}

impl Technician {
    /// Technician `index`; `rng` decides what they do, `dice` what their
    /// network does to answers.
    pub fn new(index: usize, mut rng: ChaCha8Rng, dice: ChaCha8Rng) -> Self {
        let skew = chrono::Duration::seconds(rng.random_range(-300..=300));
        let device_id = estate::device_id(index);
        Self {
            name: device_id.to_string(),
            user: estate::technician(index),
            device_id,
            storage: MemoryStorage::new(),
            skew,
            rng: Mutex::new(rng),
            dice: Arc::new(TransportDice::new(dice)),
            recorded: Mutex::new(Vec::new()),
            drained_round: AtomicU64::new(0),
        }
    }

    /// The handheld as the checker reads it after the run.
    pub fn open_device(&self, clock: SimClock) -> Result<Device, HandheldError> {
        Device::open_in_memory(
            &self.storage,
            self.device_id.clone(),
            APP_VERSION.to_owned(),
            Arc::new(clock.skewed(self.skew)),
        )
    }

    pub fn recorded(&self) -> Vec<DeviceMutation> {
        lock(&self.recorded).clone()
    }

    pub fn drained_round(&self) -> u64 {
        self.drained_round.load(Ordering::Relaxed)
    }

    fn roll(&self, below: u32) -> u32 {
        lock(&self.rng).random_range(0..below)
    }

    fn pause(&self, from_ms: u64, to_ms: u64) -> Duration {
        Duration::from_millis(lock(&self.rng).random_range(from_ms..to_ms))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // One thread runs the simulation; a panic there ends the run anyway.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handheld's software, from power-on.
pub async fn work(technician: Arc<Technician>, shared: Arc<Shared>) -> turmoil::Result {
    let device = technician.open_device(shared.clock)?;
    let transport = SimTransport {
        name: technician.name.clone(),
        client: HttpClient::new(shared.scenario.request_timeout),
        journal: shared.journal.clone(),
        faults: shared.faults.clone(),
        dice: technician.dice.clone(),
        answer_loss: shared.scenario.answer_loss,
        variant: shared.scenario.variant,
    };
    let handheld = PoweredOn {
        technician: &technician,
        shared: &shared,
        device,
        transport,
    };
    shared.journal.note(
        &technician.name,
        format_args!(
            "powers on with {} pending",
            handheld.device.pending()?.len()
        ),
    );
    loop {
        match shared.phase() {
            Phase::Active => {
                if handheld.device.session()?.is_none() {
                    handheld.login().await?;
                } else if technician.roll(100) < 60 {
                    handheld.record()?;
                } else {
                    handheld.sync().await?;
                }
                tokio::time::sleep(technician.pause(500, 12_000)).await;
            }
            Phase::Healing => tokio::time::sleep(IDLE).await,
            Phase::Draining(round) => {
                if technician.drained_round() < round {
                    handheld.drain(round).await?;
                }
                tokio::time::sleep(IDLE).await;
            }
        }
    }
}

struct PoweredOn<'a> {
    technician: &'a Technician,
    shared: &'a Shared,
    device: Device,
    transport: SimTransport,
}

impl PoweredOn<'_> {
    async fn login(&self) -> Result<(), HandheldError> {
        let user = self.technician.user.as_str();
        let answer = self
            .device
            .login(&self.transport, user, estate::PASSWORD)
            .await;
        match answer {
            Ok(_) => self.note("logs in"),
            Err(error) => self.failed("login", error)?,
        }
        Ok(())
    }

    /// One sync; whether it went through.
    async fn sync(&self) -> Result<bool, HandheldError> {
        match self.device.sync(&self.transport).await {
            Ok(summary) => {
                self.note(format_args!(
                    "synced: {} answers in {} pushes, {} pages, {} updated, {} revoked, {} renumbered",
                    summary.outcomes.len(),
                    summary.pushes,
                    summary.pages,
                    summary.tickets_updated,
                    summary.tickets_revoked,
                    summary.renumbered,
                ));
                self.shared
                    .journal
                    .count(|counts| counts.syncs_completed += 1);
                // The replica's own versions must not go back either.
                let replica = format!("{} replica", self.technician.name);
                for state in self.device.tickets()? {
                    let ticket = &state.local.ticket;
                    self.shared
                        .journal
                        .saw_version(&replica, &ticket.id, ticket.version);
                }
                Ok(true)
            }
            Err(error) => {
                self.shared.journal.count(|counts| counts.syncs_failed += 1);
                self.failed("sync", error)?;
                Ok(false)
            }
        }
    }

    /// Sync once more in this draining round; done when nothing is pending.
    async fn drain(&self, round: u64) -> Result<(), HandheldError> {
        if self.device.session()?.is_none() {
            return self.login().await;
        }
        if self.sync().await? && self.device.pending()?.is_empty() {
            self.technician
                .drained_round
                .store(round, Ordering::Relaxed);
            self.note(format_args!("drained in round {round}"));
        }
        Ok(())
    }

    /// Record what the job calls for on one of the technician's tickets.
    fn record(&self) -> Result<(), HandheldError> {
        let tickets: Vec<_> = self
            .device
            .tickets()?
            .into_iter()
            .filter(|state| state.local.revoked.is_none())
            .collect();
        if tickets.is_empty() {
            return Ok(());
        }
        let state = &tickets[self.technician.roll(tickets.len() as u32) as usize];
        let ticket_id = &state.local.ticket.id;
        let number = lock(&self.technician.recorded).len() + 1;
        let name = &self.technician.name;
        let roll = self.technician.roll(100);
        let recorded = match state.shown.status {
            Status::Dispatched if roll < 70 => self
                .device
                .record(ticket_id, DeviceOp::RecordArrival { position: None }),
            Status::InProgress if roll < 50 => {
                let result = CompletionRecord {
                    work_done: format!("更换接头 replaced the joint ({name} {number})"),
                    materials: vec![Material {
                        name: "pipe joint DN20".to_owned(),
                        quantity: "1".to_owned(),
                    }],
                    charge: if roll < 25 {
                        Charge::Paid { fee_fen: 3500 }
                    } else {
                        Charge::Free {}
                    },
                };
                self.device.record(ticket_id, DeviceOp::Complete { result })
            }
            Status::Completed if roll < 60 => {
                let image = format!("signature strokes of {name} {number}").into_bytes();
                self.device.record_signature(
                    ticket_id,
                    &image,
                    "王女士".to_owned(),
                    Some(Rating::Satisfied),
                )
            }
            _ => {
                let text = format!("阀门 valve checked ({name} {number})");
                self.device.record(ticket_id, DeviceOp::AddNote { text })
            }
        };
        match recorded {
            Ok(mutation) => {
                self.note(format_args!(
                    "records seq {} on {}: {}",
                    mutation.seq.0,
                    mutation.ticket_id,
                    op_name(&mutation.op)
                ));
                lock(&self.technician.recorded).push(mutation);
                self.shared
                    .journal
                    .count(|counts| counts.mutations_recorded += 1);
            }
            Err(error) => self.failed("record", error)?,
        }
        Ok(())
    }

    fn note(&self, event: impl std::fmt::Display) {
        self.shared.journal.note(&self.technician.name, event);
    }

    /// Note a failed call; only a storage fault stops the handheld (and
    /// the run): everything else is what a technician meets in the field.
    fn failed(&self, what: &str, error: HandheldError) -> Result<(), HandheldError> {
        self.note(format_args!("{what} failed [{}]: {error}", error.code()));
        match error {
            HandheldError::Storage { .. } => Err(error),
            _ => Ok(()),
        }
    }
}

pub fn op_name(op: &DeviceOp) -> &'static str {
    match op {
        DeviceOp::RecordArrival { .. } => "arrival",
        DeviceOp::AddNote { .. } => "note",
        DeviceOp::Complete { .. } => "result",
        DeviceOp::AttachSignature { .. } => "signature",
        DeviceOp::AttachPhoto { .. } => "photo",
    }
}
