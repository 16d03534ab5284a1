//! The typed store: tickets with their indexes, the per-technician change
//! feed, devices, outcomes, blobs and users, over a [`Kv`] backend.
//!
//! Keys join identifiers with a 0 byte; identifiers never contain one.

mod console;
mod kv;
mod memory_kv;
mod sled_kv;
mod staged_kv;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, mpsc};

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sync_protocol::{
    Cursor, DeviceId, DeviceSeq, EstateId, Person, RevokeReason, Role, SerialNumber, SerialSeries,
    Sha256Hex, StoredOutcome, Ticket, TicketId, UserId, UserSummary, has_pending_duties,
};

pub use console::{CardCursor, CardPage};
pub use kv::{Kv, Space, StoreError, Write};
pub use memory_kv::MemoryKv;
pub use sled_kv::SledKv;

/// What the server knows about a handheld; stored as its wire form.
pub use sync_protocol::DeviceStatus as DeviceRecord;
use sync_protocol::reports::ReportDigest;

/// A user of the system with an argon2 password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub role: Role,
    pub estate: EstateId,
    pub display_name: String,
    pub password_hash: String,
    /// A disabled user cannot log in and their tokens no longer work.
    #[serde(default)]
    pub disabled: bool,
    /// Raised whenever the role, estate, password or `disabled` changes, or
    /// the user's sessions are ended: tokens name the generation they were
    /// issued for and stop working when it is no longer the current one.
    #[serde(default)]
    pub generation: u64,
}

impl UserRecord {
    /// What administrators see of the user.
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            estate: self.estate.clone(),
            disabled: self.disabled,
        }
    }

    /// What the people of the estate see of the user.
    pub fn person(&self) -> Person {
        Person {
            user: self.id.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            disabled: self.disabled,
        }
    }
}

/// A refresh session: what a refresh token stands for (`auth::refresh`).
/// The token's secret itself is never stored, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// 32 hex digits, the first part of the token.
    pub id: String,
    pub user: UserId,
    /// The device the token was issued to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// The user's generation at login; a newer one ends the session.
    pub generation: u64,
    /// SHA-256 of the current token's secret.
    pub secret: Sha256Hex,
    /// SHA-256 of the token it replaced, still good until `secret` is first used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Sha256Hex>,
    pub created_at: DateTime<Utc>,
    pub refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a technician still has in hand ([`Store::open_work`]): while they
/// hold any, their role and estate stay, so that what their handhelds
/// recorded still reaches the tickets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenWork {
    pub held_tickets: usize,
    pub devices_with_pending_changes: usize,
}

impl OpenWork {
    pub fn is_empty(&self) -> bool {
        self.held_tickets == 0 && self.devices_with_pending_changes == 0
    }
}

/// One entry of a technician's change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub ticket_id: TicketId,
    /// None: the ticket changed and is theirs; Some: it was taken from them.
    pub revoked: Option<RevokeReason>,
}

/// Counters that survive restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The last feed cursor handed out.
    pub feed: u64,
    /// The last ticket number handed out.
    pub tickets: u64,
}

const META_FEED: &[u8] = b"feed";
const META_TICKETS: &[u8] = b"tickets";
/// Prefix of the R-A1 counters: `serial\0E01-WO-202611` holds the last
/// sequence handed out in that series.
const META_SERIAL: &str = "serial";
/// Which layout of `Space::ReportDigests` the store holds, written when the
/// digests of every ticket are in place.
const META_REPORT_DIGESTS: &[u8] = b"report_digests";
/// The layout this server writes; a store with none or another one has its
/// digests rebuilt when it is opened. Raise it when `ReportDigest` or its
/// keys change.
const REPORT_DIGESTS_VERSION: u64 = 1;
/// Which layout of `Space::BlobRefs` the store holds.
const META_BLOB_REFS: &[u8] = b"blob_refs";
/// Set once the uploaders of a store's existing blobs are recorded.
const META_BLOB_UPLOADERS: &[u8] = b"blob_uploaders";

/// An index derived from the tickets alone, kept with every ticket write
/// and built for a store that lacks it.
struct Derived {
    space: Space,
    /// The `Meta` key saying which layout of it the store holds.
    marker: &'static [u8],
    /// The layout this server writes; raise it when the entries change.
    version: u64,
    /// The index entries of one ticket.
    stage: fn(&mut Changes, &Ticket),
}

/// Set once the console's ticket cards and known units are in place.
const META_TICKET_CARDS: &[u8] = b"ticket_cards";
const META_UNITS: &[u8] = b"units";
const META_ACTIVE_TICKETS: &[u8] = b"active_tickets";

const DERIVED: [Derived; 5] = [
    Derived {
        space: Space::ReportDigests,
        marker: META_REPORT_DIGESTS,
        version: REPORT_DIGESTS_VERSION,
        stage: Changes::put_report_digest,
    },
    Derived {
        space: Space::BlobRefs,
        marker: META_BLOB_REFS,
        version: 1,
        stage: Changes::put_blob_refs,
    },
    // 2: each card behind its search line (`sync_protocol::StoredCard`).
    Derived {
        space: Space::TicketCards,
        marker: META_TICKET_CARDS,
        version: 2,
        stage: Changes::put_ticket_card,
    },
    // Tickets are visited in id order, which is the order they were
    // recorded in: each unit keeps its latest reporter.
    Derived {
        space: Space::Units,
        marker: META_UNITS,
        version: 1,
        stage: Changes::put_known_unit,
    },
    Derived {
        space: Space::ActiveTickets,
        marker: META_ACTIVE_TICKETS,
        version: 1,
        stage: Changes::put_active_ticket,
    },
];

/// Most blobs one user may have uploaded that no ticket refers to yet.
pub const MAX_PENDING_BLOBS_PER_USER: usize = 256;

/// A ticket numbered (recorded, or converted, R-A1) more than this after
/// its receipt has its digest under its numbering time as well: otherwise
/// the archive of the month of its number, which reads the receipts from
/// this long before the month, would not find it.
const LATE_NUMBERING_HOURS: i64 = 24;
/// Digests read from the store at a time.
const DIGEST_PAGE_SIZE: usize = 2000;
/// The two orders a digest is kept in (the byte after `estate\0`).
const BY_RECEIPT: u8 = b'r';
const BY_NUMBERING: u8 = b'n';

