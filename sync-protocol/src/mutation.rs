//! Device mutations: intents recorded on a handheld, never state diffs, and
//! the outcome each one gets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceSeq, Sha256Hex, TicketId, Version};
use crate::ticket::{CompletionRecord, FactKind, Lateness, PhotoStage, Position, Rating};

/// One thing a technician did, as the device recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceMutation {
    /// The device's own sequence number: 1, 2, 3, … with no gaps.
    pub seq: DeviceSeq,
    pub ticket_id: TicketId,
    /// The ticket version the device had last seen when the technician acted.
    pub base_version: Version,
    /// The device's clock when the technician acted.
    pub recorded_at: DateTime<Utc>,
    pub op: DeviceOp,
}

impl DeviceOp {
    /// A note or a photo is content; an arrival, a result and a signature are what the
    /// workflow needs (`capacity`).
    pub fn addition(&self) -> crate::capacity::Addition {
        match self {
            DeviceOp::AddNote { .. } | DeviceOp::AttachPhoto { .. } => {
                crate::capacity::Addition::Content
            }
            DeviceOp::RecordArrival { .. }
            | DeviceOp::Complete { .. }
            | DeviceOp::AttachSignature { .. } => crate::capacity::Addition::Workflow,
        }
    }

    /// The kind of fact the op records when applied.
    pub fn fact_kind(&self) -> FactKind {
        match self {
            DeviceOp::RecordArrival { .. } => FactKind::Arrival,
            DeviceOp::AddNote { .. } => FactKind::Note,
            DeviceOp::Complete { .. } => FactKind::Result,
            DeviceOp::AttachSignature { .. } => FactKind::Signature,
            DeviceOp::AttachPhoto { .. } => FactKind::Photo,
        }
    }

    /// Bytes of free text the op adds to a ticket (`capacity`).
    pub fn text_bytes(&self) -> usize {
        match self {
            DeviceOp::RecordArrival { .. } | DeviceOp::AttachPhoto { .. } => 0,
            DeviceOp::AddNote { text } => text.len(),
            DeviceOp::Complete { result } => result.text_bytes(),
            DeviceOp::AttachSignature { signer_name, .. } => signer_name.len(),
        }
    }
}

impl DeviceMutation {
    /// A digest of the whole mutation: a replay must carry the same one, so a
    /// reused sequence number with other content is caught, not mistaken for a replay.
    pub fn digest(&self) -> Sha256Hex {
        let canonical = serde_json::to_vec(self).expect("a mutation always serializes");
        Sha256Hex::of(&canonical)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceOp {
    /// R-P1/R-P2: the technician is on site, with the phone's position when
    /// it gave one (kept, never required).
    RecordArrival {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<Position>,
    },
    /// A processing note (R-P3 progress on coordination tickets too).
    AddNote { text: String },
    /// R-P6: what was done, materials, paid or free.
    Complete { result: CompletionRecord },
    /// R-P7: the owner's signature over a completion record, as a blob by hash.
    AttachSignature {
        blob: Sha256Hex,
        signed_record: Sha256Hex,
        signer_name: String,
        /// The owner's rating, given with the signature (R-F1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rating: Option<Rating>,
        /// The pen strokes the image was drawn from, as a JSON blob by hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strokes: Option<Sha256Hex>,
    },
    /// A photo of the work before or after, as a blob by hash.
    AttachPhoto { blob: Sha256Hex, stage: PhotoStage },
}

/// The answer a mutation got when it was first processed; a replay gets it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verdict {
    Applied(Applied),
    Rejected(Rejection),
}

/// Exactly one outcome per mutation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    Applied(Applied),
    /// Already processed: `first` is the answer it got then.
    Duplicate {
        first: Verdict,
    },
    Rejected(Rejection),
}

impl From<Verdict> for Outcome {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Applied(applied) => Outcome::Applied(applied),
            Verdict::Rejected(rejection) => Outcome::Rejected(rejection),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    /// The ticket's version right after this mutation.
    pub ticket_version: Version,
    /// Set when the fact was kept but the ticket had moved on (reassigned, cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<Lateness>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

/// Stable reasons a single mutation is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// No such ticket.
    TicketNotFound,
    /// The technician never held this ticket.
    NotYourTicket,
    /// The content is malformed (empty note, fee on a free job, …).
    InvalidContent,
    /// A signature refers to a completion record the ticket does not have.
    SignedRecordUnknown,
    /// The ticket holds as much as one ticket may (`capacity`); what it
    /// accepted before stays.
    TicketFull,
}

/// A mutation's outcome on the wire, with what identifies it.
///
/// No `deny_unknown_fields` here: serde does not support it together with
/// `flatten` (it refuses the flattened `outcome` tag itself, so no response
/// would parse). Unknown fields are still refused by the flattened outcome's
/// own types, which carry `deny_unknown_fields`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationOutcome {
    pub seq: DeviceSeq,
    pub ticket_id: TicketId,
    #[serde(flatten)]
    pub outcome: Outcome,
}
