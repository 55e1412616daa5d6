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
    /// Longest accepted address, in characters.
    pub const MAX_CHARS: usize = 254;
    /// The rule of [`Email::parse`] as a regular expression (ECMA-262, as the OpenAPI spec
    /// states it; surrounding spaces and upper case are also taken and normalised).
    pub const PATTERN: &'static str = concat!(
        r"^\s*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*",
        r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+",
        r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\s*$",
    );

    /// Accepts a plain address only: `local@domain`, at most 254 characters, the local part
    /// a dot-atom (letters, digits and ``!#$%&'*+/=?^_`{|}~-``, dots between them), the
    /// domain dotted labels of letters, digits and inner hyphens. Everything else that mail
    /// parsers take (a display name, angle brackets, a quoted local part, comments, a list,
    /// an IP literal) is refused: any of them would let one mailbox hold several accounts.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err("is required".into());
        }
        if value.len() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        let not_plain = || "must be a plain address such as name@example.org".to_owned();
        let Some((local, domain)) = value.split_once('@') else {
            return Err(not_plain());
        };
        let atom_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        let local_ok = !local.is_empty()
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
        if !(local_ok && domain_ok) {
            return Err(not_plain());
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
    /// "Not blank" as a regular expression: some character other than a space.
    pub const PATTERN: &'static str = r"\S";

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

/// Longest display name or reference, in characters.
pub const NAME_MAX_CHARS: usize = 100;

/// The characters [`check_printable`] refuses, as the body of a regular-expression class.
macro_rules! unprintable_class {
    () => {
        r"\x00-\x1F\x7F-\x9F\xAD\u061C\u180E\u200B\u200E\u200F\u2028\u2029\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF"
    };
}

/// The rule of [`parse_display_name`] as a regular expression: printable, and not blank.
pub const NAME_PATTERN: &str = concat!(
    "^[^",
    unprintable_class!(),
    "]*[^\\s",
    unprintable_class!(),
    "][^",
    unprintable_class!(),
    "]*$"
);

/// The rule of [`check_printable`] as a regular expression (blank allowed).
pub const PRINTABLE_PATTERN: &str = concat!("^[^", unprintable_class!(), "]*$");

/// A display name: trimmed, 1 to 100 characters, printable (see [`check_printable`]).
pub fn parse_display_name(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > NAME_MAX_CHARS {
        return Err(format!("must be at most {NAME_MAX_CHARS} characters"));
    }
    check_printable(value)?;
    Ok(value.to_owned())
}

/// Refuses characters that have no place in a name or a short label: control characters
/// (NUL, line breaks, escapes), the invisible bidirectional controls that make a name read
/// differently from what it is (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), and
/// invisible characters that make two names look alike (zero-width space U+200B, word joiner
/// and invisible operators U+2060-U+2064, byte-order mark U+FEFF, soft hyphen U+00AD,
/// U+180E) or break a line where none shows (U+2028, U+2029). Zero-width (non-)joiners stay:
/// Persian and Indic names and emoji sequences need them.
pub fn check_printable(value: &str) -> Result<(), String> {
    refuse_first(value, |c| c.is_control() || hidden(c))
}

/// As [`check_printable`] for text of several lines (notes, advice): line breaks and tabs are
/// allowed, every other control, text-direction or invisible character is not.
pub fn check_text(value: &str) -> Result<(), String> {
    refuse_first(value, |c| {
        (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || hidden(c)
    })
}

/// The error of a stored text longer than `max` characters or holding a character it must not
/// (`one_line`: a name or label, [`check_printable`]; otherwise [`check_text`]), if any. The
/// one length and character rule of every bounded text field, typed by a client or written by
/// a model.
pub fn text_error(value: &str, max: usize, one_line: bool) -> Option<String> {
    if value.chars().count() > max {
        return Some(format!("must be at most {max} characters"));
    }
    let checked = if one_line {
        check_printable(value)
    } else {
        check_text(value)
    };
    checked.err()
}

/// The error naming the first character of `value` that `refused` refuses, if any.
fn refuse_first(value: &str, refused: impl Fn(char) -> bool) -> Result<(), String> {
    match value.chars().find(|&c| refused(c)) {
        Some(c) => Err(format!(
            "must not contain control, text-direction or invisible characters (found U+{:04X})",
            c as u32
        )),
        None => Ok(()),
    }
}

/// The bidirectional controls and invisible characters [`check_printable`] refuses.
fn hidden(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{200B}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
    )
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
    fn only_plain_addresses_are_accounts() {
        // Forms a mail parser takes (RFC 5322 name-addr, quoted strings, comments, groups,
        // lists, IP literals) that would deliver to some other, existing address.
        for bad in [
            "Ada <ada@example.org>",
            "<ada@example.org>",
            "\"ada\"@example.org",
            "\"ada@example.org\"@evil.org",
            "ada@example.org, eve@example.org",
            "ada@example.org;eve@example.org",
            "ada@example.org (Ada)",
            "(comment)ada@example.org",
            "ada@[127.0.0.1]",
            "group: ada@example.org;",
            "ada..lovelace@example.org",
            ".ada@example.org",
            "ada.@example.org",
            "ada@-example.org",
            "ada@example..org",
            "ada@example.org.",
            "ada\\@example.org",
            "ada@exa_mple.org",
            "ada@127.0.0.1",
            "ådа@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "ada.lovelace+tend@mail.example.co.uk",
            "o'brien@example.ie",
            "x@a1.io",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn names_refuse_control_and_direction_characters() {
        for bad in [
            "Ada\0",
            "Ada\nLovelace",
            "\u{202E}ecilA",
            "Ada\u{2066}x",
            "A\u{7}",
        ] {
            assert!(parse_display_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_display_name(" Åsa Öberg ").unwrap(), "Åsa Öberg");
        assert!(parse_display_name("Zoë 李").is_ok());
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