#[derive(Clone)]
pub struct Store {
    kv: Arc<dyn Kv>,
}

impl Store {
    /// Open the sled store in `path`, building the report digests first if
    /// it has none yet (see [`Store::ensure_derived_indexes`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self {
            kv: Arc::new(SledKv::open(path)?),
        };
        store.ensure_derived_indexes()?;
        store.ensure_blob_uploaders()?;
        Ok(store)
    }

    pub fn in_memory() -> Self {
        Self {
            kv: Arc::new(MemoryKv::new()),
        }
    }

    /// A store over any backend: for tests with one that misbehaves.
    #[cfg(test)]
    pub(crate) fn over(kv: Arc<dyn Kv>) -> Self {
        Self { kv }
    }

    /// A view of this store whose writes are held back until its flush,
    /// which applies them all here as one atomic group and then flushes.
    /// Reads through the view see its held writes; reads of this store do
    /// not until then.
    pub fn staged(&self) -> Self {
        Self {
            kv: Arc::new(staged_kv::StagedKv::new(self.kv.clone())),
        }
    }

    pub fn ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.get_json(Space::Tickets, id.as_str().as_bytes())
    }

    /// The ticket if it is one of `estate`'s: another estate's is not even
    /// read (its index entry says whose it is).
    pub fn estate_ticket(
        &self,
        estate: &EstateId,
        id: &TicketId,
    ) -> Result<Option<Ticket>, StoreError> {
        let key = key2(estate.as_str(), id.as_str());
        if !self.kv.contains(Space::EstateTickets, &key)? {
            return Ok(None);
        }
        self.ticket(id)
    }

    /// An estate's tickets in id order, after `after`.
    pub fn estate_tickets(
        &self,
        estate: &EstateId,
        after: Option<&TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.estate_index(Space::EstateTickets, estate, after, limit)
    }

    /// The tickets an estate's `index` names, in id order, after `after`.
    fn estate_index(
        &self,
        index: Space,
        estate: &EstateId,
        after: Option<&TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let after = after.map(TicketId::as_str);
        self.indexed(index, Space::Tickets, estate.as_str(), after, limit)
    }

    /// Every ticket of every estate in id order, after `after`: how the
    /// scheduler finds the open deadlines at start and after an overflow.
    pub fn all_tickets(
        &self,
        after: Option<&TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.page_of(Space::Tickets, after.map(TicketId::as_str), limit)
    }

    /// The report digests of the estate's tickets received in `[from,
    /// until)`, in no particular order: what the monthly statistics read.
    pub fn visit_received_digests(
        &self,
        estate: &EstateId,
        (from, until): (DateTime<Utc>, DateTime<Utc>),
        visit: impl FnMut(ReportDigest),
    ) -> Result<(), StoreError> {
        self.visit_digests(estate, BY_RECEIPT, from, until, visit)
    }

    /// The report digests of every ticket of the estate numbered (recorded
    /// or converted) in `[from, until)`, each once, among others received
    /// around then (the caller picks): what the monthly archive reads.
    pub fn visit_numbered_digests(
        &self,
        estate: &EstateId,
        (from, until): (DateTime<Utc>, DateTime<Utc>),
        mut visit: impl FnMut(ReportDigest),
    ) -> Result<(), StoreError> {
        let mut numbered_late = HashSet::new();
        self.visit_digests(estate, BY_NUMBERING, from, until, |digest| {
            numbered_late.insert(digest.ticket_id.clone());
            visit(digest);
        })?;
        // Any other ticket numbered then was received at most a day before
        // (or, by a clock a little ahead, a few minutes after).
        let late = Duration::hours(LATE_NUMBERING_HOURS);
        self.visit_digests(estate, BY_RECEIPT, from - late, until + late, |digest| {
            if !numbered_late.contains(&digest.ticket_id) {
                visit(digest);
            }
        })
    }

    /// The digests of `[from, until)` in one order, read and parsed on two
    /// threads (each half of the range) while this one visits them: the
    /// reading and parsing are most of a monthly report's time, and the
    /// machine has two cores. Pages come in no particular order.
    fn visit_digests(
        &self,
        estate: &EstateId,
        order: u8,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        mut visit: impl FnMut(ReportDigest),
    ) -> Result<(), StoreError> {
        let middle = from + (until - from) / 2;
        std::thread::scope(|scope| {
            // A few pages in flight: memory stays bounded if visiting is slower.
            let (pages, parsed) = mpsc::sync_channel(4);
            for (start, end) in [(from, middle), (middle, until)] {
                let pages = pages.clone();
                scope.spawn(move || self.read_digests(estate, order, (start, end), &pages));
            }
            drop(pages);
            for page in parsed {
                page?.into_iter().for_each(&mut visit);
            }
            Ok(())
        })
    }

    /// Read and parse the digests of `[from, until)` a page at a time into
    /// `pages`, until the range ends, a read fails (sent too), or the
    /// receiver is gone.
    fn read_digests(
        &self,
        estate: &EstateId,
        order: u8,
        (from, until): (DateTime<Utc>, DateTime<Utc>),
        pages: &mpsc::SyncSender<Result<Vec<ReportDigest>, StoreError>>,
    ) {
        let mut start = digest_key(estate, order, from, "");
        let end = digest_key(estate, order, until, "");
        loop {
            let page = match self
                .kv
                .range(Space::ReportDigests, &start, &end, DIGEST_PAGE_SIZE)
            {
                Ok(page) => page,
                Err(error) => {
                    let _ = pages.send(Err(error));
                    return;
                }
            };
            let digests = page
                .iter()
                .map(|(_, value)| decode(Space::ReportDigests, value))
                .collect::<Result<Vec<_>, _>>();
            let failed = digests.is_err();
            // The receiver is gone once the visitor stopped at a failure.
            if pages.send(digests).is_err() || failed {
                return;
            }
            match page.last() {
                // The 0 byte after the last key makes the next page start just past it.
                Some((key, _)) if page.len() == DIGEST_PAGE_SIZE => {
                    start = [key.as_slice(), &[0]].concat();
                }
                _ => return,
            }
        }
    }

    /// Build each index derived from the tickets ([`DERIVED`]) unless the
    /// store says it holds it in this server's layout: a store written
    /// before the index existed, or by a server with another layout.
    /// Whatever entries are there are dropped first; the marker is written
    /// last, so a build cut short by a crash starts over at the next open.
    /// Runs before the writer starts, so nothing else writes meanwhile.
    fn ensure_derived_indexes(&self) -> Result<(), StoreError> {
        for derived in &DERIVED {
            self.ensure_derived(derived)?;
        }
        Ok(())
    }

    /// A store written before uploads were recorded: each blob a ticket's
    /// fact refers to, and that is there, counts as uploaded by the fact's
    /// recorder. Only adds; marked once done.
    fn ensure_blob_uploaders(&self) -> Result<(), StoreError> {
        if self.kv.get(Space::Meta, META_BLOB_UPLOADERS)?.is_some() {
            return Ok(());
        }
        self.stage_every_ticket(|changes, ticket| {
            for (blob, recorder) in ticket.blob_references() {
                if self.has_blob(blob)? {
                    changes.put_blob_upload(blob, recorder);
                }
            }
            Ok(())
        })?;
        let mut marker = Changes::default();
        marker.put(
            Space::Meta,
            META_BLOB_UPLOADERS.to_vec(),
            1u64.to_be_bytes().to_vec(),
        );
        self.apply(marker)?;
        self.flush()
    }

    /// Walks every ticket a page at a time, applying what `stage` makes of
    /// each page before reading the next; answers how many it saw.
    fn stage_every_ticket(
        &self,
        mut stage: impl FnMut(&mut Changes, &Ticket) -> Result<(), StoreError>,
    ) -> Result<usize, StoreError> {
        let mut after: Option<TicketId> = None;
        let mut tickets = 0;
        loop {
            let page = self.all_tickets(after.as_ref(), DIGEST_PAGE_SIZE)?;
            let mut changes = Changes::default();
            for ticket in &page {
                stage(&mut changes, ticket)?;
            }
            self.apply(changes)?;
            tickets += page.len();
            match page.last() {
                Some(last) if page.len() == DIGEST_PAGE_SIZE => after = Some(last.id.clone()),
                _ => return Ok(tickets),
            }
        }
    }

    fn ensure_derived(&self, derived: &Derived) -> Result<(), StoreError> {
        let built = self.kv.get(Space::Meta, derived.marker)?;
        if built.is_some_and(|value| decode_u64(&value) == derived.version) {
            return Ok(());
        }
        let name = String::from_utf8_lossy(derived.marker).into_owned();
        tracing::info!(index = name, "building an index of every ticket");
        // Keys of these spaces start with ids or hex, ASCII: all below 0xFF.
        loop {
            let page = self
                .kv
                .range(derived.space, &[], &[0xFF], DIGEST_PAGE_SIZE)?;
            if page.is_empty() {
                break;
            }
            let deletes = page
                .into_iter()
                .map(|(key, _)| Write::Delete(derived.space, key))
                .collect();
            self.kv.apply(deletes)?;
        }
        let tickets = self.stage_every_ticket(|changes, ticket| {
            (derived.stage)(changes, ticket);
            Ok(())
        })?;
        let mut marker = Changes::default();
        marker.put(
            Space::Meta,
            derived.marker.to_vec(),
            derived.version.to_be_bytes().to_vec(),
        );
        self.apply(marker)?;
        self.flush()?;
        tracing::info!(index = name, tickets, "index built");
        Ok(())
    }

    /// The estate's tickets that may still have a deadline to meet, in id
    /// order, after `after`: what a due list or the dispatch queue reads.
    pub fn active_tickets(
        &self,
        estate: &EstateId,
        after: Option<&TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.estate_index(Space::ActiveTickets, estate, after, limit)
    }

    /// A technician's assigned tickets in id order, after `after`.
    pub fn assigned_tickets(
        &self,
        user: &UserId,
        after: Option<&TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let after = after.map(TicketId::as_str);
        self.indexed(
            Space::AssignedTickets,
            Space::Tickets,
            user.as_str(),
            after,
            limit,
        )
    }

    /// What a technician still has in hand: the open tickets assigned to
    /// them (the index keeps their closed ones too: every page is read) and
    /// their devices that last reported changes waiting to upload.
    pub fn open_work(&self, user: &UserRecord) -> Result<OpenWork, StoreError> {
        const PAGE: usize = 500;
        let mut work = OpenWork::default();
        let mut after: Option<TicketId> = None;
        loop {
            let page = self.assigned_tickets(&user.id, after.as_ref(), PAGE)?;
            work.held_tickets += page
                .iter()
                .filter(|ticket| ticket.holder() == Some(&user.id))
                .count();
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let mut after: Option<DeviceId> = None;
        loop {
            let page = self.estate_devices(&user.estate, after.as_ref(), PAGE)?;
            work.devices_with_pending_changes += page
                .iter()
                .filter(|device| device.user == user.id && device.outbox_depth > 0)
                .count();
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.device_id.clone()),
                _ => break,
            }
        }
        Ok(work)
    }

    /// Records listed in an `owner\0id` index, in id order, after `after`.
    fn indexed<T: DeserializeOwned>(
        &self,
        index: Space,
        records: Space,
        owner: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let from = match after {
            // The 0 byte after the id makes the range start just past it.
            Some(after) => [key2(owner, after), vec![0]].concat(),
            None => key2(owner, ""),
        };
        let mut found = Vec::new();
        for (key, _) in self.kv.range(index, &from, &prefix_end(owner), limit)? {
            let record = self
                .get_json(records, &key[owner.len() + 1..])?
                .ok_or_else(|| StoreError::Corrupt {
                    space: index,
                    reason: "index names a missing record".to_owned(),
                })?;
            found.push(record);
        }
        Ok(found)
    }

    /// A technician's feed entries with `after < cursor <= up_to`.
    pub fn feed(
        &self,
        user: &UserId,
        after: Cursor,
        up_to: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, FeedEntry)>, StoreError> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let from = feed_key(user, after.0 + 1);
        let to = feed_key(user, up_to.0 + 1);
        self.kv
            .range(Space::Feed, &from, &to, limit)?
            .into_iter()
            .map(|(key, value)| {
                let cursor = decode_u64(&key[key.len() - 8..]);
                Ok((Cursor(cursor), decode(Space::Feed, &value)?))
            })
            .collect()
    }

    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        self.get_json(Space::Devices, id.as_str().as_bytes())
    }

    /// Every device of every estate in id order, after `after`: what
    /// `/metrics` counts stale devices over.
    pub fn all_devices(
        &self,
        after: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        self.page_of(Space::Devices, after.map(DeviceId::as_str), limit)
    }

    /// Up to `limit` records of a space keyed by id, in id order, after `after`.
    fn page_of<T: DeserializeOwned>(
        &self,
        space: Space,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let from = match after {
            // The 0 byte after the id makes the range start just past it.
            Some(after) => [after.as_bytes(), &[0]].concat(),
            None => Vec::new(),
        };
        // Ids are ASCII, so every key sorts below 0xff.
        self.kv
            .range(space, &from, &[0xff], limit)?
            .iter()
            .map(|(_, value)| decode(space, value))
            .collect()
    }

    /// An estate's devices in id order, after `after`.
    pub fn estate_devices(
        &self,
        estate: &EstateId,
        after: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let after = after.map(DeviceId::as_str);
        self.indexed(
            Space::EstateDevices,
            Space::Devices,
            estate.as_str(),
            after,
            limit,
        )
    }

    pub fn stored_outcome(
        &self,
        device: &DeviceId,
        seq: DeviceSeq,
    ) -> Result<Option<StoredOutcome>, StoreError> {
        self.get_json(Space::Outcomes, &outcome_key(device, seq))
    }

    pub fn has_blob(&self, hash: &Sha256Hex) -> Result<bool, StoreError> {
        self.kv.contains(Space::Blobs, hash.as_str().as_bytes())
    }

    pub fn blob(&self, hash: &Sha256Hex) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(Space::Blobs, hash.as_str().as_bytes())
    }

    /// The tickets that refer to a blob (at most `limit` of them): whoever
    /// may read one of them may read the blob.
    pub fn blob_referrers(
        &self,
        hash: &Sha256Hex,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError> {
        let owner = hash.as_str();
        self.kv
            .range(Space::BlobRefs, &key2(owner, ""), &prefix_end(owner), limit)?
            .into_iter()
            .map(|(key, _)| {
                let id = String::from_utf8_lossy(&key[owner.len() + 1..]).into_owned();
                TicketId::parse(&id).map_err(|error| StoreError::Corrupt {
                    space: Space::BlobRefs,
                    reason: error.to_string(),
                })
            })
            .collect()
    }

    /// Whether `user` uploaded these bytes (the blob is then on the server).
    pub fn uploaded_by(&self, hash: &Sha256Hex, user: &UserId) -> Result<bool, StoreError> {
        self.kv
            .contains(Space::BlobUploads, &key2(hash.as_str(), user.as_str()))
    }

    /// Whether `user` uploaded the blob and no ticket refers to it yet.
    pub fn is_pending_blob(&self, user: &UserId, hash: &Sha256Hex) -> Result<bool, StoreError> {
        self.kv
            .contains(Space::PendingBlobs, &key2(user.as_str(), hash.as_str()))
    }

    /// How many blobs `user` uploaded that no ticket refers to yet, counted
    /// up to `limit`.
    pub fn pending_blobs(&self, user: &UserId, limit: usize) -> Result<usize, StoreError> {
        let owner = user.as_str();
        Ok(self
            .kv
            .range(
                Space::PendingBlobs,
                &key2(owner, ""),
                &prefix_end(owner),
                limit,
            )?
            .len())
    }

    pub fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get_json(Space::Users, id.as_str().as_bytes())
    }

    /// Users in id order after `after`, at most `limit`.
    pub fn users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.page_of(Space::Users, after.map(UserId::as_str), limit)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.get_json(Space::Sessions, id.as_bytes())
    }

    /// A user's refresh sessions, in id order (at most
    /// `auth::refresh::MAX_SESSIONS_PER_USER` are kept).
    pub fn user_sessions(&self, user: &UserId) -> Result<Vec<SessionRecord>, StoreError> {
        self.indexed(
            Space::UserSessions,
            Space::Sessions,
            user.as_str(),
            None,
            usize::MAX,
        )
    }

    /// The enabled users of `estate` with `role`, in id order. A scan of every user:
    /// users are few (tens per estate), so they have no estate index, and
    /// one that `add-user` could leave stale when it changes a user's estate
    /// or role is not worth keeping.
    pub fn estate_users(
        &self,
        estate: &EstateId,
        role: Role,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.users_where(|user| user.role == role && &user.estate == estate && !user.disabled)
    }

    /// Every user of `estate`, disabled ones too (their names still sign
    /// the history), in id order.
    pub fn estate_people(&self, estate: &EstateId) -> Result<Vec<UserRecord>, StoreError> {
        self.users_where(|user| &user.estate == estate)
    }

    fn users_where(
        &self,
        keep: impl Fn(&UserRecord) -> bool,
    ) -> Result<Vec<UserRecord>, StoreError> {
        const SCAN_PAGE: usize = 500;
        // User ids are ASCII, so every key sorts below 0xFF.
        let end = [0xFF];
        let mut from = Vec::new();
        let mut found = Vec::new();
        loop {
            let page = self.kv.range(Space::Users, &from, &end, SCAN_PAGE)?;
            for (_, value) in &page {
                let user: UserRecord = decode(Space::Users, value)?;
                if keep(&user) {
                    found.push(user);
                }
            }
            match page.last() {
                Some((key, _)) if page.len() == SCAN_PAGE => from = [key.as_slice(), &[0]].concat(),
                _ => return Ok(found),
            }
        }
    }

    pub fn counters(&self) -> Result<Counters, StoreError> {
        let read = |key| -> Result<u64, StoreError> {
            Ok(self
                .kv
                .get(Space::Meta, key)?
                .map(|v| decode_u64(&v))
                .unwrap_or(0))
        };
        Ok(Counters {
            feed: read(META_FEED)?,
            tickets: read(META_TICKETS)?,
        })
    }

    /// The last sequence handed out in an R-A1 series; 0 before its first.
    pub fn last_serial_sequence(&self, series: &SerialSeries) -> Result<u64, StoreError> {
        let key = key2(META_SERIAL, &series.to_string());
        Ok(self
            .kv
            .get(Space::Meta, &key)?
            .map(|value| decode_u64(&value))
            .unwrap_or(0))
    }

    /// Apply one atomic group of changes (visible now, durable after [`Store::flush`]).
    pub fn apply(&self, changes: Changes) -> Result<(), StoreError> {
        if changes.writes.is_empty() {
            return Ok(());
        }
        self.kv.apply(changes.writes)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.kv.size_on_disk()
    }

    /// Stage a ticket's new state with its indexes and feed entries. `old` is
    /// the state before this change (None for a new ticket).
    pub fn stage_ticket(
        &self,
        changes: &mut Changes,
        counters: &mut Counters,
        old: Option<&Ticket>,
        new: &Ticket,
    ) -> Result<(), StoreError> {
        let id = new.id.as_str();
        changes.put_json(Space::Tickets, id.as_bytes().to_vec(), new);
        changes.put_report_digest(new);
        changes.put_ticket_card(new);
        if old.is_some_and(has_pending_duties) && !has_pending_duties(new) {
            changes.delete(Space::ActiveTickets, key2(new.estate.as_str(), id));
        } else {
            changes.put_active_ticket(new);
        }
        for (blob, recorder) in new.blob_references() {
            if old.is_none_or(|old| !old.referenced_blobs().any(|known| known == blob)) {
                changes.put(Space::BlobRefs, key2(blob.as_str(), id), Vec::new());
                // Referred to now: no longer counted against the uploader.
                changes.delete(Space::PendingBlobs, key2(recorder.as_str(), blob.as_str()));
            }
        }
        changes.changed_tickets.push(new.id.clone());
        if old.is_none() {
            changes.put_known_unit(new);
            changes.put(
                Space::EstateTickets,
                key2(new.estate.as_str(), id),
                Vec::new(),
            );
        }
        let old_assignee = old.and_then(|t| t.assigned_technician.as_ref());
        if old_assignee != new.assigned_technician.as_ref() {
            if let Some(previous) = old_assignee {
                changes.delete(Space::AssignedTickets, key2(previous.as_str(), id));
            }
            if let Some(current) = &new.assigned_technician {
                changes.put(
                    Space::AssignedTickets,
                    key2(current.as_str(), id),
                    Vec::new(),
                );
            }
        }

        let old_holder = old.and_then(Ticket::holder);
        let new_holder = new.holder();
        if let Some(previous) = old_holder.filter(|p| Some(*p) != new_holder) {
            self.stage_feed(
                changes,
                counters,
                previous,
                &new.id,
                Some(new.revoke_reason()),
            )?;
        }
        if let Some(current) = new_holder {
            self.stage_feed(changes, counters, current, &new.id, None)?;
        }
        Ok(())
    }

    /// Keep one feed entry per (technician, ticket): the newest. A pull then
    /// costs in proportion to the tickets that changed, not to the changes.
    fn stage_feed(
        &self,
        changes: &mut Changes,
        counters: &mut Counters,
        user: &UserId,
        ticket: &TicketId,
        revoked: Option<RevokeReason>,
    ) -> Result<(), StoreError> {
        let position_key = key2(user.as_str(), ticket.as_str());
        if let Some(old) = self.kv.get(Space::FeedPosition, &position_key)? {
            changes.delete(Space::Feed, feed_key(user, decode_u64(&old)));
        }
        counters.feed += 1;
        let entry = FeedEntry {
            ticket_id: ticket.clone(),
            revoked,
        };
        changes.put_json(Space::Feed, feed_key(user, counters.feed), &entry);
        changes.put(
            Space::FeedPosition,
            position_key,
            counters.feed.to_be_bytes().to_vec(),
        );
        changes.put(
            Space::Meta,
            META_FEED.to_vec(),
            counters.feed.to_be_bytes().to_vec(),
        );
        Ok(())
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        space: Space,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.kv
            .get(space, key)?
            .map(|value| decode(space, &value))
            .transpose()
    }
}

