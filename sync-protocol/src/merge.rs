//! Merge rules: how one device mutation meets the server's current ticket.
//!
//! - Arrivals, notes, results and signatures are grow-only sets keyed by
//!   mutation id, so delivering a mutation twice cannot add it twice.
//! - A fact from a technician who held the ticket is kept even when the ticket
//!   was reassigned or cancelled meanwhile: it is flagged late and does not
//!   move the ticket.
//! - Status changes go through the workflow state machine from the ticket's
//!   current state, never from what the device saw.

use chrono::{DateTime, Utc};

use crate::capacity::{MAX_PHOTOS, MAX_RESULTS, MAX_SIGNATURES, Usage};
use crate::ids::{DeviceId, MutationId, UserId};
use crate::mutation::{Applied, DeviceMutation, DeviceOp, RejectCode, Rejection, Verdict};
use crate::office::MAX_TEXT_CHARS;
use crate::ticket::{
    Actor, Arrival, Charge, CompletionRecord, Fact, FactKind, HistoryEvent, LateReason, Lateness,
    MAX_FEE_FEN, Note, Photo, Signature, Ticket,
};
use crate::time_rules::corrected_event_time;
use crate::workflow::{Event, Status, transition};

/// Who sent a mutation: the authenticated technician and their device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorder {
    pub user: UserId,
    pub device: DeviceId,
    /// The device's clock offset measured when this batch arrived (server
    /// minus device time): facts are judged by the corrected device time.
    pub clock_offset_ms: i64,
}

/// The result of merging: the verdict, and the changed ticket when applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub verdict: Verdict,
    pub ticket: Option<Ticket>,
}

/// Merge one mutation into the current ticket. Never fails: every mutation
/// gets a verdict.
pub fn merge(
    ticket: &Ticket,
    recorder: &Recorder,
    mutation: &DeviceMutation,
    received_at: DateTime<Utc>,
) -> Merged {
    let mut next = ticket.clone();
    let verdict = merge_into(&mut next, recorder, mutation, received_at);
    let changed = next.version != ticket.version;
    Merged {
        verdict,
        ticket: changed.then_some(next),
    }
}

/// [`merge`] in place: the ticket changes only when the mutation is newly
/// applied. A push merges many mutations into one ticket; copying it for
/// each would cost as much as the ticket is long, every time.
pub fn merge_into(
    ticket: &mut Ticket,
    recorder: &Recorder,
    mutation: &DeviceMutation,
    received_at: DateTime<Utc>,
) -> Verdict {
    let mut usage = Usage::of(ticket);
    merge_counted(ticket, &mut usage, recorder, mutation, received_at)
}

/// [`merge_into`] with the ticket's [`Usage`] counted by the caller and kept
/// up to date here, so a batch of many mutations on one ticket counts it once.
pub fn merge_counted(
    ticket: &mut Ticket,
    usage: &mut Usage,
    recorder: &Recorder,
    mutation: &DeviceMutation,
    received_at: DateTime<Utc>,
) -> Verdict {
    let id = MutationId::new(recorder.device.clone(), mutation.seq);
    if let Some(late) = fact_lateness(ticket, &id) {
        // Already here (the ledger normally answers first): same answer again.
        return Verdict::Applied(Applied {
            ticket_version: version_that_recorded(ticket, &id),
            late,
        });
    }
    if !ticket.technicians_ever.contains(&recorder.user) {
        return rejected(
            RejectCode::NotYourTicket,
            "this ticket was never assigned to you (此工单未派给您)",
        );
    }
    if let Err(rejection) = validate_op(ticket, &mutation.op) {
        return Verdict::Rejected(rejection);
    }
    if let Err(full) = usage.check(mutation.op.addition(), mutation.op.text_bytes()) {
        return rejected(RejectCode::TicketFull, &full.to_string());
    }
    let (results, signatures) = (ticket.results.len(), ticket.signatures.len());
    let too_many = match &mutation.op {
        DeviceOp::Complete { .. } => results >= MAX_RESULTS,
        DeviceOp::AttachSignature { .. } => signatures >= MAX_SIGNATURES,
        DeviceOp::AttachPhoto { .. } => ticket.photos.len() >= MAX_PHOTOS,
        DeviceOp::RecordArrival { .. } | DeviceOp::AddNote { .. } => false,
    };
    if too_many {
        return rejected(
            RejectCode::TicketFull,
            "the ticket holds as many results, signatures or photos as one ticket may (结果、签字或照片已达上限)",
        );
    }

    let late = lateness(ticket, &recorder.user);
    let event = match &mutation.op {
        DeviceOp::RecordArrival { .. } => Some(Event::Arrive),
        DeviceOp::Complete { .. } => Some(Event::Complete),
        DeviceOp::AddNote { .. }
        | DeviceOp::AttachSignature { .. }
        | DeviceOp::AttachPhoto { .. } => None,
    };
    // A late fact never moves the ticket; an on-time one moves it when the
    // state machine allows from where the ticket is now, and is kept either way.
    let new_status = match (event, &late) {
        (Some(event), None) => transition(ticket.status, event).unwrap_or(ticket.status),
        _ => ticket.status,
    };

    let fact_kind = insert_fact(ticket, id.clone(), recorder, mutation, received_at, &late);
    if fact_kind == FactKind::Result {
        // A second result replaces the first: the ticket says which counts.
        ticket.current_result = ticket.current_result_id().cloned();
    }
    ticket.record(
        received_at,
        Actor::Device {
            user: recorder.user.clone(),
            device: recorder.device.clone(),
        },
        HistoryEvent::FactRecorded {
            mutation: id,
            fact: fact_kind,
            late: late.is_some(),
        },
        new_status,
    );
    usage.add(mutation.op.text_bytes());
    Verdict::Applied(Applied {
        ticket_version: ticket.version,
        late,
    })
}

