//! The plain types of the app-facing API ([`crate::Handheld`]): strings,
//! numbers, `SystemTime`, `Duration`, `Option`, `Vec`, and enums without
//! generics or lifetimes, so that a binding generator (UniFFI, see
//! handheld/README.md) can carry them to Kotlin and Swift as they are.
//! Codes are the protocol's snake_case names (`in_progress`,
//! `reassigned_away`); apps translate them for people.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sync_protocol::{
    Charge, DeviceId, DeviceMutation, DeviceOp, Fact, MutationId, Rating, Ticket, Verdict,
};

use crate::device::TicketState;
use crate::records::{OutcomeRecord, Session};
use crate::sync::SyncSummary;

/// What a technician can record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// R-P1, R-P2: on site.
    Arrival,
    Note,
    /// R-P6: what was done, materials, paid or free.
    Result,
    /// R-P7: the owner's signature.
    Signature,
    /// A photo of the work, before or after.
    Photo,
}

/// The owner's rating at signing (R-F1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerRating {
    /// 满意.
    Satisfied,
    /// 基本满意.
    BasicallySatisfied,
    /// 不满意.
    Dissatisfied,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaterialInput {
    pub name: String,
    pub quantity: String,
}

/// R-P6: the result as the technician enters it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultInput {
    pub work_done: String,
    pub materials: Vec<MaterialInput>,
    /// The fee in fen (0.01 CNY) of a paid job (有偿); `None` for a free one (无偿).
    pub fee_fen: Option<u64>,
}

/// A change saved on the device: on disk, waiting to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedChange {
    pub seq: u64,
    pub ticket_id: String,
    pub change: ChangeKind,
    pub recorded_at: SystemTime,
    /// Changes waiting to upload, this one included.
    pub pending_changes: u32,
}

/// Where a fact on a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactState {
    /// In the server's copy.
    OnServer,
    /// Applied by the server; its copy comes with the next pull.
    Acknowledged,
    /// Recorded on this device, waiting to upload.
    Pending,
}

/// One fact on a ticket: an arrival, a note, a result or a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactLine {
    /// `device#seq`.
    pub mutation_id: String,
    pub change: ChangeKind,
    pub recorded_by: String,
    pub recorded_at: SystemTime,
    /// The note's text, the result, the signer: one line for people.
    pub summary: String,
    /// Why the server flagged it late, e.g. `reassigned_away`.
    pub late: Option<String>,
    pub state: FactState,
}

/// A ticket in a list, as it will be once the pending changes upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketSummary {
    pub ticket_id: String,
    /// R-A1, e.g. `E01-WO-202611-00042`.
    pub serial_number: Option<String>,
    /// `verbal_dispatch`, `work_order`, `coordination_ticket`.
    pub kind: String,
    /// `dispatched`, `in_progress`, `completed`, …
    pub status: String,
    pub location: String,
    pub description: String,
    /// R-P1: the time agreed with the owner, when there is one.
    pub appointment_at: Option<SystemTime>,
    pub pending_changes: u32,
    /// Set when the ticket was taken away (`reassigned`, `cancelled`,
    /// `closed`, `converted`) and stays only until its changes upload.
    pub revoked: Option<String>,
}

/// One ticket with everything on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketDetail {
    pub summary: TicketSummary,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub received_at: SystemTime,
    pub dispatched_at: Option<SystemTime>,
    pub assigned_technician: Option<String>,
    /// The version and status of the server's copy, without pending changes.
    pub server_version: u64,
    pub server_status: String,
    /// Oldest first.
    pub facts: Vec<FactLine>,
    /// Notes written in the office, oldest first.
    pub office_notes: Vec<String>,
}

/// The answer that counts for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acknowledgement {
    Applied {
        ticket_version: u64,
    },
    /// Kept on the ticket but flagged for review: it had moved on.
    AppliedLate {
        ticket_version: u64,
        /// `reassigned_away`, `cancelled`, `closed`, `converted`.
        reason: String,
        /// Who holds the ticket now.
        assigned_now: Option<String>,
    },
    /// Refused for good; the number is used up.
    Rejected {
        code: String,
        /// In English and Chinese, from the server.
        reason: String,
    },
}