/// Writes to apply together.
#[derive(Default)]
pub struct Changes {
    writes: Vec<Write>,
    changed_tickets: Vec<TicketId>,
    changed_users: Vec<UserId>,
}

impl Changes {
    /// The tickets this group rewrites, for the scheduler.
    pub fn take_changed_tickets(&mut self) -> Vec<TicketId> {
        std::mem::take(&mut self.changed_tickets)
    }

    /// The users this group rewrites, for the directory's cache.
    pub fn take_changed_users(&mut self) -> Vec<UserId> {
        std::mem::take(&mut self.changed_users)
    }

    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push(Write::Put(space, key, value));
    }

    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.writes.push(Write::Delete(space, key));
    }

    pub fn put_json(&mut self, space: Space, key: Vec<u8>, value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).expect("stored records always serialize");
        self.put(space, key, bytes);
    }

    /// An active device: its record, listed under its estate.
    pub fn put_device(&mut self, device: &DeviceRecord) {
        self.put_device_record(device);
        // Re-putting the index entry of an unchanged estate is idempotent.
        self.put(
            Space::EstateDevices,
            key2(device.estate.as_str(), device.device_id.as_str()),
            Vec::new(),
        );
    }

    /// The device's record alone (a retired device is kept, not listed).
    pub fn put_device_record(&mut self, device: &DeviceRecord) {
        let id = device.device_id.as_str();
        self.put_json(Space::Devices, id.as_bytes().to_vec(), device);
    }

    /// Take the device off its estate's list (retired, or moving estate).
    pub fn unlist_device(&mut self, device: &DeviceRecord) {
        self.delete(
            Space::EstateDevices,
            key2(device.estate.as_str(), device.device_id.as_str()),
        );
    }

    pub fn put_outcome(&mut self, device: &DeviceId, seq: DeviceSeq, outcome: &StoredOutcome) {
        self.put_json(Space::Outcomes, outcome_key(device, seq), outcome);
    }

    pub fn put_blob(&mut self, hash: &Sha256Hex, bytes: Vec<u8>) {
        self.put(Space::Blobs, hash.as_str().as_bytes().to_vec(), bytes);
    }

    /// `user` uploaded these bytes.
    pub fn put_blob_upload(&mut self, hash: &Sha256Hex, user: &UserId) {
        self.put(
            Space::BlobUploads,
            key2(hash.as_str(), user.as_str()),
            Vec::new(),
        );
    }

    /// `user` uploaded a blob no ticket refers to yet.
    pub fn put_pending_blob(&mut self, user: &UserId, hash: &Sha256Hex) {
        self.put(
            Space::PendingBlobs,
            key2(user.as_str(), hash.as_str()),
            Vec::new(),
        );
    }

    /// The ticket's entries in the blob index (how an older store gets them).
    fn put_blob_refs(&mut self, ticket: &Ticket) {
        for blob in ticket.referenced_blobs() {
            self.put(
                Space::BlobRefs,
                key2(blob.as_str(), ticket.id.as_str()),
                Vec::new(),
            );
        }
    }

    pub fn put_user(&mut self, user: &UserRecord) {
        self.put_json(Space::Users, user.id.as_str().as_bytes().to_vec(), user);
        self.changed_users.push(user.id.clone());
    }

    pub fn put_session(&mut self, session: &SessionRecord) {
        self.put_json(Space::Sessions, session.id.as_bytes().to_vec(), session);
        self.put(
            Space::UserSessions,
            key2(session.user.as_str(), &session.id),
            Vec::new(),
        );
    }

    pub fn delete_session(&mut self, session: &SessionRecord) {
        self.delete(Space::Sessions, session.id.as_bytes().to_vec());
        self.delete(
            Space::UserSessions,
            key2(session.user.as_str(), &session.id),
        );
    }

    pub fn put_ticket_counter(&mut self, counters: &Counters) {
        let value = counters.tickets.to_be_bytes().to_vec();
        self.put(Space::Meta, META_TICKETS.to_vec(), value);
    }

    /// The ticket on its estate's list of active tickets, if it is one.
    fn put_active_ticket(&mut self, ticket: &Ticket) {
        if has_pending_duties(ticket) {
            let key = key2(ticket.estate.as_str(), ticket.id.as_str());
            self.put(Space::ActiveTickets, key, Vec::new());
        }
    }

    /// The ticket's report digest, under its receipt time, and under its
    /// numbering time too when that came much later. Both times never change,
    /// so a new digest replaces the old one under the same keys.
    fn put_report_digest(&mut self, ticket: &Ticket) {
        let digest = ReportDigest::of(ticket);
        let value = serde_json::to_vec(&digest).expect("a report digest always serializes");
        let id = ticket.id.as_str();
        if digest.created_at - digest.received_at > Duration::hours(LATE_NUMBERING_HOURS) {
            let key = digest_key(&ticket.estate, BY_NUMBERING, digest.created_at, id);
            self.put(Space::ReportDigests, key, value.clone());
        }
        let key = digest_key(&ticket.estate, BY_RECEIPT, digest.received_at, id);
        self.put(Space::ReportDigests, key, value);
    }

    /// Record `number` as the last one handed out in its series (R-A1).
    pub fn put_last_serial(&mut self, number: &SerialNumber) {
        let key = key2(META_SERIAL, &number.series().to_string());
        let value = number.sequence().to_be_bytes().to_vec();
        self.put(Space::Meta, key, value);
    }
}

