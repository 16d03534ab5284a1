//! The one error type of the handheld library. Every variant has a stable
//! code ([`HandheldError::code`]) that an app branches on; the message is for
//! people and may change wording.

/// Why an operation of the handheld did not happen. Nothing recorded is ever
/// lost by an error: the outbox stays as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandheldError {
    /// What the user entered cannot be recorded; nothing was saved.
    #[error("{message}")]
    InvalidInput { field: String, message: String },
    #[error("ticket {ticket_id} is not on this handheld")]
    TicketNotFound { ticket_id: String },
    /// The ticket left the technician (reassigned, cancelled, closed or
    /// converted); it stays only until what was recorded on it is uploaded.
    #[error("ticket {ticket_id} is no longer yours ({reason}); nothing more can be recorded on it")]
    TicketRevoked { ticket_id: String, reason: String },
    #[error(
        "ticket {ticket_id} has no result for the owner to sign: record it with `complete` first"
    )]
    NothingToSign { ticket_id: String },
    #[error("{limit} changes are waiting to upload: sync before recording more")]
    OutboxFull { limit: u64 },
    #[error("not logged in: log in first")]
    NotLoggedIn,
    #[error("the session has expired or was refused: log in again (nothing recorded is lost)")]
    SessionExpired,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("{user} is not a technician: only technicians use a handheld")]
    NotATechnician { user: String },
    /// The server binds a device to the first technician who syncs with it.
    #[error(
        "this handheld belongs to {owner}; {user} needs a handheld (data directory) of their own"
    )]
    DeviceOfAnotherUser { owner: String, user: String },
    #[error("no server address is known: give the server's URL")]
    NoServer,
    /// No answer: a request may or may not have been processed; the next
    /// sync sends the same changes again, which is safe.
    #[error("the server could not be reached: {message}")]
    Offline { message: String },
    /// The server answered but could not process the request now (500,
    /// 503); like [`HandheldError::Offline`], the next sync retries.
    #[error("the server is unavailable ({code}): {message}")]
    ServerUnavailable { code: String, message: String },
    /// An answer that does not follow the protocol; nothing was taken from it.
    #[error("the server's answer could not be understood: {message}")]
    BadAnswer { message: String },
    #[error("the server speaks another protocol version: {message}")]
    ProtocolMismatch { message: String },
    #[error("the server refused the request ({code}): {message}")]
    ServerRefused { code: String, message: String },
    #[error("local storage failed: {message}")]
    Storage { message: String },
}

impl HandheldError {
    /// Stable and machine-readable, e.g. `session_expired`.
    pub fn code(&self) -> &'static str {
        match self {
            HandheldError::InvalidInput { .. } => "invalid_input",
            HandheldError::TicketNotFound { .. } => "ticket_not_found",
            HandheldError::TicketRevoked { .. } => "ticket_revoked",
            HandheldError::NothingToSign { .. } => "nothing_to_sign",
            HandheldError::OutboxFull { .. } => "outbox_full",
            HandheldError::NotLoggedIn => "not_logged_in",
            HandheldError::SessionExpired => "session_expired",
            HandheldError::InvalidCredentials => "invalid_credentials",
            HandheldError::NotATechnician { .. } => "not_a_technician",
            HandheldError::DeviceOfAnotherUser { .. } => "device_of_another_user",
            HandheldError::NoServer => "no_server",
            HandheldError::Offline { .. } => "offline",
            HandheldError::ServerUnavailable { .. } => "server_unavailable",
            HandheldError::BadAnswer { .. } => "bad_answer",
            HandheldError::ProtocolMismatch { .. } => "protocol_mismatch",
            HandheldError::ServerRefused { .. } => "server_refused",
            HandheldError::Storage { .. } => "storage",
        }
    }

    pub(crate) fn invalid_input(field: &str, message: impl Into<String>) -> Self {
        HandheldError::InvalidInput {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let errors = [
            HandheldError::invalid_input("text", "empty"),
            HandheldError::TicketNotFound {
                ticket_id: "tk1".to_owned(),
            },
            HandheldError::NotLoggedIn,
            HandheldError::SessionExpired,
            HandheldError::Offline {
                message: "refused".to_owned(),
            },
            HandheldError::Storage {
                message: "disk".to_owned(),
            },
        ];
        let codes: std::collections::BTreeSet<&str> = errors.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), errors.len());
        assert!(
            codes
                .iter()
                .all(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