/// The server's answer to one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeLine {
    pub seq: u64,
    pub ticket_id: String,
    pub change: ChangeKind,
    pub acknowledgement: Acknowledgement,
    /// The server had processed it before (an earlier answer was lost);
    /// `acknowledgement` is that first answer.
    pub duplicate: bool,
    pub answered_at: SystemTime,
    /// Late or rejected.
    pub needs_attention: bool,
    /// One line for people, in English and Chinese.
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// In the order the changes were sent.
    pub outcomes: Vec<OutcomeLine>,
    pub pushes: u32,
    pub images_uploaded: u32,
    /// Images the server asked for that this device no longer has.
    pub images_unavailable: u32,
    pub pages_pulled: u32,
    pub tickets_updated: u32,
    pub tickets_revoked: u32,
    /// Changes given new numbers because the server's count differed
    /// (a restored server, a reinstalled device).
    pub renumbered: u32,
    /// Changes still waiting (recorded while the sync ran).
    pub pending_changes: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    pub device_id: String,
    /// The technician the handheld belongs to.
    pub user: Option<String>,
    pub logged_in: bool,
    pub server_url: Option<String>,
    pub pending_changes: u32,
    /// How long the oldest pending change has waited, by the device's clock.
    pub oldest_pending_age: Option<Duration>,
    pub last_sync_at: Option<SystemTime>,
    pub tickets: u32,
    /// The latest answers that were late or rejected, newest first.
    pub needs_attention: Vec<OutcomeLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: String,
    pub estate: String,
    pub expires_at: SystemTime,
}

// ---- From the protocol's types ---------------------------------------------

/// The snake_case name a value has on the wire (`in_progress`, `work_order`).
pub(crate) fn wire_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => format!("{other:?}"),
    }
}

pub(crate) fn time(at: DateTime<Utc>) -> SystemTime {
    at.into()
}

impl From<OwnerRating> for Rating {
    fn from(rating: OwnerRating) -> Self {
        match rating {
            OwnerRating::Satisfied => Rating::Satisfied,
            OwnerRating::BasicallySatisfied => Rating::BasicallySatisfied,
            OwnerRating::Dissatisfied => Rating::Dissatisfied,
        }
    }
}

impl ChangeKind {
    pub(crate) fn of(op: &DeviceOp) -> Self {
        match op {
            DeviceOp::RecordArrival { .. } => ChangeKind::Arrival,
            DeviceOp::AddNote { .. } => ChangeKind::Note,
            DeviceOp::Complete { .. } => ChangeKind::Result,
            DeviceOp::AttachSignature { .. } => ChangeKind::Signature,
            DeviceOp::AttachPhoto { .. } => ChangeKind::Photo,
        }
    }
}

impl TicketSummary {
    pub(crate) fn of(state: &TicketState) -> Self {
        let shown = &state.shown;
        Self {
            ticket_id: shown.id.to_string(),
            serial_number: shown.serial_number.as_ref().map(ToString::to_string),
            kind: wire_name(&shown.kind),
            status: shown.status.as_str().to_owned(),
            location: shown.location.clone(),
            description: shown.description.clone(),
            appointment_at: shown
                .appointment
                .as_ref()
                .map(|appointment| time(appointment.at)),
            pending_changes: u32::try_from(state.pending.len()).unwrap_or(u32::MAX),
            revoked: state.local.revoked.as_ref().map(wire_name),
        }
    }
}

