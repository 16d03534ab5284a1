//! [`Device`]: the handheld's state on disk and everything done without the
//! network: recording intents into the outbox, reading tickets with their
//! pending changes, applying a pulled page, taking in the server's answers.
//! The network half of the sync loop is `sync.rs`.
//!
//! This is the Rust API, in the protocol's own types; the app-facing
//! facade with plain types is [`crate::Handheld`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use sync_protocol::{
    Cursor, DeviceId, DeviceMutation, DeviceOp, DeviceReport, DeviceSeq, MAX_BLOB_BYTES,
    PullResponse, PushResponse, Rating, Sha256Hex, Ticket, TicketId, UserId, Verdict, merge,
};

use crate::clock::Clock;
use crate::error::HandheldError;
use crate::outbox::{
    MAX_MUTATION_BYTES, MAX_OUTBOX, Renumbered, encoded_len, pair_outcomes, pending_age_ms,
};
use crate::records::{Acknowledged, LocalTicket, OutcomeRecord, Session};
use crate::replica::{PageStep, awaits_pull, leaves_replica, overlay, plan_page, recorder};
use crate::store::{Changes, MemoryStorage, Store, meta};

/// The most answers kept for the technician to look at; older ones go.
pub const MAX_OUTCOME_RECORDS: usize = 1000;

/// How to open a handheld's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSettings {
    pub data_dir: PathBuf,
    /// The device id of a new data directory; `None` makes one up. A data
    /// directory keeps the id it was created with.
    pub device_id: Option<DeviceId>,
    /// Reported to the server with every sync (`app_version`).
    pub app_version: String,
}

/// One ticket of the replica as the technician sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketState {
    /// The server's copy as last pulled, and whether it was revoked.
    pub local: LocalTicket,
    /// The copy with `awaiting_pull` and `pending` merged in.
    pub shown: Ticket,
    /// Recorded, waiting to upload, in seq order.
    pub pending: Vec<DeviceMutation>,
    /// Applied by the server, not yet in the copy.
    pub awaiting_pull: Vec<Acknowledged>,
}

/// What applying one pulled page did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageApplied {
    pub tickets_updated: usize,
    pub tickets_revoked: usize,
}

pub struct Device {
    pub(crate) store: Store,
    clock: Arc<dyn Clock>,
    device_id: DeviceId,
    app_version: String,
    /// Recording, taking in answers, applying pages and renumbering each
    /// read the outbox or the replica and then write it: one at a time, so
    /// that no sequence number is handed out twice and no answer is lost.
    write_lock: Mutex<()>,
}

impl Device {
    pub fn open(settings: &DeviceSettings, clock: Arc<dyn Clock>) -> Result<Self, HandheldError> {
        let store = Store::open(&settings.data_dir)?;
        let make_id = || new_device_id(settings, clock.now());
        let device_id = Self::identify(&store, settings.device_id.as_ref(), make_id)?;
        Ok(Self {
            store,
            clock,
            device_id,
            app_version: settings.app_version.clone(),
            write_lock: Mutex::new(()),
        })
    }

