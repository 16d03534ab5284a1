//! Built-in users: making a record, and the directory every request asks who
//! its caller is now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sync_protocol::admin::{check_display_name, check_password};
use sync_protocol::{EstateId, FieldProblem, Role, UserId};

use crate::auth::{AuthError, hash_password};
use crate::store::{Store, StoreError, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{}", .0.problem)]
    Invalid(FieldProblem),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A user record ready to store, its password hashed here (the command
/// line and the demo; the API hashes on its password workers).
pub fn new_user(
    id: UserId,
    role: Role,
    estate: EstateId,
    display_name: &str,
    password: &str,
) -> Result<UserRecord, UserError> {
    check_password(password).map_err(UserError::Invalid)?;
    let display_name = check_display_name(display_name).map_err(UserError::Invalid)?;
    Ok(UserRecord {
        id,
        role,
        estate,
        display_name,
        password_hash: hash_password(password)?,
        disabled: false,
        generation: 0,
    })
}

/// Most users the directory keeps in memory; past it, it starts afresh.
const MAX_CACHED_USERS: usize = 10_000;

/// The users as the store has them now, with a bounded cache in front: every
/// request reads its caller's record (role, estate, generation), so a change
/// takes effect on the next request, not when a token expires. The writer
/// tells the directory which users each flushed group changed
/// ([`UserDirectory::changed`]) before it answers anyone.
#[derive(Clone)]
pub struct UserDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cache: RwLock<HashMap<UserId, Arc<UserRecord>>>,
    /// Raised by every change: a record read before a change is not cached after it.
    epoch: AtomicU64,
}

impl UserDirectory {
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                cache: RwLock::new(HashMap::new()),
                epoch: AtomicU64::new(0),
            }),
        }
    }

    /// The user's record as it is now; `None` for an unknown user (which is
    /// not cached, so made-up names cannot fill the cache).
    pub fn get(&self, id: &UserId) -> Result<Option<Arc<UserRecord>>, StoreError> {
        let inner = &self.inner;
        if let Some(hit) = read(&inner.cache).get(id) {
            return Ok(Some(hit.clone()));
        }
        let epoch = inner.epoch.load(Ordering::Acquire);
        let Some(record) = inner.store.user(id)? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.keep(id, &record, epoch);
        Ok(Some(record))
    }

    /// Cache `record`, read from the store after `epoch` was taken.
    fn keep(&self, id: &UserId, record: &Arc<UserRecord>, epoch: u64) {
        let inner = &self.inner;
        let mut cache = write(&inner.cache);
        // Under the lock `changed` takes too: either it ran before (the epoch
        // moved, and the read may be older than the change: not kept), or it
        // runs after and removes what is kept here.
        if inner.epoch.load(Ordering::Acquire) == epoch {
            if cache.len() >= MAX_CACHED_USERS {
                cache.clear();
            }
            cache.insert(id.clone(), record.clone());
        }
    }

    /// These users' records changed in the store.
    pub fn changed(&self, ids: &[UserId]) {
        if ids.is_empty() {
            return;
        }
        let mut cache = write(&self.inner.cache);
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            cache.remove(id);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Changes;

    fn record(generation: u64) -> UserRecord {
        crate::test_support::technician_li(generation)
    }

    fn put(store: &Store, user: &UserRecord) {
        let mut changes = Changes::default();
        changes.put_user(user);
        store.apply(changes).unwrap();
    }

    #[test]
    fn a_change_is_seen_on_the_next_read_once_the_directory_is_told() {
        let store = Store::in_memory();
        let directory = UserDirectory::new(store.clone());
        let li = UserId::parse("li").unwrap();
        assert!(directory.get(&li).unwrap().is_none());
        put(&store, &record(0));
        assert_eq!(directory.get(&li).unwrap().unwrap().generation, 0);
        put(&store, &record(1));
        directory.changed(std::slice::from_ref(&li));
        assert_eq!(directory.get(&li).unwrap().unwrap().generation, 1);
    }

    #[test]
    fn a_record_read_before_a_change_is_not_cached_after_it() {
        let store = Store::in_memory();
        let directory = UserDirectory::new(store.clone());
        let li = UserId::parse("li").unwrap();
        put(&store, &record(0));
        // A reader takes the epoch and reads generation 0; meanwhile the
        // change lands and is announced; then the reader tries to keep it.
        let epoch = directory.inner.epoch.load(Ordering::Acquire);
        let stale = Arc::new(store.user(&li).unwrap().unwrap());
        put(&store, &record(1));
        directory.changed(std::slice::from_ref(&li));
        directory.keep(&li, &stale, epoch);
        assert_eq!(directory.get(&li).unwrap().unwrap().generation, 1);
    }

    #[test]
    fn new_users_need_a_password_of_8_characters_and_a_name() {
        let li = || UserId::parse("li").unwrap();
        let e01 = || EstateId::parse("E01").unwrap();
        assert!(new_user(li(), Role::Technician, e01(), "李师傅", "1234567").is_err());
        assert!(new_user(li(), Role::Technician, e01(), " ", "12345678").is_err());
        let made = new_user(li(), Role::Technician, e01(), " 李师傅 ", "12345678").unwrap();
        assert_eq!(made.display_name, "李师傅");
        assert_eq!(made.generation, 0);
    }
}