fn rejected(code: RejectCode, reason: &str) -> Verdict {
    Verdict::Rejected(Rejection {
        code,
        reason: reason.to_owned(),
    })
}

/// Late when the ticket moved on without the recorder: cancelled, closed,
/// converted, or given to somebody else.
fn lateness(ticket: &Ticket, user: &UserId) -> Option<Lateness> {
    let reason = match ticket.status {
        Status::Cancelled => LateReason::Cancelled,
        Status::Closed => LateReason::Closed,
        Status::Converted => LateReason::Converted,
        _ if !ticket.is_assigned_to(user) => LateReason::ReassignedAway,
        _ => return None,
    };
    Some(Lateness {
        reason,
        assigned_now: ticket.assigned_technician.clone(),
    })
}

fn validate_op(ticket: &Ticket, op: &DeviceOp) -> Result<(), Rejection> {
    let invalid = |reason: &str| {
        Err(Rejection {
            code: RejectCode::InvalidContent,
            reason: reason.to_owned(),
        })
    };
    match op {
        DeviceOp::RecordArrival { position } => match position {
            Some(position) if !position.is_on_the_globe() => {
                invalid("a position needs |latitude| ≤ 90° and |longitude| ≤ 180° (定位坐标无效)")
            }
            _ => Ok(()),
        },
        DeviceOp::AttachPhoto { .. } => Ok(()),
        DeviceOp::AddNote { text } => {
            if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
                return invalid("a note needs 1-4000 characters (备注为空或过长)");
            }
            Ok(())
        }
        DeviceOp::Complete { result } => validate_result(result).or_else(invalid),
        DeviceOp::AttachSignature {
            signed_record,
            signer_name,
            ..
        } => {
            if signer_name.trim().is_empty() || signer_name.chars().count() > 100 {
                return invalid("the signer's name is required (签字人姓名必填)");
            }
            if !ticket.has_result_with_hash(signed_record) {
                return Err(Rejection {
                    code: RejectCode::SignedRecordUnknown,
                    reason: "the signature refers to a completion record this ticket does not have (签字对应的完工记录不存在)".to_owned(),
                });
            }
            Ok(())
        }
    }
}

/// Most materials one result lists.
const MAX_MATERIALS: usize = 50;
/// Longest material name or quantity, in characters.
const MAX_MATERIAL_CHARS: usize = 100;

/// R-P6: a result says what was done and whether it was paid, with the fee.
fn validate_result(result: &CompletionRecord) -> Result<(), &'static str> {
    if result.work_done.trim().is_empty() || result.work_done.chars().count() > MAX_TEXT_CHARS {
        return Err("say what was done, in 1-4000 characters (处理结果必填)");
    }
    if result.materials.len() > MAX_MATERIALS {
        return Err("a result lists at most 50 materials (材料最多 50 项)");
    }
    if result.materials.iter().any(|m| {
        m.name.trim().is_empty()
            || m.quantity.trim().is_empty()
            || m.name.chars().count() > MAX_MATERIAL_CHARS
            || m.quantity.chars().count() > MAX_MATERIAL_CHARS
    }) {
        return Err(
            "every material needs a name and a quantity, of 1-100 characters each (材料名称和数量必填)",
        );
    }
    if let Charge::Paid { fee_fen } = result.charge
        && !(1..=MAX_FEE_FEN).contains(&fee_fen)
    {
        return Err("a paid job needs its fee, at most 1,000,000 yuan (有偿服务需填写费用)");
    }
    Ok(())
}

