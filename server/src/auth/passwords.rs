//! argon2id password hashes, and the bounded pool that checks them.
//!
//! One argon2 check with the default parameters takes about 19 MiB and tens
//! of milliseconds. Run on an unbounded pool, a login flood costs gigabytes;
//! here a fixed number of threads each check one password at a time, a
//! bounded queue holds the rest, and a full queue is refused at once
//! ([`Busy`]). The threads are few and long-lived, so the memory allocator
//! keeps at most their few working sets.
//!
//! Each worker keeps the argon2 memory of its checks and reuses it: no
//! allocation (and no page faults) per check, so the memory is bounded by
//! the number of workers and every check of the same parameters takes as
//! long as any other. An unknown (or disabled) user's login is checked
//! against a stand-in hash with the same parameters, so it takes as long as
//! a wrong password and reveals nothing about which usernames exist.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
/// Allocates the check's memory: the workers use [`Checker::verify`].
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

/// The largest argon2 memory a stored hash may ask for, in KiB: one above it
/// never matches (every hash the server makes asks for 19 MiB).
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// One worker's reusable argon2 memory.
#[derive(Default)]
struct Checker {
    blocks: Vec<Block>,
}

impl Checker {
    fn run(&mut self, job: Job) {
        match job {
            Job::Verify {
                password,
                hash,
                answer,
            } => {
                let _ = answer.send(self.check(&password, hash.as_deref()));
            }
            Job::Hash { password, answer } => {
                let _ = answer.send(hash_password(&password));
            }
        }
    }

    /// Checks against `hash`, or against the stand-in when there is none.
    fn check(&mut self, password: &str, hash: Option<&str>) -> bool {
        match hash {
            Some(hash) => self.verify(password, hash),
            None => {
                self.verify(password, stand_in_hash());
                false
            }
        }
    }

    /// [`verify_password`] in this worker's memory; the comparison of the
    /// outputs takes constant time.
    fn verify(&mut self, password: &str, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from);
        let (Ok(version), Ok(params)) = (version, Params::try_from(&parsed)) else {
            return false;
        };
        if params.m_cost() > MAX_MEMORY_KIB {
            return false;
        }
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        if self.blocks.len() < params.block_count() {
            self.blocks.resize(params.block_count(), Block::default());
        }
        let argon2 = Argon2::new(algorithm, version, params);
        let computed = Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut self.blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        });
        computed.is_ok_and(|computed| computed == expected)
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
                    if index == 0 {
                        // Made before the first unknown user asks, so that
                        // no first answer takes longer than the others.
                        stand_in_hash();
                    }
                    let mut checker = Checker::default();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match next {
                            Ok(job) => checker.run(job),
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
            return Ok(Checker::default().check(&password, hash.as_deref()));
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

    #[test]
    fn a_worker_checks_in_its_own_memory_as_the_library_does() {
        let mut checker = Checker::default();
        let hash = hash_password("correct horse").unwrap();
        for _ in 0..2 {
            assert!(checker.verify("correct horse", &hash));
            assert!(!checker.verify("wrong", &hash));
        }
        // Other parameters (a cheap hash) check the same way.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let cheap_hash = cheap.hash_password(b"tiny", &salt).unwrap().to_string();
        assert!(checker.verify("tiny", &cheap_hash));
        assert!(!checker.verify("huge", &cheap_hash));
        assert!(!checker.verify("correct horse", "not-a-hash"));
        // A hash that asks for more memory than any the server makes never matches.
        let greedy = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MAX_MEMORY_KIB + 8, 1, 1, None).unwrap(),
        );
        let greedy_hash = greedy.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(!checker.verify("pw", &greedy_hash));
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
