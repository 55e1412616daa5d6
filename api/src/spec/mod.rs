//! The OpenAPI document as clients get it. poem-openapi wraps a documented field that refers to
//! another schema in `allOf: [{$ref}, {description}]`, so the field keeps its description.
//! For a reference to an enum (a string schema) that is not valid input for generators:
//! `openapi-python-client` refuses "allOf a non-object" and drops the schema and every schema
//! that uses it (`UserView`, `TokenPair`, …). Here such wrappers become the plain reference;
//! wrappers of object references, which generators take, stay.
//!
//! Also, an absent `Option` is sent as `null`, but poem-openapi's schema only leaves the
//! property out of `required`: a generated client then fails on the `null` (`fromisoformat`
//! of `None`). Every optional property is marked `nullable`, which is what the server sends and
//! accepts; a bare optional reference becomes `oneOf: [$ref]` so it can carry the flag.
//!
//! A multipart form is marked closed, as the server treats it (see `close_forms`).
//!
//! Each creating operation links to what can be done next with what it made (`links`).
//!
//! `/openapi.json`, Swagger UI and ReDoc all serve the document this makes.

mod links;

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// What the served document says about its routes, learnt once.
struct Routes {
    /// Each documented path template (split into segments, `{..}` matching any one) with the
    /// methods it answers: what a `405` names in its `Allow` header, as RFC 9110 requires.
    paths: Vec<(Vec<String>, String)>,
    /// Each operation's path parameters, in the order its path template names them.
    /// poem-openapi calls them `param0`, `param1`, … in its parse errors; a 404 names them as
    /// the spec does.
    path_params: Vec<(String, Vec<String>)>,
}

static ROUTES: OnceLock<Routes> = OnceLock::new();

/// Learns the routes of `spec` (the document served); the first call wins, and every app in
/// a process serves the same operations.
pub fn remember_routes(spec: &str) {
    ROUTES.get_or_init(|| {
        let parsed: Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Routes {
            paths: Vec::new(),
            path_params: Vec::new(),
        };
        for (path, item) in parsed["paths"].as_object().into_iter().flatten() {
            let operations = item.as_object().into_iter().flatten();
            let mut methods: Vec<String> = operations
                .clone()
                .map(|(m, _)| m.to_ascii_uppercase())
                .filter(|m| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()))
                .collect();
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".into());
            }
            let segments: Vec<String> = path
                .trim_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect();
            let names: Vec<String> = segments
                .iter()
                .filter_map(|s| Some(s.strip_prefix('{')?.strip_suffix('}')?.to_owned()))
                .collect();
            for (_, operation) in operations {
                if let Some(id) = operation["operationId"].as_str() {
                    routes.path_params.push((id.to_owned(), names.clone()));
                }
            }
            routes.paths.push((segments, methods.join(", ")));
        }
        routes
    });
}

/// The spec's name of path parameter `internal` (poem-openapi's `param<N>`) of `operation`.
pub fn path_param_name(operation: &str, internal: &str) -> Option<&'static str> {
    let index: usize = internal.strip_prefix("param")?.parse().ok()?;
    ROUTES
        .get()?
        .path_params
        .iter()
        .find(|(id, _)| id == operation)
        .and_then(|(_, names)| names.get(index))
        .map(String::as_str)
}

/// The `Allow` value for `path`, if it is a documented path.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let wanted: Vec<&str> = path.trim_matches('/').split('/').collect();
    ROUTES.get()?.paths.iter().find_map(|(segments, methods)| {
        let same = segments.len() == wanted.len()
            && segments
                .iter()
                .zip(&wanted)
                .all(|(s, w)| s == w || (s.starts_with('{') && !w.is_empty()));
        same.then_some(methods.as_str())
    })
}

