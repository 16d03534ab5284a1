//! The handheld's own sled store under its data directory: the replica of
//! the technician's tickets, the outbox, the answers, signature images and
//! a few settings, in one tree so that every group of writes is one atomic
//! `apply_batch`.
//!
//! Every [`Store::commit`] is durable before it returns: sled's flush, then
//! `fdatasync` of sled's log and of any new large-value file under `blobs/`
//! (sled's own flush ends with `sync_file_range`, which persists neither the
//! disk cache nor the file's new length; docs/BENCHMARKS.md, "Durability
//! costs"). A change the technician recorded is therefore on disk before
//! the app says it is saved.
//!
//! Keys start with the tag byte of their [`Space`]; numbers in keys are
//! 8-byte big-endian so that they sort numerically; identifiers never hold a
//! 0 byte, so a 0 joins them.
//!
//! A simulated handheld keeps the same keys in a [`MemoryStorage`] instead:
//! a commit is applied whole under one lock before it returns, which is all
//! "durable" means for memory that outlives the `Store` (a device restart
//! opens a new `Store` on the same storage).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_protocol::{DeviceMutation, DeviceSeq, Sha256Hex, TicketId};

use crate::error::HandheldError;
use crate::records::{Acknowledged, LocalTicket, OutcomeRecord};

/// sled keeps this much of the store in memory; a handheld holds a few
/// hundred tickets.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data directory {0} is in use by another handheld process")]
    Locked(String),
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("a stored {what} does not parse: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl From<StoreError> for HandheldError {
    fn from(error: StoreError) -> Self {
        HandheldError::Storage {
            message: error.to_string(),
        }
    }
}

/// The key spaces; the tag byte is the first byte of every key.
#[derive(Clone, Copy, Debug)]
enum Space {
    /// Settings by name: device id, owner, session, next seq, cursor, …
    Meta = b'm' as isize,
    /// Ticket id → [`LocalTicket`].
    Tickets = b't' as isize,
    /// Seq → the [`DeviceMutation`] waiting to upload.
    Outbox = b'o' as isize,
    /// Ticket id `\0` seq → empty: the outbox by ticket.
    PendingByTicket = b'i' as isize,
    /// Answer number → [`OutcomeRecord`], oldest first.
    Outcomes = b'r' as isize,
    /// SHA-256 hex → signature image bytes, until uploaded and acknowledged.
    Images = b'b' as isize,
    /// SHA-256 hex → empty: the server has confirmed the image.
    Uploaded = b'u' as isize,
    /// Ticket id `\0` seq → [`Acknowledged`]: applied, not yet in a pulled copy.
    AwaitingPull = b'a' as isize,
}

