//! The crash soak: the real `estate-sync` process is killed with SIGKILL
//! at random moments while four handhelds record and sync; it restarts on
//! the same data directory (on a new port, which the handhelds are pointed
//! at) and the work goes on.
//!
//! - After every restart, before the handhelds go on, every mutation a
//!   handheld got an `applied` answer for (first time or as a duplicate) is
//!   on the server as it was recorded.
//! - Every sync takes each answered change out of the outbox with exactly
//!   one stored answer, and renumbers nothing.
//! - At the end every handheld syncs until its outbox is empty: every
//!   recorded mutation is on the server exactly once (facts are keyed by
//!   mutation id, and the history has one entry for it), each has exactly
//!   one answer on its device, and every device shows the server's tickets.
//!
//! CI runs [`DEFAULT_KILLS`] kills with a seed from the clock. The soak is
//! the same test with more kills (docs/BENCHMARKS.md, "Crash soak"):
//!
//! ```sh
//! CRASH_SOAK_KILLS=50 CRASH_SOAK_SEED=7 \
//!     cargo test --release -p handheld --test crash_soak -- --nocapture
//! ```
//!
//! The seed decides what is recorded, on which ticket, and after how many
//! syncs each kill comes; where exactly a kill lands inside the server
//! depends on the threads' timing, so a replay repeats the schedule, not
//! necessarily the same interleaving.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use common::{DEMO_PASSWORD, FaultyNetwork, Office, Server, handheld_on};
use handheld::{Handheld, HandheldError, ManualClock, OutcomeRecord};
use sync_protocol::{
    Area, Category, Charge, CompletionRecord, DeviceMutation, DeviceOp, DeviceSeq, EstateId, Fact,
    HistoryEvent, Intake, Material, MutationId, Rating, Reporter, Source, Ticket, TicketId,
    TicketKind, UserId, Verdict, Version,
};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const KILLS_VARIABLE: &str = "CRASH_SOAK_KILLS";
const SEED_VARIABLE: &str = "CRASH_SOAK_SEED";
/// A handful, so that `cargo test --workspace` stays quick.
const DEFAULT_KILLS: u64 = 5;
/// (technician, device id): li carries two handhelds, so that two devices
/// write to the same tickets at once.
const CLIENTS: [(&str, &str); 4] = [
    ("li", "hh-crash-li-a"),
    ("li", "hh-crash-li-b"),
    ("zhang", "hh-crash-zhang"),
    ("wang", "hh-crash-wang"),
];
const TECHNICIANS: [&str; 3] = ["li", "zhang", "wang"];
/// The demo dispatches one or two tickets to each; the office adds the rest.
const TICKETS_PER_TECHNICIAN: usize = 3;
/// A kill comes after 1 to this many syncs (of all handhelds together)
/// have begun since the restart, and then up to [`MAX_KILL_DELAY`] later.
const MAX_SYNCS_BEFORE_KILL: u64 = 40;
/// About the time a push takes on loopback, so that the kill lands at any
/// point of the last one: on its way, in the writer's queue, during the
/// flush, or with its answer on the way back.
const MAX_KILL_DELAY: Duration = Duration::from_millis(10);
/// Each step records 1 to this many changes, then syncs.
const MAX_CHANGES_PER_STEP: u64 = 3;
/// The most a kill may wait for the handhelds to begin their syncs.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);
/// The final syncs: a second round brings each device what the others
/// pushed; a third covers a deadline the scheduler recorded meanwhile.
const FINAL_ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handhelds_syncing_through_repeated_sigkills_lose_no_acknowledged_mutation_and_store_none_twice()
 {
    let soak = Soak::from_environment();
    println!(
        "crash soak: {} kills, seed {} (replay: {SEED_VARIABLE}={} {KILLS_VARIABLE}={})",
        soak.kills, soak.seed, soak.seed, soak.kills
    );
    let started = Instant::now();
    let mut random = Random(soak.seed);
    let mut server = Server::start();
    dispatch_up_to(TICKETS_PER_TECHNICIAN, &Office::of(&server)).await;
    let mut clients = Vec::new();
    for (technician, device_id) in CLIENTS {
        clients.push(Client::logged_in(&server, technician, device_id, random.next()).await);
    }

    let mut restarts = Duration::ZERO;
    for kill in 1..=soak.kills {
        let syncs_before_kill = random.between(1, MAX_SYNCS_BEFORE_KILL);
        let delay = Duration::from_micros(random.below(MAX_KILL_DELAY.as_micros() as u64 + 1));
        clients = work_until_killed(clients, &mut server, syncs_before_kill, delay).await;
        let restart = Instant::now();
        server.start_again();
        restarts += restart.elapsed();
        for client in &clients {
            client.network.retarget(server.url());
        }
        let checked = check_on_server(&Office::of(&server).tickets().await, &clients);
        println!(
            "kill {kill}/{}: {syncs_before_kill} syncs and {delay:?} into the run; after the restart all {checked} mutations acknowledged so far are on the server",
            soak.kills
        );
    }

    let tickets = sync_to_the_end(&mut clients, &Office::of(&server)).await;
    for client in &clients {
        client.check_answered_everything();
    }
    let recorded: usize = clients.iter().map(|client| client.recorded.len()).sum();
    let stored = check_on_server(&tickets, &clients);
    assert_eq!(stored, recorded, "every recorded mutation is on the server");
    let figures = Figures::of(&clients);
    println!(
        "crash soak: {} kills, {} mutations ({} signatures) from {} handhelds, {} answered as duplicates after a lost answer; {} syncs begun, {} without an answer; restarts {:.2} s, total {:.1} s",
        soak.kills,
        recorded,
        figures.signatures,
        clients.len(),
        figures.duplicates,
        figures.syncs_begun,
        figures.syncs_unanswered,
        restarts.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}

/// How many kills, and the seed of everything random.
struct Soak {
    kills: u64,
    seed: u64,
}

impl Soak {
    fn from_environment() -> Self {
        let kills = number_from(KILLS_VARIABLE).unwrap_or(DEFAULT_KILLS);
        assert!(kills > 0, "{KILLS_VARIABLE} must be at least 1");
        // A new seed every run, so that CI explores; it is printed for a replay.
        let seed = number_from(SEED_VARIABLE).unwrap_or_else(|| {
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            since_epoch.as_nanos() as u64
        });
        Self { kills, seed }
    }
}

fn number_from(variable: &str) -> Option<u64> {
    let raw = std::env::var(variable).ok()?;
    Some(
        raw.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{variable}={raw:?} is not a whole number")),
    )
}

/// Let the handhelds work until `syncs_before_kill` syncs have begun, then
/// `delay` more; SIGKILL the server and wait for every handheld to finish
/// its step.
async fn work_until_killed(
    clients: Vec<Client>,
    server: &mut Server,
    syncs_before_kill: u64,
    delay: Duration,
) -> Vec<Client> {
    let stop = Arc::new(AtomicBool::new(false));
    let (syncs_begun, mut syncs_seen) = watch::channel(0_u64);
    let syncs_begun = Arc::new(syncs_begun);
    let tasks: Vec<JoinHandle<Client>> = clients
        .into_iter()
        .map(|mut client| {
            let stop = stop.clone();
            let syncs_begun = syncs_begun.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    client.step(&syncs_begun).await;
                }
                client
            })
        })
        .collect();
    let reached = tokio::time::timeout(
        PROGRESS_TIMEOUT,
        syncs_seen.wait_for(|begun| *begun >= syncs_before_kill),
    )
    .await
    .is_ok_and(|seen| seen.is_ok());
    tokio::time::sleep(delay).await;
    server.stop();
    stop.store(true, Ordering::SeqCst);
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        // A handheld's failed assertion fails the test with its own message.
        match task.await {
            Ok(client) => clients.push(client),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    assert!(
        reached,
        "the handhelds did not begin {syncs_before_kill} syncs within {PROGRESS_TIMEOUT:?}"
    );
    clients
}

