//! Authentication: argon2 password hashes and HS256 JWTs with the algorithm
//! pinned and `exp`, `iss`, `aud` (and `nbf` when present) validated.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sync_protocol::{EstateId, Role, UserId};

use crate::config::AuthConfig;
use crate::store::UserRecord;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub estate: EstateId,
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

/// Issues and checks tokens.
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

    /// A token for `user`, valid from now for the configured lifetime.
    pub fn issue(&self, user: &UserRecord) -> Result<(String, DateTime<Utc>), AuthError> {
        // jsonwebtoken validates against the system clock, so tokens use it too.
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let exp = now + self.ttl_minutes * 60;
        let claims = Claims {
            sub: user.id.clone(),
            role: user.role,
            estate: user.estate.clone(),
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

/// A fresh random secret, for demo mode when none is configured.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        UserRecord {
            id: UserId::parse("li").unwrap(),
            role: Role::Technician,
            estate: EstateId::parse("E01").unwrap(),
            display_name: "李师傅".to_owned(),
            password_hash: String::new(),
        }
    }

    #[test]
    fn an_issued_token_verifies_and_carries_the_role() {
        let authority = Authority::new(&config());
        let (token, _) = authority.issue(&user()).unwrap();
        let claims = authority.verify(&token).unwrap();
        assert_eq!(claims.role, Role::Technician);
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

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not-a-hash"));
    }
}
