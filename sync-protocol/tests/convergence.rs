//! Property tests of the sync protocol: however the devices' batches arrive —
//! interleaved, replayed, duplicated, refused for a gap and retried — the
//! ticket ends the same, every mutation gets exactly one answer, and no fact
//! a technician recorded is lost (SPEC.md, "Field work without signal").

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use sync_protocol::{
    Area, BatchError, Category, Charge, CompletionRecord, DeviceId, DeviceMutation, DeviceOp,
    DeviceSeq, EstateId, FactKind, Intake, LateReason, Ledger, Material, MutationId, OfficeOp,
    Outcome, Recorder, RejectCode, Reporter, Sha256Hex, Source, Status, StoredOutcome, Ticket,
    TicketId, TicketKind, UserId, Verdict, WorkingCalendar, apply_batch, apply_office_op,
    create_ticket,
};

/// Holds the ticket at the end.
const CURRENT: &str = "li";
/// Held the ticket before it was reassigned to li; never held it otherwise.
const FORMER: &str = "wang";
/// Never held the ticket.
const STRANGER: &str = "zhao";
const TECHNICIANS: [&str; 3] = [CURRENT, FORMER, STRANGER];

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, hour, minute, 0).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn ticket_id() -> TicketId {
    TicketId::parse("t-1").unwrap()
}

fn recorder(name: &str) -> Recorder {
    Recorder {
        user: user(name),
        device: DeviceId::parse(&format!("hh-{name}")).unwrap(),
        clock_offset_ms: 0,
    }
}

/// What the office did to the ticket before any device synced.
#[derive(Clone, Copy, Debug)]
struct Setup {
    reassigned: bool,
    cancelled: bool,
}

fn initial_ticket(setup: Setup) -> Ticket {
    let intake = Intake {
        estate: EstateId::parse("E01").unwrap(),
        kind: TicketKind::WorkOrder,
        category: Category::Repair,
        area: Area::PrivateUnit,
        source: Source::Phone,
        reporter: Reporter {
            name: "王女士".into(),
            phone: Some("138 0000 1234".into()),
        },
        location: "3-1-502".into(),
        description: "厨房水管漏水 kitchen pipe leaking".into(),
        received_at: at(9, 0),
        follow_up_of: None,
        booking: None,
    };
    let office = |ticket: &Ticket, op: OfficeOp, now| {
        apply_office_op(
            ticket,
            &op,
            &user("dispatcher"),
            &WorkingCalendar::default(),
            now,
        )
        .unwrap()
    };
    let mut ticket = create_ticket(
        ticket_id(),
        intake,
        user("agent"),
        &WorkingCalendar::default(),
        at(9, 0),
    )
    .unwrap();
    let first = if setup.reassigned { FORMER } else { CURRENT };
    ticket = office(
        &ticket,
        OfficeOp::Dispatch {
            technician: user(first),
        },
        at(9, 1),
    );
    if setup.reassigned {
        let op = OfficeOp::Reassign {
            technician: user(CURRENT),
            reason: "wang was called to a burst main".into(),
        };
        ticket = office(&ticket, op, at(9, 30));
    }
    if setup.cancelled {
        let op = OfficeOp::Cancel {
            reason: "the owner fixed it himself".into(),
        };
        ticket = office(&ticket, op, at(9, 40));
    }
    ticket
}

/// A mutation to generate, before it is bound to a device's stream.
#[derive(Clone, Debug)]
enum OpSpec {
    Arrival,
    Note {
        blank: bool,
    },
    /// `invalid` picks one of the R-P6 violations.
    Complete {
        variant: u64,
        invalid: Option<u8>,
    },
    /// R-P7: over one of the device's own earlier results, or over nothing known.
    Signature {
        pick: usize,
        own_result: bool,
    },
}

fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        2 => Just(OpSpec::Arrival),
        3 => prop::bool::weighted(0.15).prop_map(|blank| OpSpec::Note { blank }),
        2 => (0u64..3, prop::option::weighted(0.2, 0u8..3))
            .prop_map(|(variant, invalid)| OpSpec::Complete { variant, invalid }),
        2 => (any::<usize>(), prop::bool::weighted(0.85))
            .prop_map(|(pick, own_result)| OpSpec::Signature { pick, own_result }),
    ]
}

/// One device's outbox: its mutations with consecutive seqs from 1, and the
/// verdict each one must get.
#[derive(Clone, Debug)]
struct Stream {
    technician: &'static str,
    mutations: Vec<DeviceMutation>,
    expected: Vec<Expected>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Applied { late: Option<LateReason> },
    Rejected(RejectCode),
}

fn completion_record(variant: u64, invalid: Option<u8>) -> CompletionRecord {
    let mut record = CompletionRecord {
        work_done: format!("replaced the pipe joint, way {variant}"),
        materials: if variant.is_multiple_of(2) {
            vec![Material {
                name: "washer 垫圈".into(),
                quantity: "2".into(),
            }]
        } else {
            Vec::new()
        },
        charge: if variant == 0 {
            Charge::Free {}
        } else {
            Charge::Paid {
                fee_fen: 1000 * variant,
            }
        },
    };
    match invalid {
        None => {}
        Some(0) => record.charge = Charge::Paid { fee_fen: 0 },
        Some(1) => record.work_done = " ".into(),
        Some(_) => {
            record.materials = vec![Material {
                name: String::new(),
                quantity: "1".into(),
            }]
        }
    }
    record
}

/// Bind the specs to a device: seqs, clock, content, and the verdict each
/// mutation must get whatever the delivery order. The verdicts do not depend
/// on other devices: a signature only refers to its own device's results.
fn build_stream(technician: &'static str, specs: &[OpSpec], setup: Setup) -> Stream {
    let initial = initial_ticket(setup);
    let held = initial.technicians_ever.contains(&user(technician));
    let late = if setup.cancelled {
        Some(LateReason::Cancelled)
    } else if technician != CURRENT {
        Some(LateReason::ReassignedAway)
    } else {
        None
    };
    let mut own_results: Vec<(Sha256Hex, bool)> = Vec::new();
    let mut mutations = Vec::new();
    let mut expected = Vec::new();
    for (seq, spec) in (1u64..).zip(specs) {
        let (op, valid) = match spec {
            OpSpec::Arrival => (DeviceOp::RecordArrival { position: None }, Ok(())),
            OpSpec::Note { blank } => {
                let text = if *blank {
                    "  ".to_owned()
                } else {
                    format!("{technician} note {seq}")
                };
                let valid = if *blank {
                    Err(RejectCode::InvalidContent)
                } else {
                    Ok(())
                };
                (DeviceOp::AddNote { text }, valid)
            }
            OpSpec::Complete { variant, invalid } => {
                let result = completion_record(*variant, *invalid);
                own_results.push((result.record_hash(), invalid.is_none()));
                let valid = match invalid {
                    None => Ok(()),
                    Some(_) => Err(RejectCode::InvalidContent),
                };
                (DeviceOp::Complete { result }, valid)
            }
            OpSpec::Signature { pick, own_result } => {
                let chosen = (*own_result && !own_results.is_empty())
                    .then(|| own_results[pick % own_results.len()].clone());
                let (signed_record, valid) = match chosen {
                    Some((hash, true)) => (hash, Ok(())),
                    // An invalid result was never stored, on any device's behalf.
                    Some((hash, false)) => (hash, Err(RejectCode::SignedRecordUnknown)),
                    None => (
                        Sha256Hex::of(b"a record nobody made"),
                        Err(RejectCode::SignedRecordUnknown),
                    ),
                };
                let op = DeviceOp::AttachSignature {
                    blob: Sha256Hex::of(format!("{technician} signature {seq}").as_bytes()),
                    signed_record,
                    signer_name: "王女士".into(),
                    rating: None,
                    strokes: None,
                };
                (op, valid)
            }
        };
        expected.push(match (held, valid) {
            (false, _) => Expected::Rejected(RejectCode::NotYourTicket),
            (true, Err(code)) => Expected::Rejected(code),
            (true, Ok(())) => Expected::Applied { late },
        });
        mutations.push(DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: ticket_id(),
            base_version: initial.version,
            recorded_at: at(10, 0) + Duration::minutes(seq as i64),
            op,
        });
    }
    Stream {
        technician,
        mutations,
        expected,
    }
}

