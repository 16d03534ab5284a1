//! The ticket: everything SPEC.md records about one service request.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, EstateId, MutationId, Sha256Hex, TicketId, UserId, Version};
use crate::time_rules::CorrectedTime;
use crate::workflow::Status;

/// R-K1..R-K3: the three kinds of ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// 口头派工 (R-K1).
    VerbalDispatch,
    /// 派工单 (R-K2).
    WorkOrder,
    /// 协调单 (R-K3).
    CoordinationTicket,
}

impl TicketKind {
    pub const ALL: [TicketKind; 3] = [
        TicketKind::VerbalDispatch,
        TicketKind::WorkOrder,
        TicketKind::CoordinationTicket,
    ];
}

/// R-S1 categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 日常维修.
    Repair,
    /// 返修.
    Rework,
    /// 环境: cleaning and greening.
    Environment,
    /// 秩序: security and gates.
    Security,
    /// 沟通: owner communication.
    OwnerCommunication,
    /// 家政.
    HomeService,
    /// 私家花园养护.
    PrivateGarden,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Repair,
        Category::Rework,
        Category::Environment,
        Category::Security,
        Category::OwnerCommunication,
        Category::HomeService,
        Category::PrivateGarden,
    ];
}

/// Private unit or public area (公区); public-area windows are longer (R-K2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    PrivateUnit,
    PublicArea,
}

/// R-I1 sources of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// 电话.
    Phone,
    /// 来访.
    WalkIn,
    /// 自检.
    SelfInspection,
    /// 回访 (R-F3).
    FollowUp,
}

/// Who reported the problem (报事人).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// An appointment agreed with the owner; it becomes the arrival deadline (R-P1, R-P2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appointment {
    pub at: DateTime<Utc>,
    pub agreed_by: UserId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// R-S2: a home-service or private-garden job booked for a date
/// (预约服务登记), as customer service enters it once the fee, the staff and
/// the time are agreed with the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// The day of the service in the estate's calendar.
    pub service_date: NaiveDate,
    /// When the staff is to arrive: the R-P2 deadline.
    pub agreed_time: AgreedTime,
    /// The fee agreed with the owner, or free.
    pub fee: Charge,
    /// The staff the owner agreed to, when one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<UserId>,
}

/// R-S2: a booking as its ticket keeps it: the agreed terms and the moment
/// the work order is issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Booking {
    pub service_date: NaiveDate,
    pub agreed_time: AgreedTime,
    pub fee: Charge,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<UserId>,
    /// Derived, never sent by a client: local 00:00 of the day before the
    /// service date. The work order is issued then, and dispatched from then
    /// on; it moves when the service date moves.
    pub issued_at: DateTime<Utc>,
}

impl Booking {
    /// The local date the work order is issued: the day before the service.
    pub fn issue_date(&self) -> NaiveDate {
        issue_date_of(self.service_date)
    }
}

/// R-S2: the work order of a service on `service_date` is issued the day before.
pub fn issue_date_of(service_date: NaiveDate) -> NaiveDate {
    service_date
        .pred_opt()
        .expect("service dates are validated to lie near today")
}

/// The time agreed with the owner for a booked service (R-P2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgreedTime {
    /// 约定时间: the staff arrives by this time.
    At { at: DateTime<Utc> },
    /// 约定时段: the staff arrives within this window.
    Window {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

impl AgreedTime {
    /// The first instant the agreement names.
    pub fn starts_at(self) -> DateTime<Utc> {
        match self {
            AgreedTime::At { at } => at,
            AgreedTime::Window { from, .. } => from,
        }
    }

    /// The latest arrival that keeps the agreement (R-P2).
    pub fn arrive_by(self) -> DateTime<Utc> {
        match self {
            AgreedTime::At { at } => at,
            AgreedTime::Window { until, .. } => until,
        }
    }
}

/// The largest fee one job may carry, in fen: 1,000,000 yuan. Far above
/// any real job, and low enough that no report total can overflow.
pub const MAX_FEE_FEN: u64 = 100_000_000;

/// Paid 有偿 (with the fee) or free 无偿 (R-P6, R-C5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Charge {
    /// A struct variant, so that a stray `fee_fen` is refused, not dropped.
    Free {},
    /// The fee in fen (0.01 CNY) so that money is never a float; at most
    /// [`MAX_FEE_FEN`], which the merge rules and intake check where a fee
    /// comes in (a device's result, an office booking).
    Paid { fee_fen: u64 },
}

/// One material used on the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    pub name: String,
    pub quantity: String,
}

