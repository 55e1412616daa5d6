//! String field types whose published schema states the rule the server enforces on them.
//!
//! The rules live in `tend_shared::domain` (one parser each, which also normalises: trims,
//! lower-cases). These types put the same limits and patterns into the OpenAPI spec, so
//! generated clients, form builders and fuzzers know the rules; the API's `JsonBody`
//! checks a body against that schema first, naming every broken rule in one 422 (with
//! [`pattern_message`] saying what a pattern means), and they keep the values out of `Debug`
//! output. CI checks that schema and server agree by fuzzing the running server with
//! schemathesis (`tests/e2e/fuzz.rs`); a unit test below checks the patterns against the
//! parsers.

use std::{borrow::Cow, fmt, ops::Deref};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{
        ParseError, ParseFromJSON, ParseFromMultipartField, ParseFromParameter, ParseResult,
        ToJSON, Type,
    },
};
use serde_json::Value;
use tend_shared::domain::{Email, NAME_MAX_CHARS, NAME_PATTERN, PRINTABLE_PATTERN, Password};

/// Declares a string newtype whose schema is built by `$schema`.
macro_rules! rule_string {
    ($(#[$doc:meta])* $name:ident, $schema:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        // Personal data and secrets: never printed.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(std::iter::once(&self.0))
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(value)) => Ok(Self(value)),
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Ok(Self(value.to_owned()))
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl ParseFromMultipartField for $name {
            async fn parse_from_multipart(field: Option<poem::web::Field>) -> ParseResult<Self> {
                match field {
                    Some(field) => Ok(Self(field.text().await.map_err(ParseError::custom)?)),
                    None => Err(ParseError::expected_input()),
                }
            }
        }
    };
}

/// Pattern of [`IdempotencyKey`].
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// Whether `value` matches [`IdempotencyKey`]'s pattern: 1 to 255 visible ASCII characters.
/// The middleware checks every request's header with it (a non-ASCII key would otherwise
/// reach an operation as absent).
pub fn is_idempotency_key(value: &[u8]) -> bool {
    (1..=255).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// What breaking `pattern` means, for a person to read (the messages of the domain parsers).
pub fn pattern_message(pattern: &str) -> Option<&'static str> {
    Some(match pattern {
        p if p == Email::PATTERN => "must be a plain address such as name@example.org",
        p if p == Password::PATTERN => "must not be only spaces",
        p if p == NAME_PATTERN => {
            "must not be blank or contain control, text-direction or invisible characters"
        }
        p if p == PRINTABLE_PATTERN => {
            "must not contain control, text-direction or invisible characters"
        }
        IDEMPOTENCY_KEY_PATTERN => "must be 1 to 255 visible ASCII characters",
        _ => return None,
    })
}

/// A string schema with a pattern and length bounds.
fn string(pattern: &str, min_length: Option<usize>, max_length: usize) -> MetaSchema {
    MetaSchema {
        pattern: Some(pattern.to_owned()),
        min_length,
        max_length: Some(max_length),
        ..MetaSchema::new("string")
    }
}

rule_string!(
    /// An email address that [`Email::parse`] takes.
    EmailAddress,
    MetaSchema {
        format: Some("email"),
        ..string(Email::PATTERN, None, Email::MAX_CHARS)
    }
);

rule_string!(
    /// A new password that [`Password::parse`] takes.
    NewPassword,
    MetaSchema {
        format: Some("password"),
        ..string(
            Password::PATTERN,
            Some(Password::MIN_CHARS),
            Password::MAX_CHARS
        )
    }
);

rule_string!(
    /// A name that `parse_display_name` takes: printable and not blank.
    DisplayName,
    string(NAME_PATTERN, Some(1), NAME_MAX_CHARS)
);

rule_string!(
    /// A short printable label, possibly blank (a patient's reference).
    Label,
    string(PRINTABLE_PATTERN, None, NAME_MAX_CHARS)
);

rule_string!(
    /// Text to search or filter by: printable (a NUL could not be stored or matched anyway).
    SearchText,
    MetaSchema {
        pattern: Some(PRINTABLE_PATTERN.to_owned()),
        ..MetaSchema::new("string")
    }
);

rule_string!(
    /// A page cursor: the `next_cursor` of the previous page (a row id, a UUID).
    PageCursor,
    MetaSchema {
        format: Some("uuid"),
        ..MetaSchema::new("string")
    }
);

rule_string!(
    /// The id of a record (a UUID).
    RecordId,
    MetaSchema {
        format: Some("uuid"),
        ..MetaSchema::new("string")
    }
);

rule_string!(
    /// An `Idempotency-Key`: 1 to 255 visible ASCII characters (a UUID, say).
    IdempotencyKey,
    MetaSchema {
        min_length: Some(1),
        ..string(IDEMPOTENCY_KEY_PATTERN, None, 255)
    }
);

rule_string!(
    /// A point in time, RFC 3339 (`2026-12-01T00:00:00Z`).
    Timestamp,
    MetaSchema {
        format: Some("date-time"),
        ..MetaSchema::new("string")
    }
);

rule_string!(
    /// A calendar day, `YYYY-MM-DD` (RFC 3339 `full-date`; poem's own date type publishes a
    /// format no client or fuzzer knows).
    CalendarDate,
    MetaSchema {
        format: Some("date"),
        ..MetaSchema::new("string")
    }
);

#[cfg(test)]
mod tests {
    use regex::Regex;
    use tend_shared::domain::parse_display_name;

    use super::*;

    fn pattern_of<T: Type>() -> Regex {
        let MetaSchemaRef::Inline(schema) = T::schema_ref() else {
            panic!("inline schema");
        };
        Regex::new(schema.pattern.as_deref().unwrap()).unwrap()
    }

    /// Samples the published pattern takes must pass the domain rule, and the ones it refuses
    /// must fail it: the spec neither promises more nor hides a rule.
    #[test]
    fn published_patterns_agree_with_the_domain_rules() {
        let email = pattern_of::<EmailAddress>();
        for good in [
            " Ada@Example.ORG ",
            "ada@example.org",
            "A.B+tag@Mail.Example.CO",
            "x!#$%&'*/=?^_`{|}~-@a-b.io",
        ] {
            assert!(email.is_match(good), "{good}");
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ada",
            "a..b@x.org",
            ".a@x.org",
            "a@x",
            "a@-x.org",
            "a@x.1",
            "Ada <a@x.org>",
            "a@[127.0.0.1]",
        ] {
            assert!(!email.is_match(bad), "{bad}");
            assert!(Email::parse(bad).is_err(), "{bad}");
        }

        let name = pattern_of::<DisplayName>();
        for good in ["Åsa Öberg", " Zoë ", "x"] {
            assert!(name.is_match(good), "{good}");
            assert!(parse_display_name(good).is_ok(), "{good}");
        }
        for bad in ["", "   ", "a\u{202E}b", "a\nb", "\u{7}"] {
            assert!(!name.is_match(bad), "{bad:?}");
            assert!(parse_display_name(bad).is_err(), "{bad:?}");
        }

        let password = pattern_of::<NewPassword>();
        assert!(password.is_match("  correct horse  "));
        assert!(!password.is_match("            "));
        assert!(Password::parse("            ").is_err());

        let label = pattern_of::<Label>();
        assert!(label.is_match("") && label.is_match("File 12/B"));
        assert!(!label.is_match("a\u{0}b"));
    }
}
