//! User administration (`/api/v1/admin/users`): what an administrator sends
//! and sees. Password hashes never leave the server.

use serde::{Deserialize, Serialize};

use crate::error::FieldProblem;
use crate::ids::{EstateId, UserId};
use crate::roles::Role;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters: hashing is never asked to
/// chew through a body-sized password.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A user as administrators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSummary {
    pub id: UserId,
    pub display_name: String,
    pub role: Role,
    pub estate: EstateId,
    /// A disabled user cannot log in, and their tokens no longer work.
    pub disabled: bool,
}

/// A person of the caller's estate as pages name them (`GET /api/v1/people`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub user: UserId,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct People {
    pub people: Vec<Person>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    /// Pass as `after` to get the next page; set whenever the page is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<UserId>,
}

/// `POST /api/v1/admin/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: UserId,
    pub display_name: String,
    pub role: Role,
    pub estate: EstateId,
    pub password: String,
}

/// `PATCH /api/v1/admin/users/{id}`: the fields to change; absent ones stay.
/// A change of role, estate or `disabled` ends the user's sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estate: Option<EstateId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `POST /api/v1/admin/users/{id}/password`: a new password, which ends the
/// user's sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub password: String,
}

/// A display name, trimmed, or the problem with it.
pub fn check_display_name(raw: &str) -> Result<String, FieldProblem> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(FieldProblem::new(
            "display_name",
            "a display name needs 1-100 characters (姓名为空或过长)",
        ));
    }
    Ok(name.to_owned())
}

/// The problem with a new password, if any.
pub fn check_password(password: &str) -> Result<(), FieldProblem> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(FieldProblem::new(
            "password",
            "a password needs at least 8 characters, and at most 256 (密码至少 8 个字符)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(check_display_name("  李师傅 ").unwrap(), "李师傅");
        assert!(check_display_name("   ").is_err());
        assert!(check_display_name(&"名".repeat(101)).is_err());
        assert!(check_display_name(&"名".repeat(100)).is_ok());
    }

    #[test]
    fn passwords_need_8_to_256_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"密".repeat(256)).is_ok());
        assert!(check_password(&"x".repeat(257)).is_err());
    }
}