/// Sync every handheld until nothing is pending and each shows exactly the
/// server's tickets; returns the server's tickets.
async fn sync_to_the_end(clients: &mut [Client], office: &Office) -> Vec<Ticket> {
    let mut round = 1;
    loop {
        for client in clients.iter_mut() {
            if let Err(error) = client.sync().await {
                panic!("{}: the final sync failed: {error}", client.device_id);
            }
        }
        let tickets = office.tickets().await;
        let differences: Vec<String> = clients
            .iter()
            .flat_map(|client| client.differences_from(&tickets))
            .collect();
        if differences.is_empty() {
            return tickets;
        }
        assert!(
            round < FINAL_ROUNDS,
            "the devices do not show the server's tickets:\n{}",
            differences.join("\n")
        );
        round += 1;
    }
}

// ---- One handheld ---------------------------------------------------------------

struct Client {
    technician: UserId,
    device_id: String,
    handheld: Handheld,
    network: Arc<FaultyNetwork>,
    clock: Arc<ManualClock>,
    /// Every change the handheld saved, by its number.
    recorded: BTreeMap<DeviceSeq, DeviceMutation>,
    /// The one answer each change got, as the device stored it.
    answers: BTreeMap<DeviceSeq, OutcomeRecord>,
    syncs_begun: u64,
    syncs_unanswered: u64,
    random: Random,
    _data_dir: TempDir,
}

