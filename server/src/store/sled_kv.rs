//! sled behind the [`Kv`] interface: one tree, keys prefixed by their space,
//! so that a group of writes is one atomic `apply_batch`.
//!
//! sled's own flush is not enough for an acknowledgement: on Linux it ends
//! with `sync_file_range`, which writes the log's pages but neither flushes
//! the disk's cache nor persists metadata such as the file's new length, and
//! values too large for a log segment go to files under `blobs/` that sled
//! never syncs. So [`SledKv::flush`] follows sled's flush with `fdatasync` of
//! the log, of every blob file not yet synced, and of the `blobs/` directory.
//!
//! sled writes a snapshot of its page table when it starts, to
//! `snap.<log position>.generating`, renamed when complete. A start that
//! fails part way (a full disk) leaves that file unfinished, and sled 0.34
//! takes it for its newest snapshot at the next start and refuses to open
//! as "corrupted", even once space is free (spacejam/sled#1527). It holds
//! nothing the log does not, so [`SledKv::open`] removes it first and sled
//! rebuilds the snapshot from its last complete one and the log.
//!
//! sled also flushes once more when its last handle is dropped, and after a
//! failed write that flush can wait for ever (`crate::flush_watchdog`
//! says why). So once a write or flush has failed, [`SledKv`] never lets
//! sled's handle go: the process's exit releases the files and the lock.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::kv::{Entry, Kv, Space, StoreError, Write};

pub struct SledKv {
    db: sled::Db,
    log: File,
    blob_dir: PathBuf,
    /// Blob files already synced (sled never rewrites one in place).
    synced_blobs: Mutex<HashSet<std::ffi::OsString>>,
    /// A write or flush failed (see the module comment).
    faulted: AtomicBool,
}

