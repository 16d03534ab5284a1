//! Processing one push: the device's sequence rules around the merge rules.
//!
//! A batch is contiguous and ascending. Sequence numbers the server already
//! processed are replays and get their first answer again; the rest must
//! continue exactly where the device left off, or the batch is refused with
//! the number expected. A reused number with different content is refused too.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::capacity::Usage;
use crate::ids::{DeviceSeq, Sha256Hex, TicketId};
use crate::merge::{Recorder, merge_counted};
use crate::mutation::{DeviceMutation, MutationOutcome, Outcome, RejectCode, Rejection, Verdict};
use crate::ticket::Ticket;

/// What the server keeps per processed mutation so that a replay gets the same answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredOutcome {
    pub digest: Sha256Hex,
    pub ticket_id: TicketId,
    pub verdict: Verdict,
}

/// Why a whole batch is refused; nothing of it is applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the batch is empty")]
    Empty,
    #[error("sequence numbers in a batch must be consecutive and ascending (at {at})")]
    NotConsecutive { at: u64 },
    #[error("sequence gap: the server expects {expected} next")]
    Gap { expected: DeviceSeq },
    #[error("sequence number {seq} was already used for a different mutation")]
    SequenceReused { seq: DeviceSeq },
    #[error("sequence number 0 is not valid; devices count from 1")]
    ZeroSequence,
}

impl BatchError {
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::Empty => "empty_batch",
            BatchError::NotConsecutive { .. } => "batch_not_consecutive",
            BatchError::Gap { .. } => "sequence_gap",
            BatchError::SequenceReused { .. } => "sequence_reused",
            BatchError::ZeroSequence => "invalid_sequence",
        }
    }
}

/// The sequence numbers a batch must be checked against: the last one the
/// server applied for this device, and the stored answers for replays.
pub trait Ledger {
    fn last_seq(&self) -> DeviceSeq;
    fn stored(&self, seq: DeviceSeq) -> Option<StoredOutcome>;
}

/// Sequence numbers of the batch that are replays, i.e. that the ledger
/// must provide stored outcomes for. Checks the batch's shape first.
pub fn check_batch(
    last_seq: DeviceSeq,
    batch: &[DeviceMutation],
) -> Result<std::ops::RangeInclusive<u64>, BatchError> {
    let first = batch.first().ok_or(BatchError::Empty)?.seq.0;
    if first == 0 {
        return Err(BatchError::ZeroSequence);
    }
    for (offset, mutation) in batch.iter().enumerate() {
        // Checked: a device must not be able to overflow the server's arithmetic.
        if first.checked_add(offset as u64) != Some(mutation.seq.0) {
            return Err(BatchError::NotConsecutive { at: mutation.seq.0 });
        }
    }
    if first > last_seq.0 + 1 {
        return Err(BatchError::Gap {
            expected: DeviceSeq(last_seq.0 + 1),
        });
    }
    Ok(first..=last_seq.0.min(first + batch.len() as u64 - 1))
}

/// Everything one push changed, to be written atomically by the storage shell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushEffects {
    pub outcomes: Vec<MutationOutcome>,
    /// Newly processed mutations' answers, for the ledger.
    pub new_outcomes: Vec<(DeviceSeq, StoredOutcome)>,
    /// Tickets changed by this push, in their final state.
    pub changed: BTreeMap<TicketId, Ticket>,
    pub last_seq: DeviceSeq,
}