/// The result of the work as the technician recorded it (R-P6). The owner's
/// signature binds to its hash (R-P7), so it can never change afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionRecord {
    pub work_done: String,
    #[serde(default)]
    pub materials: Vec<Material>,
    pub charge: Charge,
}

impl CompletionRecord {
    /// Bytes of free text in the record: what was done, and the materials.
    pub fn text_bytes(&self) -> usize {
        let materials: usize = self
            .materials
            .iter()
            .map(|material| material.name.len() + material.quantity.len())
            .sum();
        self.work_done.len() + materials
    }

    /// SHA-256 of the record's canonical JSON (fields in declaration order, no
    /// whitespace): the value the owner's signature refers to.
    pub fn record_hash(&self) -> Sha256Hex {
        let canonical = serde_json::to_vec(self).expect("a completion record always serializes");
        Sha256Hex::of(&canonical)
    }
}

/// A device-recorded fact: who recorded it, when (device clock and server
/// receipt), and whether it arrived after the ticket moved on without it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact<T> {
    pub recorded_by: UserId,
    pub device: DeviceId,
    /// The device's own clock when the technician acted.
    pub recorded_at: DateTime<Utc>,
    /// When the server applied it.
    pub received_at: DateTime<Utc>,
    /// When it happened by the server's clock, as far as the device's clock
    /// can be trusted (`time_rules::corrected_event_time`). Absent in facts
    /// stored before it was kept; see [`Fact::event_at`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<CorrectedTime>,
    /// The ticket version the device had last seen.
    pub base_version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<Lateness>,
    pub body: T,
}

impl<T> Fact<T> {
    /// The time the event is judged by (R-P1, R-P2): the corrected device
    /// time, or the device's own time for facts stored before correction
    /// was kept.
    pub fn event_at(&self) -> DateTime<Utc> {
        self.event_time.map_or(self.recorded_at, |time| time.at)
    }
}

/// Why a fact was kept but could not move the ticket: it is flagged for review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lateness {
    pub reason: LateReason,
    /// Who holds the ticket now, if anybody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_now: Option<UserId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateReason {
    /// The ticket was reassigned to someone else while the device was offline.
    ReassignedAway,
    /// The ticket was cancelled while the device was offline.
    Cancelled,
    /// The ticket was closed while the device was offline.
    Closed,
    /// The work order became a coordination ticket while the device was offline (R-C2).
    Converted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Where the phone said it was, when the technician let it tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// A satellite position as the phone reported it, in millionths of a
/// degree (about 11 cm), so that it compares and hashes exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub latitude_e6: i32,
    pub longitude_e6: i32,
    /// The phone's own estimate of its error, in metres.
    pub accuracy_m: u32,
}

impl Position {
    /// On the globe: |latitude| ≤ 90°, |longitude| ≤ 180°.
    pub fn is_on_the_globe(&self) -> bool {
        self.latitude_e6.unsigned_abs() <= 90_000_000
            && self.longitude_e6.unsigned_abs() <= 180_000_000
    }
}

/// A photo of the work, taken on site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Photo {
    pub blob: Sha256Hex,
    pub stage: PhotoStage,
}

/// When a photo was taken, relative to the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoStage {
    /// 维修前.
    Before,
    /// 维修后.
    After,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub text: String,
}

/// The owner's signature: an image blob, bound to the completion record signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub blob: Sha256Hex,
    pub signed_record: Sha256Hex,
    pub signer_name: String,
    /// The owner's rating given when signing; R-F1 samples follow-ups by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    /// The pen strokes the image was drawn from, as a JSON blob by hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strokes: Option<Sha256Hex>,
}

/// The owner's rating of the service (R-F1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// 满意.
    Satisfied,
    /// 基本满意.
    BasicallySatisfied,
    /// 不满意.
    Dissatisfied,
}

/// A sign-off on a completed coordination ticket (R-C3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOff {
    pub by: UserId,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A follow-up call's result (R-F2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    pub by: UserId,
    pub at: DateTime<Utc>,
    /// Whether the owner was reached.
    pub reached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// What a tracking record on a coordination ticket says (R-P3, R-P4, R-P5, R-D2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrackingKind {
    /// R-D2: the department signed for the ticket.
    CollectionAcknowledged {},
    /// R-P3: the site inspection is booked with the owner for this time.
    InspectionBooked { at: DateTime<Utc> },
    /// R-P4: the specialist checked the ticket's progress.
    Check {},
    /// R-P3, R-P4: the owner was given a reply or a progress report.
    OwnerReply {},
    /// R-P5: an attempt to reach the owner, and whether a proposal was rejected.
    OwnerContact {
        reached: bool,
        #[serde(default)]
        proposal_rejected: bool,
    },
    /// R-P5: the coordinator and customer service talked to the owner
    /// together; it ends an escalation (`due::r_p5_open_escalation`).
    JointTalk {},
}

