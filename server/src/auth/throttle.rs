//! Throttling of password logins and token refreshes, so that nobody can
//! guess passwords quickly or keep the password workers busy for everyone:
//! - each client address has an allowance of attempts per minute (a token
//!   bucket; IPv6 addresses count per /64, what one client usually holds);
//! - a username that failed several times in a row waits longer and longer
//!   before its next attempt (1 s, 2 s, 4 s, … up to 15 minutes), whether or
//!   not the user exists, so the answer reveals nothing.
//!
//! Both tables are bounded; stale entries go first when one is full.
//! Time is a parameter, so the rules are tested without waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries each table holds.
const MAX_ENTRIES: usize = 10_000;
/// Failures of one username forgiven once none came for this long.
const FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(3600);
/// The longest a username waits between attempts.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Usernames are compared on this many characters at most.
const USERNAME_KEY_CHARS: usize = 64;

/// Try again after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds, rounded up, at least 1: the `retry-after` header.
    pub fn retry_after_seconds(self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

pub struct LoginThrottle {
    attempts_per_minute: u32,
    free_failures: u32,
    addresses: Mutex<Table<IpAddr, Bucket>>,
    usernames: Mutex<Table<String, Failures>>,
}

impl LoginThrottle {
    /// `attempts_per_minute` per client address; `free_failures` wrong
    /// passwords in a row before a username has to wait.
    pub fn new(attempts_per_minute: u32, free_failures: u32) -> Self {
        Self {
            attempts_per_minute: attempts_per_minute.max(1),
            free_failures,
            addresses: Mutex::new(Table::default()),
            usernames: Mutex::new(Table::default()),
        }
    }

    /// Take one attempt from the address's allowance.
    pub fn attempt_from(&self, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        let capacity = f64::from(self.attempts_per_minute);
        let per_second = capacity / 60.0;
        let mut addresses = lock(&self.addresses);
        let bucket = addresses.touch(
            client_key(address),
            now,
            |bucket, now| bucket.refilled(now, capacity, per_second) >= capacity,
            || Bucket {
                tokens: capacity,
                at: now,
            },
        );
        let tokens = bucket.refilled(now, capacity, per_second);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Throttled {
                retry_after: Duration::from_secs_f64((1.0 - tokens) / per_second),
            })
        }
    }

    /// Whether `username` may try its password now; if so, the attempt is
    /// counted as a failure at once (forgiven by [`LoginThrottle::succeeded`]),
    /// so that attempts made at the same moment cannot all pass together.
    pub fn attempt_username(&self, username: &str, now: Instant) -> Result<(), Throttled> {
        let mut usernames = lock(&self.usernames);
        let free_failures = self.free_failures;
        let failures = usernames.touch(
            username_key(username),
            now,
            |failures, now| now.duration_since(failures.last) >= FAILURES_FORGOTTEN_AFTER,
            || Failures {
                count: 0,
                last: now,
            },
        );
        if now.duration_since(failures.last) >= FAILURES_FORGOTTEN_AFTER {
            failures.count = 0;
        }
        if let Some(until) = failures.locked_until(free_failures)
            && until > now
        {
            return Err(Throttled {
                retry_after: until - now,
            });
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        Ok(())
    }

    /// The right password: the username's failures are forgiven.
    pub fn succeeded(&self, username: &str) {
        lock(&self.usernames).remove(&username_key(username));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one is still whole.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One client: an IPv4 address, or the /64 an IPv6 address is in.
pub(crate) fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

fn username_key(username: &str) -> String {
    username.chars().take(USERNAME_KEY_CHARS).collect()
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(&self, now: Instant, capacity: f64, per_second: f64) -> f64 {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * per_second;
        (self.tokens + earned).min(capacity)
    }
}

struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// After the free failures: 1 s after the last one, then 2 s, 4 s, …
    fn locked_until(&self, free_failures: u32) -> Option<Instant> {
        let over = self.count.checked_sub(free_failures)?.checked_sub(1);
        let wait = match over {
            None => return None,
            Some(doublings) => Duration::from_secs(1u64 << doublings.min(20)).min(MAX_LOCKOUT),
        };
        Some(self.last + wait)
    }
}

/// A map of at most [`MAX_ENTRIES`]: a new key first drops stale entries,
/// then, if still full, the one least recently touched.
struct Table<K, V> {
    entries: HashMap<K, (V, Instant)>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Table<K, V> {
    fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// The value for `key`, made if there is none, touched at `now`;
    /// `stale` says which entries may go when the table is full.
    fn touch(
        &mut self,
        key: K,
        now: Instant,
        stale: impl Fn(&V, Instant) -> bool,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, (value, _)| !stale(value, now));
            if self.entries.len() >= MAX_ENTRIES {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, touched))| *touched)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        let slot = self.entries.entry(key).or_insert_with(|| (make(), now));
        slot.1 = now;
        &mut slot.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_allowance_per_minute_and_then_waits() {
        let throttle = LoginThrottle::new(6, 5);
        let start = Instant::now();
        for _ in 0..6 {
            throttle.attempt_from(address("10.0.0.7"), start).unwrap();
        }
        let refused = throttle
            .attempt_from(address("10.0.0.7"), start)
            .unwrap_err();
        assert_eq!(refused.retry_after_seconds(), 10, "one attempt every 10 s");
        // Another client is not held up.
        throttle.attempt_from(address("10.0.0.8"), start).unwrap();
        throttle
            .attempt_from(address("10.0.0.7"), start + Duration::from_secs(10))
            .unwrap();
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_an_allowance() {
        let throttle = LoginThrottle::new(2, 5);
        let now = Instant::now();
        throttle
            .attempt_from(address("2001:db8:1:2::1"), now)
            .unwrap();
        throttle
            .attempt_from(address("2001:db8:1:2::ffff"), now)
            .unwrap();
        assert!(
            throttle
                .attempt_from(address("2001:db8:1:2:abcd::9"), now)
                .is_err()
        );
        throttle
            .attempt_from(address("2001:db8:1:3::1"), now)
            .unwrap();
    }

    #[test]
    fn a_username_waits_longer_after_each_failure_past_the_free_ones() {
        let throttle = LoginThrottle::new(1000, 3);
        let mut now = Instant::now();
        for _ in 0..4 {
            throttle.attempt_username("li", now).unwrap();
        }
        // Each wait is taken, then the attempt fails again.
        let mut waits = Vec::new();
        for _ in 0..4 {
            let wait = throttle.attempt_username("li", now).unwrap_err();
            waits.push(wait.retry_after_seconds());
            now += wait.retry_after;
            throttle.attempt_username("li", now).unwrap();
        }
        assert_eq!(waits, [1, 2, 4, 8]);
        assert!(throttle.attempt_username("zhang", now).is_ok());
        throttle.succeeded("li");
        assert!(throttle.attempt_username("li", now).is_ok());
    }

    #[test]
    fn attempts_at_the_same_moment_count_before_their_answers() {
        let throttle = LoginThrottle::new(1000, 3);
        let now = Instant::now();
        let passed = (0..10)
            .filter(|_| throttle.attempt_username("li", now).is_ok())
            .count();
        assert_eq!(passed, 4, "the free failures and one more, not all ten");
    }

    #[test]
    fn failures_are_forgotten_after_an_hour_and_the_lockout_is_capped() {
        let throttle = LoginThrottle::new(1000, 0);
        let mut now = Instant::now();
        for _ in 0..40 {
            if let Err(wait) = throttle.attempt_username("li", now) {
                now += wait.retry_after;
                throttle.attempt_username("li", now).unwrap();
            }
        }
        let wait = throttle.attempt_username("li", now).unwrap_err();
        assert_eq!(wait.retry_after, MAX_LOCKOUT);
        let later = now + FAILURES_FORGOTTEN_AFTER;
        throttle.attempt_username("li", later).unwrap();
        assert_eq!(
            throttle
                .attempt_username("li", later)
                .unwrap_err()
                .retry_after_seconds(),
            1
        );
    }

    #[test]
    fn a_full_table_drops_stale_entries_then_the_oldest() {
        let throttle = LoginThrottle::new(1000, 5);
        let start = Instant::now();
        for n in 0..MAX_ENTRIES {
            throttle
                .attempt_username(&format!("user{n}"), start)
                .unwrap();
        }
        throttle
            .attempt_username("newcomer", start + Duration::from_secs(1))
            .unwrap();
        let usernames = lock(&throttle.usernames);
        assert_eq!(usernames.entries.len(), MAX_ENTRIES);
        assert!(usernames.entries.contains_key("newcomer"));
    }
}
