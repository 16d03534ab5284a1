//! The outbox's decisions as plain functions over plain data: what to push
//! next, which answer belongs to which change, and how changes are numbered
//! again in the two cases the protocol prescribes it (docs/protocol.md §2,
//! step 6). A change is never renumbered to "retry": after a timeout or a
//! lost connection the same changes go again with the same numbers.

use chrono::{DateTime, Utc};
use sync_protocol::{DeviceMutation, DeviceSeq, MAX_MUTATIONS_PER_PUSH, Outcome, PushResponse};

/// The server refuses JSON bodies over 2 MiB (its default limit, which an
/// operator may lower). The changes of one push stay within 1 MiB, which
/// leaves room for the envelope and for a smaller configured limit.
pub const PUSH_BODY_BUDGET_BYTES: usize = 1024 * 1024;

/// The largest change the handheld records, as JSON: it must fit into a
/// push on its own. A note is at most 4,000 characters; this bounds the
/// materials list of a result too.
pub const MAX_MUTATION_BYTES: usize = 64 * 1024;

/// The most changes the outbox holds; beyond it the technician is asked to
/// sync first.
pub const MAX_OUTBOX: u64 = 100_000;

/// What one push may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_mutations: usize,
    pub max_bytes: usize,
}

pub const PUSH_LIMITS: BatchLimits = BatchLimits {
    max_mutations: MAX_MUTATIONS_PER_PUSH,
    max_bytes: PUSH_BODY_BUDGET_BYTES,
};

/// A change's size in a push body.
pub fn encoded_len(mutation: &DeviceMutation) -> usize {
    serde_json::to_vec(mutation)
        .expect("a mutation always serializes")
        .len()
}

/// How many of the oldest pending changes (`pending`, in seq order) the next
/// push carries: consecutive numbers only (a batch with a hole is refused
/// whole), at most `max_mutations`, and within `max_bytes`, but always at
/// least one, so the outbox always moves.
pub fn next_batch_len(pending: &[DeviceMutation], limits: BatchLimits) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for (index, mutation) in pending.iter().enumerate() {
        if count == limits.max_mutations {
            break;
        }
        if index > 0 && mutation.seq.0 != pending[index - 1].seq.0 + 1 {
            break;
        }
        // One byte for the comma between array members.
        bytes += encoded_len(mutation) + 1;
        if count > 0 && bytes > limits.max_bytes {
            break;
        }
        count += 1;
    }
    count
}

/// Each change sent with the answer the server gave it. The server answers
/// exactly one outcome per mutation, in the order sent; an answer that does
/// not is not the protocol's, and nothing is taken from it.
pub fn pair_outcomes<'a>(
    sent: &'a [DeviceMutation],
    response: &PushResponse,
) -> Result<Vec<(&'a DeviceMutation, Outcome)>, String> {
    if response.outcomes.len() != sent.len() {
        return Err(format!(
            "{} outcomes for {} changes",
            response.outcomes.len(),
            sent.len()
        ));
    }
    sent.iter()
        .zip(&response.outcomes)
        .map(|(mutation, answer)| {
            if answer.seq != mutation.seq || answer.ticket_id != mutation.ticket_id {
                return Err(format!(
                    "the outcome for seq {} ({}) answers seq {} ({})",
                    mutation.seq, mutation.ticket_id, answer.seq, answer.ticket_id
                ));
            }
            Ok((mutation, answer.outcome.clone()))
        })
        .collect()
}

/// How long a change has waited, by the device's clock; never negative,
/// even when the clock was set back since.
pub fn pending_age_ms(now: DateTime<Utc>, recorded_at: DateTime<Utc>) -> u64 {
    u64::try_from((now - recorded_at).num_milliseconds()).unwrap_or(0)
}

/// Changes with new numbers: each `(old, new)` differs only in `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renumbered {
    pub moves: Vec<(DeviceMutation, DeviceMutation)>,
    /// The number the next recorded change gets.
    pub next_seq: DeviceSeq,
}