fn key(space: Space, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = vec![space as u8];
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

fn seq_key(seq: DeviceSeq) -> [u8; 8] {
    seq.0.to_be_bytes()
}

fn number_from(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "key number",
        detail: format!("{} bytes", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

/// Names of the settings in [`Space::Meta`].
pub mod meta {
    pub const DEVICE_ID: &str = "device_id";
    /// The technician the device belongs to (the first one who logged in).
    pub const OWNER: &str = "owner";
    pub const SESSION: &str = "session";
    pub const SERVER_URL: &str = "server_url";
    /// The sequence number the next recorded change gets.
    pub const NEXT_SEQ: &str = "next_seq";
    /// The feed cursor after the last applied page.
    pub const CURSOR: &str = "cursor";
    /// The last sequence number the server said it processed.
    pub const SERVER_LAST_SEQ: &str = "server_last_seq";
    pub const LAST_SYNC_AT: &str = "last_sync_at";
    /// The number of the last [`super::OutcomeRecord`] stored.
    pub const LAST_OUTCOME: &str = "last_outcome";
}

pub struct Store {
    engine: Engine,
}

enum Engine {
    Sled(SledFiles),
    Memory(MemoryStorage),
}

struct SledFiles {
    db: sled::Db,
    log: File,
    blob_dir: PathBuf,
    /// Large-value files already synced; sled never rewrites one in place.
    synced_blobs: Mutex<HashSet<OsString>>,
}

/// The storage of a handheld that lives in memory (a simulated device):
/// cheap to clone, every clone the same entries. What a commit wrote stays
/// when the `Store` that wrote it is dropped, as it would on flash, so that
/// opening the storage again is a device restart that keeps the outbox.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    entries: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // Every commit is applied whole under the lock, so a panic elsewhere
        // never leaves half of one behind.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A key and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// Which end of a key range a scan starts from.
#[derive(Clone, Copy)]
enum Order {
    Ascending,
    Descending,
}

impl Store {
    /// A store over `storage`, in memory.
    pub fn in_memory(storage: &MemoryStorage) -> Self {
        Self {
            engine: Engine::Memory(storage.clone()),
        }
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(io)?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            // Durability comes from the flush of every commit, not a timer.
            .flush_every_ms(None)
            .open()
            .map_err(|error| match error {
                // sled reports its directory lock held elsewhere only in words.
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked(path.display().to_string())
                }
                other => engine(other),
            })?;
        let log = File::open(path.join("db")).map_err(io)?;
        // The files sled just created are durable only with their directory entry.
        File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        Ok(Self {
            engine: Engine::Sled(SledFiles {
                db,
                log,
                blob_dir: path.join("blobs"),
                synced_blobs: Mutex::new(HashSet::new()),
            }),
        })
    }

    // ---- Reads ------------------------------------------------------------

    pub fn meta<T: DeserializeOwned>(&self, name: &'static str) -> Result<Option<T>, StoreError> {
        self.get(key(Space::Meta, &[name.as_bytes()]), name)
    }

    pub fn ticket(&self, id: &TicketId) -> Result<Option<LocalTicket>, StoreError> {
        self.get(key(Space::Tickets, &[id.as_str().as_bytes()]), "ticket")
    }

    /// Every ticket of the replica, in id order.
    pub fn tickets(&self) -> Result<Vec<LocalTicket>, StoreError> {
        self.values(Space::Tickets, &[], usize::MAX, "ticket")
    }

    /// The oldest `limit` changes waiting to upload, in seq order.
    pub fn outbox_head(&self, limit: usize) -> Result<Vec<DeviceMutation>, StoreError> {
        self.values(Space::Outbox, &[], limit, "outbox entry")
    }

    /// How many changes wait to upload.
    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        self.engine.count(&[Space::Outbox as u8])
    }

    /// The changes waiting to upload for one ticket, in seq order.
    pub fn pending_of(&self, ticket: &TicketId) -> Result<Vec<DeviceMutation>, StoreError> {
        let prefix = key(Space::PendingByTicket, &[ticket.as_str().as_bytes(), &[]]);
        let mut mutations = Vec::new();
        for (index_key, _) in self.engine.scan(&prefix, usize::MAX, Order::Ascending)? {
            let seq = DeviceSeq(number_from(&index_key[prefix.len()..])?);
            let outbox_key = key(Space::Outbox, &[&seq_key(seq)]);
            // Index and outbox are written in the same batch: one without
            // the other is a fault, not something to skip.
            let mutation =
                self.get(outbox_key, "outbox entry")?
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "outbox index",
                        detail: format!("{ticket} names seq {seq}, which is not in the outbox"),
                    })?;
            mutations.push(mutation);
        }
        Ok(mutations)
    }

    /// The applied changes of one ticket that its local copy does not show yet.
    pub fn awaiting_pull_of(&self, ticket: &TicketId) -> Result<Vec<Acknowledged>, StoreError> {
        self.values(
            Space::AwaitingPull,
            &[ticket.as_str().as_bytes(), &[]],
            usize::MAX,
            "acknowledged change",
        )
    }

    /// The tickets that have changes waiting to upload.
    pub fn pending_tickets(&self) -> Result<BTreeSet<TicketId>, StoreError> {
        let mut tickets = BTreeSet::new();
        let prefix = [Space::PendingByTicket as u8];
        for (index_key, _) in self.engine.scan(&prefix, usize::MAX, Order::Ascending)? {
            // Tag, ticket id, 0, eight bytes of seq.
            let id_bytes = index_key.get(1..index_key.len().saturating_sub(9));
            let id = id_bytes
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .and_then(|raw| TicketId::parse(raw).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "outbox index",
                    detail: String::from_utf8_lossy(&index_key).into_owned(),
                })?;
            tickets.insert(id);
        }
        Ok(tickets)
    }

    /// The newest `limit` answers, newest first, with their numbers.
    pub fn outcomes_newest(&self, limit: usize) -> Result<Vec<(u64, OutcomeRecord)>, StoreError> {
        let mut records = Vec::new();
        let prefix = [Space::Outcomes as u8];
        for (record_key, value) in self.engine.scan(&prefix, limit, Order::Descending)? {
            let number = number_from(&record_key[1..])?;
            records.push((number, parse(&value, "answer")?));
        }
        Ok(records)
    }

    /// The numbers of the stored answers, oldest first.
    pub fn outcome_numbers(&self) -> Result<Vec<u64>, StoreError> {
        let mut numbers = Vec::new();
        let prefix = [Space::Outcomes as u8];
        for (record_key, _) in self.engine.scan(&prefix, usize::MAX, Order::Ascending)? {
            numbers.push(number_from(&record_key[1..])?);
        }
        Ok(numbers)
    }

    pub fn image(&self, hash: &Sha256Hex) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine
            .get(&key(Space::Images, &[hash.as_str().as_bytes()]))
    }

    /// The hashes of the images kept on the device.
    pub fn image_hashes(&self) -> Result<Vec<Sha256Hex>, StoreError> {
        let mut hashes = Vec::new();
        let prefix = [Space::Images as u8];
        for (image_key, _) in self.engine.scan(&prefix, usize::MAX, Order::Ascending)? {
            let raw = String::from_utf8_lossy(&image_key[1..]).into_owned();
            hashes.push(Sha256Hex::parse(&raw).map_err(|_| StoreError::Corrupt {
                what: "image key",
                detail: raw,
            })?);
        }
        Ok(hashes)
    }

    pub fn is_uploaded(&self, hash: &Sha256Hex) -> Result<bool, StoreError> {
        self.engine
            .contains(&key(Space::Uploaded, &[hash.as_str().as_bytes()]))
    }

    // ---- Writes -----------------------------------------------------------

    /// Apply `changes` as one atomic batch and make it durable.
    pub fn commit(&self, changes: Changes) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled(files) => {
                let mut batch = sled::Batch::default();
                for (key, value) in changes.writes {
                    match value {
                        Some(value) => batch.insert(key, value),
                        None => batch.remove(key),
                    }
                }
                files.db.apply_batch(batch).map_err(engine)?;
                files.db.flush().map_err(engine)?;
                files.sync_files()
            }
            Engine::Memory(storage) => {
                let mut entries = storage.entries();
                for (key, value) in changes.writes {
                    match value {
                        Some(value) => entries.insert(key, value),
                        None => entries.remove(&key),
                    };
                }
                Ok(())
            }
        }
    }

    fn get<T: DeserializeOwned>(
        &self,
        key: Vec<u8>,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self.engine.get(&key)? {
            Some(value) => parse(&value, what).map(Some),
            None => Ok(None),
        }
    }

    fn values<T: DeserializeOwned>(
        &self,
        space: Space,
        prefix: &[&[u8]],
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let entries = self
            .engine
            .scan(&key(space, prefix), limit, Order::Ascending)?;
        entries
            .iter()
            .map(|(_, value)| parse(value, what))
            .collect()
    }
}

