//! Refresh tokens: a handheld in a basement must never have to type a
//! password again to upload what it recorded, so a short-lived access token
//! comes with a long-lived refresh token, bound to the device it was issued
//! to and stored (as a hash) on the server, where it can be revoked.
//!
//! Each refresh rotates the token. The one it replaced stays good until the
//! new one is first used, so an answer lost on the way to the device costs
//! nothing; any older token presented again means a copy is in other hands,
//! and the session ends for both.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::{DateTime, Duration, Utc};
use sync_protocol::{DeviceId, Sha256Hex};

use crate::store::{SessionRecord, UserRecord};

/// Most refresh sessions one user keeps; logging in on one more ends the
/// least recently used.
pub const MAX_SESSIONS_PER_USER: usize = 20;

const PREFIX: &str = "rt1";

/// A refresh token as the client holds it: `rt1.{session}.{secret}`.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub session: String,
    secret: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("RefreshToken")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A token for a new session.
    pub fn generate() -> Self {
        Self::rotated(&random_hex::<16>())
    }

    /// A new token for an existing session.
    pub fn rotated(session: &str) -> Self {
        Self {
            session: session.to_owned(),
            secret: random_hex::<32>(),
        }
    }

    /// `None` for anything that is not a token of this form.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let (Some(PREFIX), Some(session), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let hex =
            |text: &str, len| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(session, 32) && hex(secret, 64)).then(|| Self {
            session: session.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }

    /// What the server stores instead of the secret.
    pub fn secret_hash(&self) -> Sha256Hex {
        Sha256Hex::of(self.secret.as_bytes())
    }

    /// The form the client holds.
    pub fn expose(&self) -> String {
        format!("{PREFIX}.{}.{}", self.session, self.secret)
    }
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new session for `user` on `device`, for `token`.
pub fn new_session(
    token: &RefreshToken,
    user: &UserRecord,
    device: Option<DeviceId>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> SessionRecord {
    SessionRecord {
        id: token.session.clone(),
        user: user.id.clone(),
        device,
        generation: user.generation,
        secret: token.secret_hash(),
        previous: None,
        created_at: now,
        refreshed_at: now,
        expires_at: now + ttl,
    }
}

/// Why a refresh token was refused. The client is told only that it was;
/// it logs in again either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    /// Presented with another device id than the one it was issued to.
    OtherDevice,
    /// The user was changed, disabled or had their sessions ended since.
    UserChanged,
    /// An older token of the session came back: the session ends.
    Reused,
}

impl Refusal {
    /// Whether the session is ended by this refusal.
    pub fn ends_session(self) -> bool {
        matches!(
            self,
            Refusal::Expired | Refusal::UserChanged | Refusal::Reused
        )
    }
}

/// The session after a refresh with `presented`, rotated to `next`; or why not.
pub fn refresh(
    session: &SessionRecord,
    user: Option<&UserRecord>,
    presented: &RefreshToken,
    device: Option<&DeviceId>,
    next: &RefreshToken,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<SessionRecord, Refusal> {
    let hash = presented.secret_hash();
    let current = hash == session.secret;
    let previous = session.previous.as_ref() == Some(&hash);
    if !current && !previous {
        return Err(Refusal::Reused);
    }
    if now >= session.expires_at {
        return Err(Refusal::Expired);
    }
    if session.device.is_some() && session.device.as_ref() != device {
        return Err(Refusal::OtherDevice);
    }
    match user {
        Some(user) if !user.disabled && user.generation == session.generation => {}
        _ => return Err(Refusal::UserChanged),
    }
    Ok(SessionRecord {
        secret: next.secret_hash(),
        // The current one stays good until `next` is first used; the
        // previous one, when it was presented, is the one kept.
        previous: Some(hash),
        refreshed_at: now,
        expires_at: now + ttl,
        ..session.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, hour, 0, 0).unwrap()
    }

    fn li() -> UserRecord {
        crate::test_support::technician_li(0)
    }

    fn device() -> DeviceId {
        DeviceId::parse("hh-li-1").unwrap()
    }

    fn ttl() -> Duration {
        Duration::days(30)
    }

    #[test]
    fn a_token_round_trips_and_anything_else_does_not_parse() {
        let token = RefreshToken::generate();
        assert_eq!(RefreshToken::parse(&token.expose()), Some(token.clone()));
        assert!(!format!("{token:?}").contains(&token.secret));
        for bad in [
            "",
            "rt1",
            "rt1.abc.def",
            "rt2.x.y",
            &format!("{}.x", token.expose()),
        ] {
            assert_eq!(RefreshToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_refresh_rotates_and_the_replaced_token_stays_good_until_the_new_one_is_used() {
        let first = RefreshToken::generate();
        let session = new_session(&first, &li(), Some(device()), at(8), ttl());
        let second = RefreshToken::rotated(&session.id);
        let rotated = refresh(
            &session,
            Some(&li()),
            &first,
            Some(&device()),
            &second,
            at(9),
            ttl(),
        )
        .unwrap();
        assert_eq!(rotated.expires_at, at(9) + ttl());
        // The answer with `second` was lost: `first` again works once more.
        let third = RefreshToken::rotated(&session.id);
        let again = refresh(
            &rotated,
            Some(&li()),
            &first,
            Some(&device()),
            &third,
            at(10),
            ttl(),
        )
        .unwrap();
        // `third` arrived and was used: `first` and `second` are now stale.
        let fourth = RefreshToken::rotated(&session.id);
        let used = refresh(
            &again,
            Some(&li()),
            &third,
            Some(&device()),
            &fourth,
            at(11),
            ttl(),
        )
        .unwrap();
        for stale in [&first, &second] {
            let refused = refresh(
                &used,
                Some(&li()),
                stale,
                Some(&device()),
                &fourth,
                at(12),
                ttl(),
            );
            assert_eq!(refused, Err(Refusal::Reused));
        }
    }

    #[test]
    fn a_refresh_is_refused_after_expiry_from_another_device_or_once_the_user_changed() {
        let token = RefreshToken::generate();
        let session = new_session(&token, &li(), Some(device()), at(8), Duration::hours(1));
        let next = RefreshToken::rotated(&session.id);
        let attempt = |user: &UserRecord, device: Option<&DeviceId>, now| {
            refresh(&session, Some(user), &token, device, &next, now, ttl())
        };
        assert_eq!(
            attempt(&li(), Some(&device()), at(9)),
            Err(Refusal::Expired)
        );
        let other = DeviceId::parse("hh-other").unwrap();
        assert_eq!(
            attempt(&li(), Some(&other), at(8)),
            Err(Refusal::OtherDevice)
        );
        assert_eq!(attempt(&li(), None, at(8)), Err(Refusal::OtherDevice));
        let moved = UserRecord {
            generation: 1,
            ..li()
        };
        assert_eq!(
            attempt(&moved, Some(&device()), at(8)),
            Err(Refusal::UserChanged)
        );
        let disabled = UserRecord {
            disabled: true,
            ..li()
        };
        assert_eq!(
            attempt(&disabled, Some(&device()), at(8)),
            Err(Refusal::UserChanged)
        );
        assert_eq!(
            refresh(&session, None, &token, Some(&device()), &next, at(8), ttl()),
            Err(Refusal::UserChanged)
        );
        assert!(attempt(&li(), Some(&device()), at(8)).is_ok());
    }
}