/// One tracking record on a coordination ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingRecord {
    pub by: UserId,
    pub at: DateTime<Utc>,
    pub kind: TrackingKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A note written in the office (customer service, dispatcher).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeNote {
    pub by: UserId,
    pub at: DateTime<Utc>,
    pub text: String,
}

/// The closing of a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Closure {
    pub by: UserId,
    pub at: DateTime<Utc>,
}

/// Who caused a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    User {
        user: UserId,
    },
    Device {
        user: UserId,
        device: DeviceId,
    },
    /// The server's scheduler, recording a missed deadline (`due.rs`).
    Scheduler {},
}

/// One line of a ticket's history; the ticket's version after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    pub version: Version,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub event: HistoryEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_change: Option<StatusChange>,
}

/// A status change caused by a history entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub from: Status,
    pub to: Status,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HistoryEvent {
    Received,
    Dispatched {
        technician: UserId,
    },
    Reassigned {
        from: UserId,
        to: UserId,
        reason: String,
    },
    AppointmentSet {
        at: DateTime<Utc>,
    },
    /// R-S2: the owner moved the booked service from one date to another.
    BookingRescheduled {
        from: NaiveDate,
        to: NaiveDate,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    Cancelled {
        reason: String,
    },
    OfficeNoteAdded,
    SignedOff,
    Closed,
    /// R-C2: this work order became `to`; or this coordination ticket came from `from`.
    ConvertedTo {
        to: TicketId,
        reason: String,
    },
    ConvertedFrom {
        from: TicketId,
    },
    FollowedUp {
        reached: bool,
    },
    /// R-F3: a new report was raised during this ticket's follow-up.
    FollowUpReportRaised {
        report: TicketId,
    },
    Tracked {
        kind: TrackingKind,
    },
    /// R-P5: the owner contact just tracked made the case for escalation;
    /// recorded once per case (`due::r_p5_open_escalation`), right after
    /// that contact's `tracked` entry. `since` is the case's first contact.
    Escalated {
        reason: crate::time_rules::EscalationReason,
        since: DateTime<Utc>,
    },
    /// A device fact was stored; `late` says it could not move the ticket.
    FactRecorded {
        mutation: MutationId,
        fact: FactKind,
        late: bool,
    },
    /// The scheduler saw this deadline pass undone; recorded once per
    /// (rule, due_at). For R-P1 it flags that customer service must book an
    /// appointment with the owner.
    DeadlineMissed {
        rule: crate::time_rules::RuleId,
        due_at: DateTime<Utc>,
    },
    /// A supervisor reviewed a flagged device fact (`supervision.rs`); the
    /// fact itself is unchanged.
    FactReviewed {
        mutation: MutationId,
        decision: crate::supervision::ReviewDecision,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    Arrival,
    Note,
    Result,
    Signature,
    Photo,
}

/// A service request and all that happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    pub id: TicketId,
    pub estate: EstateId,
    /// R-A1 serial number, given by the server when a work order or
    /// coordination ticket is recorded; a verbal dispatch has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<crate::serial::SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub area: Area,
    pub source: Source,
    pub reporter: Reporter,
    /// Unit or location, e.g. `3-1-502` or `B2 pump room`.
    pub location: String,
    pub description: String,
    pub received_at: DateTime<Utc>,
    pub received_by: UserId,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_technician: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<DateTime<Utc>>,
    /// Everyone who ever held the ticket: their late facts are still accepted.
    #[serde(default)]
    pub technicians_ever: BTreeSet<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<Appointment>,
    /// R-S2: the booking of a home-service or private-garden work order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<Booking>,
    #[serde(default)]
    pub arrivals: BTreeMap<MutationId, Fact<Arrival>>,
    #[serde(default)]
    pub notes: BTreeMap<MutationId, Fact<Note>>,
    #[serde(default)]
    pub results: BTreeMap<MutationId, Fact<CompletionRecord>>,
    /// The result that counts ([`Ticket::current_result`]) when there are
    /// several: a later one replaced the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_result: Option<MutationId>,
    #[serde(default)]
    pub signatures: BTreeMap<MutationId, Fact<Signature>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub photos: BTreeMap<MutationId, Fact<Photo>>,
    #[serde(default)]
    pub office_notes: Vec<OfficeNote>,
    /// R-C3 sign-offs: the department manager's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sign_offs: Vec<SignOff>,
    /// Who closed the ticket, and when (R-C1, R-C3, R-K1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closure>,
    /// R-C2: the work order this coordination ticket was converted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<TicketId>,
    /// R-C2: the coordination ticket this work order became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converted_to: Option<TicketId>,
    /// R-F3: the ticket whose follow-up raised this report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<TicketId>,
    /// R-F3: reports raised during this ticket's follow-ups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_up_reports: Vec<TicketId>,
    /// R-F2 follow-up results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<FollowUp>,
    /// R-P3, R-P4, R-P5, R-D2 tracking of a coordination ticket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<TrackingRecord>,
    pub history: Vec<HistoryEntry>,
    pub version: Version,
    pub updated_at: DateTime<Utc>,
}

impl Ticket {
    /// Whether `user` holds the ticket now.
    pub fn is_assigned_to(&self, user: &UserId) -> bool {
        self.assigned_technician.as_ref() == Some(user)
    }

    /// The technician whose device should hold the ticket: the assignee,
    /// unless the ticket was cancelled. Pulls revoke it from anyone else.
    pub fn holder(&self) -> Option<&UserId> {
        match self.status {
            Status::Cancelled | Status::Closed | Status::Converted => None,
            _ => self.assigned_technician.as_ref(),
        }
    }

    /// Why a device that held the ticket must let go of it now.
    pub fn revoke_reason(&self) -> crate::wire::RevokeReason {
        use crate::wire::RevokeReason;
        match self.status {
            Status::Cancelled => RevokeReason::Cancelled,
            Status::Closed => RevokeReason::Closed,
            Status::Converted => RevokeReason::Converted,
            _ => RevokeReason::Reassigned,
        }
    }

    /// R-S2: whether the work order is issued at `now`, and so can be
    /// dispatched: a booking from its `issued_at`, any other ticket at once.
    pub fn is_issued(&self, now: DateTime<Utc>) -> bool {
        self.booking
            .as_ref()
            .is_none_or(|booking| now >= booking.issued_at)
    }

    /// The result that counts: the newest one (by device time) not flagged
    /// late; any other on-time result was replaced by it.
    pub fn current_result(&self) -> Option<&Fact<CompletionRecord>> {
        self.current_result_entry().map(|(_, fact)| fact)
    }

    /// The id of [`Ticket::current_result`].
    pub fn current_result_id(&self) -> Option<&MutationId> {
        self.current_result_entry().map(|(id, _)| id)
    }

    fn current_result_entry(&self) -> Option<(&MutationId, &Fact<CompletionRecord>)> {
        self.results
            .iter()
            .filter(|(_, fact)| fact.late.is_none())
            .max_by_key(|(_, fact)| fact.recorded_at)
    }

    /// The paid/free decision of the current result (R-P6, R-C5).
    pub fn charge(&self) -> Option<&Charge> {
        self.current_result().map(|fact| &fact.body.charge)
    }

    /// Blob hashes the ticket refers to, for the missing-blob check.
    pub fn referenced_blobs(&self) -> impl Iterator<Item = &Sha256Hex> {
        self.blob_references().map(|(blob, _)| blob)
    }

    /// Each blob the ticket refers to, with the technician whose fact does.
    pub fn blob_references(&self) -> impl Iterator<Item = (&Sha256Hex, &UserId)> {
        let signatures = self.signatures.values().flat_map(|fact| {
            std::iter::once(&fact.body.blob)
                .chain(fact.body.strokes.as_ref())
                .map(|blob| (blob, &fact.recorded_by))
        });
        let photos = self
            .photos
            .values()
            .map(|fact| (&fact.body.blob, &fact.recorded_by));
        signatures.chain(photos)
    }

    /// The owner's signature over the current result (R-P7), if there is one.
    pub fn signature_of_current_result(&self) -> Option<&Fact<Signature>> {
        let hash = self.current_result()?.body.record_hash();
        self.signatures
            .values()
            .filter(|fact| fact.late.is_none())
            .find(|fact| fact.body.signed_record == hash)
    }

    /// Whether any result on the ticket has this hash.
    pub fn has_result_with_hash(&self, hash: &Sha256Hex) -> bool {
        self.results
            .values()
            .any(|fact| &fact.body.record_hash() == hash)
    }

    /// Record one applied change: move the status, bump the version, append
    /// to the history. Every change goes through here, so the version counts them.
    pub(crate) fn record(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        event: HistoryEvent,
        new_status: Status,
    ) {
        let status_change = (new_status != self.status).then_some(StatusChange {
            from: self.status,
            to: new_status,
        });
        self.status = new_status;
        self.version = self.version.next();
        self.updated_at = at;
        self.history.push(HistoryEntry {
            version: self.version,
            at,
            actor,
            event,
            status_change,
        });
    }
}
