//! What supervisors (主管) watch: the crew table, the tickets at risk, the
//! review queue of flagged facts, the review itself, and the events of the
//! live feed. Pure: the server reads the store and calls these with `now`.
//!
//! A fact awaits review when it was kept but flagged late (the ticket had
//! moved on without it) or when its device time was not trusted
//! (`time_rules::corrected_event_time`). A review accepts or annotates it;
//! it is recorded in the ticket's history and never changes the fact.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::due::DueItem;
use crate::ids::{DeviceId, MutationId, TicketId, UserId};
use crate::serial::SerialNumber;
use crate::ticket::{Actor, Fact, FactKind, HistoryEvent, Lateness, Ticket};
use crate::time_rules::{CorrectedTime, RuleId};
use crate::wire::DeviceStatus;

/// A device counts as online when its last contact is at most this old,
/// unless the server is configured otherwise.
pub const DEFAULT_ONLINE_WINDOW_MINUTES: i64 = 5;
/// Most crew rows one snapshot lists; the rest are counted in `crew_left_off`.
pub const MAX_CREW_ROWS: usize = 500;
/// Most at-risk deadlines one snapshot lists, the most urgent first.
pub const MAX_AT_RISK_ITEMS: usize = 200;
/// Most review items one snapshot lists, the oldest received first.
pub const MAX_REVIEW_ITEMS: usize = 200;
/// Longest review note, in characters.
pub const MAX_REVIEW_NOTE_CHARS: usize = 1000;

/// `GET /api/v1/supervision`: the state a dashboard starts from. Events of
/// the live feed after `last_event_id` bring it up to date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSnapshot {
    pub generated_at: DateTime<Utc>,
    /// The live feed's last event id when the snapshot was read: subscribe
    /// with `Last-Event-ID` set to it to miss nothing.
    pub last_event_id: u64,
    pub online_window_minutes: i64,
    pub due_soon_window_minutes: i64,
    /// One row per device of the estate, in device id order.
    pub crew: Vec<CrewRow>,
    pub crew_left_off: u64,
    /// Due-soon and overdue deadlines of the estate, the most urgent first.
    pub at_risk: Vec<AtRiskTicket>,
    pub at_risk_left_off: u64,
    /// Flagged facts not yet reviewed, the oldest received first.
    pub review_queue: Vec<ReviewItem>,
    pub review_left_off: u64,
}

/// One device and its technician, as the device last reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrewRow {
    pub device_id: DeviceId,
    pub user: UserId,
    /// Last contact within the online window.
    pub online: bool,
    pub last_contact_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pull_at: Option<DateTime<Utc>>,
    /// Changes recorded on the device and not yet acknowledged, as reported.
    pub outbox_depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<u64>,
    /// Server time minus device time at the last contact.
    pub clock_offset_ms: i64,
    pub app_version: String,
    pub protocol_version: u32,
    /// Open tickets assigned to the technician.
    pub tickets_held: u32,
    /// Facts recorded with this device that await review.
    pub awaiting_review: u32,
}

/// A due-soon or overdue deadline, and whether its technician is offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtRiskTicket {
    pub due: DueItem,
    /// The technician holding the ticket, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician: Option<UserId>,
    /// The ticket is held by a technician none of whose devices is online:
    /// nobody can tell whether the work is being done.
    pub at_risk_while_offline: bool,
}

/// Why a fact is in the review queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// Kept, but the ticket had moved on without it (reassigned, cancelled).
    Late,
    /// Its device time could not be trusted; it is judged by the sync time.
    UntrustedTime,
}

/// A flagged fact awaiting a supervisor's review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewItem {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<SerialNumber>,
    pub mutation_id: MutationId,
    pub fact: FactKind,
    pub recorded_by: UserId,
    pub device: DeviceId,
    pub recorded_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<CorrectedTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<Lateness>,
    /// At least one.
    pub reasons: Vec<ReviewReason>,
}

/// What a supervisor decided about a flagged fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The fact stands as recorded.
    Accept,
    /// The fact stands, with the supervisor's note beside it.
    Annotate,
}

/// `POST /api/v1/tickets/{id}/reviews`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub mutation_id: MutationId,
    pub decision: ReviewDecision,
    /// Required to annotate; optional to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a review was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the ticket has no fact {0}")]
    FactNotFound(MutationId),
    #[error(
        "fact {0} was neither late nor timed by an untrusted clock: there is nothing to review"
    )]
    NotFlagged(MutationId),
    #[error("an annotation needs a note")]
    NoteRequired,
    #[error("a review note is at most {MAX_REVIEW_NOTE_CHARS} characters")]
    NoteTooLong,
    #[error("fact {0} was already reviewed with another decision or note")]
    ReviewedOtherwise(MutationId),
}

impl ReviewError {
    /// Stable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewError::FactNotFound(_) => "fact_not_found",
            ReviewError::NotFlagged(_) => "fact_not_flagged",
            ReviewError::NoteRequired => "note_required",
            ReviewError::NoteTooLong => "note_too_long",
            ReviewError::ReviewedOtherwise(_) => "already_reviewed",
        }
    }
}

