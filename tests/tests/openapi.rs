//! The served OpenAPI document and the real routes agree, and its schemas
//! and the wire types agree: every golden wire file of `sync-protocol`, a
//! device page and the live feed's events the real server serves validate
//! against their schemas, and identifiers have the patterns their parsers
//! enforce.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{DEMO_ESTATE, Handheld, TestServer, note};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_protocol::{Cursor, Sha256Hex};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The served document.
async fn document(server: &TestServer) -> Value {
    let response = server.get("/api/v1/openapi.json", None).await;
    assert_eq!(response.status, StatusCode::OK, "{response:?}");
    let document: Value = response.json();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document: {document}"
    );
    document
}

/// Every (method, path) the document describes, with its `servers` prefix.
fn operations(document: &Value) -> Vec<(String, String)> {
    let prefix = document["servers"][0]["url"]
        .as_str()
        .filter(|url| url.starts_with('/'))
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    let paths = document["paths"]
        .as_object()
        .expect("the document has a paths object");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in item.keys().filter(|key| METHODS.contains(&key.as_str())) {
            operations.push((method.clone(), format!("{prefix}{path}")));
        }
    }
    operations
}

/// `/a/{x}/b` → `/a/{}/b`: parameter names may differ, the shape may not.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_the_openapi_document_describes_is_served() {
    let server = TestServer::start();
    let document = document(&server).await;
    let dispatcher = server.login("diaodu").await;
    let li = server.login("li").await;
    let ticket = server.tickets_of("li").await.remove(0);
    let image = b"a blob for the openapi check".to_vec();
    server.upload_blob(&li, &image).await;
    let blob = Sha256Hex::of(&image);

    for (method, path) in operations(&document) {
        // Plausible values for the path parameters.
        let concrete: String = path
            .split('/')
            .map(|segment| match segment {
                "{id}" | "{ticket_id}" => ticket.id.to_string(),
                "{sha256}" | "{hash}" => blob.to_string(),
                other if other.starts_with('{') => "x".to_owned(),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let token = if path.contains("/sync/") || method == "put" {
            &li
        } else {
            &dispatcher
        };
        let mut request = server
            .client()
            .request(http_method, server.url(&concrete))
            .bearer_auth(token);
        if ["post", "put", "patch"].contains(&method.as_str()) {
            request = request.json(&serde_json::json!({}));
        }
        let response = server.send(request).await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented: {response:?}"
        );
        if response.status == StatusCode::NOT_FOUND {
            let body: Value = response.json();
            assert_ne!(
                body["code"], "route_not_found",
                "{method} {path} is documented: {response:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint_a_client_uses() {
    let server = TestServer::start();
    let documented: BTreeSet<(String, String)> = operations(&document(&server).await)
        .into_iter()
        .map(|(method, path)| (method, shape(&path)))
        .collect();
    // The endpoints these black-box tests (and so a handheld or the office
    // front end) rely on.
    let used = [
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/sync/pull"),
        ("post", "/api/v1/sync/push"),
        ("put", "/api/v1/blobs/{}"),
        ("get", "/api/v1/blobs/{}"),
        ("get", "/api/v1/tickets"),
        ("post", "/api/v1/tickets"),
        ("get", "/api/v1/tickets/{}"),
        ("post", "/api/v1/tickets/{}/actions"),
        ("get", "/api/v1/tickets/{}/suggestions"),
        ("get", "/api/v1/dispatch-queue"),
        ("get", "/api/v1/due"),
        ("get", "/api/v1/devices"),
        ("get", "/api/v1/reports/daily-unclosed"),
        ("get", "/api/v1/reports/monthly"),
        ("get", "/api/v1/openapi.json"),
    ];
    let missing: Vec<_> = used
        .iter()
        .filter(|(method, path)| !documented.contains(&(method.to_string(), path.to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "the served OpenAPI document (docs/openapi.json) does not describe {missing:?}"
    );
}

// ---- Schemas against the wire types ---------------------------------------

/// Which schema of `components.schemas` describes each golden wire file of
/// `sync-protocol/tests/golden/` (by file stem). A new golden file needs a row.
const GOLDEN_SCHEMAS: &[(&str, &str)] = &[
    ("dispatch_queue", "DispatchQueue"),
    ("dispatch_suggestions", "DispatchSuggestions"),
    ("due_list", "DueList"),
    ("error_body", "ErrorBody"),
    ("intake", "Intake"),
    ("intake_booking", "Intake"),
    ("live_event_device_contact", "LiveEvent"),
    ("login_response", "LoginResponse"),
    ("login_request", "LoginRequest"),
    ("refresh_request", "RefreshRequest"),
    ("user_summary", "UserSummary"),
    ("user_change", "UserChange"),
    ("office_action_add_note", "OfficeActionRequest"),
    ("office_action_cancel", "OfficeActionRequest"),
    ("office_action_close", "OfficeActionRequest"),
    ("office_action_convert", "OfficeActionRequest"),
    ("office_action_dispatch", "OfficeActionRequest"),
    ("office_action_reassign", "OfficeActionRequest"),
    ("office_action_record_follow_up", "OfficeActionRequest"),
    ("office_action_reschedule_booking", "OfficeActionRequest"),
    ("office_action_set_appointment", "OfficeActionRequest"),
    ("office_action_sign_off", "OfficeActionRequest"),
    ("office_action_track", "OfficeActionRequest"),
    ("pull_request", "PullRequest"),
    ("pull_response", "PullResponse"),
    ("push_request", "PushRequest"),
    ("push_request_from_the_app", "PushRequest"),
    ("push_response", "PushResponse"),
    ("report_daily_unclosed", "DailyUnclosed"),
    ("report_monthly_archive", "MonthlyArchive"),
    ("report_monthly_statistics", "MonthlyStatistics"),
    ("review_request", "ReviewRequest"),
    ("supervision_snapshot", "SupervisionSnapshot"),
    ("ticket_booked_work_order", "Ticket"),
    ("ticket_closed_coordination", "Ticket"),
    ("ticket_converted_work_order", "Ticket"),
    ("ticket_escalated_coordination", "Ticket"),
];

/// docs/openapi.json as it is on disk (the server compiles in the same file).
fn openapi_file() -> Value {
    read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json"))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sync-protocol/tests/golden")
}

/// The golden files, sorted, as (stem, path).
fn golden_files() -> Vec<(String, PathBuf)> {
    let dir = golden_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
    let mut files: Vec<(String, PathBuf)> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, path)
        })
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A validator for the schema `name` of `components.schemas`.
fn schema_validator(document: &Value, name: &str) -> jsonschema::Validator {
    assert!(
        document["components"]["schemas"].get(name).is_some(),
        "docs/openapi.json has no schema {name}"
    );
    validator_for(
        document,
        &json!({ "$ref": format!("#/components/schemas/{name}") }),
    )
}

/// A JSON Schema 2020-12 validator (what OpenAPI 3.1 schemas are) for a
/// schema of the document. Its root applies `schema` and embeds the
/// document's components, so every `#/components/schemas/...` reference
/// resolves inside it. Formats (`date-time`) are checked too. The OpenAPI
/// `discriminator` is no JSON Schema keyword and is ignored: the `oneOf`
/// branches tell the variants apart by their `const` tags.
fn validator_for(document: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": { "schemas": document["components"]["schemas"] },
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("the schema {schema} does not compile: {error}"))
}

/// Where and how `instance` breaks the validator's schema; empty when it fits.
fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|error| format!("at {:?}: {error}", error.instance_path().as_str()))
        .collect()
}

