//! The checker, run at quiesce (faults healed, every handheld drained):
//!
//! - every fact a handheld recorded is on the server exactly once when the
//!   server applied it, and not at all when it rejected it; every fact on
//!   the server is one a handheld recorded under that number;
//! - every recorded mutation has exactly one answer on its handheld, the
//!   same verdict the server's ledger keeps for it, under the same digest;
//! - every handheld holds exactly the tickets the server says it should,
//!   each equal to the server's copy, nothing pending;
//! - no observer was ever shown a ticket version lower than one it had
//!   seen (noted during the run, `observe`);
//! - every office action was applied once when answered, at most once when
//!   unanswered, and not at all when refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use handheld::device::MAX_OUTCOME_RECORDS;
use handheld::{Device, HandheldError};
use server::store::{Store, StoreError};
use sync_protocol::{
    DeviceId, DeviceMutation, DeviceSeq, FactKind, HistoryEvent, MutationId, Ticket, TicketId,
    Verdict, Version,
};

use crate::clock::SimClock;
use crate::office::{Answered, Marker, Office};
use crate::technician::Technician;

/// Something that must never happen, happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A mutation the server applied whose fact is not on its ticket.
    FactLost {
        mutation: MutationId,
        ticket: TicketId,
    },
    /// One recorded fact on the server more than once.
    FactDuplicated {
        ticket: TicketId,
        device: DeviceId,
        recorded_at: DateTime<Utc>,
        kind: FactKind,
        count: usize,
    },
    /// A fact on the server under a number its handheld never recorded it with.
    UnknownFact {
        mutation: MutationId,
        ticket: TicketId,
    },
    /// A rejected mutation whose fact is on the ticket anyway.
    RejectedButStored { mutation: MutationId },
    /// A recorded mutation with no answer, or more than one, on its handheld.
    AnswerCount {
        mutation: MutationId,
        answers: usize,
    },
    /// The handheld's answer and the server's ledger disagree.
    LedgerMismatch {
        mutation: MutationId,
        detail: String,
    },
    /// The handheld and the server disagree on the last sequence number.
    SequenceMismatch {
        device: DeviceId,
        recorded: DeviceSeq,
        handheld_says: DeviceSeq,
        server_says: DeviceSeq,
    },
    /// A ticket on a handheld that differs from the server's copy.
    ViewDiffers {
        device: DeviceId,
        ticket: TicketId,
        detail: String,
    },
    /// A handheld holds other tickets than the server gives its technician.
    HeldTicketsDiffer {
        device: DeviceId,
        held: BTreeSet<TicketId>,
        expected: BTreeSet<TicketId>,
    },
    VersionWentBack {
        observer: String,
        ticket: TicketId,
        from: Version,
        to: Version,
    },
    /// An office action found on the server a number of times its answer rules out.
    OfficeAction {
        marker: String,
        answered: String,
        found: usize,
    },
    /// The run did not reach quiesce.
    NotQuiesced { detail: String },
    /// A store could not be read, or a host failed.
    Fault { detail: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::FactLost { mutation, ticket } => {
                write!(f, "{mutation} was applied, but its fact is not on {ticket}")
            }
            Violation::FactDuplicated {
                ticket,
                device,
                recorded_at,
                kind,
                count,
            } => write!(
                f,
                "{ticket} holds the {kind:?} {device} recorded at {recorded_at} {count} times"
            ),
            Violation::UnknownFact { mutation, ticket } => write!(
                f,
                "{ticket} holds a fact as {mutation}, which its handheld never recorded under that number"
            ),
            Violation::RejectedButStored { mutation } => {
                write!(f, "{mutation} was rejected, but its fact is stored")
            }
            Violation::AnswerCount { mutation, answers } => {
                write!(
                    f,
                    "{mutation} has {answers} answers on its handheld, not one"
                )
            }
            Violation::LedgerMismatch { mutation, detail } => {
                write!(f, "{mutation}: handheld and ledger disagree: {detail}")
            }
            Violation::SequenceMismatch {
                device,
                recorded,
                handheld_says,
                server_says,
            } => write!(
                f,
                "{device} recorded up to {}, the handheld says the server has {}, the server says {}",
                recorded.0, handheld_says.0, server_says.0
            ),
            Violation::ViewDiffers {
                device,
                ticket,
                detail,
            } => write!(
                f,
                "{device} shows {ticket} otherwise than the server: {detail}"
            ),
            Violation::HeldTicketsDiffer {
                device,
                held,
                expected,
            } => write!(
                f,
                "{device} holds {held:?}; the server gives it {expected:?}"
            ),
            Violation::VersionWentBack {
                observer,
                ticket,
                from,
                to,
            } => write!(
                f,
                "{observer} was shown {ticket} at version {} after version {}",
                to.0, from.0
            ),
            Violation::OfficeAction {
                marker,
                answered,
                found,
            } => write!(
                f,
                "office action {marker:?} answered {answered} is on the server {found} times"
            ),
            Violation::NotQuiesced { detail } => write!(f, "no quiesce: {detail}"),
            Violation::Fault { detail } => write!(f, "fault: {detail}"),
        }
    }
}