impl Engine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Engine::Sled(files) => Ok(files.db.get(key).map_err(engine)?.map(|v| v.to_vec())),
            Engine::Memory(storage) => Ok(storage.entries().get(key).cloned()),
        }
    }

    fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        match self {
            Engine::Sled(files) => files.db.contains_key(key).map_err(engine),
            Engine::Memory(storage) => Ok(storage.entries().contains_key(key)),
        }
    }

    /// At most `limit` entries whose key starts with `prefix`, in key order
    /// from the given end.
    fn scan(&self, prefix: &[u8], limit: usize, order: Order) -> Result<Vec<Entry>, StoreError> {
        match self {
            Engine::Sled(files) => {
                let entries = files.db.scan_prefix(prefix);
                let entries: Box<dyn Iterator<Item = _>> = match order {
                    Order::Ascending => Box::new(entries),
                    Order::Descending => Box::new(entries.rev()),
                };
                entries
                    .take(limit)
                    // An iteration error is a storage fault: report it, never skip it.
                    .map(|entry| {
                        let (key, value) = entry.map_err(engine)?;
                        Ok((key.to_vec(), value.to_vec()))
                    })
                    .collect()
            }
            Engine::Memory(storage) => {
                let entries = storage.entries();
                let matching = entries
                    .range(prefix.to_vec()..)
                    .take_while(|(key, _)| key.starts_with(prefix));
                let pairs = |(key, value): (&Vec<u8>, &Vec<u8>)| (key.clone(), value.clone());
                Ok(match order {
                    Order::Ascending => matching.take(limit).map(pairs).collect(),
                    Order::Descending => {
                        let all: Vec<_> = matching.map(pairs).collect();
                        all.into_iter().rev().take(limit).collect()
                    }
                })
            }
        }
    }

    fn count(&self, prefix: &[u8]) -> Result<usize, StoreError> {
        match self {
            Engine::Sled(files) => {
                let mut count = 0;
                for entry in files.db.scan_prefix(prefix) {
                    entry.map_err(engine)?;
                    count += 1;
                }
                Ok(count)
            }
            Engine::Memory(storage) => Ok(storage
                .entries()
                .range(prefix.to_vec()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .count()),
        }
    }
}

