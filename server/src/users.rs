//! Built-in users: adding one, with its password hashed.

use sync_protocol::{EstateId, Role, UserId};

use crate::auth::{AuthError, hash_password};
use crate::store::UserRecord;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the password needs at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A user record ready to store.
pub fn new_user(
    id: UserId,
    role: Role,
    estate: EstateId,
    display_name: &str,
    password: &str,
) -> Result<UserRecord, UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    Ok(UserRecord {
        id,
        role,
        estate,
        display_name: display_name.to_owned(),
        password_hash: hash_password(password)?,
    })
}