/// After `409 sequence_gap`: the server expects `expected` next, below the
/// oldest pending number, so it never saw the changes the device numbered
/// in between (its data was restored from an older backup, say). The
/// pending changes keep their order and content and take the numbers from
/// `expected` on; the server never processed those numbers, so nothing is
/// applied twice.
pub fn renumber_after_gap(
    pending: &[DeviceMutation],
    expected: DeviceSeq,
) -> Result<Renumbered, String> {
    let Some(first) = pending.first() else {
        return Err("a gap reported for an empty outbox".to_owned());
    };
    if expected.0 == 0 || expected >= first.seq {
        return Err(format!(
            "a gap that expects seq {expected} while the oldest pending change is {}",
            first.seq
        ));
    }
    Ok(renumber(pending, expected))
}

/// After `409 sequence_reused` at `reused`: the server processed that
/// number before with other content (another installation used this
/// device id). Pending changes from `reused` on take numbers after
/// `server_last_seq`, the last number the server processed. The ones before
/// `reused` were this device's own, processed with their answers lost (their
/// content matched): they keep their numbers, so that a resend gets those
/// answers back as duplicates. With nothing to move, `moves` is empty and
/// the numbering stays as it is.
pub fn renumber_after_reuse(
    pending: &[DeviceMutation],
    reused: DeviceSeq,
    server_last_seq: DeviceSeq,
) -> Renumbered {
    let from = pending.partition_point(|mutation| mutation.seq < reused);
    let start = DeviceSeq(server_last_seq.0.max(reused.0) + 1);
    renumber(&pending[from..], start)
}