/// A device's ledger as a store keeps it.
#[derive(Clone, Debug, Default)]
struct MemoryLedger {
    last_seq: DeviceSeq,
    stored: BTreeMap<DeviceSeq, StoredOutcome>,
}

impl Ledger for MemoryLedger {
    fn last_seq(&self) -> DeviceSeq {
        self.last_seq
    }

    fn stored(&self, seq: DeviceSeq) -> Option<StoredOutcome> {
        self.stored.get(&seq).cloned()
    }
}

/// One delivery step: a device sends a contiguous batch starting `offset`
/// from the seq the server expects next (negative: replays; positive: a gap),
/// and maybe sends exactly the same batch again (its response was lost).
#[derive(Clone, Debug)]
struct Step {
    device: usize,
    offset: i64,
    len: u64,
    resend: bool,
}

fn schedule() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        0..TECHNICIANS.len(),
        -3i64..=2,
        1u64..=4,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(device, offset, len, resend)| Step {
            device,
            offset,
            len,
            resend,
        });
    prop::collection::vec(step, 0..30)
}

/// The server's side of a schedule: the ticket as stored and one ledger per device.
struct Server<'a> {
    streams: &'a [Stream],
    ticket: Ticket,
    ledgers: Vec<MemoryLedger>,
    clock: DateTime<Utc>,
}

impl<'a> Server<'a> {
    fn new(setup: Setup, streams: &'a [Stream]) -> Self {
        Server {
            streams,
            ticket: initial_ticket(setup),
            ledgers: vec![MemoryLedger::default(); streams.len()],
            clock: at(12, 0),
        }
    }

    fn next_expected(&self, device: usize) -> u64 {
        self.ledgers[device].last_seq.0 + 1
    }

    fn is_done(&self, device: usize) -> bool {
        self.ledgers[device].last_seq.0 == self.streams[device].mutations.len() as u64
    }

    /// Push `stream[start..start + len]` (1-based, cut at the stream's end)
    /// and write the effects as a store would.
    fn push(&mut self, device: usize, start: u64, len: u64) -> Result<(), TestCaseError> {
        let stream = &self.streams[device];
        let end = (start + len - 1).min(stream.mutations.len() as u64);
        let batch = &stream.mutations[start as usize - 1..end as usize];
        self.clock += Duration::minutes(1);
        let ledger = &mut self.ledgers[device];
        let last_seq_before = ledger.last_seq;
        let mut tickets = BTreeMap::from([(ticket_id(), self.ticket.clone())]);
        let result = apply_batch(
            &*ledger,
            &mut tickets,
            &recorder(stream.technician),
            batch,
            self.clock,
        );
        if start > last_seq_before.0 + 1 {
            let gap = BatchError::Gap {
                expected: DeviceSeq(last_seq_before.0 + 1),
            };
            prop_assert_eq!(result, Err(gap));
            return Ok(());
        }
        let effects = result.map_err(|error| TestCaseError::fail(error.to_string()))?;

        prop_assert_eq!(effects.outcomes.len(), batch.len());
        for (mutation, outcome) in batch.iter().zip(&effects.outcomes) {
            prop_assert_eq!(outcome.seq, mutation.seq);
            prop_assert_eq!(&outcome.ticket_id, &mutation.ticket_id);
            if mutation.seq <= last_seq_before {
                // (c) A replay gets its first verdict again, as a duplicate.
                let first = ledger.stored[&mutation.seq].verdict.clone();
                prop_assert_eq!(&outcome.outcome, &Outcome::Duplicate { first });
            } else {
                prop_assert!(
                    !matches!(outcome.outcome, Outcome::Duplicate { .. }),
                    "a new mutation answered as a duplicate: {:?}",
                    outcome
                );
            }
        }

        // Write the effects, as the storage shell does in one transaction.
        for (seq, stored) in &effects.new_outcomes {
            prop_assert!(*seq > last_seq_before, "seq {} processed again", seq);
            // (b) Exactly one stored verdict per mutation, ever.
            let earlier = ledger.stored.insert(*seq, stored.clone());
            prop_assert!(earlier.is_none(), "seq {} got a second verdict", seq);
        }
        prop_assert_eq!(effects.last_seq, last_seq_before.max(DeviceSeq(end)));
        ledger.last_seq = effects.last_seq;
        if let Some(changed) = effects.changed.get(&ticket_id()) {
            // (d) The version never goes back.
            prop_assert!(changed.version > self.ticket.version);
            self.ticket = changed.clone();
        }
        prop_assert_eq!(&tickets[&ticket_id()], &self.ticket);
        Ok(())
    }