/// The result of a review that was not refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reviewed {
    /// Recorded in the history: the ticket as it is now.
    Recorded(Box<Ticket>),
    /// The same review was recorded before (a retry): nothing changed.
    AlreadyRecorded,
}

/// Whether a device whose last contact was at `last_contact_at` is online.
pub fn is_online(last_contact_at: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> bool {
    now - last_contact_at <= window
}

/// The crew-table row of `device`.
pub fn crew_row(
    device: &DeviceStatus,
    now: DateTime<Utc>,
    online_window: Duration,
    tickets_held: u32,
    awaiting_review: u32,
) -> CrewRow {
    CrewRow {
        device_id: device.device_id.clone(),
        user: device.user.clone(),
        online: is_online(device.last_contact_at, now, online_window),
        last_contact_at: device.last_contact_at,
        last_push_at: device.last_push_at,
        last_pull_at: device.last_pull_at,
        outbox_depth: device.outbox_depth,
        oldest_pending_age_ms: device.oldest_pending_age_ms,
        clock_offset_ms: device.clock_offset_ms,
        app_version: device.app_version.clone(),
        protocol_version: device.protocol_version,
        tickets_held,
        awaiting_review,
    }
}

impl CrewRow {
    /// Whether a supervisor should look at this device: changes waiting to
    /// upload, facts awaiting review, a clock that cannot be trusted, or
    /// tickets held while it is offline.
    pub fn needs_attention(&self) -> bool {
        self.outbox_depth > 0
            || self.awaiting_review > 0
            || self.clock_offset_ms.abs() > crate::time_rules::CLOCK_OFFSET_TRUST_MS
            || (!self.online && self.tickets_held > 0)
    }
}

/// The crew table's order: the devices that need attention first, then the
/// most recent contact first (id last, so that the order is total).
pub fn sort_crew(rows: &mut [CrewRow]) {
    rows.sort_by(|a, b| {
        (b.needs_attention(), b.last_contact_at, &a.device_id).cmp(&(
            a.needs_attention(),
            a.last_contact_at,
            &b.device_id,
        ))
    });
}

/// The facts of `ticket` that await review, in mutation id order.
pub fn review_items(ticket: &Ticket) -> Vec<ReviewItem> {
    let mut items = Vec::new();
    collect_flagged(ticket, FactKind::Arrival, &ticket.arrivals, &mut items);
    collect_flagged(ticket, FactKind::Note, &ticket.notes, &mut items);
    collect_flagged(ticket, FactKind::Result, &ticket.results, &mut items);
    collect_flagged(ticket, FactKind::Signature, &ticket.signatures, &mut items);
    collect_flagged(ticket, FactKind::Photo, &ticket.photos, &mut items);
    items.sort_by(|a, b| a.mutation_id.cmp(&b.mutation_id));
    items
}

/// Record a supervisor's review of a flagged fact. Reviewing the same fact
/// again with the same decision and note changes nothing (a retry); with
/// another one it is refused: the first review stands in the history.
pub fn review_fact(
    ticket: &Ticket,
    request: &ReviewRequest,
    by: &UserId,
    now: DateTime<Utc>,
) -> Result<Reviewed, ReviewError> {
    let note = request
        .note
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if note.chars().count() > MAX_REVIEW_NOTE_CHARS {
        return Err(ReviewError::NoteTooLong);
    }
    if request.decision == ReviewDecision::Annotate && note.is_empty() {
        return Err(ReviewError::NoteRequired);
    }
    let mutation = &request.mutation_id;
    let flagged =
        flags_of(ticket, mutation).ok_or_else(|| ReviewError::FactNotFound(mutation.clone()))?;
    if flagged.is_empty() {
        return Err(ReviewError::NotFlagged(mutation.clone()));
    }
    if let Some((decision, earlier_note)) = review_of(ticket, mutation) {
        return if decision == request.decision && earlier_note == note {
            Ok(Reviewed::AlreadyRecorded)
        } else {
            Err(ReviewError::ReviewedOtherwise(mutation.clone()))
        };
    }
    let mut next = ticket.clone();
    let event = HistoryEvent::FactReviewed {
        mutation: mutation.clone(),
        decision: request.decision,
        note,
    };
    next.record(now, Actor::User { user: by.clone() }, event, ticket.status);
    Ok(Reviewed::Recorded(Box::new(next)))
}

/// An event of the live feed (`GET /api/v1/live`), sent as a Server-Sent
/// Event whose `id` is `id`, whose `event` is the body's `type`, and whose
/// `data` is this object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveEvent {
    /// Increases with every event the server publishes.
    pub id: u64,
    pub at: DateTime<Utc>,
    pub body: LiveEventBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LiveEventBody {
    /// A device pushed or pulled: its status as it reported it then.
    DeviceContact {
        contact: ContactKind,
        device: DeviceStatus,
    },
    /// The scheduler saw a deadline pass undone: the ticket is overdue.
    DeadlineMissed {
        ticket_id: TicketId,
        rule: RuleId,
        due_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        technician: Option<UserId>,
    },
    /// A supervisor reviewed a flagged fact: it leaves the review queue.
    FactReviewed {
        ticket_id: TicketId,
        mutation_id: MutationId,
        decision: ReviewDecision,
        by: UserId,
    },
    /// The events since the client's `Last-Event-ID` are no longer kept,
    /// or the client fell behind: reload the snapshot, then listen again.
    Reset {},
}

impl LiveEventBody {
    /// The SSE event name: the body's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEventBody::DeviceContact { .. } => "device_contact",
            LiveEventBody::DeadlineMissed { .. } => "deadline_missed",
            LiveEventBody::FactReviewed { .. } => "fact_reviewed",
            LiveEventBody::Reset {} => "reset",
        }
    }
}

