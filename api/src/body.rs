//! [`JsonBody`]: the JSON request body of every operation, checked field by field against the
//! schema the spec publishes before it is parsed.
//!
//! poem-openapi's own `Json` turns a number or a boolean sent for a string into that string,
//! and answers a missing or mistyped field with a 400 that names no field. Clients (and the
//! generated ones) read the spec as the contract, so here a body that breaks its schema is a
//! 422 whose `errors` name every field that is missing or of the wrong JSON type; malformed
//! JSON stays a 400.
//!
//! The rules a schema cannot state (a password's strength, a date in the future, a minimum not
//! above its maximum) are a body's [`BodyRules`]: they run on the same raw JSON, on the fields
//! that can be read, so one 422 names every violation, the schema's and the rules', at once.

use std::{
    collections::HashMap,
    ops::Deref,
    sync::{LazyLock, Mutex},
};

use poem::{FromRequest, IntoResponse, Request, RequestBody, Result};
use poem_openapi::{
    error::ParseRequestPayloadError,
    impl_apirequest_for_payload,
    payload::{ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseFromJSON, Type},
};
use regex::Regex;
use serde_json::Value;
use tend_shared::domain::FieldError;

use crate::{error::ApiError, fields::pattern_message};

/// A JSON request body of type `T`, refused with a 422 naming the fields that break `T`'s
/// schema.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        <poem_openapi::payload::Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The rules of a body that its schema cannot state, checked on the raw JSON next to the
/// schema so one 422 names every violation. A rule reads only the fields it can (a field of
/// the wrong type is the schema's error), and a field the schema already refused is not named
/// twice. A rule a field's own schema states (a pattern mirroring a domain parser) needs no
/// entry here; these are the rules across fields or against the clock.
pub trait BodyRules {
    /// Every rule `body` breaks.
    fn rule_errors(_body: &Value) -> Vec<FieldError> {
        Vec::new()
    }
}

impl<T: ParseFromJSON + BodyRules> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        let value = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&data).map_err(|err| ParseRequestPayloadError {
                reason: err.to_string(),
            })?
        };
        let mut errors = schema_errors::<T>(&value);
        if value.is_object() {
            for rule in T::rule_errors(&value) {
                if !errors.iter().any(|e| e.field == rule.field) {
                    errors.push(rule);
                }
            }
        }
        if !errors.is_empty() {
            return Err(refuse(ApiError::validation(errors)));
        }
        // What the schema cannot say by JSON type alone (an enum value, a format).
        T::parse_from_json(Some(value))
            .map(JsonBody)
            .map_err(|err| refuse(ApiError::invalid_field("body", err.into_message())))
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON + BodyRules);

fn refuse(err: ApiError) -> poem::Error {
    poem::Error::from_response(err.into_response())
}

/// Every field of `value` that is missing (when required), of another JSON type than `T`'s
/// schema says, or outside what the schema states for it: an enum's values, a string's
/// lengths and pattern, a number's range. The domain parsers behind the handlers check the
/// same rules again (and normalise); this check names every broken one at once.
fn schema_errors<T: Type>(value: &Value) -> Vec<FieldError> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let root = T::schema_ref();
    let Some(schema) = resolve(&registry, &root) else {
        return Vec::new();
    };
    if schema.ty != "object" && schema.discriminator.is_none() {
        return Vec::new();
    }
    let Some(object) = value.as_object() else {
        return vec![FieldError::new("body", "must be a JSON object")];
    };
    let mut errors = Vec::new();
    object_errors(&registry, schema, object, "", &mut errors);
    errors
}

/// The errors of `object` against the object schema `schema`: its own properties, those of
/// the schemas it combines (`allOf`), and for a tagged union (`oneOf` with a discriminator)
/// those of the variant its tag names.
fn object_errors(
    registry: &Registry,
    schema: &MetaSchema,
    object: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(tag) = &schema.discriminator {
        let chosen = object.get(tag.property_name).and_then(Value::as_str);
        let variant = tag
            .mapping
            .iter()
            .find(|(name, _)| Some(name.as_str()) == chosen)
            .and_then(|(_, path)| {
                registry
                    .schemas
                    .get(path.trim_start_matches("#/components/schemas/"))
            });
        match variant {
            Some(variant) => object_errors(registry, variant, object, path, errors),
            None => {
                let names: Vec<&str> = tag.mapping.iter().map(|(n, _)| n.as_str()).collect();
                let message = match object.get(tag.property_name) {
                    None | Some(Value::Null) => "is required".to_owned(),
                    Some(_) => format!("must be one of: {}", names.join(", ")),
                };
                errors.push(FieldError::new(
                    &format!("{path}{}", tag.property_name),
                    message,
                ));
            }
        }
        return;
    }
    for part in &schema.all_of {
        let part = match part {
            MetaSchemaRef::Reference(name) => registry.schemas.get(name),
            MetaSchemaRef::Inline(inline) => Some(&**inline),
        };
        if let Some(part) = part {
            object_errors(registry, part, object, path, errors);
        }
    }
    for (name, property) in &schema.properties {
        let field_path = format!("{path}{name}");
        match object.get(*name) {
            None | Some(Value::Null) => {
                if schema.required.contains(name) {
                    errors.push(FieldError::new(&field_path, "is required"));
                }
            }
            Some(field) => value_errors(registry, property, field, &field_path, errors),
        }
    }
}