fn insert_fact(
    ticket: &mut Ticket,
    id: MutationId,
    recorder: &Recorder,
    mutation: &DeviceMutation,
    received_at: DateTime<Utc>,
    late: &Option<Lateness>,
) -> FactKind {
    fn fact<T>(
        recorder: &Recorder,
        mutation: &DeviceMutation,
        received_at: DateTime<Utc>,
        late: &Option<Lateness>,
        body: T,
    ) -> Fact<T> {
        Fact {
            recorded_by: recorder.user.clone(),
            device: recorder.device.clone(),
            recorded_at: mutation.recorded_at,
            received_at,
            event_time: Some(corrected_event_time(
                mutation.recorded_at,
                recorder.clock_offset_ms,
                received_at,
            )),
            base_version: mutation.base_version,
            late: late.clone(),
            body,
        }
    }
    match &mutation.op {
        DeviceOp::RecordArrival { position } => {
            let body = Arrival {
                position: *position,
            };
            let body = fact(recorder, mutation, received_at, late, body);
            ticket.arrivals.insert(id, body);
            FactKind::Arrival
        }
        DeviceOp::AddNote { text } => {
            let body = Note {
                text: text.trim().to_owned(),
            };
            let body = fact(recorder, mutation, received_at, late, body);
            ticket.notes.insert(id, body);
            FactKind::Note
        }
        DeviceOp::Complete { result } => {
            let body = fact(recorder, mutation, received_at, late, result.clone());
            ticket.results.insert(id, body);
            FactKind::Result
        }
        DeviceOp::AttachSignature {
            blob,
            signed_record,
            signer_name,
            rating,
            strokes,
        } => {
            let body = Signature {
                blob: blob.clone(),
                signed_record: signed_record.clone(),
                signer_name: signer_name.trim().to_owned(),
                rating: *rating,
                strokes: strokes.clone(),
            };
            let body = fact(recorder, mutation, received_at, late, body);
            ticket.signatures.insert(id, body);
            FactKind::Signature
        }
        DeviceOp::AttachPhoto { blob, stage } => {
            let body = Photo {
                blob: blob.clone(),
                stage: *stage,
            };
            let body = fact(recorder, mutation, received_at, late, body);
            ticket.photos.insert(id, body);
            FactKind::Photo
        }
    }
}

/// The version the fact `id` was recorded at (it is on the ticket).
fn version_that_recorded(ticket: &Ticket, id: &MutationId) -> crate::ids::Version {
    ticket
        .history
        .iter()
        .find_map(|entry| match &entry.event {
            HistoryEvent::FactRecorded { mutation, .. } if mutation == id => Some(entry.version),
            _ => None,
        })
        .unwrap_or(ticket.version)
}

