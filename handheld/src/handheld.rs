//! [`Handheld`]: the API an app binds to. Plain types in and out
//! (`views.rs`), one error enum with stable codes, no generics and no
//! lifetimes; `login` and `sync` are async, everything else works with no
//! network. handheld/README.md describes its UniFFI form.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sync_protocol::{Charge, CompletionRecord, DeviceId, DeviceOp, DeviceSeq, Material, TicketId};

use crate::clock::{Clock, SystemClock};
use crate::device::{Device, DeviceSettings};
use crate::error::HandheldError;
use crate::records::OutcomeRecord;
use crate::reqwest_transport::ReqwestTransport;
use crate::transport::Transport;
use crate::views::{
    ChangeKind, OutcomeLine, OwnerRating, ResultInput, SavedChange, SessionInfo, StatusReport,
    SyncReport, TicketDetail, TicketSummary, time,
};

/// How long one request may take before the sync gives up on it (and
/// sends the same changes again next time).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How many late or rejected answers `status` lists.
const ATTENTION_LIMIT: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandheldConfig {
    /// Where the device keeps its store; one directory per technician.
    pub data_dir: String,
    /// The server, e.g. `http://10.0.0.5:8080`; when `None`, the one of the
    /// last login on this data directory.
    pub server_url: Option<String>,
    /// The device id of a new data directory; `None` makes one up.
    pub device_id: Option<String>,
    /// Reported to the server with every sync.
    pub app_version: String,
    pub request_timeout_ms: u64,
}