/// The errors of one value at `path` against `schema`: its JSON type and rules, then those
/// of its fields (an object) or items (an array), named `path.field` and `path[i]`.
fn value_errors(
    registry: &Registry,
    schema: &MetaSchemaRef,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(expected) = resolve(registry, schema) else {
        return;
    };
    if !has_type(value, expected.ty) {
        errors.push(FieldError::new(
            path,
            format!("must be {}", article(expected.ty)),
        ));
        return;
    }
    if let Some(message) = broken_rule(expected, value) {
        errors.push(FieldError::new(path, message));
        return;
    }
    match value {
        Value::Object(object) if !expected.properties.is_empty() || !expected.all_of.is_empty() => {
            object_errors(registry, expected, object, &format!("{path}."), errors);
        }
        Value::Array(items) => {
            if let Some(item_schema) = &expected.items {
                for (i, item) in items.iter().enumerate() {
                    value_errors(registry, item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// What `value` (of the schema's JSON type) breaks of the rules `schema` states, if anything.
fn broken_rule(schema: &MetaSchema, value: &Value) -> Option<String> {
    if !schema.enum_items.is_empty() && !schema.enum_items.contains(value) {
        let names: Vec<String> = schema
            .enum_items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect();
        return Some(format!("must be one of: {}", names.join(", ")));
    }
    if let Some(text) = value.as_str() {
        let chars = text.chars().count();
        if let Some(min) = schema.min_length.filter(|&min| chars < min) {
            return Some(if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            });
        }
        if let Some(max) = schema.max_length.filter(|&max| chars > max) {
            return Some(format!("must be at most {max} characters"));
        }
        if let Some(pattern) = &schema.pattern
            && !matches_pattern(pattern, text)
        {
            return Some(pattern_message(pattern).map_or_else(
                || format!("must match the pattern {pattern}"),
                str::to_owned,
            ));
        }
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.minimum.filter(|&min| number < min) {
            return Some(format!("must be at least {min}"));
        }
        if let Some(max) = schema.maximum.filter(|&max| number > max) {
            return Some(format!("must be at most {max}"));
        }
    }
    None
}

/// Whether `text` matches the schema pattern `pattern` (compiled once per pattern).
fn matches_pattern(pattern: &str, text: &str) -> bool {
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let regex = compiled
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok());
    // A pattern the regex engine cannot read is a bug of ours, not the client's: let it pass
    // (the unit tests compile every published pattern).
    regex.as_ref().is_none_or(|regex| regex.is_match(text))
}

/// The schema a reference points at (through a documented field's `allOf` wrapper).
fn resolve<'a>(registry: &'a Registry, schema: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
        MetaSchemaRef::Inline(inline) if inline.ty.is_empty() || inline.ty == "object" => {
            match inline.all_of.first() {
                Some(inner) if inline.properties.is_empty() => resolve(registry, inner),
                _ => Some(inline),
            }
        }
        MetaSchemaRef::Inline(inline) => Some(inline),
    }
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        // A schema without a type accepts anything.
        _ => true,
    }
}

fn article(ty: &str) -> String {
    match ty {
        "integer" | "object" | "array" => format!("an {ty}"),
        _ => format!("a {ty}"),
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;

    use super::*;

    /// A body with each kind of field.
    #[derive(Debug, Object)]
    struct Sample {
        name: String,
        count: i64,
        note: Option<String>,
        tags: Vec<String>,
    }

    fn messages(value: Value) -> Vec<(String, String)> {
        schema_errors::<Sample>(&value)
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        assert!(messages(serde_json::json!({"name": "a", "count": 1, "tags": []})).is_empty());
        assert_eq!(
            messages(serde_json::json!({"name": 5, "tags": "x", "note": true})),
            vec![
                ("name".into(), "must be a string".into()),
                ("count".into(), "is required".into()),
                ("note".into(), "must be a string".into()),
                ("tags".into(), "must be an array".into()),
            ]
        );
        assert_eq!(
            messages(serde_json::json!([1])),
            vec![("body".into(), "must be a JSON object".into())]
        );
    }
}