impl SledFiles {
    /// sled's flush leaves the data in the page cache; see the module comment.
    fn sync_files(&self) -> Result<(), StoreError> {
        self.log.sync_data().map_err(io)?;
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            // sled makes the directory with its first large value.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io(error)),
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let name = entry.map_err(io)?.file_name();
            if !synced.contains(&name) {
                match File::open(self.blob_dir.join(&name)).and_then(|file| file.sync_data()) {
                    Ok(()) => synced_any = true,
                    // Removed by sled meanwhile: nothing left to make durable.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(io(error)),
                }
            }
            present.insert(name);
        }
        *synced = present;
        if synced_any {
            File::open(&self.blob_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

/// A group of writes, committed together by [`Store::commit`]; the last
/// write to a key wins.
#[derive(Default)]
pub struct Changes {
    /// Key and new value, `None` to remove, in the order written.
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Changes {
    pub fn put_meta(&mut self, name: &'static str, value: &impl Serialize) {
        self.put(key(Space::Meta, &[name.as_bytes()]), value);
    }

    pub fn delete_meta(&mut self, name: &'static str) {
        self.remove(key(Space::Meta, &[name.as_bytes()]));
    }

    pub fn put_ticket(&mut self, ticket: &LocalTicket) {
        self.put(
            key(Space::Tickets, &[ticket.ticket.id.as_str().as_bytes()]),
            ticket,
        );
    }

    pub fn delete_ticket(&mut self, id: &TicketId) {
        self.remove(key(Space::Tickets, &[id.as_str().as_bytes()]));
    }

    /// A change waiting to upload, with its entry in the by-ticket index.
    pub fn put_pending(&mut self, mutation: &DeviceMutation) {
        self.put(key(Space::Outbox, &[&seq_key(mutation.seq)]), mutation);
        self.insert(pending_index_key(mutation), Vec::new());
    }

    pub fn delete_pending(&mut self, mutation: &DeviceMutation) {
        self.remove(key(Space::Outbox, &[&seq_key(mutation.seq)]));
        self.remove(pending_index_key(mutation));
    }

    pub fn put_awaiting_pull(&mut self, acknowledged: &Acknowledged) {
        self.put(awaiting_key(&acknowledged.mutation), acknowledged);
    }

    pub fn delete_awaiting_pull(&mut self, acknowledged: &Acknowledged) {
        self.remove(awaiting_key(&acknowledged.mutation));
    }

    pub fn put_outcome(&mut self, number: u64, record: &OutcomeRecord) {
        self.put(key(Space::Outcomes, &[&number.to_be_bytes()]), record);
    }

    pub fn delete_outcome(&mut self, number: u64) {
        self.remove(key(Space::Outcomes, &[&number.to_be_bytes()]));
    }

    pub fn put_image(&mut self, hash: &Sha256Hex, bytes: &[u8]) {
        self.insert(
            key(Space::Images, &[hash.as_str().as_bytes()]),
            bytes.to_vec(),
        );
    }

    pub fn mark_uploaded(&mut self, hash: &Sha256Hex) {
        self.insert(
            key(Space::Uploaded, &[hash.as_str().as_bytes()]),
            Vec::new(),
        );
    }

    /// Forget an image and its upload mark.
    pub fn delete_image(&mut self, hash: &Sha256Hex) {
        self.remove(key(Space::Images, &[hash.as_str().as_bytes()]));
        self.remove(key(Space::Uploaded, &[hash.as_str().as_bytes()]));
    }

    fn put(&mut self, key: Vec<u8>, value: &impl Serialize) {
        let value = serde_json::to_vec(value).expect("stored records always serialize");
        self.insert(key, value);
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((key, Some(value)));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }
}

fn awaiting_key(mutation: &DeviceMutation) -> Vec<u8> {
    key(
        Space::AwaitingPull,
        &[
            mutation.ticket_id.as_str().as_bytes(),
            &seq_key(mutation.seq),
        ],
    )
}

fn pending_index_key(mutation: &DeviceMutation) -> Vec<u8> {
    key(
        Space::PendingByTicket,
        &[
            mutation.ticket_id.as_str().as_bytes(),
            &seq_key(mutation.seq),
        ],
    )
}

fn parse<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        what,
        detail: error.to_string(),
    })
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Engine(error.to_string())
}

fn engine(error: sled::Error) -> StoreError {
    StoreError::Engine(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use sync_protocol::{DeviceOp, Version};

    fn mutation(seq: u64, ticket: &str) -> DeviceMutation {
        DeviceMutation {
            seq: DeviceSeq(seq),
            ticket_id: TicketId::parse(ticket).unwrap(),
            base_version: Version(2),
            recorded_at: DateTime::UNIX_EPOCH,
            op: DeviceOp::RecordArrival { position: None },
        }
    }

    #[test]
    fn the_outbox_is_read_in_seq_order_and_by_ticket() {
        let dir = tempfile::tempdir().unwrap();
        outbox_reads(&Store::open(dir.path()).unwrap());
    }

    #[test]
    fn the_memory_store_reads_the_outbox_as_the_sled_store_does() {
        outbox_reads(&Store::in_memory(&MemoryStorage::new()));
    }

    #[test]
    fn what_a_memory_store_committed_is_there_when_its_storage_is_opened_again() {
        let storage = MemoryStorage::new();
        let mut changes = Changes::default();
        changes.put_pending(&mutation(1, "tk1"));
        changes.put_meta(meta::NEXT_SEQ, &DeviceSeq(2));
        Store::in_memory(&storage).commit(changes).unwrap();
        let reopened = Store::in_memory(&storage);
        assert_eq!(reopened.outbox_len().unwrap(), 1);
        assert_eq!(
            reopened.meta::<DeviceSeq>(meta::NEXT_SEQ).unwrap(),
            Some(DeviceSeq(2))
        );
        let mut newest_first = Changes::default();
        for number in 1..=3 {
            newest_first.put_outcome(number, &outcome(number));
        }
        reopened.commit(newest_first).unwrap();
        let numbers: Vec<u64> = reopened
            .outcomes_newest(2)
            .unwrap()
            .into_iter()
            .map(|(number, _)| number)
            .collect();
        assert_eq!(numbers, vec![3, 2]);
    }

    fn outcome(seq: u64) -> OutcomeRecord {
        OutcomeRecord {
            mutation: mutation(seq, "tk1"),
            outcome: sync_protocol::Outcome::Duplicate {
                first: sync_protocol::Verdict::Applied(sync_protocol::Applied {
                    ticket_version: Version(3),
                    late: None,
                }),
            },
            answered_at: DateTime::UNIX_EPOCH,
        }
    }

    /// Pending changes by seq and by ticket, over either engine.
    fn outbox_reads(store: &Store) {
        let mut changes = Changes::default();
        for (seq, ticket) in [(2, "tk2"), (1, "tk1"), (300, "tk2")] {
            changes.put_pending(&mutation(seq, ticket));
        }
        store.commit(changes).unwrap();
        let seqs: Vec<u64> = store
            .outbox_head(10)
            .unwrap()
            .iter()
            .map(|m| m.seq.0)
            .collect();
        assert_eq!(seqs, vec![1, 2, 300], "numeric order, not text order");
        let of_tk2: Vec<u64> = store
            .pending_of(&TicketId::parse("tk2").unwrap())
            .unwrap()
            .iter()
            .map(|m| m.seq.0)
            .collect();
        assert_eq!(of_tk2, vec![2, 300]);
        let tickets: Vec<String> = store
            .pending_tickets()
            .unwrap()
            .iter()
            .map(|id| id.to_string())
            .collect();
        assert_eq!(tickets, vec!["tk1", "tk2"]);
        assert_eq!(store.outbox_len().unwrap(), 3);

        let mut changes = Changes::default();
        changes.delete_pending(&mutation(2, "tk2"));
        store.commit(changes).unwrap();
        assert_eq!(store.outbox_len().unwrap(), 2);
        assert_eq!(
            store
                .pending_of(&TicketId::parse("tk2").unwrap())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_data_directory_in_use_is_refused_with_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let second = Store::open(dir.path());
        assert!(
            matches!(second, Err(StoreError::Locked(_))),
            "{:?}",
            second.err()
        );
    }

    #[test]
    fn a_committed_image_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than a log segment allows inline: sled puts it in a file of its own.
        let image = vec![7u8; 600 * 1024];
        let hash = Sha256Hex::of(&image);
        {
            let store = Store::open(dir.path()).unwrap();
            let mut changes = Changes::default();
            changes.put_image(&hash, &image);
            store.commit(changes).unwrap();
            let Engine::Sled(files) = &store.engine else {
                panic!("a sled store")
            };
            assert!(!files.synced_blobs.lock().unwrap().is_empty());
        }
        let store = reopen(dir.path());
        assert_eq!(store.image(&hash).unwrap(), Some(image));
        assert_eq!(store.image_hashes().unwrap(), vec![hash.clone()]);
        assert!(!store.is_uploaded(&hash).unwrap());
    }

    /// sled's threads let go of the directory lock a moment after the drop.
    fn reopen(path: &Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(path) {
                Ok(store) => return store,
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::yield_now();
                }
                Err(error) => panic!("{error}"),
            }
        }
    }
}