    /// Play the schedule, then let every device drain what is left.
    fn run(mut self, schedule: &[Step]) -> Result<Self, TestCaseError> {
        for step in schedule {
            let device = step.device;
            let start = (self.next_expected(device) as i64 + step.offset).max(1) as u64;
            if start > self.streams[device].mutations.len() as u64 {
                continue;
            }
            self.push(device, start, step.len)?;
            if step.resend {
                self.push(device, start, step.len)?;
            }
        }
        while let Some(device) = (0..self.streams.len()).find(|&device| !self.is_done(device)) {
            let start = self.next_expected(device);
            self.push(device, start, 3)?;
        }
        Ok(self)
    }
}

/// Checks on the end state of one schedule: (b), (e), and the verdicts,
/// status and version the rules call for.
fn check_end_state(server: &Server, setup: Setup) -> Result<(), TestCaseError> {
    let ticket = &server.ticket;
    let mut n_applied = 0;
    let mut current_arrived = false;
    let mut current_completed = false;
    for (stream, ledger) in server.streams.iter().zip(&server.ledgers) {
        // (b) Every mutation ended with exactly one stored verdict.
        let n_mutations = stream.mutations.len() as u64;
        prop_assert_eq!(ledger.last_seq, DeviceSeq(n_mutations));
        let stored_seqs: Vec<u64> = ledger.stored.keys().map(|seq| seq.0).collect();
        prop_assert_eq!(stored_seqs, (1..=n_mutations).collect::<Vec<_>>());

        for (mutation, expected) in stream.mutations.iter().zip(&stream.expected) {
            let stored = &ledger.stored[&mutation.seq];
            prop_assert_eq!(&stored.digest, &mutation.digest());
            let id = MutationId::new(recorder(stream.technician).device, mutation.seq);
            let kind = mutation.op.fact_kind();
            let late_in_ticket = match kind {
                FactKind::Arrival => ticket.arrivals.get(&id).map(|fact| &fact.late),
                FactKind::Note => ticket.notes.get(&id).map(|fact| &fact.late),
                FactKind::Result => ticket.results.get(&id).map(|fact| &fact.late),
                FactKind::Signature => ticket.signatures.get(&id).map(|fact| &fact.late),
                FactKind::Photo => ticket.photos.get(&id).map(|fact| &fact.late),
            };
            match (&stored.verdict, expected) {
                (Verdict::Applied(applied), Expected::Applied { late }) => {
                    n_applied += 1;
                    // (e) No fact is lost: the applied mutation is on the ticket,
                    // flagged as it was answered.
                    prop_assert_eq!(late_in_ticket, Some(&applied.late), "{} lost", id);
                    let late_reason = applied.late.as_ref().map(|late| late.reason);
                    prop_assert_eq!(late_reason, *late, "{}", id);
                    if let Some(late) = &applied.late {
                        prop_assert_eq!(&late.assigned_now, &Some(user(CURRENT)));
                    }
                    if late.is_none() {
                        current_arrived |= kind == FactKind::Arrival;
                        current_completed |= kind == FactKind::Result;
                    }
                }
                (Verdict::Rejected(rejection), Expected::Rejected(code)) => {
                    prop_assert_eq!(rejection.code, *code, "{}", id);
                    prop_assert_eq!(late_in_ticket, None, "rejected {} is on the ticket", id);
                }
                (verdict, expected) => {
                    prop_assert!(false, "{} got {:?}, expected {:?}", id, verdict, expected);
                }
            }
        }
    }
    let n_facts =
        ticket.arrivals.len() + ticket.notes.len() + ticket.results.len() + ticket.signatures.len();
    prop_assert_eq!(n_facts, n_applied, "facts without an applied verdict");
    let initial = initial_ticket(setup);
    prop_assert_eq!(ticket.version.0, initial.version.0 + n_applied as u64);
    prop_assert_eq!(ticket.history.len(), initial.history.len() + n_applied);
    let expected_status = if setup.cancelled {
        Status::Cancelled
    } else if current_completed {
        Status::Completed
    } else if current_arrived {
        Status::InProgress
    } else {
        Status::Dispatched
    };
    prop_assert_eq!(ticket.status, expected_status);
    prop_assert_eq!(&ticket.assigned_technician, &Some(user(CURRENT)));
    Ok(())
}