impl TicketDetail {
    pub(crate) fn of(state: &TicketState, device: &DeviceId) -> Self {
        let shown = &state.shown;
        let server = &state.local.ticket;
        let state_of = |id: &MutationId| {
            let ours = &id.device == device;
            if ours && state.pending.iter().any(|m| m.seq == id.seq) {
                FactState::Pending
            } else if ours
                && state
                    .awaiting_pull
                    .iter()
                    .any(|acknowledged| acknowledged.mutation.seq == id.seq)
            {
                FactState::Acknowledged
            } else {
                FactState::OnServer
            }
        };
        let mut facts: Vec<FactLine> = Vec::new();
        let mut add = |id: &MutationId, change, fact: FactHeader, summary: String| {
            facts.push(FactLine {
                mutation_id: id.to_string(),
                change,
                recorded_by: fact.recorded_by,
                recorded_at: time(fact.recorded_at),
                summary,
                late: fact.late,
                state: state_of(id),
            });
        };
        for (id, fact) in &shown.arrivals {
            add(
                id,
                ChangeKind::Arrival,
                FactHeader::of(fact),
                "arrived on site 已到场".to_owned(),
            );
        }
        for (id, fact) in &shown.notes {
            add(
                id,
                ChangeKind::Note,
                FactHeader::of(fact),
                fact.body.text.clone(),
            );
        }
        for (id, fact) in &shown.results {
            let result = &fact.body;
            let materials: Vec<String> = result
                .materials
                .iter()
                .map(|material| format!("{} ×{}", material.name, material.quantity))
                .collect();
            let mut summary = result.work_done.clone();
            if !materials.is_empty() {
                summary.push_str(&format!("; materials 材料: {}", materials.join(", ")));
            }
            summary.push_str(&format!("; {}", charge_text(&result.charge)));
            // R-P6: with several results, say which one counts.
            if shown.results.len() > 1 && fact.late.is_none() {
                if shown.current_result.as_ref() == Some(id) {
                    summary.push_str(" [current 当前结果]");
                } else {
                    summary.push_str(" [replaced 已被替换]");
                }
            }
            add(id, ChangeKind::Result, FactHeader::of(fact), summary);
        }
        for (id, fact) in &shown.signatures {
            let signature = &fact.body;
            let mut summary = format!("signed by 签字人 {}", signature.signer_name);
            if let Some(rating) = signature.rating {
                summary.push_str(&format!(" ({})", wire_name(&rating)));
            }
            add(id, ChangeKind::Signature, FactHeader::of(fact), summary);
        }
        facts.sort_by_key(|fact| fact.recorded_at);
        Self {
            summary: TicketSummary::of(state),
            reporter_name: shown.reporter.name.clone(),
            reporter_phone: shown.reporter.phone.clone(),
            received_at: time(shown.received_at),
            dispatched_at: shown.dispatched_at.map(time),
            assigned_technician: shown.assigned_technician.as_ref().map(ToString::to_string),
            server_version: server.version.0,
            server_status: server.status.as_str().to_owned(),
            facts,
            office_notes: office_notes(shown),
        }
    }
}

/// The parts of a fact every kind shares.
struct FactHeader {
    recorded_by: String,
    recorded_at: DateTime<Utc>,
    late: Option<String>,
}

impl FactHeader {
    fn of<T>(fact: &Fact<T>) -> Self {
        Self {
            recorded_by: fact.recorded_by.to_string(),
            recorded_at: fact.recorded_at,
            late: fact.late.as_ref().map(|late| wire_name(&late.reason)),
        }
    }
}

fn office_notes(ticket: &Ticket) -> Vec<String> {
    ticket
        .office_notes
        .iter()
        .map(|note| {
            format!(
                "{} {}: {}",
                note.at.format("%Y-%m-%d %H:%M"),
                note.by,
                note.text
            )
        })
        .collect()
}

/// 有偿 with the fee in yuan, or 无偿.
pub fn charge_text(charge: &Charge) -> String {
    match charge {
        Charge::Free {} => "free 无偿".to_owned(),
        Charge::Paid { fee_fen } => format!("paid 有偿 ¥{}.{:02}", fee_fen / 100, fee_fen % 100),
    }
}

impl OutcomeLine {
    pub(crate) fn of(record: &OutcomeRecord) -> Self {
        let mutation: &DeviceMutation = &record.mutation;
        let acknowledgement = match record.verdict() {
            Verdict::Applied(applied) => match applied.late {
                None => Acknowledgement::Applied {
                    ticket_version: applied.ticket_version.0,
                },
                Some(late) => Acknowledgement::AppliedLate {
                    ticket_version: applied.ticket_version.0,
                    reason: wire_name(&late.reason),
                    assigned_now: late.assigned_now.as_ref().map(ToString::to_string),
                },
            },
            Verdict::Rejected(rejection) => Acknowledgement::Rejected {
                code: wire_name(&rejection.code),
                reason: rejection.reason,
            },
        };
        let duplicate = matches!(record.outcome, sync_protocol::Outcome::Duplicate { .. });
        Self {
            seq: mutation.seq.0,
            ticket_id: mutation.ticket_id.to_string(),
            change: ChangeKind::of(&mutation.op),
            message: outcome_message(&acknowledgement, duplicate),
            acknowledgement,
            duplicate,
            answered_at: time(record.answered_at),
            needs_attention: record.needs_attention(),
        }
    }
}

/// What the technician reads about an answer.
fn outcome_message(acknowledgement: &Acknowledgement, duplicate: bool) -> String {
    let message = match acknowledgement {
        Acknowledgement::Applied { .. } => "saved on the server 已上传".to_owned(),
        Acknowledgement::AppliedLate {
            reason,
            assigned_now,
            ..
        } => {
            let why = match (reason.as_str(), assigned_now) {
                ("reassigned_away", Some(now)) => format!("reassigned to {now} 已改派给 {now}"),
                ("reassigned_away", None) => "reassigned 已改派".to_owned(),
                ("cancelled", _) => "the ticket was cancelled 工单已取消".to_owned(),
                ("closed", _) => "the ticket was closed 工单已完结".to_owned(),
                ("converted", _) => {
                    "the work order became a coordination ticket 已转协调单".to_owned()
                }
                (other, _) => other.to_owned(),
            };
            format!("kept, flagged late for review 已保存，待复核: {why}")
        }
        Acknowledgement::Rejected { code, reason } => {
            format!("rejected 被拒绝 ({code}): {reason}")
        }
    };
    if duplicate {
        format!("{message} (answered before 此前已处理)")
    } else {
        message
    }
}

