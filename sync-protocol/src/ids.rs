//! Identifiers. Each one is parsed once at the edge and trusted afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// Longest identifier accepted from outside; keeps keys and logs bounded.
pub const MAX_ID_LEN: usize = 64;

fn parse_token(kind: &'static str, raw: &str) -> Result<String, ParseError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if raw.is_empty() || raw.len() > MAX_ID_LEN || !raw.chars().all(valid_char) {
        return Err(ParseError::InvalidId {
            kind,
            value: raw.chars().take(MAX_ID_LEN).collect(),
        });
    }
    Ok(raw.to_owned())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                parse_token($kind, raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(raw: String) -> Result<Self, ParseError> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A ticket's server-assigned identity; stable for the ticket's whole life.
    TicketId,
    "ticket id"
);
string_id!(
    /// A handheld's identity, chosen by the device at installation.
    DeviceId,
    "device id"
);
string_id!(
    /// A user's login name.
    UserId,
    "user id"
);
string_id!(
    /// An estate (小区/项目) code, e.g. `E01`.
    EstateId,
    "estate id"
);

/// A device's own sequence number for its mutations: 1, 2, 3, … with no gaps.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct DeviceSeq(pub u64);

impl fmt::Display for DeviceSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A ticket's version: increases by one with every applied change.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    pub fn next(self) -> Self {
        Version(self.0 + 1)
    }
}

/// A position in the server's change feed; pulls resume from one. Never a timestamp.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cursor(pub u64);

/// The identity of one device mutation: the device and its sequence number.
/// Grow-only sets on a ticket are keyed by it, which makes replays harmless.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MutationId {
    pub device: DeviceId,
    pub seq: DeviceSeq,
}

impl MutationId {
    pub fn new(device: DeviceId, seq: DeviceSeq) -> Self {
        Self { device, seq }
    }
}

impl fmt::Display for MutationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.device, self.seq.0)
    }
}

impl TryFrom<String> for MutationId {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        let invalid = || ParseError::InvalidId {
            kind: "mutation id",
            value: raw.chars().take(MAX_ID_LEN * 2).collect(),
        };
        let (device, seq) = raw.rsplit_once('#').ok_or_else(invalid)?;
        let seq = seq.parse::<u64>().map_err(|_| invalid())?;
        Ok(Self::new(DeviceId::parse(device)?, DeviceSeq(seq)))
    }
}

impl From<MutationId> for String {
    fn from(id: MutationId) -> String {
        id.to_string()
    }
}

/// A SHA-256 digest in lowercase hex; names blobs and signed completion records.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let is_hex = raw.len() == 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hex {
            return Err(ParseError::InvalidHash);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<Sha256Hex> for String {
    fn from(hash: Sha256Hex) -> String {
        hash.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_odd_characters() {
        assert!(TicketId::parse("").is_err());
        assert!(TicketId::parse(&"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(TicketId::parse("a/b").is_err());
        assert!(UserId::parse("wang.wei-2").is_ok());
    }

    #[test]
    fn mutation_id_round_trips_through_its_text_form() {
        let id = MutationId::new(DeviceId::parse("hh-7").unwrap(), DeviceSeq(42));
        let text = String::from(id.clone());
        assert_eq!(text, "hh-7#42");
        assert_eq!(MutationId::try_from(text).unwrap(), id);
        assert!(MutationId::try_from("hh-7".to_owned()).is_err());
    }

    #[test]
    fn sha256_is_lowercase_hex_of_64_digits() {
        let digest = Sha256Hex::of(b"abc");
        assert_eq!(
            digest.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Sha256Hex::parse(&digest.as_str().to_uppercase()).is_err());
        assert!(Sha256Hex::parse("abc").is_err());
    }
}