impl From<StoreError> for Violation {
    fn from(error: StoreError) -> Self {
        Violation::Fault {
            detail: format!("server store: {error}"),
        }
    }
}

impl From<HandheldError> for Violation {
    fn from(error: HandheldError) -> Self {
        Violation::Fault {
            detail: format!("handheld store: {error}"),
        }
    }
}

/// Every ticket of the server, by id.
pub fn server_tickets(store: &Store) -> Result<BTreeMap<TicketId, Ticket>, StoreError> {
    let mut tickets = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.all_tickets(after.as_ref(), 500)?;
        let Some(last) = page.last() else {
            return Ok(tickets);
        };
        after = Some(last.id.clone());
        tickets.extend(page.into_iter().map(|ticket| (ticket.id.clone(), ticket)));
    }
}

/// Check the quiesced run; nothing returned means nothing wrong.
pub fn check(
    store: &Store,
    technicians: &[std::sync::Arc<Technician>],
    office: &Office,
    clock: SimClock,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Err(violation) = check_all(store, technicians, office, clock, &mut violations) {
        violations.push(violation);
    }
    violations
}

fn check_all(
    store: &Store,
    technicians: &[std::sync::Arc<Technician>],
    office: &Office,
    clock: SimClock,
    violations: &mut Vec<Violation>,
) -> Result<(), Violation> {
    let tickets = server_tickets(store)?;
    let mut recorded_by_device = BTreeMap::new();
    for technician in technicians {
        let device = technician.open_device(clock)?;
        let recorded = technician.recorded();
        check_answers(store, &device, &recorded, &tickets, violations)?;
        check_view(technician, &device, &tickets, violations)?;
        recorded_by_device.insert(technician.device_id.clone(), recorded);
    }
    check_facts(&tickets, &recorded_by_device, violations);
    check_office(office, &tickets, violations);
    Ok(())
}