fn decode<T: DeserializeOwned>(space: Space, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        space,
        reason: error.to_string(),
    })
}

fn decode_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(array)
}

fn key2(first: &str, second: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(first.len() + second.len() + 1);
    key.extend_from_slice(first.as_bytes());
    key.push(0);
    key.extend_from_slice(second.as_bytes());
    key
}

/// The first key after every `owner\0…` key.
fn prefix_end(owner: &str) -> Vec<u8> {
    let mut key = owner.as_bytes().to_vec();
    key.push(1);
    key
}

/// `estate\0` + the order's byte + the time (microseconds since 1970 with
/// the sign bit flipped, big-endian, so that keys sort in time order) + the
/// ticket id. With an empty id, the first key of that moment.
fn digest_key(estate: &EstateId, order: u8, at: DateTime<Utc>, ticket: &str) -> Vec<u8> {
    let mut key = key2(estate.as_str(), "");
    key.push(order);
    let sortable = at.timestamp_micros().cast_unsigned() ^ (1 << 63);
    key.extend_from_slice(&sortable.to_be_bytes());
    key.extend_from_slice(ticket.as_bytes());
    key
}

fn feed_key(user: &UserId, cursor: u64) -> Vec<u8> {
    let mut key = key2(user.as_str(), "");
    key.extend_from_slice(&cursor.to_be_bytes());
    key
}