/// Which sync request made the contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Push,
    Pull,
}

fn collect_flagged<T>(
    ticket: &Ticket,
    kind: FactKind,
    facts: &std::collections::BTreeMap<MutationId, Fact<T>>,
    items: &mut Vec<ReviewItem>,
) {
    for (mutation_id, fact) in facts {
        let reasons = reasons_of(fact);
        if reasons.is_empty() || review_of(ticket, mutation_id).is_some() {
            continue;
        }
        items.push(ReviewItem {
            ticket_id: ticket.id.clone(),
            serial_number: ticket.serial_number.clone(),
            mutation_id: mutation_id.clone(),
            fact: kind,
            recorded_by: fact.recorded_by.clone(),
            device: fact.device.clone(),
            recorded_at: fact.recorded_at,
            received_at: fact.received_at,
            event_time: fact.event_time,
            late: fact.late.clone(),
            reasons,
        });
    }
}

fn reasons_of<T>(fact: &Fact<T>) -> Vec<ReviewReason> {
    let mut reasons = Vec::new();
    if fact.late.is_some() {
        reasons.push(ReviewReason::Late);
    }
    if fact.event_time.is_some_and(|time| !time.trusted) {
        reasons.push(ReviewReason::UntrustedTime);
    }
    reasons
}

/// The review reasons of the fact `mutation` of `ticket`; `None` when the
/// ticket has no such fact.
fn flags_of(ticket: &Ticket, mutation: &MutationId) -> Option<Vec<ReviewReason>> {
    ticket
        .arrivals
        .get(mutation)
        .map(reasons_of)
        .or_else(|| ticket.notes.get(mutation).map(reasons_of))
        .or_else(|| ticket.results.get(mutation).map(reasons_of))
        .or_else(|| ticket.signatures.get(mutation).map(reasons_of))
}

/// The review recorded for `mutation`, if any: its decision and note.
fn review_of<'a>(ticket: &'a Ticket, mutation: &MutationId) -> Option<(ReviewDecision, &'a str)> {
    ticket.history.iter().find_map(|entry| match &entry.event {
        HistoryEvent::FactReviewed {
            mutation: reviewed,
            decision,
            note,
        } if reviewed == mutation => Some((*decision, note.as_str())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(id: &str, minute: u32, outbox_depth: u32) -> CrewRow {
        CrewRow {
            device_id: DeviceId::parse(id).unwrap(),
            user: UserId::parse("li").unwrap(),
            online: true,
            last_contact_at: Utc.with_ymd_and_hms(2026, 12, 7, 9, minute, 0).unwrap(),
            last_push_at: None,
            last_pull_at: None,
            outbox_depth,
            oldest_pending_age_ms: None,
            clock_offset_ms: 0,
            app_version: "1.0".into(),
            protocol_version: 1,
            tickets_held: 0,
            awaiting_review: 0,
        }
    }

    #[test]
    fn the_crew_table_puts_devices_that_need_attention_first_then_the_latest_contact() {
        let mut rows = vec![
            row("a-old", 1, 0),
            row("b-pending", 2, 3),
            row("c-recent", 9, 0),
            row("d-pending-recent", 8, 1),
        ];
        sort_crew(&mut rows);
        let order: Vec<&str> = rows.iter().map(|row| row.device_id.as_str()).collect();
        assert_eq!(
            order,
            ["d-pending-recent", "b-pending", "c-recent", "a-old"]
        );
    }

    #[test]
    fn a_device_offline_with_tickets_or_with_a_wrong_clock_needs_attention() {
        let offline = CrewRow {
            online: false,
            tickets_held: 2,
            ..row("x", 0, 0)
        };
        assert!(offline.needs_attention());
        let wrong_clock = CrewRow {
            clock_offset_ms: crate::time_rules::CLOCK_OFFSET_TRUST_MS + 1,
            ..row("y", 0, 0)
        };
        assert!(wrong_clock.needs_attention());
        assert!(!row("z", 0, 0).needs_attention());
    }
}
