//! The small key-value engine interface the store is built on. One
//! implementation per backend: sled on disk, and memory for tests and simulation.

/// The named key spaces. Backends keep them apart however they like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    Tickets,
    EstateTickets,
    AssignedTickets,
    Feed,
    FeedPosition,
    Devices,
    EstateDevices,
    Outcomes,
    Blobs,
    Users,
    Meta,
    /// Each ticket's report digest by receipt time (and by numbering time
    /// when that came much later), for the monthly reports.
    ReportDigests,
    /// Refresh sessions by id (`auth::refresh`).
    Sessions,
    /// Index: a user's refresh sessions.
    UserSessions,
    /// Index: the tickets that refer to each blob, which decide who may
    /// download it.
    BlobRefs,
    /// Index: blobs each user uploaded that no ticket refers to yet.
    PendingBlobs,
    /// Index: who uploaded each blob. A reference to a blob grants access
    /// to it only through the bytes its recorder uploaded.
    BlobUploads,
    /// Each ticket's card for the console's list, by estate and receipt time.
    TicketCards,
    /// The units (locations) reported in each estate, with their last reporter.
    Units,
    /// Office writes named by an `Idempotency-Key`, by user and key.
    OfficeRequests,
    /// Index: an estate's tickets that may still have a deadline to meet
    /// (`sync_protocol::has_pending_duties`), for the due list and the
    /// dispatch queue.
    ActiveTickets,
    /// Index: the `OfficeRequests` by the time they were answered, so that
    /// the ones past `REMEMBERED_FOR` are forgotten.
    OfficeRequestsByTime,
}

impl Space {
    /// One byte per space; the sled backend prefixes keys with it.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// One write of an atomic group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put(Space, Vec<u8>, Vec<u8>),
    Delete(Space, Vec<u8>),
}

/// A storage fault: the disk, the engine, or a record that no longer decodes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("stored record in {space:?} does not decode: {reason}")]
    Corrupt { space: Space, reason: String },
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

pub trait Kv: Send + Sync + 'static {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Whether the key is there, without copying its value.
    fn contains(&self, space: Space, key: &[u8]) -> Result<bool, StoreError>;

    /// Entries with `from <= key < to`, ascending, at most `limit`.
    fn range(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Entries with `from <= key < to`, descending, at most `limit`.
    fn range_back(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Apply all writes atomically: after a crash either all or none are there.
    /// Visible to readers at once; durable only after [`Kv::flush`].
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// Make everything applied so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the store occupies on disk (0 in memory).
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}