impl Client {
    async fn logged_in(server: &Server, technician: &str, device_id: &str, seed: u64) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let network = FaultyNetwork::to(server.url());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let handheld = handheld_on(data_dir.path(), device_id, &network, &clock).unwrap();
        handheld
            .login(technician.to_owned(), DEMO_PASSWORD.to_owned())
            .await
            .unwrap();
        handheld.sync().await.unwrap();
        assert_eq!(
            handheld.device().tickets().unwrap().len(),
            TICKETS_PER_TECHNICIAN,
            "{device_id} holds {technician}'s tickets"
        );
        Self {
            technician: UserId::parse(technician).unwrap(),
            device_id: device_id.to_owned(),
            handheld,
            network,
            clock,
            recorded: BTreeMap::new(),
            answers: BTreeMap::new(),
            syncs_begun: 0,
            syncs_unanswered: 0,
            random: Random(seed),
            _data_dir: data_dir,
        }
    }

    /// Record a few changes, then sync; a sync the kill cut off leaves its
    /// changes in the outbox for the next one.
    async fn step(&mut self, syncs_begun: &watch::Sender<u64>) {
        // The device's clock follows the machine's.
        self.clock.set(Utc::now());
        for _ in 0..self.random.between(1, MAX_CHANGES_PER_STEP) {
            self.record_something();
        }
        self.syncs_begun += 1;
        syncs_begun.send_modify(|begun| *begun += 1);
        match self.sync().await {
            Ok(()) => {}
            // No answer: the server died under the request, or is down.
            Err(error) if matches!(error.code(), "offline" | "server_unavailable") => {
                self.syncs_unanswered += 1;
            }
            Err(error) => panic!("{}: the sync failed: {error}", self.device_id),
        }
    }

    /// One sync, and the check of the answers it stored.
    async fn sync(&mut self) -> Result<(), HandheldError> {
        let sent = self.handheld.device().pending().unwrap();
        let newest_before = self.handheld.device().outcomes(1).unwrap().pop();
        let synced = self.handheld.sync().await.map(|_| ());
        self.check_answers_of_one_sync(&sent, newest_before.as_ref());
        synced
    }

    /// An arrival, a note, a result or the owner's signature on one of the
    /// technician's tickets, saved on the device.
    fn record_something(&mut self) {
        let device = self.handheld.device();
        let random = &mut self.random;
        let tickets = device.tickets().unwrap();
        let ticket = &tickets[random.below(tickets.len() as u64) as usize].shown;
        let roll = random.below(100);
        let saved = if roll < 15 {
            device.record(&ticket.id, DeviceOp::RecordArrival { position: None })
        } else if roll < 60 {
            let text = format!(
                "{} 检查进度 progress check {:x}",
                self.device_id,
                random.next()
            );
            device.record(&ticket.id, DeviceOp::AddNote { text })
        } else if roll < 80 || ticket.current_result().is_none() {
            let result = completion_record(random);
            device.record(&ticket.id, DeviceOp::Complete { result })
        } else {
            let image = signature_image(random);
            let rating = [None, Some(Rating::Satisfied), Some(Rating::Dissatisfied)]
                [random.below(3) as usize];
            device.record_signature(&ticket.id, &image, "王女士 Ms Wang".to_owned(), rating)
        };
        let mutation =
            saved.unwrap_or_else(|error| panic!("{}: not saved: {error}", self.device_id));
        self.recorded.insert(mutation.seq, mutation);
    }

    /// After a sync that began with `sent` pending and `newest_before` as
    /// the newest stored answer: the changes that left the outbox are
    /// exactly those answered, each answer stored once, nothing renumbered.
    fn check_answers_of_one_sync(
        &mut self,
        sent: &[DeviceMutation],
        newest_before: Option<&OutcomeRecord>,
    ) {
        let device = self.handheld.device();
        let left: BTreeSet<DeviceSeq> = device.pending().unwrap().iter().map(|m| m.seq).collect();
        let sent: BTreeMap<DeviceSeq, &DeviceMutation> = sent.iter().map(|m| (m.seq, m)).collect();
        assert!(
            left.iter().all(|seq| sent.contains_key(seq)),
            "{}: the sync renumbered pending changes: {left:?}",
            self.device_id
        );
        let answered = sent.len() - left.len();
        let newest = device.outcomes(answered + 1).unwrap();
        assert!(
            newest.len() >= answered,
            "{}: {answered} changes left the outbox, {} answers were stored",
            self.device_id,
            newest.len()
        );
        assert_eq!(
            newest.get(answered),
            newest_before,
            "{}: more answers were stored than changes left the outbox",
            self.device_id
        );
        for record in &newest[..answered] {
            let seq = record.mutation.seq;
            assert!(
                !left.contains(&seq) && sent.get(&seq) == Some(&&record.mutation),
                "{}: an answer for #{} that was not a change sent and taken out",
                self.device_id,
                seq.0
            );
            let earlier = self.answers.insert(seq, record.clone());
            assert!(
                earlier.is_none(),
                "{}: #{} answered twice",
                self.device_id,
                seq.0
            );
        }
    }

    /// Nothing pending, and every recorded change answered `applied`, on time.
    fn check_answered_everything(&self) {
        let device = self.handheld.device();
        assert!(device.pending().unwrap().is_empty(), "{}", self.device_id);
        let recorded: Vec<&DeviceSeq> = self.recorded.keys().collect();
        let answered: Vec<&DeviceSeq> = self.answers.keys().collect();
        assert_eq!(
            recorded, answered,
            "{}: one answer per change",
            self.device_id
        );
        for record in self.answers.values() {
            assert!(
                matches!(record.verdict(), Verdict::Applied(ref applied) if applied.late.is_none()),
                "{}: #{} was answered {:?}",
                self.device_id,
                record.mutation.seq.0,
                record.outcome
            );
        }
    }

    /// Where the device's tickets differ from the server's: the same
    /// tickets, each the server's copy, nothing pending or awaiting a pull.
    fn differences_from(&self, server_tickets: &[Ticket]) -> Vec<String> {
        let expected: BTreeMap<&TicketId, &Ticket> = server_tickets
            .iter()
            .filter(|ticket| ticket.assigned_technician.as_ref() == Some(&self.technician))
            .map(|ticket| (&ticket.id, ticket))
            .collect();
        let states = self.handheld.device().tickets().unwrap();
        let shown: BTreeSet<&TicketId> =
            states.iter().map(|state| &state.local.ticket.id).collect();
        let mut differences = Vec::new();
        if shown != expected.keys().copied().collect() {
            differences.push(format!(
                "{}: holds {shown:?}, the server assigns {:?}",
                self.device_id,
                expected.keys()
            ));
        }
        for state in &states {
            let id = &state.local.ticket.id;
            let up_to_date = expected.get(id) == Some(&&state.local.ticket)
                && state.local.revoked.is_none()
                && state.pending.is_empty()
                && state.awaiting_pull.is_empty();
            if !up_to_date {
                differences.push(format!(
                    "{}: {id} at version {} ({} pending, {} awaiting a pull), the server's at {:?}",
                    self.device_id,
                    state.local.ticket.version.0,
                    state.pending.len(),
                    state.awaiting_pull.len(),
                    expected.get(id).map(|ticket| ticket.version.0)
                ));
            }
        }
        differences
    }
}

