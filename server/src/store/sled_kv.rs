//! sled behind the [`Kv`] interface: one tree, keys prefixed by their space,
//! so that a group of writes is one atomic `apply_batch`.

use std::path::Path;

use super::kv::{Entry, Kv, Space, StoreError, Write};

pub struct SledKv {
    db: sled::Db,
}

impl SledKv {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            // Durability comes from the explicit flush of group commit, not a timer.
            .flush_every_ms(None)
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .map_err(engine)?;
        Ok(Self { db })
    }
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

impl Kv for SledKv {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.db.get(prefixed(space, key)).map_err(engine)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        for entry in self
            .db
            .range(prefixed(space, from)..prefixed(space, to))
            .take(limit)
        {
            // An iteration error is a storage fault: report it, never skip it.
            let (key, value) = entry.map_err(engine)?;
            entries.push((key[1..].to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for write in writes {
            match write {
                Write::Put(space, key, value) => batch.insert(prefixed(space, &key), value),
                Write::Delete(space, key) => batch.remove(prefixed(space, &key)),
            }
        }
        self.db.apply_batch(batch).map_err(engine)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(engine)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let kv = SledKv::open(dir.path()).unwrap();
        let tickets = kv.range(Space::Tickets, b"", &[0xff], 10).unwrap();
        assert_eq!(tickets, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(kv.get(Space::Users, b"a").unwrap(), Some(b"user".to_vec()));
        assert!(kv.size_on_disk().unwrap() > 0);
    }
}