/// Apply a batch. `tickets` holds the current state of every ticket the batch
/// names (absent ones do not exist); it is updated as mutations apply, so
/// later mutations in the batch see earlier ones.
pub fn apply_batch(
    ledger: &impl Ledger,
    tickets: &mut BTreeMap<TicketId, Ticket>,
    recorder: &Recorder,
    batch: &[DeviceMutation],
    received_at: DateTime<Utc>,
) -> Result<PushEffects, BatchError> {
    let replays = check_batch(ledger.last_seq(), batch)?;
    let mut effects = PushEffects {
        last_seq: ledger.last_seq(),
        ..PushEffects::default()
    };
    let mut changed = BTreeSet::new();
    let mut usages: BTreeMap<TicketId, Usage> = BTreeMap::new();
    for mutation in batch {
        let digest = mutation.digest();
        let outcome = if replays.contains(&mutation.seq.0) {
            let stored = ledger.stored(mutation.seq).filter(|s| s.digest == digest);
            let Some(stored) = stored else {
                return Err(BatchError::SequenceReused { seq: mutation.seq });
            };
            Outcome::Duplicate {
                first: stored.verdict,
            }
        } else {
            let verdict = match tickets.get_mut(&mutation.ticket_id) {
                None => Verdict::Rejected(Rejection {
                    code: RejectCode::TicketNotFound,
                    reason: "no such ticket (工单不存在)".to_owned(),
                }),
                Some(ticket) => {
                    let version = ticket.version;
                    let usage = usages
                        .entry(mutation.ticket_id.clone())
                        .or_insert_with(|| Usage::of(ticket));
                    let verdict = merge_counted(ticket, usage, recorder, mutation, received_at);
                    if ticket.version != version {
                        changed.insert(mutation.ticket_id.clone());
                    }
                    verdict
                }
            };
            effects.new_outcomes.push((
                mutation.seq,
                StoredOutcome {
                    digest,
                    ticket_id: mutation.ticket_id.clone(),
                    verdict: verdict.clone(),
                },
            ));
            effects.last_seq = mutation.seq;
            verdict.into()
        };
        effects.outcomes.push(MutationOutcome {
            seq: mutation.seq,
            ticket_id: mutation.ticket_id.clone(),
            outcome,
        });
    }
    // Each changed ticket copied once, in its final state.
    effects.changed = changed
        .into_iter()
        .filter_map(|id| tickets.get(&id).map(|ticket| (id, ticket.clone())))
        .collect();
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceId, Version};
    use crate::mutation::{Applied, DeviceOp};
    use crate::office::tests::{at, dispatched_ticket, user};
    use crate::ticket::{Charge, CompletionRecord};
    use crate::workflow::Status;

    /// A device's ledger as a store would keep it: the last processed
    /// sequence number and the first answer of every processed mutation.
    #[derive(Debug, Default)]
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

    impl MemoryLedger {
        /// Write a push's effects, as the storage shell does atomically.
        fn absorb(&mut self, effects: &PushEffects) {
            for (seq, stored) in &effects.new_outcomes {
                let earlier = self.stored.insert(*seq, stored.clone());
                assert_eq!(earlier, None, "seq {seq} was processed twice");
            }
            self.last_seq = effects.last_seq;
        }
    }

    fn li() -> Recorder {
        Recorder {
            user: user("li"),
            device: DeviceId::parse("hh-li").unwrap(),
            clock_offset_ms: 0,
        }
    }

    fn ticket_id() -> TicketId {
        TicketId::parse("t-1").unwrap()
    }

    fn tickets() -> BTreeMap<TicketId, Ticket> {
        BTreeMap::from([(ticket_id(), dispatched_ticket("li"))])
    }

    fn mutation(seq: u64, op: DeviceOp) -> DeviceMutation {
        DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: ticket_id(),
            base_version: Version(2),
            recorded_at: at(9, 30),
            op,
        }
    }

    fn note(seq: u64) -> DeviceMutation {
        mutation(
            seq,
            DeviceOp::AddNote {
                text: format!("note {seq}"),
            },
        )
    }

    fn notes(seqs: std::ops::RangeInclusive<u64>) -> Vec<DeviceMutation> {
        seqs.map(note).collect()
    }

    /// A ledger and tickets after the device's first `n` notes were pushed.
    fn after_pushing(n: u64) -> (MemoryLedger, BTreeMap<TicketId, Ticket>) {
        let mut ledger = MemoryLedger::default();
        let mut tickets = tickets();
        let effects = apply_batch(&ledger, &mut tickets, &li(), &notes(1..=n), at(10, 0)).unwrap();
        ledger.absorb(&effects);
        (ledger, tickets)
    }

    fn applied(version: u64) -> Outcome {
        Outcome::Applied(Applied {
            ticket_version: Version(version),
            late: None,
        })
    }

    #[test]
    fn an_empty_batch_is_refused() {
        assert_eq!(check_batch(DeviceSeq(0), &[]), Err(BatchError::Empty));
        let ledger = MemoryLedger::default();
        let result = apply_batch(&ledger, &mut tickets(), &li(), &[], at(10, 0));
        assert_eq!(result, Err(BatchError::Empty));
        assert_eq!(BatchError::Empty.code(), "empty_batch");
    }

    #[test]
    fn sequence_number_zero_is_refused_because_devices_count_from_one() {
        assert_eq!(
            check_batch(DeviceSeq(0), &[note(0), note(1)]),
            Err(BatchError::ZeroSequence)
        );
        assert_eq!(BatchError::ZeroSequence.code(), "invalid_sequence");
    }

    #[test]
    fn a_batch_whose_numbers_are_not_consecutive_is_refused() {
        let cases = [
            (vec![note(1), note(3)], 3),
            (vec![note(2), note(1)], 1),
            (vec![note(1), note(1)], 1),
            (vec![note(1), note(2), note(4), note(5)], 4),
        ];
        for (batch, at_seq) in cases {
            assert_eq!(
                check_batch(DeviceSeq(0), &batch),
                Err(BatchError::NotConsecutive { at: at_seq })
            );
        }
        assert_eq!(
            BatchError::NotConsecutive { at: 3 }.code(),
            "batch_not_consecutive"
        );
    }

    #[test]
    fn a_batch_running_past_the_largest_sequence_number_is_refused_not_a_panic() {
        let batch = [note(u64::MAX), note(0)];
        assert_eq!(
            check_batch(DeviceSeq(0), &batch),
            Err(BatchError::NotConsecutive { at: 0 })
        );
    }

    #[test]
    fn a_gap_is_refused_with_the_number_the_server_expects_and_nothing_applies() {
        let (ledger, mut tickets) = after_pushing(3);
        let before = tickets.clone();
        let batch = notes(5..=6);
        assert_eq!(
            check_batch(ledger.last_seq(), &batch),
            Err(BatchError::Gap {
                expected: DeviceSeq(4)
            })
        );
        let result = apply_batch(&ledger, &mut tickets, &li(), &batch, at(11, 0));
        assert_eq!(
            result,
            Err(BatchError::Gap {
                expected: DeviceSeq(4)
            })
        );
        assert_eq!(tickets, before);
        let first_push = check_batch(DeviceSeq(0), &notes(2..=2));
        assert_eq!(
            first_push,
            Err(BatchError::Gap {
                expected: DeviceSeq(1)
            })
        );
        assert_eq!(
            BatchError::Gap {
                expected: DeviceSeq(1)
            }
            .code(),
            "sequence_gap"
        );
    }

    #[test]
    fn check_batch_names_exactly_the_replayed_sequence_numbers() {
        let last_seq = DeviceSeq(3);
        assert_eq!(check_batch(last_seq, &notes(1..=2)), Ok(1..=2));
        assert_eq!(check_batch(last_seq, &notes(2..=5)), Ok(2..=3));
        assert_eq!(check_batch(last_seq, &notes(3..=3)), Ok(3..=3));
        let fresh = check_batch(last_seq, &notes(4..=6)).unwrap();
        assert!(fresh.is_empty(), "{fresh:?}");
        let first_push = check_batch(DeviceSeq(0), &notes(1..=2)).unwrap();
        assert!(first_push.is_empty(), "{first_push:?}");
    }

    #[test]
    fn a_first_push_applies_in_order_and_reports_every_new_outcome() {
        let ledger = MemoryLedger::default();
        let mut tickets = tickets();
        let effects = apply_batch(&ledger, &mut tickets, &li(), &notes(1..=3), at(10, 0)).unwrap();
        let outcomes: Vec<(u64, Outcome)> = effects
            .outcomes
            .iter()
            .map(|o| (o.seq.0, o.outcome.clone()))
            .collect();
        assert_eq!(
            outcomes,
            [(1, applied(3)), (2, applied(4)), (3, applied(5))]
        );
        let stored_seqs: Vec<u64> = effects.new_outcomes.iter().map(|(seq, _)| seq.0).collect();
        assert_eq!(stored_seqs, [1, 2, 3]);
        assert_eq!(effects.new_outcomes[0].1.digest, note(1).digest());
        assert_eq!(effects.last_seq, DeviceSeq(3));
        assert_eq!(effects.changed[&ticket_id()], tickets[&ticket_id()]);
        assert_eq!(tickets[&ticket_id()].notes.len(), 3);
    }

    #[test]
    fn a_replayed_push_gets_its_first_answers_as_duplicates_and_changes_nothing() {
        let (ledger, mut tickets) = after_pushing(2);
        let before = tickets.clone();
        let effects = apply_batch(&ledger, &mut tickets, &li(), &notes(1..=2), at(12, 0)).unwrap();
        let outcomes: Vec<Outcome> = effects.outcomes.iter().map(|o| o.outcome.clone()).collect();
        let first_verdicts: Vec<Outcome> = (1..=2)
            .map(|seq| Outcome::Duplicate {
                first: ledger.stored[&DeviceSeq(seq)].verdict.clone(),
            })
            .collect();
        assert_eq!(outcomes, first_verdicts);
        assert_eq!(
            outcomes[0],
            Outcome::Duplicate {
                first: Verdict::Applied(Applied {
                    ticket_version: Version(3),
                    late: None
                })
            }
        );
        assert!(effects.new_outcomes.is_empty());
        assert!(effects.changed.is_empty());
        assert_eq!(effects.last_seq, DeviceSeq(2));
        assert_eq!(tickets, before);
    }

    #[test]
    fn a_replayed_rejection_is_answered_with_the_same_rejection() {
        let mut ledger = MemoryLedger::default();
        let mut tickets = tickets();
        let empty_note = mutation(1, DeviceOp::AddNote { text: " ".into() });
        let first = apply_batch(
            &ledger,
            &mut tickets,
            &li(),
            std::slice::from_ref(&empty_note),
            at(10, 0),
        )
        .unwrap();
        ledger.absorb(&first);
        let Outcome::Rejected(rejection) = &first.outcomes[0].outcome else {
            panic!("expected a rejection, got {:?}", first.outcomes[0]);
        };
        assert_eq!(rejection.code, RejectCode::InvalidContent);
        assert_eq!(first.last_seq, DeviceSeq(1), "a rejection consumes the seq");

        let replay = apply_batch(&ledger, &mut tickets, &li(), &[empty_note], at(11, 0)).unwrap();
        assert_eq!(
            replay.outcomes[0].outcome,
            Outcome::Duplicate {
                first: Verdict::Rejected(rejection.clone())
            }
        );
    }

    #[test]
    fn a_reused_sequence_number_with_other_content_refuses_the_whole_batch() {
        let (ledger, mut tickets) = after_pushing(2);
        let before = tickets.clone();
        let mut other = note(2);
        other.op = DeviceOp::RecordArrival { position: None };
        let batch = [note(1), other, note(3)];
        assert_eq!(
            apply_batch(&ledger, &mut tickets, &li(), &batch, at(11, 0)),
            Err(BatchError::SequenceReused { seq: DeviceSeq(2) })
        );
        assert_eq!(tickets, before, "nothing of a refused batch applies");
        assert_eq!(
            BatchError::SequenceReused { seq: DeviceSeq(2) }.code(),
            "sequence_reused"
        );
    }

    #[test]
    fn a_replay_the_ledger_has_no_answer_for_is_refused_as_reused() {
        let (mut ledger, mut tickets) = after_pushing(2);
        ledger.stored.remove(&DeviceSeq(1));
        assert_eq!(
            apply_batch(&ledger, &mut tickets, &li(), &notes(1..=3), at(11, 0)),
            Err(BatchError::SequenceReused { seq: DeviceSeq(1) })
        );
    }

    #[test]
    fn a_batch_that_starts_with_replays_continues_with_the_new_mutations() {
        let (ledger, mut tickets) = after_pushing(2);
        let effects = apply_batch(&ledger, &mut tickets, &li(), &notes(1..=4), at(11, 0)).unwrap();
        let outcomes: Vec<(u64, Outcome)> = effects
            .outcomes
            .iter()
            .map(|o| (o.seq.0, o.outcome.clone()))
            .collect();
        let duplicate = |version| Outcome::Duplicate {
            first: Verdict::Applied(Applied {
                ticket_version: Version(version),
                late: None,
            }),
        };
        assert_eq!(
            outcomes,
            [
                (1, duplicate(3)),
                (2, duplicate(4)),
                (3, applied(5)),
                (4, applied(6)),
            ]
        );
        let stored_seqs: Vec<u64> = effects.new_outcomes.iter().map(|(seq, _)| seq.0).collect();
        assert_eq!(stored_seqs, [3, 4]);
        assert_eq!(effects.last_seq, DeviceSeq(4));
        assert_eq!(effects.changed[&ticket_id()].version, Version(6));
        assert_eq!(tickets[&ticket_id()].notes.len(), 4);
    }

    #[test]
    fn a_mutation_on_an_unknown_ticket_is_rejected_and_still_consumes_its_seq() {
        let mut ledger = MemoryLedger::default();
        let mut tickets = tickets();
        let mut lost = note(1);
        lost.ticket_id = TicketId::parse("t-404").unwrap();
        let batch = [lost.clone(), note(2)];
        let effects = apply_batch(&ledger, &mut tickets, &li(), &batch, at(10, 0)).unwrap();
        let Outcome::Rejected(rejection) = &effects.outcomes[0].outcome else {
            panic!("expected a rejection, got {:?}", effects.outcomes[0]);
        };
        assert_eq!(rejection.code, RejectCode::TicketNotFound);
        assert_eq!(effects.outcomes[0].ticket_id, lost.ticket_id);
        assert_eq!(effects.outcomes[1].outcome, applied(3));
        assert_eq!(effects.new_outcomes.len(), 2);
        assert_eq!(effects.new_outcomes[0].1.ticket_id, lost.ticket_id);
        assert_eq!(effects.last_seq, DeviceSeq(2));
        assert!(!effects.changed.contains_key(&lost.ticket_id));
        assert!(!tickets.contains_key(&lost.ticket_id));
        ledger.absorb(&effects);

        // The device moves on after it; the rejection is kept for replays.
        let next = apply_batch(&ledger, &mut tickets, &li(), &[note(3)], at(11, 0)).unwrap();
        assert_eq!(next.outcomes[0].outcome, applied(4));
        let replay = apply_batch(&ledger, &mut tickets, &li(), &[lost], at(11, 0)).unwrap();
        assert_eq!(
            replay.outcomes[0].outcome,
            Outcome::Duplicate {
                first: Verdict::Rejected(rejection.clone())
            }
        );
    }

    #[test]
    fn later_mutations_in_a_batch_see_the_earlier_ones() {
        let ledger = MemoryLedger::default();
        let mut tickets = tickets();
        let result = CompletionRecord {
            work_done: "replaced the float valve".into(),
            materials: Vec::new(),
            charge: Charge::Paid { fee_fen: 2000 },
        };
        let batch = [
            mutation(1, DeviceOp::RecordArrival { position: None }),
            mutation(
                2,
                DeviceOp::Complete {
                    result: result.clone(),
                },
            ),
            // R-P7: the signature refers to the result pushed just before it.
            mutation(
                3,
                DeviceOp::AttachSignature {
                    blob: crate::ids::Sha256Hex::of(b"png"),
                    signed_record: result.record_hash(),
                    signer_name: "王女士".into(),
                    rating: None,
                    strokes: None,
                },
            ),
        ];
        let effects = apply_batch(&ledger, &mut tickets, &li(), &batch, at(10, 0)).unwrap();
        let outcomes: Vec<Outcome> = effects.outcomes.iter().map(|o| o.outcome.clone()).collect();
        assert_eq!(outcomes, [applied(3), applied(4), applied(5)]);
        let ticket = &effects.changed[&ticket_id()];
        assert_eq!(ticket.status, Status::Completed);
        assert_eq!(ticket.signatures.len(), 1);
    }
}
