//! Authentication: HS256 access tokens with the algorithm pinned and
//! `exp`, `iss`, `aud` (and `nbf` when present) validated, naming a user and
//! the generation of their record they were issued for; refresh tokens bound
//! to a device (`refresh`); password hashing on a bounded pool (`passwords`);
//! and the throttling of login attempts (`throttle`).

pub mod passwords;
pub mod refresh;
pub mod throttle;

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sync_protocol::UserId;

use crate::config::AuthConfig;
use crate::store::UserRecord;

pub use passwords::{PasswordChecker, hash_password, random_secret, verify_password};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// What a token says about its bearer: who, and which generation of their
/// user record. Role and estate are read from the record on every request,
/// so a token stops working the moment the record changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    /// [`UserRecord::generation`] when the token was issued.
    pub generation: u64,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not valid: {0}")]
    InvalidToken(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Issues and checks access tokens.
pub struct Authority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_minutes: i64,
}

impl Authority {
    pub fn new(config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self {
            encoding: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(config.jwt_secret.as_bytes()),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl_minutes: config.token_ttl_minutes,
        }
    }

    /// A token for `user` as their record is now, valid from now for the
    /// configured lifetime.
    pub fn issue(&self, user: &UserRecord) -> Result<(String, DateTime<Utc>), AuthError> {
        // jsonwebtoken validates against the system clock, so tokens use it too.
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let exp = now + self.ttl_minutes * 60;
        let claims = Claims {
            sub: user.id.clone(),
            generation: user.generation,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let expires_at = Utc
            .timestamp_opt(exp, 0)
            .single()
            .ok_or_else(|| AuthError::InvalidToken("expiry out of range".to_owned()))?;
        Ok((token, expires_at))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            jwt_secret: "0123456789abcdef0123456789abcdef".to_owned(),
            ..AuthConfig::default()
        }
    }

    fn user() -> UserRecord {
        crate::test_support::technician_li(3)
    }

    #[test]
    fn an_issued_token_verifies_and_names_the_user_and_the_generation_of_their_record() {
        let authority = Authority::new(&config());
        let (token, _) = authority.issue(&user()).unwrap();
        let claims = authority.verify(&token).unwrap();
        assert_eq!(claims.generation, 3);
        assert_eq!(claims.sub.as_str(), "li");
    }

    #[test]
    fn a_token_for_another_audience_or_secret_is_refused() {
        let (token, _) = Authority::new(&config()).issue(&user()).unwrap();
        let other_audience = AuthConfig {
            audience: "someone-else".to_owned(),
            ..config()
        };
        assert!(Authority::new(&other_audience).verify(&token).is_err());
        let other_secret = AuthConfig {
            jwt_secret: "x".repeat(32),
            ..config()
        };
        assert!(Authority::new(&other_secret).verify(&token).is_err());
    }
}