impl SyncReport {
    pub(crate) fn of(summary: &SyncSummary, pending_changes: usize) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            outcomes: summary.outcomes.iter().map(OutcomeLine::of).collect(),
            pushes: count(summary.pushes),
            images_uploaded: count(summary.images_uploaded),
            images_unavailable: count(summary.images_unavailable.len()),
            pages_pulled: count(summary.pages),
            tickets_updated: count(summary.tickets_updated),
            tickets_revoked: count(summary.tickets_revoked),
            renumbered: count(summary.renumbered),
            pending_changes: count(pending_changes),
        }
    }
}

impl SessionInfo {
    pub(crate) fn of(session: &Session) -> Self {
        Self {
            user: session.user.to_string(),
            estate: session.estate.to_string(),
            expires_at: time(session.expires_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{device, dispatched_ticket, mutation};
    use crate::records::LocalTicket;
    use crate::replica::{overlay, recorder};
    use sync_protocol::{
        Applied, LateReason, Lateness, Outcome, RejectCode, Rejection, UserId, Version,
    };

    #[test]
    fn wire_names_are_the_protocols_snake_case() {
        assert_eq!(wire_name(&sync_protocol::Status::InProgress), "in_progress");
        assert_eq!(wire_name(&LateReason::ReassignedAway), "reassigned_away");
        assert_eq!(wire_name(&RejectCode::InvalidContent), "invalid_content");
    }

    #[test]
    fn fees_are_shown_in_yuan_with_two_decimals() {
        assert_eq!(
            charge_text(&Charge::Paid { fee_fen: 3505 }),
            "paid 有偿 ¥35.05"
        );
        assert_eq!(charge_text(&Charge::Free {}), "free 无偿");
    }

    #[test]
    fn a_late_answer_names_who_holds_the_ticket_now() {
        let ticket = dispatched_ticket("tk00000002");
        let record = OutcomeRecord {
            mutation: mutation(5, &ticket, DeviceOp::RecordArrival { position: None }),
            outcome: Outcome::Duplicate {
                first: Verdict::Applied(Applied {
                    ticket_version: Version(4),
                    late: Some(Lateness {
                        reason: LateReason::ReassignedAway,
                        assigned_now: Some(UserId::parse("zhang").unwrap()),
                    }),
                }),
            },
            answered_at: DateTime::UNIX_EPOCH,
        };
        let line = OutcomeLine::of(&record);
        assert!(line.duplicate && line.needs_attention);
        assert!(line.message.contains("已改派给 zhang"), "{}", line.message);
        let rejected = OutcomeRecord {
            outcome: Outcome::Rejected(Rejection {
                code: RejectCode::InvalidContent,
                reason: "a paid job needs its fee (有偿服务需填写费用)".to_owned(),
            }),
            ..record
        };
        let line = OutcomeLine::of(&rejected);
        assert!(
            matches!(line.acknowledgement, Acknowledgement::Rejected { ref code, .. } if code == "invalid_content")
        );
    }

    #[test]
    fn a_pending_fact_is_marked_pending_and_the_status_is_the_overlays() {
        let copy = dispatched_ticket("tk00000001");
        let arrival = mutation(1, &copy, DeviceOp::RecordArrival { position: None });
        let shown = overlay(
            &copy,
            &recorder(&crate::fixtures::technician(), &device()),
            std::slice::from_ref(&arrival),
        );
        let state = TicketState {
            local: LocalTicket {
                ticket: copy,
                revoked: None,
            },
            shown,
            pending: vec![arrival],
            awaiting_pull: Vec::new(),
        };
        let detail = TicketDetail::of(&state, &device());
        assert_eq!(detail.summary.status, "in_progress");
        assert_eq!(detail.server_status, "dispatched");
        assert_eq!(detail.summary.pending_changes, 1);
        assert_eq!(detail.facts.len(), 1);
        assert_eq!(detail.facts[0].state, FactState::Pending);
        assert_eq!(detail.facts[0].mutation_id, "hh-li-1#1");
    }
}