/// R-P6: what was done, a material, free or paid with its fee.
fn completion_record(random: &mut Random) -> CompletionRecord {
    let charge = if random.below(2) == 0 {
        Charge::Free {}
    } else {
        Charge::Paid {
            fee_fen: random.between(100, 50_000),
        }
    };
    CompletionRecord {
        work_done: format!("更换接头 replaced the joint {:x}", random.next()),
        materials: vec![Material {
            name: "pipe joint DN20 水管接头".to_owned(),
            quantity: random.between(1, 4).to_string(),
        }],
        charge,
    }
}

/// A few kilobytes of strokes, different every time, so that every
/// signature uploads an image of its own.
fn signature_image(random: &mut Random) -> Vec<u8> {
    let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
    for _ in 0..random.between(32, 512) {
        image.extend_from_slice(&random.next().to_le_bytes());
    }
    image
}

// ---- What the server holds ------------------------------------------------------

/// A fact as the server stores it, in the terms of the change that made it.
#[derive(Debug, PartialEq, Eq)]
struct FactAsRecorded {
    ticket_id: TicketId,
    op: DeviceOp,
    recorded_at: DateTime<Utc>,
    base_version: Version,
}

impl FactAsRecorded {
    fn of(mutation: &DeviceMutation) -> Self {
        Self {
            ticket_id: mutation.ticket_id.clone(),
            op: mutation.op.clone(),
            recorded_at: mutation.recorded_at,
            base_version: mutation.base_version,
        }
    }
}

