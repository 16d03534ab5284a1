//! The reference handheld client of estate-sync: the technician's device
//! (工程维修人员的手持终端) that works with no signal and syncs when it can.
//!
//! - A replica of the technician's tickets and an outbox of what they
//!   recorded, in the device's own sled store; a change is on disk before
//!   the app is told it is saved.
//! - The sync loop of docs/protocol.md: push in order with the same numbers
//!   after any failure, upload signature images by hash, pull pages and
//!   store the cursor with each page, keep a revoked ticket's pending facts
//!   until the server has answered them.
//! - [`Handheld`], the API an app binds to (plain types, one error enum),
//!   over [`Device`], the same in the protocol's own types.
//!
//! The decisions are plain functions over plain data (`outbox`, `replica`),
//! unit-tested without I/O; time comes from a [`Clock`] and the network from
//! a [`Transport`], so a simulation can replace both.

pub mod clock;
pub mod device;
pub mod error;
mod handheld;
pub mod outbox;
pub mod records;
pub mod replica;
mod reqwest_transport;
mod store;
mod sync;
pub mod transport;
pub mod views;

#[cfg(test)]
mod fixtures;

pub use clock::{Clock, ManualClock, SystemClock};
pub use device::{Device, DeviceSettings, PageApplied, TicketState};
pub use error::HandheldError;
pub use handheld::{DEFAULT_REQUEST_TIMEOUT_MS, Handheld, HandheldConfig};
pub use records::{Acknowledged, LocalTicket, OutcomeRecord, Session};
pub use reqwest_transport::ReqwestTransport;
pub use store::{MemoryStorage, StoreError};
pub use sync::SyncSummary;
pub use transport::{
    HttpCall, HttpMethod, Transport, TransportError, TransportFuture, TransportResult, read_answer,
};
pub use views::{
    Acknowledgement, ChangeKind, FactLine, FactState, MaterialInput, OutcomeLine, OwnerRating,
    ResultInput, SavedChange, SessionInfo, StatusReport, SyncReport, TicketDetail, TicketSummary,
};
