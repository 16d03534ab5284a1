//! A layer over a [`Kv`] that holds writes back until its flush, so that the
//! group-commit writer hands the storage engine a whole group of atomic
//! groups as one. Reads through the layer see the held writes first.
//!
//! Why: sled writes its log buffer out around every `apply_batch`, so one
//! batch per command cost two small disk writes per command; one batch per
//! group costs two per group (docs/BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::kv::{Entry, Kv, Space, StoreError, Write};

/// Held writes: the last write to each key wins, as it would in the backend.
type Held = BTreeMap<(Space, Vec<u8>), Option<Vec<u8>>>;

pub struct StagedKv {
    base: Arc<dyn Kv>,
    held: Mutex<Held>,
}

impl StagedKv {
    pub fn new(base: Arc<dyn Kv>) -> Self {
        Self {
            base,
            held: Mutex::new(Held::new()),
        }
    }

    /// Apply every held write to the backend as one atomic group. On an
    /// error none of them is applied, and they are gone.
    fn commit(&self) -> Result<(), StoreError> {
        let held = std::mem::take(&mut *self.held.lock().map_err(poisoned)?);
        if held.is_empty() {
            return Ok(());
        }
        let writes = held
            .into_iter()
            .map(|((space, key), value)| match value {
                Some(value) => Write::Put(space, key, value),
                None => Write::Delete(space, key),
            })
            .collect();
        self.base.apply(writes)
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Engine("staged writes lock poisoned".to_owned())
}

impl StagedKv {
    /// The backend's entries of the range with the held writes over them,
    /// ascending or descending.
    fn merged_range(
        &self,
        space: Space,
        (from, to): (&[u8], &[u8]),
        limit: usize,
        descending: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        let held = self.held.lock().map_err(poisoned)?;
        let held_in_range: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = held
            .range((space, from.to_vec())..(space, to.to_vec()))
            .map(|((_, key), value)| (key, value))
            .collect();
        // Each held delete can hide at most one backend entry.
        let wanted = limit.saturating_add(held_in_range.len());
        let base = if descending {
            self.base.range_back(space, from, to, wanted)?
        } else {
            self.base.range(space, from, to, wanted)?
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
        for (key, value) in held_in_range {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(if descending {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        })
    }
}

impl Kv for StagedKv {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let held = self.held.lock().map_err(poisoned)?;
        match held.get(&(space, key.to_vec())) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(space, key),
        }
    }

    fn contains(&self, space: Space, key: &[u8]) -> Result<bool, StoreError> {
        let held = self.held.lock().map_err(poisoned)?;
        match held.get(&(space, key.to_vec())) {
            Some(value) => Ok(value.is_some()),
            None => self.base.contains(space, key),
        }
    }

    fn range(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.merged_range(space, (from, to), limit, false)
    }

    fn range_back(
        &self,
        space: Space,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.merged_range(space, (from, to), limit, true)
    }

    /// Held back until [`Kv::flush`].
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut held = self.held.lock().map_err(poisoned)?;
        for write in writes {
            match write {
                Write::Put(space, key, value) => held.insert((space, key), Some(value)),
                Write::Delete(space, key) => held.insert((space, key), None),
            };
        }
        Ok(())
    }

    /// Apply everything held as one atomic group, then make it durable.
    fn flush(&self) -> Result<(), StoreError> {
        self.commit()?;
        self.base.flush()
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.base.size_on_disk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;

    fn put(key: &str, value: &str) -> Write {
        Write::Put(Space::Tickets, key.into(), value.into())
    }

    fn staged() -> (Arc<MemoryKv>, StagedKv) {
        let base = Arc::new(MemoryKv::new());
        base.apply(vec![put("a", "1"), put("b", "2"), put("c", "3")])
            .unwrap();
        (base.clone(), StagedKv::new(base))
    }

    fn keys(entries: Vec<Entry>) -> Vec<String> {
        entries
            .into_iter()
            .map(|(key, _)| String::from_utf8(key).unwrap())
            .collect()
    }

    #[test]
    fn held_writes_are_read_back_at_once_but_reach_the_backend_only_on_flush() {
        let (base, staged) = staged();
        let delete_b = Write::Delete(Space::Tickets, "b".into());
        staged.apply(vec![put("a", "9"), delete_b]).unwrap();
        assert_eq!(
            staged.get(Space::Tickets, b"a").unwrap(),
            Some(b"9".to_vec())
        );
        assert_eq!(staged.get(Space::Tickets, b"b").unwrap(), None);
        assert_eq!(base.get(Space::Tickets, b"a").unwrap(), Some(b"1".to_vec()));
        staged.flush().unwrap();
        assert_eq!(base.get(Space::Tickets, b"a").unwrap(), Some(b"9".to_vec()));
        assert_eq!(base.get(Space::Tickets, b"b").unwrap(), None);
    }

    #[test]
    fn the_last_write_to_a_key_wins() {
        let (base, staged) = staged();
        staged.apply(vec![put("a", "8")]).unwrap();
        staged
            .apply(vec![
                Write::Delete(Space::Tickets, "a".into()),
                put("a", "9"),
            ])
            .unwrap();
        staged.flush().unwrap();
        assert_eq!(base.get(Space::Tickets, b"a").unwrap(), Some(b"9".to_vec()));
    }

    #[test]
    fn a_range_merges_held_writes_and_respects_the_limit() {
        let (_, staged) = staged();
        staged
            .apply(vec![
                Write::Delete(Space::Tickets, "a".into()),
                put("ab", "new"),
                put("z", "out of range"),
            ])
            .unwrap();
        let all = staged.range(Space::Tickets, b"a", b"d", 10).unwrap();
        assert_eq!(keys(all), ["ab", "b", "c"]);
        let two = staged.range(Space::Tickets, b"a", b"d", 2).unwrap();
        assert_eq!(keys(two), ["ab", "b"]);
    }
}