/// The document `raw` (poem-openapi's) as clients get it: enum references unwrapped, optional
/// properties nullable, forms closed, creates linked to their follow-ups.
pub fn for_clients(raw: &str) -> String {
    let Ok(mut spec) = serde_json::from_str::<Value>(raw) else {
        return raw.to_owned();
    };
    let schemas = spec["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    unwrap_enum_refs(&mut spec, &schemas);
    close_forms(&mut spec);
    links::add(&mut spec, &schemas);
    if let Some(all) = spec["components"]["schemas"].as_object_mut() {
        for schema in all.values_mut() {
            mark_optional_nullable(schema);
        }
    }
    serde_json::to_string(&spec).unwrap_or_else(|_| raw.to_owned())
}

/// Marks every multipart form as closed (`additionalProperties: false`), which poem-openapi's
/// `Multipart` derive cannot say: the upload handler refuses a field it does not know.
fn close_forms(spec: &mut Value) {
    let Some(paths) = spec["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in operation.values_mut() {
            // `pointer_mut`, not indexing: `IndexMut` would add the path to every operation.
            let form = op.pointer_mut("/requestBody/content/multipart~1form-data/schema");
            if let Some(form) = form.and_then(Value::as_object_mut) {
                form.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
    }
}

/// Marks the properties an object schema does not require as `nullable`.
fn mark_optional_nullable(schema: &mut Value) {
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        let Some(object) = property.as_object_mut() else {
            continue;
        };
        if let Some(reference) = object.remove("$ref") {
            object.insert(
                "oneOf".into(),
                Value::Array(vec![serde_json::json!({ "$ref": reference })]),
            );
        }
        object.insert("nullable".into(), Value::Bool(true));
    }
}

/// Whether `#/components/schemas/<name>` is something other than an object.
fn is_scalar(reference: &str, schemas: &Map<String, Value>) -> bool {
    reference
        .strip_prefix("#/components/schemas/")
        .and_then(|name| schemas.get(name))
        .is_some_and(|schema| schema["type"] != "object")
}

fn unwrap_enum_refs(value: &mut Value, schemas: &Map<String, Value>) {
    match value {
        Value::Object(object) => {
            let target = object
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|parts| {
                    let reference = parts.first()?.get("$ref")?.as_str()?;
                    // What poem-openapi adds beside the reference: a field's description, a
                    // parameter's default (which it also states on the wrapper itself).
                    let rest_is_description = parts[1..].iter().all(|p| {
                        p.as_object()
                            .is_some_and(|o| o.keys().all(|k| k == "description" || k == "default"))
                    });
                    (rest_is_description && is_scalar(reference, schemas))
                        .then(|| reference.to_owned())
                });
            if let Some(reference) = target {
                object.remove("allOf");
                object.insert("$ref".into(), Value::String(reference));
            }
            for child in object.values_mut() {
                unwrap_enum_refs(child, schemas);
            }
        }
        Value::Array(items) => {
            for item in items {
                unwrap_enum_refs(item, schemas);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_references_are_unwrapped_and_object_references_kept() {
        let raw = serde_json::json!({
            "components": {"schemas": {
                "Role": {"type": "string", "enum": ["a"]},
                "User": {"type": "object", "required": ["role", "boss"], "properties": {
                    "role": {"description": "d", "allOf": [{"$ref": "#/components/schemas/Role"}, {"description": "d"}]},
                    "boss": {"description": "b", "allOf": [{"$ref": "#/components/schemas/User"}, {"description": "b"}]},
                    "former_role": {"description": "f", "allOf": [{"$ref": "#/components/schemas/Role"}, {"description": "f"}]},
                    "nickname": {"type": "string"}
                }}
            }}
        })
        .to_string();
        let fixed: Value = serde_json::from_str(&for_clients(&raw)).unwrap();
        let props = &fixed["components"]["schemas"]["User"]["properties"];
        assert_eq!(props["role"]["$ref"], "#/components/schemas/Role");
        assert!(props["role"].get("allOf").is_none());
        assert_eq!(
            props["role"]["description"], "d",
            "the description stays beside it"
        );
        assert!(
            props["boss"]["allOf"].is_array(),
            "object references keep their wrapper"
        );
        assert!(
            props["role"].get("nullable").is_none(),
            "required: never null"
        );
        assert_eq!(
            props["nickname"]["nullable"], true,
            "optional, so null is allowed"
        );
        assert_eq!(props["former_role"]["nullable"], true);
        assert_eq!(
            props["former_role"]["oneOf"][0]["$ref"],
            "#/components/schemas/Role"
        );
    }
}