impl SledKv {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        remove_unfinished_snapshots(path)?;
        let db = sled::Config::new()
            .path(path)
            // Durability comes from the explicit flush of group commit, not a timer.
            .flush_every_ms(None)
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .map_err(engine)?;
        let log = File::open(path.join("db")).map_err(io)?;
        Ok(Self {
            db,
            log,
            blob_dir: path.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
            faulted: AtomicBool::new(false),
        })
    }

    /// Pass `result` on, remembering a failure.
    fn noting_faults<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.faulted.store(true, Ordering::Release);
        }
        result
    }

    /// Make sled's files durable after its flush (see the module comment).
    fn sync_files(&self) -> Result<(), StoreError> {
        self.log.sync_data().map_err(io)?;
        let mut synced = self
            .synced_blobs
            .lock()
            .map_err(|_| StoreError::Engine("blob sync set poisoned".to_owned()))?;
        let mut new_files = false;
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&self.blob_dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            if !synced.contains(&name) {
                match File::open(self.blob_dir.join(&name)).and_then(|f| f.sync_data()) {
                    Ok(()) => new_files = true,
                    // sled removed it meanwhile: nothing left to make durable.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(io(error)),
                }
            }
            present.insert(name);
        }
        // Forget files sled has removed, so the set stays as small as the directory.
        *synced = present;
        if new_files {
            File::open(&self.blob_dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

/// Remove the snapshot files a failed start left unfinished (see the module comment).
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        // A new store: sled creates the directory.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io(error)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing an unfinished store snapshot left by a failed start");
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    Ok(())
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Engine(error.to_string())
}

fn engine(error: sled::Error) -> StoreError {
    StoreError::Engine(error.to_string())
}

fn prefixed(space: Space, key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(key.len() + 1);
    full.push(space.tag());
    full.extend_from_slice(key);
    full
}

/// The first `limit` entries of a range, without their space tag.
fn first_entries(
    range: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    for entry in range.take(limit) {
        // An iteration error is a storage fault: report it, never skip it.
        let (key, value) = entry.map_err(engine)?;
        entries.push((key[1..].to_vec(), value.to_vec()));
    }
    Ok(entries)
}

impl Kv for SledKv {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.db.get(prefixed(space, key)).map_err(engine)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn contains(&self, space: Space, key: &[u8]) -> Result<bool, StoreError> {
        self.db.contains_key(prefixed(space, key)).map_err(engine)
    }

    fn range(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let range = self.db.range(prefixed(space, from)..prefixed(space, to));
        first_entries(range, limit)
    }

    fn range_back(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let range = self.db.range(prefixed(space, from)..prefixed(space, to));
        first_entries(range.rev(), limit)
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for write in writes {
            match write {
                Write::Put(space, key, value) => batch.insert(prefixed(space, &key), value),
                Write::Delete(space, key) => batch.remove(prefixed(space, &key)),
            }
        }
        self.noting_faults(self.db.apply_batch(batch).map_err(engine))
    }

    fn flush(&self) -> Result<(), StoreError> {
        let flushed = self.db.flush().map_err(engine);
        self.noting_faults(flushed.and_then(|_| self.sync_files()))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(engine)
    }
}

impl Drop for SledKv {
    fn drop(&mut self) {
        if self.faulted.load(Ordering::Acquire) {
            // sled's last handle is never dropped, so its flush never runs.
            std::mem::forget(self.db.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open again after the previous handle was dropped. sled's background
    /// threads let go of the directory's lock a moment after the drop, so a
    /// reopen in the same process retries while the lock is still held.
    fn reopen(path: &Path) -> SledKv {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledKv::open(path) {
                Ok(kv) => return kv,
                Err(error) if std::time::Instant::now() < deadline => {
                    assert!(error.to_string().contains("lock"), "{error}");
                    std::thread::yield_now();
                }
                Err(error) => panic!("{error}"),
            }
        }
    }

    #[test]
    fn flushed_writes_survive_reopening_and_spaces_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = SledKv::open(dir.path()).unwrap();
            kv.apply(vec![
                Write::Put(Space::Tickets, b"a".to_vec(), b"1".to_vec()),
                Write::Put(Space::Tickets, b"b".to_vec(), b"2".to_vec()),
                Write::Put(Space::Users, b"a".to_vec(), b"user".to_vec()),
            ])
            .unwrap();
            kv.apply(vec![Write::Delete(Space::Tickets, b"b".to_vec())])
                .unwrap();
            kv.flush().unwrap();
        }
        let kv = reopen(dir.path());
        let tickets = kv.range(Space::Tickets, b"", &[0xff], 10).unwrap();
        assert_eq!(tickets, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(kv.get(Space::Users, b"a").unwrap(), Some(b"user".to_vec()));
        assert!(kv.size_on_disk().unwrap() > 0);
    }

    #[test]
    fn an_unfinished_snapshot_from_a_failed_start_is_removed_and_the_flushed_writes_stay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = SledKv::open(dir.path()).unwrap();
            kv.apply(vec![Write::Put(
                Space::Tickets,
                b"a".to_vec(),
                b"1".to_vec(),
            )])
            .unwrap();
            kv.flush().unwrap();
        }
        let unfinished = dir.path().join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&unfinished, b"").unwrap();
        let kv = reopen(dir.path());
        assert_eq!(kv.get(Space::Tickets, b"a").unwrap(), Some(b"1".to_vec()));
        assert!(!unfinished.exists());
    }

    #[test]
    fn a_value_too_large_for_the_log_is_synced_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let photo = vec![7u8; 1024 * 1024];
        {
            let kv = SledKv::open(dir.path()).unwrap();
            kv.apply(vec![Write::Put(Space::Blobs, b"p".to_vec(), photo.clone())])
                .unwrap();
            kv.flush().unwrap();
            assert!(!kv.synced_blobs.lock().unwrap().is_empty());
        }
        let kv = reopen(dir.path());
        assert_eq!(kv.get(Space::Blobs, b"p").unwrap(), Some(photo));
    }
}