impl HandheldConfig {
    /// The defaults for a handheld in `data_dir`.
    pub fn new(data_dir: String) -> Self {
        Self {
            data_dir,
            server_url: None,
            device_id: None,
            app_version: concat!("handheld/", env!("CARGO_PKG_VERSION")).to_owned(),
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

pub struct Handheld {
    device: Device,
    /// `None` until a server address is known.
    transport: Option<Arc<dyn Transport>>,
}

impl Handheld {
    /// Open (or create) the handheld in `config.data_dir`, speaking HTTP to
    /// the server with the machine's clock.
    pub fn open(config: HandheldConfig) -> Result<Self, HandheldError> {
        let device = Device::open(&settings(&config)?, Arc::new(SystemClock))?;
        let server_url = match &config.server_url {
            Some(url) => Some(url.clone()),
            None => device.server_url()?,
        };
        let transport: Option<Arc<dyn Transport>> = match server_url {
            Some(url) => {
                let timeout = Duration::from_millis(config.request_timeout_ms);
                let transport = ReqwestTransport::new(&url, timeout)?;
                if config.server_url.is_some() {
                    device.remember_server_url(&url)?;
                }
                Some(Arc::new(transport))
            }
            None => None,
        };
        Ok(Self { device, transport })
    }

    /// Open with another transport and clock: a simulation's network, a
    /// device whose clock is wrong.
    pub fn open_with(
        config: HandheldConfig,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HandheldError> {
        let device = Device::open(&settings(&config)?, clock)?;
        if let Some(url) = &config.server_url {
            device.remember_server_url(url)?;
        }
        Ok(Self {
            device,
            transport: Some(transport),
        })
    }

    /// The device and its protocol-level API, for Rust callers.
    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn device_id(&self) -> String {
        self.device.device_id().to_string()
    }

    // ---- With the network -------------------------------------------------

    pub async fn login(
        &self,
        username: String,
        password: String,
    ) -> Result<SessionInfo, HandheldError> {
        let session = self
            .device
            .login(self.transport()?, &username, &password)
            .await?;
        Ok(SessionInfo::of(&session))
    }

    /// Upload what was recorded and bring the tickets up to date. On an
    /// error, the answers received before it are kept and listed by
    /// [`Handheld::status`]; nothing recorded is lost.
    pub async fn sync(&self) -> Result<SyncReport, HandheldError> {
        let summary = self.device.sync(self.transport()?).await?;
        Ok(SyncReport::of(&summary, self.device.store.outbox_len()?))
    }

    fn transport(&self) -> Result<&dyn Transport, HandheldError> {
        self.transport.as_deref().ok_or(HandheldError::NoServer)
    }

    // ---- Without the network ----------------------------------------------

    /// The tickets on the handheld, as they will be once what is pending uploads.
    pub fn list(&self) -> Result<Vec<TicketSummary>, HandheldError> {
        Ok(self
            .device
            .tickets()?
            .iter()
            .map(TicketSummary::of)
            .collect())
    }

    pub fn show(&self, ticket_id: String) -> Result<TicketDetail, HandheldError> {
        let state = self.device.ticket(&parse_ticket_id(&ticket_id)?)?;
        Ok(TicketDetail::of(&state, self.device.device_id()))
    }

    /// R-P1, R-P2: the technician is on site.
    pub fn arrive(&self, ticket_id: String) -> Result<SavedChange, HandheldError> {
        let id = parse_ticket_id(&ticket_id)?;
        self.saved(
            self.device
                .record(&id, DeviceOp::RecordArrival { position: None })?,
        )
    }

    pub fn note(&self, ticket_id: String, text: String) -> Result<SavedChange, HandheldError> {
        let id = parse_ticket_id(&ticket_id)?;
        self.saved(self.device.record(&id, DeviceOp::AddNote { text })?)
    }

    /// R-P6: what was done, the materials, paid (with the fee) or free.
    pub fn complete(
        &self,
        ticket_id: String,
        result: ResultInput,
    ) -> Result<SavedChange, HandheldError> {
        let id = parse_ticket_id(&ticket_id)?;
        let result = CompletionRecord {
            work_done: result.work_done,
            materials: result
                .materials
                .into_iter()
                .map(|material| Material {
                    name: material.name,
                    quantity: material.quantity,
                })
                .collect(),
            charge: match result.fee_fen {
                Some(fee_fen) => Charge::Paid { fee_fen },
                None => Charge::Free {},
            },
        };
        self.saved(self.device.record(&id, DeviceOp::Complete { result })?)
    }

    /// R-P7: the owner signs the ticket's current result; `image` is the
    /// signature as drawn (PNG, say), at most 1 MiB.
    pub fn sign(
        &self,
        ticket_id: String,
        image: Vec<u8>,
        signer_name: String,
        rating: Option<OwnerRating>,
    ) -> Result<SavedChange, HandheldError> {
        let id = parse_ticket_id(&ticket_id)?;
        let mutation =
            self.device
                .record_signature(&id, &image, signer_name, rating.map(Into::into))?;
        self.saved(mutation)
    }

    /// What waits to upload, since when, the last sync, and the answers
    /// that need the technician's attention.
    pub fn status(&self) -> Result<StatusReport, HandheldError> {
        let device = &self.device;
        let report = device.report()?;
        let needs_attention = device
            .outcomes(crate::device::MAX_OUTCOME_RECORDS)?
            .iter()
            .filter(|record| record.needs_attention())
            .take(ATTENTION_LIMIT)
            .map(OutcomeLine::of)
            .collect();
        Ok(StatusReport {
            device_id: self.device_id(),
            user: device.owner()?.map(|user| user.to_string()),
            logged_in: device.session()?.is_some(),
            server_url: device.server_url()?,
            pending_changes: report.outbox_depth,
            oldest_pending_age: report.oldest_pending_age_ms.map(Duration::from_millis),
            last_sync_at: device.last_sync_at()?.map(time),
            tickets: u32::try_from(device.store.tickets()?.len()).unwrap_or(u32::MAX),
            needs_attention,
        })
    }

    /// The newest `limit` answers, newest first.
    pub fn recent_outcomes(&self, limit: u32) -> Result<Vec<OutcomeLine>, HandheldError> {
        let records: Vec<OutcomeRecord> = self.device.outcomes(limit as usize)?;
        Ok(records.iter().map(OutcomeLine::of).collect())
    }

    fn saved(&self, mutation: sync_protocol::DeviceMutation) -> Result<SavedChange, HandheldError> {
        let DeviceSeq(seq) = mutation.seq;
        Ok(SavedChange {
            seq,
            ticket_id: mutation.ticket_id.to_string(),
            change: ChangeKind::of(&mutation.op),
            recorded_at: time(mutation.recorded_at),
            pending_changes: u32::try_from(self.device.store.outbox_len()?).unwrap_or(u32::MAX),
        })
    }
}

fn settings(config: &HandheldConfig) -> Result<DeviceSettings, HandheldError> {
    let device_id = match &config.device_id {
        Some(raw) => Some(
            DeviceId::parse(raw)
                .map_err(|error| HandheldError::invalid_input("device_id", error.to_string()))?,
        ),
        None => None,
    };
    Ok(DeviceSettings {
        data_dir: PathBuf::from(&config.data_dir),
        device_id,
        app_version: config.app_version.clone(),
    })
}

fn parse_ticket_id(raw: &str) -> Result<TicketId, HandheldError> {
    TicketId::parse(raw.trim())
        .map_err(|error| HandheldError::invalid_input("ticket_id", error.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_facade_can_be_shared_between_an_apps_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<super::Handheld>();
    }
}