fn renumber(pending: &[DeviceMutation], start: DeviceSeq) -> Renumbered {
    let moves: Vec<_> = pending
        .iter()
        .zip(start.0..)
        .map(|(old, seq)| {
            let new = DeviceMutation {
                seq: DeviceSeq(seq),
                ..old.clone()
            };
            (old.clone(), new)
        })
        .collect();
    Renumbered {
        next_seq: DeviceSeq(start.0 + moves.len() as u64),
        moves,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::{Applied, DeviceOp, MutationOutcome, PROTOCOL_VERSION, TicketId, Version};

    fn mutation(seq: u64, text_len: usize) -> DeviceMutation {
        DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: TicketId::parse("tk00000001").unwrap(),
            base_version: Version(2),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            op: DeviceOp::AddNote {
                text: "x".repeat(text_len),
            },
        }
    }

    fn outbox(seqs: impl IntoIterator<Item = u64>) -> Vec<DeviceMutation> {
        seqs.into_iter().map(|seq| mutation(seq, 10)).collect()
    }

    fn seqs(mutations: &[DeviceMutation]) -> Vec<u64> {
        mutations.iter().map(|m| m.seq.0).collect()
    }

    #[test]
    fn a_batch_holds_at_most_the_protocol_limit_of_changes() {
        let pending = outbox(1..=1200);
        assert_eq!(
            next_batch_len(&pending, PUSH_LIMITS),
            MAX_MUTATIONS_PER_PUSH
        );
        assert_eq!(next_batch_len(&pending[..3], PUSH_LIMITS), 3);
        assert_eq!(next_batch_len(&[], PUSH_LIMITS), 0);
    }

    #[test]
    fn a_batch_stops_before_its_body_would_exceed_the_byte_budget() {
        let pending: Vec<_> = (1..=10).map(|seq| mutation(seq, 3000)).collect();
        let one = encoded_len(&pending[0]) + 1;
        let limits = BatchLimits {
            max_mutations: 500,
            max_bytes: one * 3 + one / 2,
        };
        assert_eq!(next_batch_len(&pending, limits), 3);
    }

    #[test]
    fn a_change_larger_than_the_budget_still_goes_alone() {
        let pending = vec![mutation(1, 5000), mutation(2, 10)];
        let limits = BatchLimits {
            max_mutations: 500,
            max_bytes: 100,
        };
        assert_eq!(next_batch_len(&pending, limits), 1);
    }

    #[test]
    fn a_batch_ends_at_a_hole_in_the_numbers() {
        let pending = outbox([4, 5, 9, 10]);
        assert_eq!(next_batch_len(&pending, PUSH_LIMITS), 2);
    }

    fn response(outcomes: Vec<MutationOutcome>) -> PushResponse {
        PushResponse {
            protocol_version: PROTOCOL_VERSION,
            server_time: DateTime::<Utc>::UNIX_EPOCH,
            outcomes,
            ticket_versions: Vec::new(),
            last_seq: DeviceSeq(0),
            missing_blobs: Vec::new(),
        }
    }

    fn applied(mutation: &DeviceMutation) -> MutationOutcome {
        MutationOutcome {
            seq: mutation.seq,
            ticket_id: mutation.ticket_id.clone(),
            outcome: Outcome::Applied(Applied {
                ticket_version: Version(3),
                late: None,
            }),
        }
    }

    #[test]
    fn the_age_of_a_pending_change_is_never_negative() {
        let recorded_at = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(10);
        let later = recorded_at + chrono::Duration::seconds(90);
        assert_eq!(pending_age_ms(later, recorded_at), 90_000);
        let clock_set_back = recorded_at - chrono::Duration::minutes(5);
        assert_eq!(pending_age_ms(clock_set_back, recorded_at), 0);
    }

    #[test]
    fn answers_pair_with_the_changes_sent_in_order() {
        let sent = outbox([7, 8]);
        let answer = response(sent.iter().map(applied).collect());
        let pairs = pair_outcomes(&sent, &answer).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].0.seq, DeviceSeq(8));
    }

    #[test]
    fn an_answer_with_a_missing_or_foreign_outcome_is_not_taken() {
        let sent = outbox([7, 8]);
        assert!(pair_outcomes(&sent, &response(vec![applied(&sent[0])])).is_err());
        let swapped = response(vec![applied(&sent[1]), applied(&sent[0])]);
        assert!(pair_outcomes(&sent, &swapped).is_err());
    }

    #[test]
    fn after_a_gap_the_pending_changes_take_the_numbers_the_server_expects() {
        let pending = outbox([8, 9, 10]);
        let renumbered = renumber_after_gap(&pending, DeviceSeq(5)).unwrap();
        let new: Vec<DeviceMutation> = renumbered
            .moves
            .iter()
            .map(|(_, new)| new.clone())
            .collect();
        assert_eq!(seqs(&new), vec![5, 6, 7]);
        assert_eq!(renumbered.next_seq, DeviceSeq(8));
        for (old, new) in &renumbered.moves {
            assert_eq!(old.op, new.op, "only the number changes");
            assert_eq!(old.recorded_at, new.recorded_at);
        }
    }

    #[test]
    fn a_gap_that_is_no_gap_is_refused() {
        let pending = outbox([8, 9]);
        assert!(renumber_after_gap(&pending, DeviceSeq(8)).is_err());
        assert!(renumber_after_gap(&pending, DeviceSeq(0)).is_err());
        assert!(renumber_after_gap(&[], DeviceSeq(1)).is_err());
    }

    #[test]
    fn after_a_reuse_the_own_processed_changes_keep_their_numbers() {
        // 3 and 4 were processed with their answers lost; 5 collides with
        // another installation's 5, and the server is at 12.
        let pending = outbox([3, 4, 5, 6]);
        let renumbered = renumber_after_reuse(&pending, DeviceSeq(5), DeviceSeq(12));
        let moved: Vec<(u64, u64)> = renumbered
            .moves
            .iter()
            .map(|(old, new)| (old.seq.0, new.seq.0))
            .collect();
        assert_eq!(moved, vec![(5, 13), (6, 14)]);
        assert_eq!(renumbered.next_seq, DeviceSeq(15));
    }

    #[test]
    fn a_reuse_past_the_servers_last_number_still_moves_past_it() {
        let pending = outbox([5, 6]);
        let renumbered = renumber_after_reuse(&pending, DeviceSeq(5), DeviceSeq(2));
        assert_eq!(renumbered.moves[0].1.seq, DeviceSeq(6));
        assert_eq!(renumbered.next_seq, DeviceSeq(8));
    }
}
