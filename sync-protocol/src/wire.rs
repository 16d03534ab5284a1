//! Request and response bodies of the HTTP API. These are a compatibility
//! promise: golden tests freeze their JSON, and `docs/protocol.md` describes them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::Priority;
use crate::ids::{Cursor, DeviceId, DeviceSeq, EstateId, Sha256Hex, TicketId, UserId, Version};
use crate::mutation::{DeviceMutation, MutationOutcome};
use crate::office::OfficeOp;
use crate::roles::Role;
use crate::ticket::{Area, Category, Source, Ticket, TicketKind};

/// The protocol version this crate speaks. It travels in every sync body and
/// in the [`PROTOCOL_HEADER`] of every response.
pub const PROTOCOL_VERSION: u32 = 1;
/// HTTP header carrying [`PROTOCOL_VERSION`].
pub const PROTOCOL_HEADER: &str = "x-sync-protocol";

/// The most mutations one push may carry.
pub const MAX_MUTATIONS_PER_PUSH: usize = 500;
/// The most changes one pull page may return, and the default.
pub const MAX_PAGE_SIZE: u32 = 500;
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest blob (signature image, photo) accepted.
pub const MAX_BLOB_BYTES: usize = 1024 * 1024;

/// What a device says about itself with every sync, for the supervisors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReport {
    pub device_id: DeviceId,
    pub app_version: String,
    /// Mutations recorded on the device and not yet acknowledged.
    pub outbox_depth: u32,
    /// Age of the oldest of them, by the device's own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<u64>,
    /// The device's clock when it sent the request; the server measures the offset.
    pub device_time: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub protocol_version: u32,
    pub device: DeviceReport,
    pub mutations: Vec<DeviceMutation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    pub protocol_version: u32,
    pub server_time: DateTime<Utc>,
    /// One per mutation of the request, in the same order.
    pub outcomes: Vec<MutationOutcome>,
    /// The current version of every ticket the batch named.
    pub ticket_versions: Vec<TicketVersion>,
    /// The last sequence number the server has processed for this device.
    pub last_seq: DeviceSeq,
    /// Blobs the batch's tickets refer to that the server does not have yet.
    pub missing_blobs: Vec<Sha256Hex>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketVersion {
    pub ticket_id: TicketId,
    pub version: Version,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub protocol_version: u32,
    pub device: DeviceReport,
    /// Resume after this point of the feed; 0 for a first sync.
    pub cursor: Cursor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullResponse {
    pub protocol_version: u32,
    pub server_time: DateTime<Utc>,
    pub changes: Vec<Change>,
    /// Store it once this page is applied, and send it with the next pull.
    pub next_cursor: Cursor,
    pub has_more: bool,
    /// The last sequence number the server has processed for this device; a
    /// reinstalled device continues after it.
    pub last_seq: DeviceSeq,
}

/// One change to the technician's set of tickets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// The ticket as it is now: add or replace the local copy.
    Upsert { cursor: Cursor, ticket: Box<Ticket> },
    /// The ticket is no longer the technician's: drop the local copy once
    /// nothing recorded on it is waiting to upload.
    Revoked {
        cursor: Cursor,
        ticket_id: TicketId,
        reason: RevokeReason,
    },
}

impl Change {
    pub fn cursor(&self) -> Cursor {
        match self {
            Change::Upsert { cursor, .. } | Change::Revoked { cursor, .. } => *cursor,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    Reassigned,
    Cancelled,
    Closed,
    Converted,
}

/// The answer to a blob upload: the same whether or not the server held
/// these bytes before, so that an upload reveals nothing of other uploads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobReceipt {
    pub sha256: Sha256Hex,
    pub size_bytes: u64,
}

/// What the server knows about a handheld: the supervisors' view of its sync
/// state (as last reported) and the measured clock offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceStatus {
    pub device_id: DeviceId,
    /// The technician the device belongs to; another user cannot sync with it.
    pub user: UserId,
    pub estate: EstateId,
    /// The last sequence number the server processed for it.
    pub last_seq: DeviceSeq,
    pub app_version: String,
    pub protocol_version: u32,
    pub outbox_depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<u64>,
    pub last_contact_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pull_at: Option<DateTime<Utc>>,
    /// Server time minus device time at the last contact, in milliseconds.
    pub clock_offset_ms: i64,
    /// When the device was retired to make room for a newer one of the same
    /// technician; it is active again when it syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePage {
    pub devices: Vec<DeviceStatus>,
    /// Pass as `after` to get the next page; set whenever the page is full
    /// (the next page may then be empty), absent on a short last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<DeviceId>,
}