    /// Open a handheld whose store lives in `storage` (a simulated device):
    /// what a call committed before it returned is there when the same
    /// storage is opened again, which is how a simulation restarts a device.
    pub fn open_in_memory(
        storage: &MemoryStorage,
        device_id: DeviceId,
        app_version: String,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HandheldError> {
        let store = Store::in_memory(storage);
        let device_id = Self::identify(&store, Some(&device_id), || device_id.clone())?;
        Ok(Self {
            store,
            clock,
            device_id,
            app_version,
            write_lock: Mutex::new(()),
        })
    }

    /// The device id the store was created with, or, for a new store,
    /// `wanted` (else a new one), written down.
    fn identify(
        store: &Store,
        wanted: Option<&DeviceId>,
        new_id: impl FnOnce() -> DeviceId,
    ) -> Result<DeviceId, HandheldError> {
        if let Some(stored) = store.meta::<DeviceId>(meta::DEVICE_ID)? {
            if let Some(wanted) = wanted
                && wanted != &stored
            {
                return Err(HandheldError::invalid_input(
                    "device_id",
                    format!("this data directory is handheld {stored}, not {wanted}"),
                ));
            }
            return Ok(stored);
        }
        let chosen = wanted.cloned().unwrap_or_else(new_id);
        let mut changes = Changes::default();
        changes.put_meta(meta::DEVICE_ID, &chosen);
        store.commit(changes)?;
        Ok(chosen)
    }

    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The technician the handheld belongs to: the first one who logged in.
    pub fn owner(&self) -> Result<Option<UserId>, HandheldError> {
        Ok(self.store.meta(meta::OWNER)?)
    }

    pub fn session(&self) -> Result<Option<Session>, HandheldError> {
        Ok(self.store.meta(meta::SESSION)?)
    }

    pub fn server_url(&self) -> Result<Option<String>, HandheldError> {
        Ok(self.store.meta(meta::SERVER_URL)?)
    }

    pub fn remember_server_url(&self, url: &str) -> Result<(), HandheldError> {
        let mut changes = Changes::default();
        changes.put_meta(meta::SERVER_URL, &url);
        Ok(self.store.commit(changes)?)
    }

    pub fn last_sync_at(&self) -> Result<Option<DateTime<Utc>>, HandheldError> {
        Ok(self.store.meta(meta::LAST_SYNC_AT)?)
    }

    pub fn cursor(&self) -> Result<Cursor, HandheldError> {
        Ok(self.store.meta(meta::CURSOR)?.unwrap_or_default())
    }

    /// The last sequence number the server said it processed for this device.
    pub fn server_last_seq(&self) -> Result<DeviceSeq, HandheldError> {
        Ok(self.store.meta(meta::SERVER_LAST_SEQ)?.unwrap_or_default())
    }

    // ---- Recording --------------------------------------------------------

    /// Record an intent on a ticket of the replica: it gets the next
    /// sequence number and is on disk when this returns. Refused, with
    /// nothing saved, when the server would reject it (its own merge rules
    /// decide, on the ticket with everything pending).
    pub fn record(
        &self,
        ticket_id: &TicketId,
        op: DeviceOp,
    ) -> Result<DeviceMutation, HandheldError> {
        self.record_with(ticket_id, |_| Ok(op), None)
    }

    /// R-P7: the owner signs the result that counts now, pending or not; the
    /// image is kept on the device until the server has it.
    pub fn record_signature(
        &self,
        ticket_id: &TicketId,
        image: &[u8],
        signer_name: String,
        rating: Option<Rating>,
    ) -> Result<DeviceMutation, HandheldError> {
        if image.is_empty() {
            return Err(HandheldError::invalid_input(
                "image",
                "the signature image is empty",
            ));
        }
        if image.len() > MAX_BLOB_BYTES {
            return Err(HandheldError::invalid_input(
                "image",
                format!(
                    "the signature image has {} bytes; the most is {MAX_BLOB_BYTES}",
                    image.len()
                ),
            ));
        }
        let blob = Sha256Hex::of(image);
        let sign = |shown: &Ticket| {
            let result = shown
                .current_result()
                .ok_or_else(|| HandheldError::NothingToSign {
                    ticket_id: ticket_id.to_string(),
                })?;
            Ok(DeviceOp::AttachSignature {
                blob,
                signed_record: result.body.record_hash(),
                signer_name,
                rating,
                strokes: None,
            })
        };
        self.record_with(ticket_id, sign, Some(image))
    }

    fn record_with(
        &self,
        ticket_id: &TicketId,
        make_op: impl FnOnce(&Ticket) -> Result<DeviceOp, HandheldError>,
        image: Option<&[u8]>,
    ) -> Result<DeviceMutation, HandheldError> {
        let _writing = self.lock();
        let local = self.local_ticket(ticket_id)?;
        if let Some(reason) = local.revoked {
            return Err(HandheldError::TicketRevoked {
                ticket_id: ticket_id.to_string(),
                reason: crate::views::wire_name(&reason),
            });
        }
        let user = self.owner()?.ok_or(HandheldError::NotLoggedIn)?;
        let state = self.state_of(local, &user)?;
        let op = make_op(&state.shown)?;
        let seq = self.next_seq()?;
        self.check_outbox_room(seq)?;
        let mutation = DeviceMutation {
            seq,
            ticket_id: ticket_id.clone(),
            base_version: state.local.ticket.version,
            recorded_at: self.clock.now(),
            op,
        };
        if encoded_len(&mutation) > MAX_MUTATION_BYTES {
            return Err(HandheldError::invalid_input(
                field_of(&mutation.op),
                format!("too long: a change is at most {MAX_MUTATION_BYTES} bytes"),
            ));
        }
        let preview = merge(
            &state.shown,
            &recorder(&user, &self.device_id),
            &mutation,
            mutation.recorded_at,
        );
        if let Verdict::Rejected(rejection) = preview.verdict {
            return Err(HandheldError::invalid_input(
                field_of(&mutation.op),
                rejection.reason,
            ));
        }
        let mut changes = Changes::default();
        changes.put_pending(&mutation);
        changes.put_meta(meta::NEXT_SEQ, &DeviceSeq(seq.0 + 1));
        if let (Some(bytes), DeviceOp::AttachSignature { blob, .. }) = (image, &mutation.op) {
            changes.put_image(blob, bytes);
        }
        self.store.commit(changes)?;
        Ok(mutation)
    }

    fn next_seq(&self) -> Result<DeviceSeq, HandheldError> {
        Ok(self.store.meta(meta::NEXT_SEQ)?.unwrap_or(DeviceSeq(1)))
    }

    fn check_outbox_room(&self, next: DeviceSeq) -> Result<(), HandheldError> {
        // Pending numbers lie between the oldest and `next`, so their spread
        // bounds their count without counting them.
        if let Some(oldest) = self.store.outbox_head(1)?.first()
            && next.0.saturating_sub(oldest.seq.0) >= MAX_OUTBOX
        {
            return Err(HandheldError::OutboxFull { limit: MAX_OUTBOX });
        }
        Ok(())
    }

    // ---- Reading ----------------------------------------------------------

    /// Every ticket of the replica, in id order, with its pending changes.
    pub fn tickets(&self) -> Result<Vec<TicketState>, HandheldError> {
        let user = self.owner()?;
        self.store
            .tickets()?
            .into_iter()
            .map(|local| match &user {
                Some(user) => self.state_of(local, user),
                None => Ok(TicketState::unchanged(local)),
            })
            .collect()
    }

    pub fn ticket(&self, ticket_id: &TicketId) -> Result<TicketState, HandheldError> {
        let local = self.local_ticket(ticket_id)?;
        match self.owner()? {
            Some(user) => self.state_of(local, &user),
            None => Ok(TicketState::unchanged(local)),
        }
    }

    fn local_ticket(&self, ticket_id: &TicketId) -> Result<LocalTicket, HandheldError> {
        self.store
            .ticket(ticket_id)?
            .ok_or_else(|| HandheldError::TicketNotFound {
                ticket_id: ticket_id.to_string(),
            })
    }

    fn state_of(&self, local: LocalTicket, user: &UserId) -> Result<TicketState, HandheldError> {
        let id = &local.ticket.id;
        let pending = self.store.pending_of(id)?;
        let awaiting_pull: Vec<Acknowledged> = self
            .store
            .awaiting_pull_of(id)?
            .into_iter()
            .filter(|acknowledged| awaits_pull(acknowledged, &local.ticket))
            .collect();
        if pending.is_empty() && awaiting_pull.is_empty() {
            return Ok(TicketState::unchanged(local));
        }
        let unsynced: Vec<DeviceMutation> = awaiting_pull
            .iter()
            .map(|acknowledged| acknowledged.mutation.clone())
            .chain(pending.iter().cloned())
            .collect();
        let shown = overlay(&local.ticket, &recorder(user, &self.device_id), &unsynced);
        Ok(TicketState {
            local,
            shown,
            pending,
            awaiting_pull,
        })
    }

    /// Every change waiting to upload, oldest first.
    pub fn pending(&self) -> Result<Vec<DeviceMutation>, HandheldError> {
        Ok(self.store.outbox_head(usize::MAX)?)
    }

    /// The newest `limit` answers, newest first.
    pub fn outcomes(&self, limit: usize) -> Result<Vec<OutcomeRecord>, HandheldError> {
        Ok(self
            .store
            .outcomes_newest(limit)?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// What the device says about itself with every pull and push: how much
    /// waits to upload, for how long, and its clock, from which the server
    /// measures the clock offset (docs/protocol.md §4.8).
    pub fn report(&self) -> Result<DeviceReport, HandheldError> {
        let now = self.clock.now();
        let depth = self.store.outbox_len()?;
        let oldest = self.store.outbox_head(1)?;
        Ok(DeviceReport {
            device_id: self.device_id.clone(),
            app_version: self.app_version.clone(),
            outbox_depth: u32::try_from(depth).unwrap_or(u32::MAX),
            oldest_pending_age_ms: oldest
                .first()
                .map(|mutation| pending_age_ms(now, mutation.recorded_at)),
            device_time: now,
        })
    }

    // ---- Taking in what the server sent -----------------------------------

    /// Apply a pulled page and store its `next_cursor` in the same atomic,
    /// durable write.
    pub fn apply_page(&self, page: PullResponse) -> Result<PageApplied, HandheldError> {
        let _writing = self.lock();
        let with_pending = self.store.pending_tickets()?;
        let last_seq = page.last_seq;
        let plan = plan_page(page.changes, page.next_cursor, &with_pending);
        let mut changes = Changes::default();
        let mut applied = PageApplied::default();
        for step in plan.steps {
            match step {
                PageStep::Store(local) => {
                    for acknowledged in self.store.awaiting_pull_of(&local.ticket.id)? {
                        if !awaits_pull(&acknowledged, &local.ticket) {
                            changes.delete_awaiting_pull(&acknowledged);
                        }
                    }
                    changes.put_ticket(&local);
                    applied.tickets_updated += 1;
                }
                PageStep::KeepRevoked { ticket_id, reason } => {
                    if let Some(mut local) = self.store.ticket(&ticket_id)? {
                        local.revoked = Some(reason);
                        changes.put_ticket(&local);
                    }
                    applied.tickets_revoked += 1;
                }
                PageStep::Remove(ticket_id) => {
                    self.forget_ticket(&mut changes, &ticket_id)?;
                    applied.tickets_revoked += 1;
                }
            }
        }
        changes.put_meta(meta::CURSOR, &plan.next_cursor);
        changes.put_meta(meta::SERVER_LAST_SEQ, &last_seq);
        // A device id the server has seen numbers from that this data
        // directory never used (a reinstalled device keeping its id)
        // continues after them, as the protocol asks (§2, step 3).
        if self.store.outbox_head(1)?.is_empty() && self.next_seq()? <= last_seq {
            changes.put_meta(meta::NEXT_SEQ, &DeviceSeq(last_seq.0 + 1));
        }
        self.store.commit(changes)?;
        Ok(applied)
    }

    /// Take in a push's answer: each change leaves the outbox with its
    /// outcome kept, and a revoked ticket with nothing left to upload leaves
    /// the replica, in one durable write.
    pub fn settle(
        &self,
        sent: &[DeviceMutation],
        response: &PushResponse,
    ) -> Result<Vec<OutcomeRecord>, HandheldError> {
        let pairs = pair_outcomes(sent, response)
            .map_err(|message| HandheldError::BadAnswer { message })?;
        let _writing = self.lock();
        let answered_at = self.clock.now();
        let sent_seqs: BTreeSet<DeviceSeq> = sent.iter().map(|mutation| mutation.seq).collect();
        let mut changes = Changes::default();
        let mut leaving = BTreeSet::new();
        let touched: BTreeSet<&TicketId> =
            sent.iter().map(|mutation| &mutation.ticket_id).collect();
        for ticket_id in touched {
            let Some(local) = self.store.ticket(ticket_id)? else {
                continue;
            };
            let pending_left = self
                .store
                .pending_of(ticket_id)?
                .iter()
                .filter(|mutation| !sent_seqs.contains(&mutation.seq))
                .count();
            if leaves_replica(&local, pending_left) {
                self.forget_ticket(&mut changes, ticket_id)?;
                leaving.insert(ticket_id.clone());
            }
        }
        let mut number: u64 = self.store.meta(meta::LAST_OUTCOME)?.unwrap_or(0);
        let mut records = Vec::with_capacity(pairs.len());
        for (mutation, outcome) in pairs {
            changes.delete_pending(mutation);
            let record = OutcomeRecord {
                mutation: mutation.clone(),
                outcome,
                answered_at,
            };
            if let Verdict::Applied(applied) = record.verdict()
                && !leaving.contains(&mutation.ticket_id)
            {
                changes.put_awaiting_pull(&Acknowledged {
                    mutation: mutation.clone(),
                    ticket_version: applied.ticket_version,
                });
            }
            number += 1;
            changes.put_outcome(number, &record);
            records.push(record);
        }
        let kept = self.store.outcome_numbers()?;
        let excess = (kept.len() + records.len()).saturating_sub(MAX_OUTCOME_RECORDS);
        for old in kept.into_iter().take(excess) {
            changes.delete_outcome(old);
        }
        changes.put_meta(meta::LAST_OUTCOME, &number);
        changes.put_meta(meta::SERVER_LAST_SEQ, &response.last_seq);
        self.store.commit(changes)?;
        Ok(records)
    }

    /// Give pending changes new numbers, as the protocol prescribes after a
    /// gap or a reuse (`outbox::renumber_after_*`), computed from the outbox
    /// under the write lock. Returns how many changed.
    pub(crate) fn renumber(
        &self,
        decide: impl FnOnce(&[DeviceMutation]) -> Result<Renumbered, String>,
    ) -> Result<usize, HandheldError> {
        let _writing = self.lock();
        let pending = self.store.outbox_head(usize::MAX)?;
        let renumbered =
            decide(&pending).map_err(|message| HandheldError::BadAnswer { message })?;
        if renumbered.moves.is_empty() {
            return Ok(0);
        }
        let mut changes = Changes::default();
        // Deletes first: a new number may be an old one of another change,
        // and in a batch the last write to a key wins.
        for (old, _) in &renumbered.moves {
            changes.delete_pending(old);
        }
        for (_, new) in &renumbered.moves {
            changes.put_pending(new);
        }
        changes.put_meta(meta::NEXT_SEQ, &renumbered.next_seq);
        self.store.commit(changes)?;
        Ok(renumbered.moves.len())
    }

    pub(crate) fn commit(&self, changes: Changes) -> Result<(), HandheldError> {
        Ok(self.store.commit(changes)?)
    }

    fn forget_ticket(
        &self,
        changes: &mut Changes,
        ticket_id: &TicketId,
    ) -> Result<(), HandheldError> {
        changes.delete_ticket(ticket_id);
        for acknowledged in self.store.awaiting_pull_of(ticket_id)? {
            changes.delete_awaiting_pull(&acknowledged);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is on disk; a panic elsewhere leaves nothing half-done here.
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TicketState {
    fn unchanged(local: LocalTicket) -> Self {
        Self {
            shown: local.ticket.clone(),
            local,
            pending: Vec::new(),
            awaiting_pull: Vec::new(),
        }
    }
}

/// Which input a refusal of `op` is about.
fn field_of(op: &DeviceOp) -> &'static str {
    match op {
        DeviceOp::RecordArrival { .. } => "ticket",
        DeviceOp::AddNote { .. } => "text",
        DeviceOp::Complete { .. } => "result",
        DeviceOp::AttachSignature { .. } => "signature",
        DeviceOp::AttachPhoto { .. } => "photo",
    }
}

/// A device id for a new data directory: `hh-` and 16 hex digits, from the
/// moment, the process and the directory, so two installations never pick
/// the same one by chance.
fn new_device_id(settings: &DeviceSettings, now: DateTime<Utc>) -> DeviceId {
    let seed = format!(
        "{}|{}|{}",
        settings.data_dir.display(),
        now.timestamp_nanos_opt().unwrap_or_default(),
        std::process::id()
    );
    let digest = Sha256Hex::of(seed.as_bytes());
    DeviceId::parse(&format!("hh-{}", &digest.as_str()[..16])).expect("a valid device id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::fixtures::{dispatched_ticket, morning, technician};
    use sync_protocol::{
        Applied, Change, MutationOutcome, Outcome, PROTOCOL_VERSION, RevokeReason, Status, Version,
    };

    /// A device owned by li, its clock at [`morning`], with `tickets` pulled.
    fn device_with(dir: &tempfile::TempDir, tickets: &[&str]) -> Device {
        let settings = DeviceSettings {
            data_dir: dir.path().to_path_buf(),
            device_id: Some(crate::fixtures::device()),
            app_version: "test".to_owned(),
        };
        let device = Device::open(&settings, Arc::new(ManualClock::new(morning()))).unwrap();
        let mut changes = Changes::default();
        changes.put_meta(meta::OWNER, &technician());
        device.commit(changes).unwrap();
        let upserts = tickets
            .iter()
            .map(|id| Change::Upsert {
                cursor: Cursor(1),
                ticket: Box::new(dispatched_ticket(id)),
            })
            .collect();
        device.apply_page(page(upserts, 0)).unwrap();
        device
    }

    fn page(changes: Vec<Change>, last_seq: u64) -> PullResponse {
        PullResponse {
            protocol_version: PROTOCOL_VERSION,
            server_time: morning(),
            changes,
            next_cursor: Cursor(9),
            has_more: false,
            last_seq: DeviceSeq(last_seq),
        }
    }

    fn answer(sent: &[DeviceMutation], version: u64) -> PushResponse {
        PushResponse {
            protocol_version: PROTOCOL_VERSION,
            server_time: morning(),
            outcomes: sent
                .iter()
                .map(|mutation| MutationOutcome {
                    seq: mutation.seq,
                    ticket_id: mutation.ticket_id.clone(),
                    outcome: Outcome::Applied(Applied {
                        ticket_version: Version(version),
                        late: None,
                    }),
                })
                .collect(),
            ticket_versions: Vec::new(),
            last_seq: sent.last().map_or(DeviceSeq(0), |mutation| mutation.seq),
            missing_blobs: Vec::new(),
        }
    }

    fn id(raw: &str) -> TicketId {
        TicketId::parse(raw).unwrap()
    }

    #[test]
    fn recorded_changes_are_numbered_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let device = device_with(&dir, &["tk00000001"]);
            let first = device
                .record(
                    &id("tk00000001"),
                    DeviceOp::RecordArrival { position: None },
                )
                .unwrap();
            let note = DeviceOp::AddNote {
                text: "阀门锈死".to_owned(),
            };
            let second = device.record(&id("tk00000001"), note).unwrap();
            assert_eq!((first.seq, second.seq), (DeviceSeq(1), DeviceSeq(2)));
            assert_eq!(second.base_version, dispatched_ticket("tk00000001").version);
            assert_eq!(device.cursor().unwrap(), Cursor(9));
        }
        let reopened = loop {
            match Store::open(dir.path()) {
                Ok(store) => break store,
                Err(crate::store::StoreError::Locked(_)) => std::thread::yield_now(),
                Err(error) => panic!("{error}"),
            }
        };
        let seqs: Vec<u64> = reopened
            .outbox_head(10)
            .unwrap()
            .iter()
            .map(|mutation| mutation.seq.0)
            .collect();
        assert_eq!(seqs, vec![1, 2]);
    }

    #[test]
    fn a_device_opened_again_on_its_memory_storage_keeps_its_id_and_outbox() {
        let storage = MemoryStorage::new();
        let clock = Arc::new(ManualClock::new(morning()));
        let open = || {
            Device::open_in_memory(
                &storage,
                crate::fixtures::device(),
                "sim".to_owned(),
                clock.clone(),
            )
            .unwrap()
        };
        let recorded = {
            let device = open();
            let mut changes = Changes::default();
            changes.put_meta(meta::OWNER, &technician());
            device.commit(changes).unwrap();
            let upsert = Change::Upsert {
                cursor: Cursor(1),
                ticket: Box::new(dispatched_ticket("tk00000001")),
            };
            device.apply_page(page(vec![upsert], 0)).unwrap();
            device
                .record(
                    &id("tk00000001"),
                    DeviceOp::RecordArrival { position: None },
                )
                .unwrap()
        };
        let restarted = open();
        assert_eq!(restarted.device_id(), &crate::fixtures::device());
        assert_eq!(restarted.pending().unwrap(), vec![recorded]);
        assert_eq!(restarted.cursor().unwrap(), Cursor(9));
        let other = DeviceId::parse("hh-other").unwrap();
        let refused = Device::open_in_memory(&storage, other, "sim".to_owned(), clock.clone());
        assert_eq!(
            refused.err().map(|error| error.code()),
            Some("invalid_input")
        );
    }

    #[test]
    fn a_device_continues_after_the_last_number_the_server_reports() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_with(&dir, &["tk00000001"]);
        device.apply_page(page(Vec::new(), 7)).unwrap();
        let next = device
            .record(
                &id("tk00000001"),
                DeviceOp::RecordArrival { position: None },
            )
            .unwrap();
        assert_eq!(next.seq, DeviceSeq(8));
        // With changes pending, their numbers stand.
        device.apply_page(page(Vec::new(), 20)).unwrap();
        let after = device
            .record(
                &id("tk00000001"),
                DeviceOp::RecordArrival { position: None },
            )
            .unwrap();
        assert_eq!(after.seq, DeviceSeq(9));
    }

    #[test]
    fn what_the_server_would_reject_is_refused_and_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_with(&dir, &["tk00000001"]);
        let blank = DeviceOp::AddNote {
            text: "  ".to_owned(),
        };
        let refused = device.record(&id("tk00000001"), blank).unwrap_err();
        assert_eq!(refused.code(), "invalid_input");
        let unsigned = device
            .record_signature(&id("tk00000001"), b"strokes", "王女士".to_owned(), None)
            .unwrap_err();
        assert_eq!(unsigned.code(), "nothing_to_sign");
        let unknown = device.record(
            &id("tk00000099"),
            DeviceOp::RecordArrival { position: None },
        );
        assert_eq!(unknown.unwrap_err().code(), "ticket_not_found");
        assert!(device.pending().unwrap().is_empty());
    }

    #[test]
    fn an_applied_change_shows_until_the_pulled_copy_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_with(&dir, &["tk00000001"]);
        let ticket = id("tk00000001");
        let arrival = device
            .record(&ticket, DeviceOp::RecordArrival { position: None })
            .unwrap();
        let copy = dispatched_ticket("tk00000001");
        let produced = copy.version.0 + 1;
        device
            .settle(
                std::slice::from_ref(&arrival),
                &answer(std::slice::from_ref(&arrival), produced),
            )
            .unwrap();
        let state = device.ticket(&ticket).unwrap();
        assert!(state.pending.is_empty());
        assert_eq!(state.awaiting_pull.len(), 1);
        assert_eq!(state.shown.status, Status::InProgress);

        let mut newer = state.shown.clone();
        newer.version = Version(produced);
        let upsert = Change::Upsert {
            cursor: Cursor(2),
            ticket: Box::new(newer),
        };
        device.apply_page(page(vec![upsert], 1)).unwrap();
        let state = device.ticket(&ticket).unwrap();
        assert!(state.awaiting_pull.is_empty(), "the copy holds it now");
        assert_eq!(state.shown, state.local.ticket);
    }

    #[test]
    fn a_revoked_ticket_leaves_once_its_last_pending_change_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_with(&dir, &["tk00000001", "tk00000002"]);
        let taken = id("tk00000002");
        let note = DeviceOp::AddNote {
            text: "灯座烧坏".to_owned(),
        };
        let first = device.record(&taken, note.clone()).unwrap();
        let second = device.record(&taken, note).unwrap();
        let revoked = Change::Revoked {
            cursor: Cursor(3),
            ticket_id: taken.clone(),
            reason: RevokeReason::Reassigned,
        };
        device.apply_page(page(vec![revoked], 0)).unwrap();
        let kept = device.ticket(&taken).unwrap();
        assert_eq!(kept.local.revoked, Some(RevokeReason::Reassigned));
        assert_eq!(kept.pending.len(), 2);

        let answered = [first];
        device.settle(&answered, &answer(&answered, 3)).unwrap();
        assert!(device.ticket(&taken).is_ok(), "one change still waits");
        let answered = [second];
        device.settle(&answered, &answer(&answered, 4)).unwrap();
        assert_eq!(
            device.ticket(&taken).unwrap_err().code(),
            "ticket_not_found"
        );
        assert_eq!(device.tickets().unwrap().len(), 1);
        assert_eq!(
            device.outcomes(10).unwrap().len(),
            2,
            "the answers are kept"
        );
    }