/// `Some(lateness)` when the fact `id` is on the ticket already: a lookup
/// in the fact sets, so that a new mutation does not read the history.
fn fact_lateness(ticket: &Ticket, id: &MutationId) -> Option<Option<Lateness>> {
    let late = |fact_late: &Option<Lateness>| fact_late.clone();
    ticket
        .arrivals
        .get(id)
        .map(|f| late(&f.late))
        .or_else(|| ticket.notes.get(id).map(|f| late(&f.late)))
        .or_else(|| ticket.results.get(id).map(|f| late(&f.late)))
        .or_else(|| ticket.signatures.get(id).map(|f| late(&f.late)))
        .or_else(|| ticket.photos.get(id).map(|f| late(&f.late)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceSeq, Sha256Hex, TicketId, Version};
    use crate::mutation::Outcome;
    use crate::office::tests::{at, dispatched_ticket, user};
    use crate::office::{OfficeOp, apply_office_op};
    use crate::ticket::{Material, StatusChange};

    fn recorder(name: &str) -> Recorder {
        Recorder {
            user: user(name),
            device: DeviceId::parse(&format!("hh-{name}")).unwrap(),
            clock_offset_ms: 0,
        }
    }

    fn mutation(seq: u64, op: DeviceOp) -> DeviceMutation {
        DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: TicketId::parse("t-1").unwrap(),
            base_version: Version(2),
            recorded_at: at(9, 30),
            op,
        }
    }

    fn note(text: &str) -> DeviceOp {
        DeviceOp::AddNote { text: text.into() }
    }

    fn paid_result() -> CompletionRecord {
        CompletionRecord {
            work_done: "replaced the kitchen pipe joint 更换厨房水管接头".into(),
            materials: vec![Material {
                name: "pipe joint DN20".into(),
                quantity: "1".into(),
            }],
            charge: Charge::Paid { fee_fen: 3500 },
        }
    }

    fn complete(result: CompletionRecord) -> DeviceOp {
        DeviceOp::Complete { result }
    }

    fn signature_over(signed_record: Sha256Hex) -> DeviceOp {
        DeviceOp::AttachSignature {
            blob: Sha256Hex::of(b"signature image"),
            signed_record,
            signer_name: "王女士".into(),
            rating: None,
            strokes: None,
        }
    }

    fn reassigned(ticket: &Ticket, to: &str) -> Ticket {
        let op = OfficeOp::Reassign {
            technician: user(to),
            reason: "li is off sick".into(),
        };
        apply_office_op(
            ticket,
            &op,
            &user("dispatcher"),
            &crate::office::tests::calendar(),
            at(10, 0),
        )
        .unwrap()
    }

    fn cancelled(ticket: &Ticket) -> Ticket {
        let op = OfficeOp::Cancel {
            reason: "the owner fixed it himself".into(),
        };
        apply_office_op(
            ticket,
            &op,
            &user("agent"),
            &crate::office::tests::calendar(),
            at(10, 0),
        )
        .unwrap()
    }

    /// Merge and insist it applied; the applied verdict and the new ticket.
    fn apply(ticket: &Ticket, by: &str, mutation: &DeviceMutation) -> (Applied, Ticket) {
        let merged = merge(ticket, &recorder(by), mutation, at(11, 0));
        match merged {
            Merged {
                verdict: Verdict::Applied(applied),
                ticket: Some(next),
            } => (applied, next),
            other => panic!("expected the mutation to apply, got {other:?}"),
        }
    }

    /// Merge and insist it was refused without a new ticket; the refusal code.
    fn refuse(ticket: &Ticket, by: &str, mutation: &DeviceMutation) -> RejectCode {
        let merged = merge(ticket, &recorder(by), mutation, at(11, 0));
        match merged {
            Merged {
                verdict: Verdict::Rejected(rejection),
                ticket: None,
            } => {
                assert!(!rejection.reason.is_empty(), "a refusal says why");
                rejection.code
            }
            other => panic!("expected the mutation to be refused, got {other:?}"),
        }
    }

    fn mutation_id(by: &str, seq: u64) -> MutationId {
        MutationId::new(recorder(by).device, DeviceSeq(seq))
    }

    #[test]
    fn r_p1_an_arrival_moves_a_dispatched_ticket_in_progress() {
        let ticket = dispatched_ticket("li");
        assert_eq!(ticket.status, Status::Dispatched);
        let (applied, next) = apply(
            &ticket,
            "li",
            &mutation(1, DeviceOp::RecordArrival { position: None }),
        );
        assert_eq!(next.status, Status::InProgress);
        assert_eq!(applied.late, None);
        assert_eq!(applied.ticket_version, next.version);
        let arrival = &next.arrivals[&mutation_id("li", 1)];
        assert_eq!(arrival.recorded_by, user("li"));
        assert_eq!(arrival.recorded_at, at(9, 30));
        assert_eq!(arrival.received_at, at(11, 0));
        assert_eq!(arrival.base_version, Version(2));
        assert_eq!(arrival.late, None);
    }

    #[test]
    fn r_p1_an_offline_arrival_is_judged_by_the_device_time_corrected_by_its_offset() {
        let ticket = dispatched_ticket("li");
        let slow_clock = Recorder {
            clock_offset_ms: 90_000,
            ..recorder("li")
        };
        let merged = merge(
            &ticket,
            &slow_clock,
            &mutation(1, DeviceOp::RecordArrival { position: None }),
            at(11, 0),
        );
        let next = merged.ticket.expect("the arrival applies");
        let arrival = &next.arrivals[&mutation_id("li", 1)];
        assert_eq!(
            arrival.recorded_at,
            at(9, 30),
            "the device's own time is kept as it was"
        );
        assert_eq!(
            arrival.event_at(),
            at(9, 30) + chrono::Duration::seconds(90)
        );
        assert!(arrival.event_time.unwrap().trusted);
    }

    #[test]
    fn an_arrival_from_a_clock_off_by_more_than_ten_minutes_is_judged_by_its_receipt() {
        let ticket = dispatched_ticket("li");
        let wrong_clock = Recorder {
            clock_offset_ms: -45 * 60_000,
            ..recorder("li")
        };
        let merged = merge(
            &ticket,
            &wrong_clock,
            &mutation(1, DeviceOp::RecordArrival { position: None }),
            at(11, 0),
        );
        let next = merged
            .ticket
            .expect("a fact is kept whatever the clock says");
        let arrival = &next.arrivals[&mutation_id("li", 1)];
        let event_time = arrival.event_time.unwrap();
        assert!(!event_time.trusted);
        assert_eq!(
            event_time.reason,
            crate::time_rules::ClockJudgement::OffsetBeyondBound
        );
        assert_eq!(arrival.event_at(), at(11, 0));
    }

    #[test]
    fn a_second_arrival_keeps_an_in_progress_ticket_in_progress() {
        let (_, arrived) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, DeviceOp::RecordArrival { position: None }),
        );
        let (_, again) = apply(
            &arrived,
            "li",
            &mutation(2, DeviceOp::RecordArrival { position: None }),
        );
        assert_eq!(again.status, Status::InProgress);
        assert_eq!(again.arrivals.len(), 2);
    }

    #[test]
    fn r_p6_a_result_moves_an_in_progress_ticket_to_completed() {
        let (_, arrived) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, DeviceOp::RecordArrival { position: None }),
        );
        let (_, completed) = apply(&arrived, "li", &mutation(2, complete(paid_result())));
        assert_eq!(completed.status, Status::Completed);
        assert_eq!(completed.charge(), Some(&Charge::Paid { fee_fen: 3500 }));
        assert_eq!(
            completed.current_result().map(|fact| &fact.body),
            Some(&paid_result())
        );
    }

    #[test]
    fn r_p6_a_result_without_a_recorded_arrival_still_completes_the_ticket() {
        let (_, completed) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, complete(paid_result())),
        );
        assert_eq!(completed.status, Status::Completed);
    }

    #[test]
    fn an_arrival_synced_after_the_result_does_not_reopen_the_ticket() {
        let (_, completed) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(2, complete(paid_result())),
        );
        let (applied, next) = apply(
            &completed,
            "li",
            &mutation(1, DeviceOp::RecordArrival { position: None }),
        );
        assert_eq!(next.status, Status::Completed);
        assert_eq!(applied.late, None);
        assert!(next.arrivals.contains_key(&mutation_id("li", 1)));
    }

    #[test]
    fn a_note_is_kept_and_does_not_change_the_status() {
        let ticket = dispatched_ticket("li");
        let (applied, next) = apply(&ticket, "li", &mutation(1, note("  valve was seized  ")));
        assert_eq!(next.status, Status::Dispatched);
        assert_eq!(applied.late, None);
        assert_eq!(
            next.notes[&mutation_id("li", 1)].body.text,
            "valve was seized"
        );
        assert_eq!(next.history.last().unwrap().status_change, None);
    }

    #[test]
    fn r_p1_a_note_recorded_after_reassignment_is_kept_and_flagged_late() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let (applied, next) = apply(&ticket, "li", &mutation(1, note("waited at the door")));
        let expected = Some(Lateness {
            reason: LateReason::ReassignedAway,
            assigned_now: Some(user("zhang")),
        });
        assert_eq!(applied.late, expected);
        assert_eq!(next.notes[&mutation_id("li", 1)].late, expected);
        assert_eq!(next.status, Status::Dispatched);
        assert_eq!(next.assigned_technician, Some(user("zhang")));
        let HistoryEvent::FactRecorded { late, fact, .. } = &next.history.last().unwrap().event
        else {
            panic!("expected a fact in the history");
        };
        assert!(*late);
        assert_eq!(*fact, FactKind::Note);
    }

    #[test]
    fn r_p1_an_arrival_from_a_technician_reassigned_away_is_kept_but_does_not_move_the_ticket() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let (applied, next) = apply(
            &ticket,
            "li",
            &mutation(1, DeviceOp::RecordArrival { position: None }),
        );
        assert_eq!(
            applied.late.as_ref().map(|late| late.reason),
            Some(LateReason::ReassignedAway)
        );
        assert_eq!(next.status, Status::Dispatched, "zhang has not arrived yet");
        assert!(next.arrivals.contains_key(&mutation_id("li", 1)));
    }

    #[test]
    fn r_p6_a_result_from_a_technician_reassigned_away_is_kept_but_does_not_count() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let (applied, next) = apply(&ticket, "li", &mutation(1, complete(paid_result())));
        assert_eq!(
            applied.late,
            Some(Lateness {
                reason: LateReason::ReassignedAway,
                assigned_now: Some(user("zhang")),
            })
        );
        assert_eq!(next.status, Status::Dispatched);
        assert!(next.results.contains_key(&mutation_id("li", 1)));
        assert_eq!(
            next.current_result(),
            None,
            "a late result is for review only"
        );
    }

    #[test]
    fn the_technician_who_holds_the_ticket_now_is_not_late() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let (applied, next) = apply(
            &ticket,
            "zhang",
            &mutation(1, DeviceOp::RecordArrival { position: None }),
        );
        assert_eq!(applied.late, None);
        assert_eq!(next.status, Status::InProgress);
    }

    #[test]
    fn a_fact_recorded_on_a_cancelled_ticket_is_kept_and_flagged_late() {
        let ticket = cancelled(&dispatched_ticket("li"));
        for (seq, op) in [
            (1, DeviceOp::RecordArrival { position: None }),
            (2, note("owner was not home")),
            (3, complete(paid_result())),
        ] {
            let (applied, next) = apply(&ticket, "li", &mutation(seq, op));
            assert_eq!(
                applied.late,
                Some(Lateness {
                    reason: LateReason::Cancelled,
                    assigned_now: Some(user("li")),
                })
            );
            assert_eq!(next.status, Status::Cancelled);
            assert_eq!(next.history.last().unwrap().status_change, None);
        }
    }

    #[test]
    fn cancellation_outranks_reassignment_as_the_reason_a_fact_is_late() {
        let ticket = cancelled(&reassigned(&dispatched_ticket("li"), "zhang"));
        let (applied, _) = apply(&ticket, "li", &mutation(1, note("on my way")));
        assert_eq!(
            applied.late,
            Some(Lateness {
                reason: LateReason::Cancelled,
                assigned_now: Some(user("zhang")),
            })
        );
    }

    #[test]
    fn a_technician_who_never_held_the_ticket_is_rejected_and_the_ticket_is_unchanged() {
        let ticket = dispatched_ticket("li");
        let before = ticket.clone();
        for (seq, op) in [
            (1, DeviceOp::RecordArrival { position: None }),
            (2, note("hello")),
            (3, complete(paid_result())),
        ] {
            assert_eq!(
                refuse(&ticket, "zhang", &mutation(seq, op)),
                RejectCode::NotYourTicket
            );
        }
        assert_eq!(ticket, before);
    }

    #[test]
    fn a_ticket_not_yet_dispatched_accepts_no_field_facts() {
        let mut ticket = dispatched_ticket("li");
        ticket.status = Status::Received;
        ticket.assigned_technician = None;
        ticket.technicians_ever.clear();
        assert_eq!(
            refuse(
                &ticket,
                "li",
                &mutation(1, DeviceOp::RecordArrival { position: None })
            ),
            RejectCode::NotYourTicket
        );
    }

    #[test]
    fn r_p6_invalid_content_is_rejected_and_the_ticket_is_unchanged() {
        let ticket = dispatched_ticket("li");
        let nameless_material = CompletionRecord {
            materials: vec![Material {
                name: "  ".into(),
                quantity: "2".into(),
            }],
            ..paid_result()
        };
        let material_without_quantity = CompletionRecord {
            materials: vec![Material {
                name: "washer".into(),
                quantity: String::new(),
            }],
            ..paid_result()
        };
        let invalid_ops = [
            ("empty note", note("")),
            ("blank note", note(" \n\t ")),
            ("note too long", note(&"长".repeat(MAX_TEXT_CHARS + 1))),
            (
                "paid with fee 0",
                complete(CompletionRecord {
                    charge: Charge::Paid { fee_fen: 0 },
                    ..paid_result()
                }),
            ),
            (
                "empty work_done",
                complete(CompletionRecord {
                    work_done: "   ".into(),
                    ..paid_result()
                }),
            ),
            ("material without name", complete(nameless_material)),
            (
                "material without quantity",
                complete(material_without_quantity),
            ),
        ];
        for (seq, (what, op)) in (1..).zip(invalid_ops) {
            assert_eq!(
                refuse(&ticket, "li", &mutation(seq, op)),
                RejectCode::InvalidContent,
                "{what}"
            );
        }
    }

    #[test]
    fn a_note_of_exactly_the_longest_length_is_accepted() {
        let ticket = dispatched_ticket("li");
        let text = "长".repeat(MAX_TEXT_CHARS);
        let (_, next) = apply(&ticket, "li", &mutation(1, note(&text)));
        assert_eq!(next.notes[&mutation_id("li", 1)].body.text, text);
    }

    #[test]
    fn a_free_job_without_materials_is_a_valid_result() {
        let result = CompletionRecord {
            work_done: "reset the breaker 复位空开".into(),
            materials: Vec::new(),
            charge: Charge::Free {},
        };
        let (_, next) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, complete(result)),
        );
        assert_eq!(next.charge(), Some(&Charge::Free {}));
    }

    #[test]
    fn r_p7_a_signature_over_a_record_the_ticket_does_not_have_is_rejected() {
        let (_, completed) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, complete(paid_result())),
        );
        let other_record = CompletionRecord {
            charge: Charge::Free {},
            ..paid_result()
        };
        let op = signature_over(other_record.record_hash());
        assert_eq!(
            refuse(&completed, "li", &mutation(2, op)),
            RejectCode::SignedRecordUnknown
        );
        let before_any_result = dispatched_ticket("li");
        let op = signature_over(paid_result().record_hash());
        assert_eq!(
            refuse(&before_any_result, "li", &mutation(2, op)),
            RejectCode::SignedRecordUnknown
        );
    }

    #[test]
    fn r_p7_a_signature_over_a_result_on_the_ticket_is_applied() {
        let (_, completed) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, complete(paid_result())),
        );
        let op = signature_over(paid_result().record_hash());
        let (applied, signed) = apply(&completed, "li", &mutation(2, op));
        assert_eq!(applied.late, None);
        assert_eq!(signed.status, Status::Completed);
        let signature = &signed.signatures[&mutation_id("li", 2)].body;
        assert_eq!(signature.signed_record, paid_result().record_hash());
        assert_eq!(signature.signer_name, "王女士");
        assert_eq!(
            signed.referenced_blobs().collect::<Vec<_>>(),
            [&Sha256Hex::of(b"signature image")]
        );
    }

    #[test]
    fn r_p7_a_signature_without_the_signers_name_is_invalid_content() {
        let (_, completed) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, complete(paid_result())),
        );
        let op = DeviceOp::AttachSignature {
            blob: Sha256Hex::of(b"signature image"),
            signed_record: paid_result().record_hash(),
            signer_name: " ".into(),
            rating: None,
            strokes: None,
        };
        assert_eq!(
            refuse(&completed, "li", &mutation(2, op)),
            RejectCode::InvalidContent
        );
    }

    #[test]
    fn merging_the_same_mutation_twice_gives_the_same_verdict_and_no_new_ticket() {
        let ticket = dispatched_ticket("li");
        let arrival = mutation(1, DeviceOp::RecordArrival { position: None });
        let (first, arrived) = apply(&ticket, "li", &arrival);
        // Later changes do not alter the answer the mutation got.
        let (_, later) = apply(&arrived, "li", &mutation(2, note("checking the valve")));
        for current in [&arrived, &later] {
            let again = merge(current, &recorder("li"), &arrival, at(12, 0));
            assert_eq!(again.verdict, Verdict::Applied(first.clone()));
            assert_eq!(again.ticket, None);
        }
        assert_eq!(later.arrivals.len(), 1);
    }

    #[test]
    fn merging_a_late_fact_twice_repeats_its_lateness() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let late_note = mutation(1, note("left a card under the door"));
        let (first, next) = apply(&ticket, "li", &late_note);
        assert!(first.late.is_some());
        let again = merge(&next, &recorder("li"), &late_note, at(12, 0));
        assert_eq!(
            Outcome::from(again.verdict),
            Outcome::Applied(first),
            "the replay is told the fact was late, as the first time"
        );
        assert_eq!(again.ticket, None);
    }

    #[test]
    fn the_same_sequence_number_from_another_device_is_another_fact() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let (_, with_li) = apply(&ticket, "li", &mutation(1, note("from li")));
        let (_, with_both) = apply(&with_li, "zhang", &mutation(1, note("from zhang")));
        assert_eq!(with_both.notes.len(), 2);
        assert_eq!(with_both.version, ticket.version.next().next());
    }

    #[test]
    fn every_applied_mutation_bumps_the_version_by_one_and_appends_one_history_entry() {
        let ticket = reassigned(&dispatched_ticket("li"), "zhang");
        let steps = [
            (
                "zhang",
                mutation(1, DeviceOp::RecordArrival { position: None }),
                FactKind::Arrival,
            ),
            ("li", mutation(1, note("late from li")), FactKind::Note),
            ("zhang", mutation(2, note("valve replaced")), FactKind::Note),
            (
                "zhang",
                mutation(3, complete(paid_result())),
                FactKind::Result,
            ),
            (
                "zhang",
                mutation(4, signature_over(paid_result().record_hash())),
                FactKind::Signature,
            ),
        ];
        let mut current = ticket;
        for (by, mutation, expected_kind) in steps {
            let (applied, next) = apply(&current, by, &mutation);
            assert_eq!(next.version, current.version.next());
            assert_eq!(applied.ticket_version, next.version);
            assert_eq!(next.history.len(), current.history.len() + 1);
            assert_eq!(next.history[..current.history.len()], current.history[..]);
            let entry = next.history.last().unwrap();
            assert_eq!(entry.version, next.version);
            assert_eq!(entry.at, at(11, 0));
            assert_eq!(next.updated_at, at(11, 0));
            assert_eq!(
                entry.actor,
                Actor::Device {
                    user: user(by),
                    device: recorder(by).device,
                }
            );
            assert_eq!(
                entry.event,
                HistoryEvent::FactRecorded {
                    mutation: mutation_id(by, mutation.seq.0),
                    fact: expected_kind,
                    late: applied.late.is_some(),
                }
            );
            let expected_change = (current.status != next.status).then_some(StatusChange {
                from: current.status,
                to: next.status,
            });
            assert_eq!(entry.status_change, expected_change);
            current = next;
        }
        assert_eq!(current.status, Status::Completed);
    }

    #[test]
    fn r_p6_a_fee_above_the_largest_is_invalid_content() {
        let ticket = dispatched_ticket("li");
        let mut result = paid_result();
        result.charge = Charge::Paid {
            fee_fen: crate::ticket::MAX_FEE_FEN + 1,
        };
        let refused = refuse(&ticket, "li", &mutation(1, complete(result.clone())));
        assert_eq!(refused, RejectCode::InvalidContent);
        result.charge = Charge::Paid {
            fee_fen: crate::ticket::MAX_FEE_FEN,
        };
        apply(&ticket, "li", &mutation(1, complete(result)));
    }

    #[test]
    fn r_p6_a_second_result_replaces_the_first_and_the_ticket_names_the_current_one() {
        let ticket = dispatched_ticket("li");
        let (_, first) = apply(&ticket, "li", &mutation(1, complete(paid_result())));
        assert_eq!(first.current_result, Some(mutation_id("li", 1)));
        let mut corrected = paid_result();
        corrected.work_done = "replaced the joint and the valve 更换接头和阀门".into();
        let mut second = mutation(2, complete(corrected.clone()));
        second.recorded_at = at(9, 45);
        let (_, both) = apply(&first, "li", &second);
        assert_eq!(both.results.len(), 2, "the first result is kept");
        assert_eq!(both.current_result, Some(mutation_id("li", 2)));
        assert_eq!(both.current_result().unwrap().body, corrected);
        // A result recorded earlier on the device, arriving later, does not
        // displace the newer one: the order of delivery does not decide.
        let mut older = mutation(3, complete(paid_result()));
        older.recorded_at = at(9, 35);
        let (_, all) = apply(&both, "li", &older);
        assert_eq!(all.current_result, Some(mutation_id("li", 2)));
    }

    #[test]
    fn results_and_signatures_are_few_per_ticket() {
        let mut ticket = dispatched_ticket("li");
        for seq in 1..=MAX_RESULTS as u64 {
            let verdict = merge_into(
                &mut ticket,
                &recorder("li"),
                &mutation(seq, complete(paid_result())),
                at(11, 0),
            );
            assert!(matches!(verdict, Verdict::Applied(_)), "{verdict:?}");
        }
        let next = MAX_RESULTS as u64 + 1;
        assert_eq!(
            refuse(&ticket, "li", &mutation(next, complete(paid_result()))),
            RejectCode::TicketFull
        );
        let mut result = paid_result();
        result.materials = vec![result.materials[0].clone(); MAX_MATERIALS + 1];
        let fresh = dispatched_ticket("li");
        assert_eq!(
            refuse(&fresh, "li", &mutation(1, complete(result))),
            RejectCode::InvalidContent
        );
    }

    #[test]
    fn a_full_ticket_refuses_a_new_note_with_ticket_full_and_keeps_what_it_accepted() {
        let mut ticket = dispatched_ticket("li");
        let mut seq = 0;
        while crate::capacity::check_room(&ticket, crate::capacity::Addition::Content, 4).is_ok() {
            seq += 1;
            let verdict = merge_into(
                &mut ticket,
                &recorder("li"),
                &mutation(seq, note("note")),
                at(11, 0),
            );
            assert!(matches!(verdict, Verdict::Applied(_)), "{verdict:?}");
        }
        let full = ticket.clone();
        seq += 1;
        assert_eq!(
            refuse(&full, "li", &mutation(seq, note("one more"))),
            RejectCode::TicketFull
        );
        assert!(full.notes.len() >= 490, "{} notes kept", full.notes.len());
        // What the workflow needs still fits: the arrival, the result and
        // the owner's signature; and the office can still cancel it.
        let arrived = apply(
            &full,
            "li",
            &mutation(seq, DeviceOp::RecordArrival { position: None }),
        )
        .1;
        let result = paid_result();
        let completed = apply(&arrived, "li", &mutation(seq + 1, complete(result.clone()))).1;
        apply(
            &completed,
            "li",
            &mutation(seq + 2, signature_over(result.record_hash())),
        );
        cancelled(&full);
    }

    #[test]
    fn a_running_count_of_the_ticket_is_what_a_recount_says() {
        let mut ticket = dispatched_ticket("li");
        let mut usage = Usage::of(&ticket);
        let result = paid_result();
        let ops = [
            DeviceOp::RecordArrival { position: None },
            note("pump replaced"),
            complete(result.clone()),
            signature_over(result.record_hash()),
            note("   "),
            note("x".repeat(4_000).as_str()),
        ];
        for (seq, op) in (1..).zip(ops.iter().cycle().take(60)) {
            for recorder in [recorder("li"), recorder("wang")] {
                merge_counted(
                    &mut ticket,
                    &mut usage,
                    &recorder,
                    &mutation(seq, op.clone()),
                    at(11, 0),
                );
                assert_eq!(usage, Usage::of(&ticket), "after seq {seq}");
            }
        }
        assert!(usage.text_bytes > crate::capacity::MAX_CONTENT_TEXT_BYTES / 2);
    }

    #[test]
    fn an_arrival_keeps_the_phones_position_and_refuses_one_off_the_globe() {
        let ticket = dispatched_ticket("li");
        let position = crate::ticket::Position {
            latitude_e6: 31_230_416,
            longitude_e6: 121_473_701,
            accuracy_m: 12,
        };
        let arrival = DeviceOp::RecordArrival {
            position: Some(position),
        };
        let (_, arrived) = apply(&ticket, "li", &mutation(1, arrival));
        let fact = arrived.arrivals.values().next().expect("the arrival");
        assert_eq!(fact.body.position, Some(position));
        assert_eq!(arrived.status, Status::InProgress, "R-P1: on site");

        let off_the_globe = DeviceOp::RecordArrival {
            position: Some(crate::ticket::Position {
                latitude_e6: 91_000_000,
                ..position
            }),
        };
        assert_eq!(
            refuse(&ticket, "li", &mutation(1, off_the_globe)),
            RejectCode::InvalidContent
        );
    }

    #[test]
    fn photos_are_kept_as_facts_their_images_referred_to_and_few_per_ticket() {
        let mut ticket = dispatched_ticket("li");
        let photo = |n: u64| DeviceOp::AttachPhoto {
            blob: Sha256Hex::of(format!("photo {n}").as_bytes()),
            stage: crate::ticket::PhotoStage::Before,
        };
        for seq in 1..=MAX_PHOTOS as u64 {
            let verdict = merge_into(
                &mut ticket,
                &recorder("li"),
                &mutation(seq, photo(seq)),
                at(11, 0),
            );
            assert!(matches!(verdict, Verdict::Applied(_)), "{verdict:?}");
        }
        assert_eq!(
            ticket.status,
            Status::Dispatched,
            "a photo never moves the status"
        );
        assert!(
            ticket
                .blob_references()
                .any(|(blob, by)| blob == &Sha256Hex::of(b"photo 1") && by == &user("li"))
        );
        let next = MAX_PHOTOS as u64 + 1;
        assert_eq!(
            refuse(&ticket, "li", &mutation(next, photo(next))),
            RejectCode::TicketFull
        );
    }

    #[test]
    fn a_signatures_strokes_are_kept_and_referred_to_like_its_image() {
        let result = paid_result();
        let (_, completed) = apply(
            &dispatched_ticket("li"),
            "li",
            &mutation(1, complete(result.clone())),
        );
        let strokes = Sha256Hex::of(b"{\"strokes\":[]}");
        let op = match signature_over(result.record_hash()) {
            DeviceOp::AttachSignature {
                blob,
                signed_record,
                signer_name,
                rating,
                ..
            } => DeviceOp::AttachSignature {
                blob,
                signed_record,
                signer_name,
                rating,
                strokes: Some(strokes.clone()),
            },
            other => other,
        };
        let (_, signed) = apply(&completed, "li", &mutation(2, op));
        let fact = signed.signatures.values().next().expect("the signature");
        assert_eq!(fact.body.strokes.as_ref(), Some(&strokes));
        let referred: Vec<_> = signed.referenced_blobs().collect();
        assert!(referred.contains(&&strokes) && referred.contains(&&fact.body.blob));
    }
}
