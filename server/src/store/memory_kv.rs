//! An in-memory [`Kv`] for tests and simulation. Flush is a no-op: nothing
//! here survives the process, by design.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::kv::{Entry, Kv, Space, StoreError, Write};

type Entries = BTreeMap<(Space, Vec<u8>), Vec<u8>>;

#[derive(Default)]
pub struct MemoryKv {
    entries: RwLock<Entries>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Engine("memory store lock poisoned".to_owned())
}

/// The first `limit` entries of a range, without their space.
fn first_entries<'a>(
    range: impl Iterator<Item = (&'a (Space, Vec<u8>), &'a Vec<u8>)>,
    limit: usize,
) -> Vec<Entry> {
    range
        .take(limit)
        .map(|((_, key), value)| (key.clone(), value.clone()))
        .collect()
}

impl Kv for MemoryKv {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let entries = self.entries.read().map_err(poisoned)?;
        Ok(entries.get(&(space, key.to_vec())).cloned())
    }

    fn contains(&self, space: Space, key: &[u8]) -> Result<bool, StoreError> {
        let entries = self.entries.read().map_err(poisoned)?;
        Ok(entries.contains_key(&(space, key.to_vec())))
    }

    fn range(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let entries = self.entries.read().map_err(poisoned)?;
        let range = entries.range((space, from.to_vec())..(space, to.to_vec()));
        Ok(first_entries(range, limit))
    }

    fn range_back(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let entries = self.entries.read().map_err(poisoned)?;
        let range = entries.range((space, from.to_vec())..(space, to.to_vec()));
        Ok(first_entries(range.rev(), limit))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut entries = self.entries.write().map_err(poisoned)?;
        for write in writes {
            match write {
                Write::Put(space, key, value) => entries.insert((space, key), value),
                Write::Delete(space, key) => entries.remove(&(space, key)),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}