fn outcome_key(device: &DeviceId, seq: DeviceSeq) -> Vec<u8> {
    let mut key = key2(device.as_str(), "");
    key.extend_from_slice(&seq.0.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::at;
    use sync_protocol::{Fact, MutationId, Signature};

    fn user(id: &str, role: Role, estate: &str) -> UserRecord {
        UserRecord {
            id: UserId::parse(id).unwrap(),
            role,
            estate: EstateId::parse(estate).unwrap(),
            display_name: id.to_owned(),
            password_hash: "not a real hash".to_owned(),
            disabled: false,
            generation: 0,
        }
    }

    #[test]
    fn estate_users_lists_one_estates_users_of_one_role_across_scan_pages() {
        let store = Store::in_memory();
        let mut changes = Changes::default();
        for n in 0..1200 {
            let (role, estate) = match n % 3 {
                0 => (Role::Technician, "E01"),
                1 => (Role::Technician, "E02"),
                _ => (Role::Dispatcher, "E01"),
            };
            changes.put_user(&user(&format!("u{n:04}"), role, estate));
        }
        store.apply(changes).unwrap();
        let e01 = EstateId::parse("E01").unwrap();
        let technicians = store.estate_users(&e01, Role::Technician).unwrap();
        assert_eq!(technicians.len(), 400);
        assert!(technicians.windows(2).all(|pair| pair[0].id < pair[1].id));
        assert!(
            technicians
                .iter()
                .all(|user| user.role == Role::Technician && user.estate == e01)
        );
        let e03 = EstateId::parse("E03").unwrap();
        assert!(
            store
                .estate_users(&e03, Role::Technician)
                .unwrap()
                .is_empty()
        );
    }

    // ---- Report digests ----------------------------------------------------

    fn work_order_received_at(number: u64, received_at: DateTime<Utc>) -> Ticket {
        let mut record = crate::test_support::intake();
        record.received_at = received_at;
        let id = TicketId::parse(&format!("tk{number:08}")).unwrap();
        let agent = UserId::parse("kefu").unwrap();
        let calendar = sync_protocol::WorkingCalendar::default();
        sync_protocol::create_ticket(id, record, agent, &calendar, received_at).unwrap()
    }

    /// Write a ticket's new state as the writer does.
    fn stage(store: &Store, old: Option<&Ticket>, new: &Ticket) {
        let mut changes = Changes::default();
        let mut counters = store.counters().unwrap();
        store
            .stage_ticket(&mut changes, &mut counters, old, new)
            .unwrap();
        store.apply(changes).unwrap();
    }

    fn ids_of(digests: Vec<ReportDigest>) -> Vec<String> {
        digests
            .into_iter()
            .map(|digest| digest.ticket_id.as_str().to_owned())
            .collect()
    }

    fn received(store: &Store, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<ReportDigest> {
        let mut found = Vec::new();
        let estate = EstateId::parse("E01").unwrap();
        store
            .visit_received_digests(&estate, (from, until), |digest| found.push(digest))
            .unwrap();
        found
    }

    fn numbered(store: &Store, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<ReportDigest> {
        let mut found = Vec::new();
        let estate = EstateId::parse("E01").unwrap();
        store
            .visit_numbered_digests(&estate, (from, until), |digest| found.push(digest))
            .unwrap();
        found
    }

    fn the_day() -> (DateTime<Utc>, DateTime<Utc>) {
        (at(0, 0), at(0, 0) + Duration::days(1))
    }

    #[test]
    fn a_tickets_report_digest_follows_every_change_under_its_receipt_time() {
        let store = Store::in_memory();
        let ticket = work_order_received_at(1, at(9, 0));
        stage(&store, None, &ticket);
        let dispatch = sync_protocol::OfficeOp::Dispatch {
            technician: UserId::parse("li").unwrap(),
        };
        let diaodu = UserId::parse("diaodu").unwrap();
        let calendar = sync_protocol::WorkingCalendar::default();
        let dispatched =
            sync_protocol::apply_office_op(&ticket, &dispatch, &diaodu, &calendar, at(9, 5))
                .unwrap();
        stage(&store, Some(&ticket), &dispatched);

        let (midnight, next_midnight) = the_day();
        assert_eq!(
            received(&store, midnight, next_midnight),
            [ReportDigest::of(&dispatched)]
        );
        // `[from, until)` by receipt time.
        assert!(received(&store, at(9, 1), next_midnight).is_empty());
        assert_eq!(received(&store, at(9, 0), at(9, 1)).len(), 1);
        assert!(received(&store, midnight, at(9, 0)).is_empty());
    }

    #[test]
    fn the_digests_of_a_range_of_many_pages_are_each_read_once() {
        let store = Store::in_memory();
        let tickets = 3 * DIGEST_PAGE_SIZE as u64 + 7;
        let mut changes = Changes::default();
        let mut counters = store.counters().unwrap();
        for number in 1..=tickets {
            let received_at = at(0, 0) + Duration::seconds(number as i64);
            let ticket = work_order_received_at(number, received_at);
            store
                .stage_ticket(&mut changes, &mut counters, None, &ticket)
                .unwrap();
        }
        store.apply(changes).unwrap();

        let (midnight, next_midnight) = the_day();
        let mut ids = ids_of(received(&store, midnight, next_midnight));
        assert_eq!(ids.len() as u64, tickets);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len() as u64, tickets, "none twice");
    }

    #[test]
    fn r_a2_a_ticket_numbered_days_after_its_receipt_is_found_once_by_its_numbering_time() {
        let store = Store::in_memory();
        let work_order = work_order_received_at(1, at(9, 0));
        stage(&store, None, &work_order);
        let converted_at = at(9, 0) + Duration::days(3);
        let diaodu = UserId::parse("diaodu").unwrap();
        let coordination_id = TicketId::parse("tk00000002").unwrap();
        let (converted, coordination) = sync_protocol::convert_work_order(
            &work_order,
            coordination_id,
            "needs a part",
            &diaodu,
            converted_at,
        )
        .unwrap();
        stage(&store, Some(&work_order), &converted);
        stage(&store, None, &coordination);

        let day_of_conversion = (
            converted_at - Duration::hours(9),
            converted_at + Duration::hours(15),
        );
        assert_eq!(
            ids_of(numbered(&store, day_of_conversion.0, day_of_conversion.1)),
            ["tk00000002"]
        );
        // Numbered in the day of receipt and in the day of conversion:
        // each once, although the coordination ticket is under both times.
        let (midnight, _) = the_day();
        let mut both = ids_of(numbered(&store, midnight, day_of_conversion.1));
        both.sort();
        assert_eq!(both, ["tk00000001", "tk00000002"]);
        // The statistics count both in the month of receipt, once each.
        assert_eq!(received(&store, midnight, day_of_conversion.1).len(), 2);
    }

    #[test]
    fn report_digests_missing_from_an_older_store_are_built_and_stale_ones_dropped() {
        let store = Store::in_memory();
        // Written as a server before the digests did: the ticket and its
        // estate index only; and a digest in some other layout.
        let ticket = work_order_received_at(1, at(9, 0));
        let mut changes = Changes::default();
        changes.put_json(Space::Tickets, b"tk00000001".to_vec(), &ticket);
        changes.put(Space::EstateTickets, key2("E01", "tk00000001"), Vec::new());
        let estate = EstateId::parse("E01").unwrap();
        let stale = digest_key(&estate, BY_RECEIPT, at(8, 0), "tk00000000");
        changes.put(Space::ReportDigests, stale, b"{}".to_vec());
        store.apply(changes).unwrap();

        store.ensure_derived_indexes().unwrap();

        let (midnight, next_midnight) = the_day();
        assert_eq!(
            received(&store, midnight, next_midnight),
            [ReportDigest::of(&ticket)]
        );
        // Built once: a later open trusts the marker and rebuilds nothing.
        let later = work_order_received_at(2, at(10, 0));
        let mut changes = Changes::default();
        changes.put_json(Space::Tickets, b"tk00000002".to_vec(), &later);
        store.apply(changes).unwrap();
        store.ensure_derived_indexes().unwrap();
        assert_eq!(received(&store, midnight, next_midnight).len(), 1);
    }

    #[test]
    fn an_older_store_gets_cards_units_and_active_tickets_and_a_finished_ticket_leaves_the_active_list()
     {
        let store = Store::in_memory();
        // Written before the console's indexes: tickets and the estate index only.
        let first = work_order_received_at(1, at(9, 0));
        let mut cancelled = work_order_received_at(2, at(9, 30));
        cancelled.status = sync_protocol::Status::Cancelled;
        let mut changes = Changes::default();
        for ticket in [&first, &cancelled] {
            changes.put_json(
                Space::Tickets,
                ticket.id.as_str().as_bytes().to_vec(),
                ticket,
            );
            changes.put(
                Space::EstateTickets,
                key2("E01", ticket.id.as_str()),
                Vec::new(),
            );
        }
        store.apply(changes).unwrap();
        store.ensure_derived_indexes().unwrap();

        let estate = EstateId::parse("E01").unwrap();
        let every = sync_protocol::CardFilter::default();
        let page = store
            .ticket_cards(&estate, &every, sync_protocol::CardOrder::Newest, None, 10)
            .unwrap();
        let ids: Vec<&str> = page
            .cards
            .iter()
            .map(|card| card.ticket_id.as_str())
            .collect();
        assert_eq!(ids, ["tk00000002", "tk00000001"], "newest first");
        let units = store
            .known_units(&estate, &first.location[..2], 10)
            .unwrap();
        assert!(units.iter().any(|unit| unit.location == first.location));
        let active: Vec<String> = store
            .active_tickets(&estate, None, 10)
            .unwrap()
            .into_iter()
            .map(|ticket| ticket.id.to_string())
            .collect();
        assert_eq!(
            active,
            ["tk00000001"],
            "a cancelled ticket has no duty left"
        );

        // Cancelled now: it leaves the active list, its card follows.
        let mut gone = first.clone();
        gone.status = sync_protocol::Status::Cancelled;
        let mut changes = Changes::default();
        let mut counters = Counters::default();
        store
            .stage_ticket(&mut changes, &mut counters, Some(&first), &gone)
            .unwrap();
        store.apply(changes).unwrap();
        assert!(store.active_tickets(&estate, None, 10).unwrap().is_empty());
        let page = store
            .ticket_cards(&estate, &every, sync_protocol::CardOrder::Oldest, None, 1)
            .unwrap();
        assert_eq!(page.cards[0].status, sync_protocol::Status::Cancelled);
        assert!(
            page.next.is_some(),
            "a full page says where the list goes on"
        );
    }

    #[test]
    fn an_older_store_counts_each_held_signature_image_as_uploaded_by_its_recorder() {
        let store = Store::in_memory();
        // Written before uploads were recorded: li's signature on a ticket,
        // its image held; and wang's signature naming an image never sent.
        let held = Sha256Hex::of(b"li's signature image");
        let never_sent = Sha256Hex::of(b"an image that never arrived");
        let mut ticket = work_order_received_at(1, at(9, 0));
        for (seq, recorder, blob) in [(1, "li", &held), (2, "wang", &never_sent)] {
            let device = DeviceId::parse(&format!("hh-{recorder}")).unwrap();
            let fact = Fact {
                recorded_by: UserId::parse(recorder).unwrap(),
                device: device.clone(),
                recorded_at: at(9, 30),
                received_at: at(9, 31),
                event_time: None,
                base_version: ticket.version,
                late: None,
                body: Signature {
                    blob: blob.clone(),
                    signed_record: Sha256Hex::of(b"the result"),
                    signer_name: "王女士".to_owned(),
                    rating: None,
                    strokes: None,
                },
            };
            ticket
                .signatures
                .insert(MutationId::new(device, DeviceSeq(seq)), fact);
        }
        let mut changes = Changes::default();
        changes.put_json(Space::Tickets, b"tk00000001".to_vec(), &ticket);
        changes.put_blob(&held, b"png".to_vec());
        store.apply(changes).unwrap();

        store.ensure_blob_uploaders().unwrap();

        let (li, wang) = (UserId::parse("li").unwrap(), UserId::parse("wang").unwrap());
        assert!(store.uploaded_by(&held, &li).unwrap());
        assert!(!store.uploaded_by(&held, &wang).unwrap());
        assert!(!store.uploaded_by(&never_sent, &wang).unwrap());
        // Built once: what is written later is the writer's to record.
        let mut changes = Changes::default();
        changes.put_blob(&never_sent, b"png".to_vec());
        store.apply(changes).unwrap();
        store.ensure_blob_uploaders().unwrap();
        assert!(!store.uploaded_by(&never_sent, &wang).unwrap());
    }
}