/// One stored fact and where it is.
struct StoredFact {
    fact: FactAsRecorded,
    ticket_version: Version,
    /// `fact_recorded` entries for its mutation in the ticket's history.
    history_entries: usize,
}

/// Every device fact on the server, by mutation id; more than one entry
/// means a mutation stored twice.
fn stored_facts(tickets: &[Ticket]) -> BTreeMap<MutationId, Vec<StoredFact>> {
    let mut stored = BTreeMap::new();
    for ticket in tickets {
        add_facts(&mut stored, ticket, &ticket.arrivals, |_| {
            DeviceOp::RecordArrival { position: None }
        });
        add_facts(&mut stored, ticket, &ticket.notes, |note| {
            DeviceOp::AddNote {
                text: note.text.clone(),
            }
        });
        add_facts(&mut stored, ticket, &ticket.results, |result| {
            DeviceOp::Complete {
                result: result.clone(),
            }
        });
        add_facts(&mut stored, ticket, &ticket.signatures, |signature| {
            DeviceOp::AttachSignature {
                blob: signature.blob.clone(),
                signed_record: signature.signed_record.clone(),
                signer_name: signature.signer_name.clone(),
                rating: signature.rating,
                strokes: None,
            }
        });
    }
    stored
}

/// Add one of a ticket's fact sets, each fact with the intent that made it.
fn add_facts<T>(
    stored: &mut BTreeMap<MutationId, Vec<StoredFact>>,
    ticket: &Ticket,
    facts: &BTreeMap<MutationId, Fact<T>>,
    op: impl Fn(&T) -> DeviceOp,
) {
    for (id, fact) in facts {
        let history_entries = ticket
            .history
            .iter()
            .filter(|entry| {
                matches!(&entry.event, HistoryEvent::FactRecorded { mutation, .. } if mutation == id)
            })
            .count();
        stored.entry(id.clone()).or_default().push(StoredFact {
            fact: FactAsRecorded {
                ticket_id: ticket.id.clone(),
                op: op(&fact.body),
                recorded_at: fact.recorded_at,
                base_version: fact.base_version,
            },
            ticket_version: ticket.version,
            history_entries,
        });
    }
}