/// The ticket without what legitimately depends on the delivery order: the
/// history's order and versions, when the server received each fact, and
/// `updated_at`. The history is kept as the sorted list of what happened.
fn order_independent(ticket: &Ticket) -> (Ticket, Vec<String>) {
    let mut events: Vec<String> = ticket
        .history
        .iter()
        .map(|entry| {
            serde_json::to_string(&(&entry.actor, &entry.event, &entry.status_change)).unwrap()
        })
        .collect();
    events.sort();
    let mut ticket = ticket.clone();
    let epoch = at(0, 0);
    ticket.history.clear();
    ticket.updated_at = epoch;
    ticket
        .arrivals
        .values_mut()
        .for_each(|fact| fact.received_at = epoch);
    ticket
        .notes
        .values_mut()
        .for_each(|fact| fact.received_at = epoch);
    ticket
        .results
        .values_mut()
        .for_each(|fact| fact.received_at = epoch);
    ticket
        .signatures
        .values_mut()
        .for_each(|fact| fact.received_at = epoch);
    (ticket, events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_two_delivery_schedules_of_the_same_streams_end_with_the_same_ticket(
        reassigned in any::<bool>(),
        cancelled in any::<bool>(),
        specs in [
            prop::collection::vec(op_spec(), 1..8),
            prop::collection::vec(op_spec(), 1..6),
            prop::collection::vec(op_spec(), 0..3),
        ],
        first_schedule in schedule(),
        second_schedule in schedule(),
    ) {
        let setup = Setup { reassigned, cancelled };
        let streams: Vec<Stream> = TECHNICIANS
            .iter()
            .zip(&specs)
            .map(|(technician, specs)| build_stream(technician, specs, setup))
            .collect();
        // The third run delivers everything in order, without replays or gaps.
        let mut ends = Vec::new();
        for schedule in [&first_schedule, &second_schedule, &Vec::new()] {
            let server = Server::new(setup, &streams).run(schedule)?;
            check_end_state(&server, setup)?;
            ends.push(order_independent(&server.ticket));
        }
        prop_assert_eq!(&ends[0], &ends[1]);
        prop_assert_eq!(&ends[0], &ends[2]);
    }
}