/// One answer per recorded mutation, agreeing with the ledger; the fact on
/// the ticket when applied, absent when rejected.
fn check_answers(
    store: &Store,
    device: &Device,
    recorded: &[DeviceMutation],
    tickets: &BTreeMap<TicketId, Ticket>,
    violations: &mut Vec<Violation>,
) -> Result<(), Violation> {
    let device_id = device.device_id();
    if !device.pending()?.is_empty() {
        violations.push(Violation::NotQuiesced {
            detail: format!("{device_id} still has changes to upload"),
        });
    }
    let mut answers: BTreeMap<DeviceSeq, Vec<_>> = BTreeMap::new();
    for record in device.outcomes(MAX_OUTCOME_RECORDS)? {
        answers.entry(record.mutation.seq).or_default().push(record);
    }
    let recorded_seqs: BTreeSet<DeviceSeq> = recorded.iter().map(|mutation| mutation.seq).collect();
    for (seq, records) in &answers {
        if !recorded_seqs.contains(seq) {
            violations.push(Violation::AnswerCount {
                mutation: MutationId::new(device_id.clone(), *seq),
                answers: records.len(),
            });
        }
    }
    for mutation in recorded {
        let id = MutationId::new(device_id.clone(), mutation.seq);
        let records = answers.get(&mutation.seq).map_or(&[][..], Vec::as_slice);
        let [record] = records else {
            violations.push(Violation::AnswerCount {
                mutation: id,
                answers: records.len(),
            });
            continue;
        };
        let mismatch = |detail: String| Violation::LedgerMismatch {
            mutation: id.clone(),
            detail,
        };
        if &record.mutation != mutation {
            violations.push(mismatch("the answer is for another mutation".to_owned()));
            continue;
        }
        let verdict = record.verdict();
        match store.stored_outcome(device_id, mutation.seq)? {
            None => violations.push(mismatch("the ledger has no outcome".to_owned())),
            Some(stored) if stored.digest != mutation.digest() => {
                violations.push(mismatch("the ledger's digest is another".to_owned()));
            }
            Some(stored) if stored.verdict != verdict => violations.push(mismatch(format!(
                "the handheld was told {verdict:?}, the ledger keeps {:?}",
                stored.verdict
            ))),
            Some(_) => {}
        }
        let stored = tickets
            .get(&mutation.ticket_id)
            .is_some_and(|ticket| fact_ids(ticket).any(|(fact, _)| fact == &id));
        match verdict {
            Verdict::Applied(_) if !stored => violations.push(Violation::FactLost {
                mutation: id,
                ticket: mutation.ticket_id.clone(),
            }),
            Verdict::Rejected(_) if stored => {
                violations.push(Violation::RejectedButStored { mutation: id });
            }
            _ => {}
        }
    }
    let handheld_says = device.server_last_seq()?;
    let server_says = store
        .device(device_id)?
        .map_or(DeviceSeq(0), |record| record.last_seq);
    let last_recorded = recorded
        .last()
        .map_or(DeviceSeq(0), |mutation| mutation.seq);
    if handheld_says != server_says || server_says != last_recorded {
        violations.push(Violation::SequenceMismatch {
            device: device_id.clone(),
            recorded: last_recorded,
            handheld_says,
            server_says,
        });
    }
    Ok(())
}

/// The handheld holds exactly its technician's tickets, as the server has them.
fn check_view(
    technician: &Technician,
    device: &Device,
    tickets: &BTreeMap<TicketId, Ticket>,
    violations: &mut Vec<Violation>,
) -> Result<(), Violation> {
    let device_id = &technician.device_id;
    let mut held = BTreeSet::new();
    for state in device.tickets()? {
        let local = &state.local.ticket;
        held.insert(local.id.clone());
        let differs = |detail: String| Violation::ViewDiffers {
            device: device_id.clone(),
            ticket: local.id.clone(),
            detail,
        };
        match tickets.get(&local.id) {
            None => violations.push(differs("the server has no such ticket".to_owned())),
            Some(server) if server != local => violations.push(differs(format!(
                "version {} on the handheld, {} on the server",
                local.version.0, server.version.0
            ))),
            Some(_) => {}
        }
        if state.local.revoked.is_some() || !state.awaiting_pull.is_empty() {
            violations.push(differs(
                "still revoked or waiting for a pull after the drain".to_owned(),
            ));
        }
    }
    let expected: BTreeSet<TicketId> = tickets
        .values()
        .filter(|ticket| ticket.holder() == Some(&technician.user))
        .map(|ticket| ticket.id.clone())
        .collect();
    if held != expected {
        violations.push(Violation::HeldTicketsDiffer {
            device: device_id.clone(),
            held,
            expected,
        });
    }
    Ok(())
}

