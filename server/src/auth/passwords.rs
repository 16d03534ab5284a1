//! argon2id password hashes, and the bounded pool that checks them.
//!
//! One argon2 check with the default parameters takes about 19 MiB and tens
//! of milliseconds. Run on an unbounded pool, a login flood costs gigabytes;
//! here a fixed number of threads each check one password at a time, a
//! bounded queue holds the rest, and a full queue is refused at once
//! ([`Busy`]). The threads are few and long-lived, so the memory allocator
//! keeps at most their few working sets.
//!
//! An unknown (or disabled) user's login is checked against a stand-in hash
//! with the same parameters, so it takes as long as a wrong password and
//! reveals nothing about which usernames exist.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::oneshot;

use super::AuthError;
use crate::execution::Execution;

/// An argon2id hash in PHC format.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// Whether `password` matches the stored hash; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random secret of 32 bytes, in hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every password worker is busy and the queue is full: try again shortly.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

enum Job {
    Verify {
        password: String,
        hash: Option<String>,
        answer: oneshot::Sender<bool>,
    },
    Hash {
        password: String,
        answer: oneshot::Sender<Result<String, AuthError>>,
    },
}

impl Job {
    fn run(self) {
        match self {
            Job::Verify {
                password,
                hash,
                answer,
            } => {
                let _ = answer.send(check(&password, hash.as_deref()));
            }
            Job::Hash { password, answer } => {
                let _ = answer.send(hash_password(&password));
            }
        }
    }
}

/// Checks against `hash`, or against the stand-in when there is none.
fn check(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(hash) => verify_password(password, hash),
        None => {
            verify_password(password, stand_in_hash());
            false
        }
    }
}

/// A hash no password is known for, made once, with the parameters every
/// stored hash is made with.
fn stand_in_hash() -> &'static str {
    static STAND_IN: OnceLock<String> = OnceLock::new();
    STAND_IN.get_or_init(|| {
        hash_password(&random_secret()).expect("hashing a random password succeeds")
    })
}

/// Where password hashes are made and checked.
#[derive(Clone)]
pub struct PasswordChecker {
    /// `None` under [`Execution::Inline`]: checks run on the calling task.
    jobs: Option<Arc<SyncSender<Job>>>,
}

impl PasswordChecker {
    /// `workers` threads with `queue` checks waiting at most. The threads
    /// end when the last handle is dropped.
    pub fn start(execution: Execution, workers: usize, queue: usize) -> Self {
        if execution == Execution::Inline {
            return Self { jobs: None };
        }
        let (jobs, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..workers {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match next {
                            Ok(job) => job.run(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a password worker starts");
        }
        Self {
            jobs: Some(Arc::new(jobs)),
        }
    }

    /// Whether `password` matches `hash`; with no hash (an unknown user),
    /// the same work is done and the answer is no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        let Some(jobs) = &self.jobs else {
            return Ok(check(&password, hash.as_deref()));
        };
        let (answer, answered) = oneshot::channel();
        submit(
            jobs,
            Job::Verify {
                password,
                hash,
                answer,
            },
        )?;
        // A worker that died mid-check (it cannot: argon2 does not panic on
        // any input) counts as a mismatch, never as a match.
        Ok(answered.await.unwrap_or(false))
    }

    /// A new hash of `password`.
    pub async fn hash(&self, password: String) -> Result<Result<String, AuthError>, Busy> {
        let Some(jobs) = &self.jobs else {
            return Ok(hash_password(&password));
        };
        let (answer, answered) = oneshot::channel();
        submit(jobs, Job::Hash { password, answer })?;
        Ok(answered
            .await
            .unwrap_or_else(|_| Err(AuthError::Hashing("the worker stopped".to_owned()))))
    }
}

fn submit(jobs: &SyncSender<Job>, job: Job) -> Result<(), Busy> {
    match jobs.try_send(job) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not-a-hash"));
    }

    #[tokio::test]
    async fn the_pool_checks_passwords_and_an_unknown_user_never_matches() {
        let checker = PasswordChecker::start(Execution::Threads, 1, 4);
        let hash = checker.hash("correct horse".into()).await.unwrap().unwrap();
        assert!(
            checker
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!checker.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(!checker.verify("correct horse".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let checker = PasswordChecker::start(Execution::Threads, 1, 1);
        let hash = hash_password("correct horse").unwrap();
        // One running, one waiting: the rest are refused, not queued.
        let mut checks = Vec::new();
        for _ in 0..6 {
            let checker = checker.clone();
            let hash = hash.clone();
            checks.push(tokio::spawn(async move {
                checker.verify("correct horse".into(), Some(hash)).await
            }));
        }
        let mut refused = 0;
        for check in checks {
            if check.await.unwrap().is_err() {
                refused += 1;
            }
        }
        assert!(refused >= 3, "{refused} of 6 refused");
    }
}