/// An office action with an optional optimistic-concurrency check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeActionRequest {
    /// Refuse the action if the ticket is no longer at this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<Version>,
    pub op: OfficeOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketPage {
    pub tickets: Vec<Ticket>,
    /// Pass as `after` to get the next page; set whenever the page is full
    /// (the next page may then be empty), absent on a short last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<TicketId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The handheld (or browser) logging in: its refresh token is bound to
    /// it, and only it can use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
}

/// A new pair of tokens for a refresh token (`POST /api/v1/auth/refresh`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
    /// The device the refresh token was issued to, if it was bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
}

/// The answer to a login or a refresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginResponse {
    /// A short-lived access token: send it as `Authorization: Bearer`.
    pub token: String,
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    /// Exchanges for a new pair before `refresh_expires_at`, once: each
    /// refresh answers with a new one (keep only the newest).
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub user: UserId,
    pub display_name: String,
    pub role: Role,
    pub estate: EstateId,
    /// The estate's time zone (IANA name, e.g. `Asia/Shanghai`): clients
    /// show times in it, whatever zone the phone is set to.
    pub time_zone: String,
}

/// The one error body of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable and machine-readable, e.g. `sequence_gap`.
    pub code: String,
    /// For people; may change wording.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// The most entries a dispatch queue answer lists; `waiting` counts them all.
pub const MAX_DISPATCH_QUEUE: usize = 500;
/// The most technicians one suggestion answer ranks.
pub const MAX_SUGGESTIONS: usize = 50;

/// R-D3: the tickets waiting for dispatch that the caller may dispatch,
/// owners' jobs first (先业主后内部), then the oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchQueue {
    /// In dispatch order; at most [`MAX_DISPATCH_QUEUE`].
    pub tickets: Vec<QueuedTicket>,
    /// How many tickets wait in all; more than `tickets` holds when the
    /// queue was cut at [`MAX_DISPATCH_QUEUE`].
    pub waiting: u32,
}

/// One ticket of the dispatch queue: what the dispatcher decides on. The
/// whole ticket is one `GET /api/v1/tickets/{id}` away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedTicket {
    pub ticket_id: TicketId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<crate::serial::SerialNumber>,
    pub kind: TicketKind,
    pub category: Category,
    pub area: Area,
    pub source: Source,
    /// Whose job it is: an owner's or an internal one (R-D3).
    pub priority: Priority,
    pub location: String,
    pub description: String,
    pub received_at: DateTime<Utc>,
    /// R-S2: the service date, agreed time, fee and staff of a booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<crate::ticket::Booking>,
    /// Send it as `expected_version` with the dispatch action.
    pub version: Version,
}

impl QueuedTicket {
    pub fn of(ticket: &Ticket) -> Self {
        Self {
            ticket_id: ticket.id.clone(),
            serial_number: ticket.serial_number.clone(),
            kind: ticket.kind,
            category: ticket.category,
            area: ticket.area,
            source: ticket.source,
            priority: Priority::of(ticket.source),
            location: ticket.location.clone(),
            description: ticket.description.clone(),
            received_at: ticket.received_at,
            booking: ticket.booking.clone(),
            version: ticket.version,
        }
    }
}

/// R-D3: the estate's technicians ranked for one ticket, most efficient first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSuggestions {
    pub ticket_id: TicketId,
    /// The building the ranking looked for, read from the ticket's location
    /// ([`crate::dispatch::building_of`]); absent when the location names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    /// Best first; at most [`MAX_SUGGESTIONS`].
    pub suggestions: Vec<Suggestion>,
}

/// One technician for a ticket, and why they rank where they do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suggestion {
    /// 1 for the best.
    pub rank: u32,
    pub technician: UserId,
    pub display_name: String,
    /// Their open tickets (dispatched or in progress), this one not counted.
    pub open_load: u32,
    /// How many of those are in the ticket's building.
    pub same_building_jobs: u32,
    pub reason: Reason,
}

/// A short explanation for people, in English and Chinese (zh-CN).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub en: String,
    pub zh_cn: String,
}