/// Every fact on the server is one its handheld recorded under that
/// number, and none is there twice.
fn check_facts(
    tickets: &BTreeMap<TicketId, Ticket>,
    recorded: &BTreeMap<DeviceId, Vec<DeviceMutation>>,
    violations: &mut Vec<Violation>,
) {
    for ticket in tickets.values() {
        // FactKind has no order of its own: its name keys it.
        let mut copies: BTreeMap<(DeviceId, DateTime<Utc>, String), (FactKind, usize)> =
            BTreeMap::new();
        for (id, (device, recorded_at, kind)) in fact_ids(ticket) {
            let key = (device.clone(), recorded_at, format!("{kind:?}"));
            copies.entry(key).or_insert((kind, 0)).1 += 1;
            let known = recorded.get(&id.device).is_some_and(|mutations| {
                mutations.iter().any(|mutation| {
                    mutation.seq == id.seq
                        && mutation.ticket_id == ticket.id
                        && mutation.recorded_at == recorded_at
                        && mutation.op.fact_kind() == kind
                })
            });
            if !known {
                violations.push(Violation::UnknownFact {
                    mutation: id.clone(),
                    ticket: ticket.id.clone(),
                });
            }
        }
        for ((device, recorded_at, _), (kind, count)) in copies {
            if count > 1 {
                violations.push(Violation::FactDuplicated {
                    ticket: ticket.id.clone(),
                    device,
                    recorded_at,
                    kind,
                    count,
                });
            }
        }
    }
}

/// Answered: once; refused: never; unanswered: at most once.
fn check_office(
    office: &Office,
    tickets: &BTreeMap<TicketId, Ticket>,
    violations: &mut Vec<Violation>,
) {
    for (marker, answered) in office.actions() {
        let found = count_marker(&marker, tickets);
        let allowed = match answered {
            Answered::Applied => found == 1,
            Answered::Refused(_) => found == 0,
            Answered::Unknown => found <= 1,
        };
        if !allowed {
            violations.push(Violation::OfficeAction {
                marker: format!("{marker:?}"),
                answered: format!("{answered:?}"),
                found,
            });
        }
    }
}

fn count_marker(marker: &Marker, tickets: &BTreeMap<TicketId, Ticket>) -> usize {
    let history = |ticket: &TicketId, matches: &dyn Fn(&HistoryEvent) -> bool| {
        tickets.get(ticket).map_or(0, |ticket| {
            ticket
                .history
                .iter()
                .filter(|entry| matches(&entry.event))
                .count()
        })
    };
    match marker {
        Marker::OfficeNote { ticket, text } => tickets.get(ticket).map_or(0, |ticket| {
            ticket
                .office_notes
                .iter()
                .filter(|note| &note.text == text)
                .count()
        }),
        Marker::Reassignment { ticket, reason } => history(
            ticket,
            &|event| matches!(event, HistoryEvent::Reassigned { reason: given, .. } if given == reason),
        ),
        Marker::Cancellation { ticket, reason } => history(
            ticket,
            &|event| matches!(event, HistoryEvent::Cancelled { reason: given } if given == reason),
        ),
        Marker::Report { description } => tickets
            .values()
            .filter(|ticket| &ticket.description == description)
            .count(),
    }
}

/// The facts on a ticket: their id, and who recorded what when.
fn fact_ids(
    ticket: &Ticket,
) -> impl Iterator<Item = (&MutationId, (&DeviceId, DateTime<Utc>, FactKind))> {
    let arrivals = ticket
        .arrivals
        .iter()
        .map(|(id, fact)| (id, (&fact.device, fact.recorded_at, FactKind::Arrival)));
    let notes = ticket
        .notes
        .iter()
        .map(|(id, fact)| (id, (&fact.device, fact.recorded_at, FactKind::Note)));
    let results = ticket
        .results
        .iter()
        .map(|(id, fact)| (id, (&fact.device, fact.recorded_at, FactKind::Result)));
    let signatures = ticket
        .signatures
        .iter()
        .map(|(id, fact)| (id, (&fact.device, fact.recorded_at, FactKind::Signature)));
    let photos = ticket
        .photos
        .iter()
        .map(|(id, fact)| (id, (&fact.device, fact.recorded_at, FactKind::Photo)));
    arrivals
        .chain(notes)
        .chain(results)
        .chain(signatures)
        .chain(photos)
}