fn schema_violations(document: &Value, name: &str, instance: &Value) -> Vec<String> {
    violations(&schema_validator(document, name), instance)
}

#[test]
fn every_golden_wire_file_matches_its_schema_in_the_openapi_document() {
    let document = openapi_file();
    let files = golden_files();
    assert!(
        !files.is_empty(),
        "no golden files in {}",
        golden_dir().display()
    );
    let mut failures = Vec::new();
    for (stem, path) in &files {
        let Some((_, schema)) = GOLDEN_SCHEMAS.iter().find(|(file, _)| file == stem) else {
            failures.push(format!(
                "{stem}.json has no schema: add a row to GOLDEN_SCHEMAS"
            ));
            continue;
        };
        let violations = schema_violations(&document, schema, &read_json(path));
        if !violations.is_empty() {
            failures.push(format!(
                "{stem}.json does not fit the schema {schema}:\n    {}",
                violations.join("\n    ")
            ));
        }
    }
    for (stem, _) in GOLDEN_SCHEMAS {
        if !files.iter().any(|(file, _)| file == stem) {
            failures.push(format!(
                "GOLDEN_SCHEMAS names {stem}.json, which does not exist"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "docs/openapi.json and the wire types have drifted apart:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn an_undocumented_member_in_a_wire_body_breaks_its_schema() {
    let document = openapi_file();
    let response = read_json(&golden_dir().join("push_response.json"));
    assert!(schema_violations(&document, "PushResponse", &response).is_empty());
    let mut at_the_top = response.clone();
    at_the_top["retry_after_ms"] = json!(100);
    assert!(!schema_violations(&document, "PushResponse", &at_the_top).is_empty());
    // Deep inside a tagged variant too: a duplicate outcome's first verdict.
    let mut nested = response;
    nested["outcomes"][0]["first"]["stored_at"] = json!("2026-11-27T10:00:00Z");
    assert!(!schema_violations(&document, "PushResponse", &nested).is_empty());
}

#[test]
fn every_object_schema_in_the_openapi_document_refuses_undocumented_members() {
    /// JSON pointers of schemas that list `properties` but allow others.
    fn open_objects(schema: &Value, pointer: &str, found: &mut Vec<String>) {
        match schema {
            Value::Object(members) => {
                if members.get("properties").is_some_and(Value::is_object)
                    && members.get("additionalProperties") != Some(&Value::Bool(false))
                {
                    found.push(pointer.to_owned());
                }
                for (key, value) in members {
                    open_objects(value, &format!("{pointer}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (index, value) in items.iter().enumerate() {
                    open_objects(value, &format!("{pointer}/{index}"), found);
                }
            }
            _ => {}
        }
    }
    let document = openapi_file();
    let mut found = Vec::new();
    open_objects(
        &document["components"]["schemas"],
        "#/components/schemas",
        &mut found,
    );
    // Every wire type denies unknown fields, so every schema must too;
    // otherwise a field added to a wire type would pass undocumented.
    assert!(
        found.is_empty(),
        "these schemas need \"additionalProperties\": false: {found:?}"
    );
}

#[test]
fn every_example_in_the_openapi_document_matches_its_schema() {
    let document = openapi_file();
    // Every JSON media object of every request body and response, as
    // (where, media object); `$ref` responses resolved.
    let mut media = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let request = &operation["requestBody"]["content"]["application/json"];
            if request.is_object() {
                media.push((format!("{method} {path} request"), request));
            }
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let response = match response["$ref"].as_str() {
                    Some(reference) => {
                        let name = reference
                            .strip_prefix("#/components/responses/")
                            .expect("a response $ref points into components.responses");
                        &document["components"]["responses"][name]
                    }
                    None => response,
                };
                let content = &response["content"]["application/json"];
                if content.is_object() {
                    media.push((format!("{method} {path} {status}"), content));
                }
            }
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (place, content) in media {
        let mut examples: Vec<(String, &Value)> = Vec::new();
        if let Some(example) = content.get("example") {
            examples.push(("example".to_owned(), example));
        }
        if let Some(named) = content.get("examples").and_then(Value::as_object) {
            for (name, example) in named {
                examples.push((name.clone(), &example["value"]));
            }
        }
        if examples.is_empty() {
            continue;
        }
        let validator = validator_for(&document, &content["schema"]);
        for (name, example) in examples {
            checked += 1;
            let found = violations(&validator, example);
            if !found.is_empty() {
                failures.push(format!("{place}, {name}:\n    {}", found.join("\n    ")));
            }
        }
    }
    assert!(checked > 0, "the document has examples");
    assert!(
        failures.is_empty(),
        "examples in docs/openapi.json do not fit their schemas:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn every_path_parameter_in_the_openapi_document_has_the_pattern_of_its_identifier() {
    let document = openapi_file();
    let resolve = |value: &Value, section: &str| -> Value {
        match value["$ref"].as_str() {
            Some(reference) => {
                let name = reference
                    .strip_prefix(&format!("#/components/{section}/"))
                    .unwrap_or_else(|| panic!("{reference} points into components.{section}"));
                document["components"][section][name].clone()
            }
            None => value.clone(),
        }
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let operations = item
            .as_object()
            .expect("a path item")
            .iter()
            .filter(|(method, _)| METHODS.contains(&method.as_str()));
        let parameters = std::iter::once(&item["parameters"])
            .chain(operations.map(|(_, operation)| &operation["parameters"]))
            .filter_map(Value::as_array)
            .flatten()
            .map(|parameter| resolve(parameter, "parameters"))
            .filter(|parameter| parameter["in"] == "path");
        for parameter in parameters {
            checked += 1;
            let schema = resolve(&parameter["schema"], "schemas");
            if schema["pattern"].as_str().is_none() || schema["maxLength"].as_u64().is_none() {
                let name = parameter["name"].as_str().unwrap_or("?");
                failures.push(format!("{path} {{{name}}}: {schema}"));
            }
        }
    }
    assert!(checked > 0, "the document has path parameters");
    // A fuzzer (and a client generator) only knows what the document says:
    // an unconstrained string there is a lie about what the server accepts.
    assert!(
        failures.is_empty(),
        "path parameters without a pattern and a length:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn every_identifier_schema_accepts_exactly_what_the_server_parses() {
    type Parser = fn(&str) -> bool;
    let schemas: [(&str, Parser); 6] = [
        ("TicketId", |raw| {
            sync_protocol::TicketId::parse(raw).is_ok()
        }),
        ("UserId", |raw| sync_protocol::UserId::parse(raw).is_ok()),
        ("DeviceId", |raw| {
            sync_protocol::DeviceId::parse(raw).is_ok()
        }),
        ("EstateId", |raw| {
            sync_protocol::EstateId::parse(raw).is_ok()
        }),
        ("Sha256Hex", |raw| Sha256Hex::parse(raw).is_ok()),
        ("MutationId", |raw| {
            sync_protocol::MutationId::try_from(raw.to_owned()).is_ok()
        }),
    ];
    let hash = Sha256Hex::of(b"probe").to_string();
    let probes = [
        String::new(),
        "a".to_owned(),
        "tk00000001".to_owned(),
        "A.b-c_9".to_owned(),
        "a".repeat(64),
        "a".repeat(65),
        "a/b".to_owned(),
        "a b".to_owned(),
        "a\n".to_owned(),
        "房101".to_owned(),
        "hh-li-1#3".to_owned(),
        format!("{}#18446744073709551615", "d".repeat(64)),
        "hh-li-1#".to_owned(),
        "#3".to_owned(),
        hash.clone(),
        hash.to_uppercase(),
        hash[1..].to_owned(),
        format!("{hash}0"),
        format!("{hash}\n"),
        "g".repeat(64),
    ];
    let document = openapi_file();
    let mut failures = Vec::new();
    for (name, parses) in schemas {
        let validator = schema_validator(&document, name);
        for probe in &probes {
            let documented = validator.is_valid(&json!(probe));
            if documented != parses(probe) {
                failures.push(format!(
                    "{name} {probe:?}: the document says {documented}, the server {}",
                    !documented
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "docs/openapi.json and sync-protocol/src/ids.rs disagree:\n  {}",
        failures.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_page_served_to_a_supervisor_matches_its_schema() {
    let server = TestServer::start();
    let document = document(&server).await;
    // Two handhelds make contact; li's also pushes, so that the page shows
    // the members a push fills in.
    let li = server.login("li").await;
    let mut handheld = Handheld::new("hh-li-openapi");
    let pulled = server.pull(&li, &handheld.id, Cursor(0)).await;
    let sync_protocol::Change::Upsert { ticket, .. } = &pulled.changes[0] else {
        panic!("a first pull upserts li's tickets: {pulled:?}");
    };
    let mutation = handheld.record(ticket, note("checking the schema 核对"));
    server.push(&li, &handheld.id, vec![mutation]).await;
    let zhang = server.login("zhang").await;
    server
        .pull(&zhang, &common::device_id("hh-zhang-openapi"), Cursor(0))
        .await;

    let supervisor = server.login("zhuguan").await;
    let mut pages = Vec::new();
    for path in ["/api/v1/devices", "/api/v1/devices?limit=1"] {
        let response = server.get(path, Some(&supervisor)).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {response:?}");
        pages.push(response.json::<Value>());
    }
    let after = pages[1]["next_after"]
        .as_str()
        .expect("a full page names the next one")
        .to_owned();
    let response = server
        .get(
            &format!("/api/v1/devices?limit=1&after={after}"),
            Some(&supervisor),
        )
        .await;
    pages.push(response.ok::<Value>());

    for page in &pages {
        let violations = schema_violations(&document, "DevicePage", page);
        assert!(
            violations.is_empty(),
            "the served device page does not fit the DevicePage schema:\n  {}\n{page:#}",
            violations.join("\n  ")
        );
    }
    // Not vacuous: the whole page lists both devices, li's with its push.
    let devices = pages[0]["devices"].as_array().expect("a list of devices");
    assert_eq!(devices.len(), 2, "{devices:?}");
    let li_device = devices
        .iter()
        .find(|device| device["device_id"] == "hh-li-openapi")
        .expect("li's handheld is listed");
    assert_eq!(li_device["estate"], DEMO_ESTATE);
    assert_eq!(li_device["last_seq"], 1);
    assert!(li_device["last_push_at"].is_string(), "{li_device}");
}

/// The first `count` events of the live feed after `last_event_id`, each as
/// an SSE reader parses it: an object of its `id`, `event` and `data` fields.
async fn live_events(
    server: &TestServer,
    token: &str,
    last_event_id: u64,
    wanted: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut response = server
        .client()
        .get(server.url("/api/v1/live"))
        .bearer_auth(token)
        .header("Last-Event-ID", last_event_id.to_string())
        .send()
        .await
        .expect("the live feed answers");
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = Vec::new();
    let mut pending = String::new();
    while !wanted(&events) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("the events come within the timeout")
            .expect("the stream reads")
            .expect("the stream goes on");
        pending.push_str(std::str::from_utf8(&chunk).expect("an event stream is UTF-8"));
        while let Some(end) = pending.find("\n\n") {
            let frame: String = pending.drain(..end + 2).collect();
            let mut event = serde_json::Map::new();
            // Comments (the keep-alive) and the blank line that ends a frame.
            for line in frame
                .lines()
                .filter(|line| !line.is_empty() && !line.starts_with(':'))
            {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                event.insert(field.to_owned(), json!(value));
            }
            if !event.is_empty() {
                events.push(Value::Object(event));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_the_live_feed_match_their_schema_in_the_document() {
    let server = TestServer::start();
    let document = document(&server).await;
    let supervisor = server.login("zhuguan").await;
    let snapshot: Value = server
        .get("/api/v1/supervision", Some(&supervisor))
        .await
        .ok();
    let since = snapshot["last_event_id"].as_u64().expect("a last event id");
    // li's handheld makes contact twice: two device_contact events.
    let li = server.login("li").await;
    let handheld = common::device_id("hh-li-live-schema");
    server.pull(&li, &handheld, Cursor(0)).await;
    server.pull(&li, &handheld, Cursor(0)).await;
    let contacts = |events: &[Value]| {
        events
            .iter()
            .filter(|event| event["event"] == "device_contact")
            .count()
            == 2
    };
    let mut events = live_events(&server, &supervisor, since, contacts).await;
    // An id older than anything kept starts the stream with `reset`.
    let reset = live_events(&server, &supervisor, 0, |events| !events.is_empty()).await;
    assert_eq!(reset[0]["event"], "reset", "{reset:?}");
    events.extend(reset);

    let media = &document["paths"]["/api/v1/live"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    let event_validator = validator_for(&document, &media["schema"]);
    // JSON Schema leaves `contentSchema` to the application: `data` is
    // checked against it here, as schemathesis does.
    let event_schema = match media["schema"]["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => &media["schema"],
    };
    let data_schema = &event_schema["properties"]["data"]["contentSchema"];
    assert!(
        data_schema.is_object(),
        "the event schema says what `data` holds: {event_schema}"
    );
    let data_validator = validator_for(&document, data_schema);
    let mut failures = Vec::new();
    for event in &events {
        failures.extend(violations(&event_validator, event));
        let data: Value =
            serde_json::from_str(event["data"].as_str().unwrap_or("")).unwrap_or(Value::Null);
        failures.extend(violations(&data_validator, &data));
    }
    assert!(
        failures.is_empty(),
        "the live feed's events do not fit docs/openapi.json:\n  {}\n{events:#?}",
        failures.join("\n  ")
    );
}