    #[test]
    fn after_a_gap_the_outbox_and_its_index_carry_the_new_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_with(&dir, &["tk00000001"]);
        device.apply_page(page(Vec::new(), 4)).unwrap();
        let ticket = id("tk00000001");
        device
            .record(&ticket, DeviceOp::RecordArrival { position: None })
            .unwrap();
        device
            .record(&ticket, DeviceOp::RecordArrival { position: None })
            .unwrap();
        let moved = device
            .renumber(|pending| crate::outbox::renumber_after_gap(pending, DeviceSeq(2)))
            .unwrap();
        assert_eq!(moved, 2);
        let seqs = |mutations: Vec<DeviceMutation>| -> Vec<u64> {
            mutations.iter().map(|mutation| mutation.seq.0).collect()
        };
        assert_eq!(seqs(device.pending().unwrap()), vec![2, 3]);
        assert_eq!(seqs(device.ticket(&ticket).unwrap().pending), vec![2, 3]);
        let next = device
            .record(&ticket, DeviceOp::RecordArrival { position: None })
            .unwrap();
        assert_eq!(next.seq, DeviceSeq(4));
    }

    #[test]
    fn the_report_says_how_much_waits_and_for_how_long_by_the_device_clock() {
        let dir = tempfile::tempdir().unwrap();
        let device = device_with(&dir, &["tk00000001"]);
        let empty = device.report().unwrap();
        assert_eq!((empty.outbox_depth, empty.oldest_pending_age_ms), (0, None));
        device
            .record(
                &id("tk00000001"),
                DeviceOp::RecordArrival { position: None },
            )
            .unwrap();
        let report = device.report().unwrap();
        assert_eq!(report.outbox_depth, 1);
        assert_eq!(report.oldest_pending_age_ms, Some(0));
        assert_eq!(report.device_time, morning());
        assert_eq!(report.device_id, crate::fixtures::device());
    }
}