/// Every fact on the server is a change a handheld recorded, stored once,
/// as recorded; and every change a handheld got an `applied` answer for is
/// there, in a ticket version at least the one answered. Returns how many
/// answered changes were found.
fn check_on_server(tickets: &[Ticket], clients: &[Client]) -> usize {
    let stored = stored_facts(tickets);
    let recorded: BTreeMap<MutationId, &DeviceMutation> = clients
        .iter()
        .flat_map(|client| {
            let device = client.handheld.device().device_id().clone();
            client
                .recorded
                .iter()
                .map(move |(seq, mutation)| (MutationId::new(device.clone(), *seq), mutation))
        })
        .collect();
    for (id, copies) in &stored {
        let mutation = recorded
            .get(id)
            .unwrap_or_else(|| panic!("{id} is on the server but no handheld recorded it"));
        assert_eq!(copies.len(), 1, "{id} is stored {} times", copies.len());
        let copy = &copies[0];
        assert_eq!(copy.fact, FactAsRecorded::of(mutation), "{id} as stored");
        assert_eq!(copy.history_entries, 1, "{id} in the history");
    }
    let mut found = 0;
    for client in clients {
        let device = client.handheld.device().device_id();
        for (seq, record) in &client.answers {
            let Verdict::Applied(applied) = record.verdict() else {
                continue;
            };
            let id = MutationId::new(device.clone(), *seq);
            let copy = stored
                .get(&id)
                .and_then(|copies| copies.first())
                .unwrap_or_else(|| panic!("{id} was acknowledged and is not on the server"));
            assert!(
                copy.ticket_version >= applied.ticket_version,
                "{}: version {} is older than the {} acknowledged for {id}",
                copy.fact.ticket_id,
                copy.ticket_version.0,
                applied.ticket_version.0
            );
            found += 1;
        }
    }
    found
}

// ---- The office's part ----------------------------------------------------------

/// Record and dispatch reports until each technician holds `count` tickets.
async fn dispatch_up_to(count: usize, office: &Office) {
    for technician in TECHNICIANS {
        let held = office.tickets_of(technician).await.len();
        for _ in held..count {
            let ticket = office.create_ticket("kefu", &report()).await;
            let dispatch = sync_protocol::OfficeOp::Dispatch {
                technician: UserId::parse(technician).unwrap(),
            };
            office.act("diaodu", &ticket.id, dispatch).await;
        }
    }
}

fn report() -> Intake {
    Intake {
        estate: EstateId::parse("E01").unwrap(),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: "业主 Owner".to_owned(),
            phone: Some("139 0000 5678".to_owned()),
        },
        location: "9-3-801".to_owned(),
        description: "阳台地漏堵塞 Balcony drain blocked".to_owned(),
        received_at: Utc::now() - chrono::Duration::minutes(2),
        follow_up_of: None,
        booking: None,
    }
}

// ---- Figures and randomness -----------------------------------------------------

/// What the soak did, for its closing line.
#[derive(Default)]
struct Figures {
    signatures: usize,
    duplicates: usize,
    syncs_begun: u64,
    syncs_unanswered: u64,
}

impl Figures {
    fn of(clients: &[Client]) -> Self {
        let mut figures = Self::default();
        for client in clients {
            figures.signatures += client
                .recorded
                .values()
                .filter(|mutation| matches!(mutation.op, DeviceOp::AttachSignature { .. }))
                .count();
            figures.duplicates += client
                .answers
                .values()
                .filter(|record| matches!(record.outcome, sync_protocol::Outcome::Duplicate { .. }))
                .count();
            figures.syncs_begun += client.syncs_begun;
            figures.syncs_unanswered += client.syncs_unanswered;
        }
        figures
    }
}

/// SplitMix64: small and seedable; any seed, 0 included, gives a good stream.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// In `0..bound`; the bias of a modulo is irrelevant at these sizes.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// In `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}
