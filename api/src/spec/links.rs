//! OpenAPI `links` from each creating operation to what can be done next with what it made,
//! derived from the document itself, so a new route is linked without a list to keep: an
//! answer with an `id` links to every operation on the item path under the operation's own
//! path (`POST /exports` → `GET`/`DELETE /exports/{id}`, `GET /exports/{id}/download`; the
//! singular `POST /users/me/data-export` → `/users/me/data-exports/{id}`), and an answer with a
//! `job_id` links to `GET /jobs/{id}`. Generated clients and stateful fuzzers follow them to
//! chain a create with its reads, updates and deletes using real ids.

use serde_json::{Map, Value, json};

/// An operation that acts on one item: its path, id and the one path parameter naming the item.
struct ItemOperation {
    path: String,
    operation_id: String,
    param: String,
}

/// Adds the links to every `2xx` answer of every `POST` in `spec`.
/// `schemas` are the document's component schemas (read for their property names).
pub(super) fn add(spec: &mut Value, schemas: &Map<String, Value>) {
    let items = item_operations(spec);
    let Some(paths) = spec["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(responses) = item
            .pointer_mut("/post/responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (code, response) in responses.iter_mut() {
            if !code.starts_with('2') {
                continue;
            }
            let properties = answer_properties(response, schemas);
            let links = links_for(path, &properties, &items);
            if !links.is_empty()
                && let Some(response) = response.as_object_mut()
            {
                response.insert("links".into(), Value::Object(links));
            }
        }
    }
}

/// The links from an answer of `POST path` whose body has `properties`.
fn links_for(path: &str, properties: &[String], items: &[ItemOperation]) -> Map<String, Value> {
    let mut links = Map::new();
    let has = |name: &str| properties.iter().any(|p| p == name);
    if has("id") {
        let under = [format!("{path}/{{"), format!("{path}s/{{")];
        for item in items {
            if under
                .iter()
                .any(|prefix| item.path.starts_with(prefix.as_str()))
            {
                let source = if has(&item.param) { &item.param } else { "id" };
                links.insert(
                    item.operation_id.clone(),
                    json!({
                        "operationId": item.operation_id,
                        "parameters": { &item.param: format!("$response.body#/{source}") },
                    }),
                );
            }
        }
    }
    if has("job_id")
        && let Some(job) = items.iter().find(|i| i.path == "/api/v1/jobs/{id}")
    {
        links.insert(
            job.operation_id.clone(),
            json!({
                "operationId": job.operation_id,
                "parameters": { &job.param: "$response.body#/job_id" },
                "description": "The job this request started.",
            }),
        );
    }
    links
}

/// Every operation whose path has exactly one parameter.
fn item_operations(spec: &Value) -> Vec<ItemOperation> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        let params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let [param] = params[..] else {
            continue;
        };
        for operation in item.as_object().into_iter().flatten().map(|(_, op)| op) {
            if let Some(id) = operation["operationId"].as_str() {
                found.push(ItemOperation {
                    path: path.clone(),
                    operation_id: id.to_owned(),
                    param: param.to_owned(),
                });
            }
        }
    }
    found
}

/// The property names of a JSON answer's schema (a reference to an object schema, or one).
fn answer_properties(response: &Value, schemas: &Map<String, Value>) -> Vec<String> {
    let json = response["content"]
        .as_object()
        .into_iter()
        .flatten()
        .find(|(media_type, _)| media_type.starts_with("application/json"));
    let Some((_, content)) = json else {
        return Vec::new();
    };
    let schema = &content["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix("#/components/schemas/")
            .and_then(|name| schemas.get(name))
            .unwrap_or(&Value::Null),
        None => schema,
    };
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_links_to_its_item_operations_and_its_job() {
        let mut spec = json!({
            "paths": {
                "/things": {"post": {"responses": {
                    "202": {"content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "400": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}
                }}},
                "/things/{id}": {"get": {"operationId": "getThing"}, "delete": {"operationId": "deleteThing"}},
                "/things/{id}/file": {"get": {"operationId": "getThingFile"}},
                "/other/{id}": {"get": {"operationId": "getOther"}},
                "/api/v1/jobs/{id}": {"get": {"operationId": "getJob"}}
            },
            "components": {"schemas": {"Thing": {"type": "object", "properties": {"id": {}, "job_id": {}}}}}
        });
        let schemas = spec["components"]["schemas"].as_object().unwrap().clone();
        add(&mut spec, &schemas);
        let links = &spec["paths"]["/things"]["post"]["responses"]["202"]["links"];
        let mut names: Vec<&String> = links.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["deleteThing", "getJob", "getThing", "getThingFile"]);
        assert_eq!(links["getThing"]["parameters"]["id"], "$response.body#/id");
        assert_eq!(
            links["getJob"]["parameters"]["id"],
            "$response.body#/job_id"
        );
        assert!(
            spec["paths"]["/things"]["post"]["responses"]["400"]
                .get("links")
                .is_none(),
            "only answers that made something"
        );
    }
}
