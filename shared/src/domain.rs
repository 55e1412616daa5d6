//! Validated domain values. Each newtype checks its rule once, on construction, so an invalid
//! email or a too-short password cannot travel past the HTTP edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One rule broken by one input field; the API lists them all in a 422 problem body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The JSON field name, as the client sent it.
    pub field: String,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// An email address, trimmed and lower-cased (so lookups and the unique index ignore case).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Checks the shape (one `@`, a dotted domain, no spaces, at most 254 characters).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err("is required".into());
        }
        if value.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err("is not an email address".into());
        };
        let valid = !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err("is not an email address".into());
        }
        Ok(Self(value))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Email addresses are personal data: keep them out of Debug output (and so out of logs).
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// A new password that meets the policy: 12 to 128 characters (OWASP ASVS 2.1), not blank.
pub struct Password(String);

impl Password {
    /// Smallest accepted length, in characters.
    pub const MIN_CHARS: usize = 12;
    /// Largest accepted length; bounds the hashing work an attacker can ask for.
    pub const MAX_CHARS: usize = 128;

    /// Checks the policy.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!("must be at least {} characters", Self::MIN_CHARS));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if raw.trim().is_empty() {
            return Err("must not be only spaces".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a user may do. Stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the platform: queues, users, maintenance.
    Admin,
    /// Owns patients and their sessions.
    Practitioner,
    /// Reads their own summaries.
    Patient,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Practitioner => "practitioner",
            Role::Patient => "patient",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "practitioner" => Some(Role::Practitioner),
            "patient" => Some(Role::Patient),
            _ => None,
        }
    }
}

/// A display name: trimmed, 1 to 100 characters.
pub fn parse_display_name(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > 100 {
        return Err("must be at most 100 characters".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a da@x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_follow_the_length_policy() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("            ").is_err());
        assert!(Password::parse("correct horse battery").is_ok());
        assert!(Password::parse(&"é".repeat(12)).is_ok());
    }

    #[test]
    fn debug_output_hides_personal_data() {
        let email = Email::parse("ada@example.org").unwrap();
        assert!(!format!("{email:?}").contains("ada"));
        let pw = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{pw:?}").contains("horse"));
    }
}
