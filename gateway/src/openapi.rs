//! The OpenAPI document of the REST API: what the routes declare, completed with what every
//! route shares (path parameters, the answers of the gateway's own extractors and layers), so
//! that the document lists every parameter and every status a client can get.

use codesync_proto::rooms::v1::Role;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "CodeSync API", description = "The REST API of CodeSync, a self-hosted collaborative development platform."),
    modifiers(&BearerSecurity),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "rooms", description = "Rooms and invite codes"),
        (name = "members", description = "Room members and roles"),
        (name = "files", description = "Files of a room"),
        (name = "executions", description = "Running code in the sandbox"),
        (name = "assistant", description = "The AI assistant"),
        (name = "history", description = "File versions and room event logs"),
        (name = "notifications", description = "Notifications, live and listed"),
        (name = "analytics", description = "The administrators' dashboard"),
        (name = "operations", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// What a path parameter names, by its name in the route.
fn path_parameter_description(name: &str) -> &'static str {
    match name {
        "room_id" => "the room's id",
        "file_id" => "the file's id",
        "user_id" => "the member's user id",
        "version_id" => "the version's id",
        "id" => "the interaction id of the answer's `start` event",
        _ => "an id",
    }
}

/// Completes `document` (the routes' own declarations) in place.
pub fn complete(document: &mut Value) {
    constrain(document);
    constrain_folder_paths(document);
    describe_event_streams(document);
    link_created_resources(document);
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else { continue };
        for operation in operations.values_mut().filter_map(Value::as_object_mut) {
            complete_operation(path, operation);
        }
    }
}

/// The rules the services check on what clients send, stated in the schemas of the bodies they
/// arrive in: each from the one definition the service enforces (`limits`, `validate`).
#[allow(clippy::too_many_lines)]
fn constrain(document: &mut Value) {
    use codesync_common::limits as l;
    use codesync_common::validate as v;
    let Some(schemas) = document.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let nullable = |schema: Value| {
        let mut schema = schema;
        schema["type"] = json!(["string", "null"]);
        schema
    };
    let room_name = json!({"type": "string", "pattern": v::single_line_pattern(l::ROOM_NAME_MAX_CHARS),
        "description": format!("1 to {} characters once trimmed, no control characters.", l::ROOM_NAME_MAX_CHARS)});
    let room_description = json!({"type": ["string", "null"], "maxLength": l::ROOM_DESCRIPTION_MAX_CHARS,
        "pattern": format!("^[^{}]*$", v::MULTI_LINE_FORBIDDEN_CLASS),
        "description": format!("At most {} characters; no control characters but tabs and line breaks.", l::ROOM_DESCRIPTION_MAX_CHARS)});
    let filename = json!({"type": "string", "maxLength": l::FILE_PATH_MAX_BYTES, "pattern": codesync_common::paths::path_pattern(),
        "description": format!("A path in the room (`src/app/main.py`): at most {} `/`-separated parts and {} bytes of UTF-8 (Unicode NFC); each part 1 to {} bytes with no `\\`, `<>:\"|?*` or control characters, no spaces at either end, not `.` or `..`. Paths are case-sensitive, but two files of a room may not differ only in case, and a path cannot be both a file and a folder. The language follows the extension.", l::FILE_PATH_MAX_DEPTH, l::FILE_PATH_MAX_BYTES, l::FILENAME_MAX_BYTES),
        "example": "src/main.py"});
    let content = json!({"type": ["string", "null"], "maxLength": l::FILE_MAX_BYTES, "pattern": "^[^\\u0000]*$",
        "description": format!("At most {} bytes of UTF-8, no NUL characters.", l::FILE_MAX_BYTES)});
    let uuid = json!({"type": "string", "format": "uuid"});
    let int64 = json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX});
    let position = json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": u32::MAX});

    let mut set = |schema: &str, property: &str, value: Value| {
        if let Some(properties) = schemas.get_mut(schema).and_then(|schema| schema.get_mut("properties")) {
            properties[property] = value;
        }
    };
    set(
        "RegisterBody",
        "username",
        json!({"type": "string", "pattern": v::username_pattern(), "example": "ada",
        "description": format!("{} to {} ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit.", l::USERNAME_MIN_CHARS, l::USERNAME_MAX_CHARS)}),
    );
    set(
        "RegisterBody",
        "email",
        json!({"type": "string", "maxLength": l::EMAIL_MAX_CHARS, "pattern": v::email_pattern(),
        "example": "ada@example.com", "description": "An address `local@domain.tld`, without white space; accounts are found by it lower-cased."}),
    );
    set(
        "RegisterBody",
        "password",
        json!({"type": "string", "minLength": l::PASSWORD_MIN_CHARS, "maxLength": l::PASSWORD_MAX_CHARS,
        "description": format!("{} to {} characters.", l::PASSWORD_MIN_CHARS, l::PASSWORD_MAX_CHARS)}),
    );
    set("RefreshTokenBody", "refresh_token", json!({"type": "string", "pattern": v::not_blank_pattern()}));
    set("CreateRoomBody", "name", room_name.clone());
    set("CreateRoomBody", "description", room_description.clone());
    set("UpdateRoomBody", "name", nullable(room_name));
    set("UpdateRoomBody", "description", room_description);
    set(
        "UpdateMemberBody",
        "role",
        json!({"type": "string", "enum": [Role::Editor.name(), Role::Viewer.name()], "description": "A room has one owner: its role cannot be given."}),
    );
    set("CreateFileBody", "filename", filename.clone());
    set("CreateFileBody", "content", content.clone());
    set("UpdateFileBody", "filename", nullable(filename.clone()));
    set("MoveFolderBody", "from", filename.clone());
    set("MoveFolderBody", "to", filename);
    set("UpdateFileBody", "content", content);
    set(
        "SaveBody",
        "message",
        json!({"type": ["string", "null"], "pattern": v::trimmed_pattern(0, l::VERSION_MESSAGE_MAX_CHARS, None),
        "description": format!("What this version is: at most {} characters once trimmed.", l::VERSION_MESSAGE_MAX_CHARS)}),
    );
    let mut expected_head = int64.clone();
    expected_head["type"] = json!(["integer", "null"]);
    set("RestoreBody", "expected_head", expected_head);
    set(
        "MarkReadBody",
        "ids",
        json!({"type": "array", "maxItems": l::MARK_READ_MAX_IDS, "items": {"type": "string"},
        "description": format!("At most {}; ids that are not the caller's are ignored.", l::MARK_READ_MAX_IDS)}),
    );
    set("NoticeBody", "user_id", json!({"type": "string", "format": "uuid", "description": "Who gets it."}));
    set(
        "NoticeBody",
        "title",
        json!({"type": "string", "pattern": v::trimmed_pattern(1, l::NOTICE_TITLE_MAX_CHARS, None),
        "description": format!("1 to {} characters once trimmed.", l::NOTICE_TITLE_MAX_CHARS)}),
    );
    set("NoticeBody", "message", json!({"type": "string", "maxLength": l::NOTICE_MESSAGE_MAX_CHARS}));
    set(
        "SourceFileBody",
        "name",
        json!({"type": "string", "maxLength": l::FILE_PATH_MAX_BYTES, "pattern": v::run_filename_pattern(),
        "example": "main.py", "description": "A file's path in the run's directory (`src/app/main.py`): `/`-separated parts, each without `\\` or control characters, not starting with `-`, not `.` or `..`."}),
    );
    set("SourceFileBody", "content", json!({"type": "string", "maxLength": l::RUN_SOURCE_MAX_BYTES}));
    set("PositionBody", "line", position.clone());
    set("PositionBody", "column", position);
    set("HistoryTurnBody", "role", json!({"type": "string", "enum": ["user", "assistant"]}));

    set(
        "AskBody",
        "mode",
        json!({"type": "string", "enum": ["generate", "chat", "review", "debug", "explain", "refactor", "complete", "docs"]}),
    );
    set(
        "AskBody",
        "file_id",
        json!({"type": ["string", "null"], "format": "uuid", "description": "A file of a room, read live with the caller's access."}),
    );
    set(
        "AskBody",
        "code",
        json!({"type": ["string", "null"], "maxLength": l::ASSISTANT_CODE_MAX_BYTES,
        "description": format!("Inline code when there is no file: at most {} bytes.", l::ASSISTANT_CODE_MAX_BYTES)}),
    );
    set(
        "AskBody",
        "prompt",
        json!({"type": ["string", "null"], "maxLength": l::PROMPT_MAX_CHARS,
        "description": format!("At most {} characters.", l::PROMPT_MAX_CHARS)}),
    );

    // What answers hold: the closed sets of values as enums, and free-form details as objects
    // of any keys, so that generated clients (the web app's types) get them exactly.
    let mut refine = |schema: &str, property: &str, extra: Value| {
        let target = schemas.get_mut(schema).and_then(|schema| schema.pointer_mut(&format!("/properties/{property}")));
        if let (Some(Value::Object(target)), Value::Object(extra)) = (target, extra) {
            target.extend(extra);
        }
    };
    let roles: Vec<Value> = Role::NAMED.iter().map(|role| json!(role.name())).collect();
    let roles_or_none: Vec<Value> = roles.iter().cloned().chain([Value::Null]).collect();
    refine("RoomBody", "my_role", json!({"type": ["string", "null"], "enum": roles_or_none}));
    refine("MemberBody", "role", json!({"enum": roles}));
    refine(
        "ExecutionBody",
        "status",
        json!({"enum": ["ok", "compile_error", "runtime_error", "time_limit", "memory_limit", "output_limit", "internal_error"]}),
    );
    refine("VersionBody", "kind", json!({"enum": ["save", "checkpoint", "restore"]}));
    refine("NotificationBody", "type", json!({"enum": ["execution", "invite", "room", "system"]}));
    refine(
        "RoomEventBody",
        "type",
        json!({"enum": ["room_created", "member_joined", "member_role_changed", "member_removed", "file_created",
            "file_renamed", "file_deleted", "version_created", "execution_finished"]}),
    );
    for schema in ["NotificationBody", "RoomEventBody", "PlatformEventBody"] {
        refine(schema, "metadata", json!({"additionalProperties": true}));
    }

    // Something to ask about: a file, some code, or a prompt.
    if let Some(ask) = schemas.get_mut("AskBody") {
        ask["anyOf"] = json!([
            {"required": ["file_id"], "properties": {"file_id": {"type": "string"}}},
            {"required": ["code"], "properties": {"code": {"type": "string", "minLength": 1}}},
            {"required": ["prompt"], "properties": {"prompt": {"type": "string", "pattern": v::not_blank_pattern()}}},
        ]);
    }
    // Either a file of a room or an inline program, never a mix (SPEC section 3).
    if let Some(execute) = schemas.get_mut("ExecuteBody") {
        let stdin = json!({"type": "string", "maxLength": l::RUN_STDIN_MAX_BYTES, "description": format!("At most {} bytes.", l::RUN_STDIN_MAX_BYTES)});
        *execute = json!({
            "description": "A run: `file_id` (a file of a room, run with its room's other files), or an inline program: `language`, `files` and `entry` (one of the files' names; the first by default).",
            "oneOf": [
                {"type": "object", "required": ["file_id"], "additionalProperties": false,
                 "properties": {"file_id": uuid, "stdin": stdin}},
                {"type": "object", "required": ["language", "files"], "additionalProperties": false,
                 "properties": {
                    "language": {"type": "string", "example": "python", "description": "One of `GET /api/executions/languages`."},
                    "files": {"type": "array", "minItems": 1, "maxItems": l::RUN_MAX_FILES, "items": {"$ref": "#/components/schemas/SourceFileBody"},
                        "description": format!("At most {} files, together at most {} bytes.", l::RUN_MAX_FILES, l::RUN_SOURCE_MAX_BYTES)},
                    "entry": {"type": "string", "description": "The file to run: one of `files`' names (else 404 `unknown_entry`)."},
                    "stdin": stdin,
                 }},
            ],
        });
    }
    if let Some(update) = schemas.get_mut("UpdateFileBody") {
        update["anyOf"] = json!([
            {"required": ["filename"], "properties": {"filename": {"type": "string"}}},
            {"required": ["content"], "properties": {"content": {"type": "string"}}},
        ]);
    }
}

/// The events of a `text/event-stream` answer, as OpenAPI 3.1 tools read its `schema`: one
/// event, `{event, data}`, whose `data` is JSON of the schema given for its name.
/// A folder named in a query (`DELETE /api/rooms/{room_id}/folders?path=`) follows the rule of
/// file paths.
fn constrain_folder_paths(document: &mut Value) {
    let Some(parameters) =
        document.pointer_mut("/paths/~1api~1rooms~1{room_id}~1folders/delete/parameters").and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters.iter_mut().filter(|parameter| parameter["name"] == "path") {
        parameter["schema"] = json!({"type": "string", "minLength": 1,
            "maxLength": codesync_common::limits::FILE_PATH_MAX_BYTES, "pattern": codesync_common::paths::path_pattern()});
    }
}

fn event_stream(events: &[(&str, Value)]) -> Value {
    let one_of: Vec<Value> = events
        .iter()
        .map(|(name, data)| {
            json!({"type": "object", "required": ["event", "data"], "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
            }})
        })
        .collect();
    json!({"oneOf": one_of})
}

/// Says what each streaming answer's events are.
fn describe_event_streams(document: &mut Value) {
    let error = json!({"$ref": "#/components/schemas/ErrorBody"});
    let empty = json!({"type": "object", "maxProperties": 0});
    let text = json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}});
    let count = json!({"type": "integer", "format": "int64"});
    let streams = [
        (
            "/api/notifications/stream",
            "get",
            event_stream(&[
                ("ready", empty.clone()),
                ("notification", json!({"$ref": "#/components/schemas/NotificationBody"})),
                ("resync", empty),
                ("error", error.clone()),
            ]),
        ),
        (
            "/api/executions/stream",
            "post",
            event_stream(&[
                ("stdout", text.clone()),
                ("stderr", text.clone()),
                ("result", json!({"$ref": "#/components/schemas/ExecutionBody"})),
                ("error", error.clone()),
            ]),
        ),
        (
            "/api/ai/stream",
            "post",
            event_stream(&[
                (
                    "start",
                    json!({"type": "object", "required": ["interaction_id"], "properties": {"interaction_id": {"type": "string"}}}),
                ),
                ("token", text),
                (
                    "done",
                    json!({"type": "object",
                    "required": ["interaction_id", "provider", "model", "latency_ms", "time_to_first_token_ms", "input_tokens", "output_tokens"],
                    "properties": {
                        "interaction_id": {"type": "string"}, "provider": {"type": "string"}, "model": {"type": "string"},
                        "latency_ms": count.clone(), "time_to_first_token_ms": count.clone(),
                        "input_tokens": count.clone(), "output_tokens": count,
                    }}),
                ),
                ("error", error),
            ]),
        ),
    ];
    for (path, method, schema) in streams {
        let pointer =
            format!("/paths/{}/{method}/responses/200/content/text~1event-stream/schema", path.replace('/', "~1"));
        if let Some(target) = document.pointer_mut(&pointer) {
            *target = schema;
        }
    }
}

/// Links from the answers that create a room, a file or a version to the operations that take
/// its id, so that tools (and readers) can follow them.
fn link_created_resources(document: &mut Value) {
    let room = [
        "get_room",
        "update_room",
        "delete_room",
        "regenerate_invite_code",
        "list_members",
        "list_files",
        "create_file",
        "list_room_events",
    ];
    let file = ["get_file", "update_file", "delete_file", "save_version", "list_versions"];
    let version = ["get_version", "restore_version"];
    let creators: [(&str, &str, &str, &str, &[&str]); 4] = [
        ("/api/rooms", "post", "201", "room_id", &room),
        ("/api/rooms/join", "post", "200", "room_id", &room),
        ("/api/rooms/{room_id}/files", "post", "201", "file_id", &file),
        ("/api/history/file/{file_id}", "post", "201", "version_id", &version),
    ];
    for (path, method, status, parameter, operations) in creators {
        let pointer = format!("/paths/{}/{method}/responses/{status}", path.replace('/', "~1"));
        let Some(response) = document.pointer_mut(&pointer).and_then(Value::as_object_mut) else { continue };
        let links: Map<String, Value> = operations
            .iter()
            .map(|operation| {
                (
                    operation.to_string(),
                    json!({"operationId": operation, "parameters": {parameter: "$response.body#/id"}}),
                )
            })
            .collect();
        response.insert("links".into(), Value::Object(links));
    }
}

/// `language` of an inline run, narrowed to the languages this server runs now.
fn set_languages(document: &mut Value, languages: &[String]) {
    if let Some(language) = document.pointer_mut("/components/schemas/ExecuteBody/oneOf/1/properties/language") {
        language["enum"] = json!(languages);
    }
}

/// How long the served document keeps the language list it was made with.
const LANGUAGES_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The document as `/api/openapi.json` serves it: the languages an inline run may name are the
/// ones the execution service runs (its installed runtimes, its operator's additions), asked
/// for at most once a minute.
pub struct Served {
    base: Value,
    current: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<String>)>>,
}

impl Served {
    pub fn new(base: Value) -> Self {
        Self { base, current: tokio::sync::Mutex::new(None) }
    }

    pub async fn current(&self, clients: &crate::ServiceClients) -> std::sync::Arc<String> {
        let mut current = self.current.lock().await;
        if let Some((made, document)) = current.as_ref()
            && made.elapsed() < LANGUAGES_FRESH_FOR
        {
            return document.clone();
        }
        let mut request = tonic::Request::new(codesync_proto::execution::v1::ListLanguagesRequest {});
        request.set_timeout(std::time::Duration::from_secs(2));
        let mut document = self.base.clone();
        let listed = clients.execution().list_languages(request).await;
        let fresh = listed.is_ok();
        if let Ok(listed) = listed {
            let names: Vec<String> = listed
                .into_inner()
                .languages
                .into_iter()
                .filter(|language| language.available)
                .map(|language| language.name)
                .collect();
            set_languages(&mut document, &names);
        }
        let text = std::sync::Arc::new(serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".into()));
        // Without the list (the service is down), the next request asks again.
        if fresh {
            *current = Some((std::time::Instant::now(), text.clone()));
        }
        text
    }
}

fn complete_operation(path: &str, operation: &mut Map<String, Value>) {
    let path_names: Vec<&str> =
        path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect();
    let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
    if let Some(parameters) = parameters.as_array_mut() {
        for name in &path_names {
            let declared = parameters.iter().any(|parameter| parameter["name"] == *name && parameter["in"] == "path");
            if !declared {
                parameters.push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": path_parameter_description(name),
                    "schema": {"type": "string", "format": "uuid"},
                }));
            }
        }
    }
    if operation.get("parameters").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        operation.remove("parameters");
    }

    optional_body(operation);
    if !path.starts_with("/api/") {
        return;
    }
    let security = operation.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
    let bearer_possible = security.iter().any(|requirement| requirement.get("bearer").is_some());
    let bearer_required =
        bearer_possible && !security.iter().any(|requirement| requirement.as_object().is_some_and(Map::is_empty));
    let json_body = operation
        .get("requestBody")
        .and_then(|body| body.get("content"))
        .is_some_and(|content| content.get("application/json").is_some());

    let mut shared: Vec<(&str, &str)> = Vec::new();
    if bearer_required {
        shared.push((
            "401",
            "not signed in, or the access token is invalid or expired (`authentication_required`, `invalid_token`)",
        ));
    } else if bearer_possible {
        shared.push(("401", "an access token was sent and is invalid or expired (`invalid_token`)"));
    }
    if json_body {
        shared.push(("400", "the body is not valid JSON (`malformed_json`) or a field's value is refused"));
        shared.push((
            "413",
            "the body is too large (`payload_too_large`); without a valid access token, past `CODESYNC_ANONYMOUS_REQUEST_BYTES` (64 KiB), refused before it is read",
        ));
        shared.push(("415", "the body is not sent as `application/json` (`unsupported_media_type`)"));
        shared.push((
            "422",
            "the body lacks a required field, has an unknown one, or a value of the wrong type (`invalid_body`)",
        ));
    }
    if !path_names.is_empty() {
        shared.push(("404", "no such resource, or one the caller may not see"));
    }
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|parameters| parameters.iter().any(|parameter| parameter["in"] == "query"));
    if has_query {
        shared.push(("400", "a query parameter is not valid (`invalid_query`, `invalid_limit`, ...)"));
    }
    shared.push((
        "429",
        "too many requests from this address or user (`rate_limited`), or the server holds as many requests of this caller, or in all, as it takes (`busy`, `too_many_concurrent_requests`); `Retry-After` says when to try again",
    ));
    shared.push(("503", "a service is unavailable or restarting; try again (`service_unavailable`)"));
    shared.push(("504", "a service did not answer in time (`timeout`)"));

    let responses = operation.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    for (status, description) in shared {
        responses.entry(status).or_insert_with(|| error_response(description));
    }
    if let Some(too_many) = responses.get_mut("429").and_then(Value::as_object_mut) {
        too_many.insert(
            "headers".into(),
            json!({"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}}),
        );
    }
}

/// A route declares a body that may be left out as `request_body = Option<T>`, which utoipa
/// writes as "`T` or `null`"; the API means "`T`, or no body at all".
fn optional_body(operation: &mut Map<String, Value>) {
    let Some(body) = operation.get_mut("requestBody") else { return };
    let Some(schema) = body.pointer_mut("/content/application~1json/schema") else { return };
    let Some(choices) = schema.get("oneOf").and_then(Value::as_array) else { return };
    let is_null = |choice: &&Value| choice.get("type").is_some_and(|kind| kind == "null");
    if choices.len() == 2
        && choices.iter().any(|choice| is_null(&choice))
        && let Some(inner) = choices.iter().find(|choice| !is_null(choice)).cloned()
    {
        *schema = inner;
        body["required"] = json!(false);
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is the document the web app's types are generated from
    /// (`frontend/src/api/schema.d.ts`, `npm run api-types`): it must be what the server serves.
    /// `CODESYNC_BLESS=1 cargo test -p codesync-gateway` writes it.
    #[test]
    fn the_committed_document_is_the_served_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let current = serde_json::to_string_pretty(&crate::openapi()).unwrap() + "\n";
        if std::env::var_os("CODESYNC_BLESS").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json differs from the document the gateway serves: run \
             `CODESYNC_BLESS=1 cargo test -p codesync-gateway the_committed_document` and then \
             `npm run api-types` in frontend/"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_real_operations() {
        let document = crate::openapi();
        let mut ids = std::collections::BTreeSet::new();
        for operations in document["paths"].as_object().unwrap().values() {
            for operation in operations.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            }
        }
        let text = document.to_string();
        for linked in text.split("\"operationId\":\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
            assert!(ids.contains(linked), "a link names {linked}");
        }
        assert!(text.contains("\"links\""));
    }

    #[test]
    fn path_parameters_and_shared_answers_are_declared() {
        let mut document = json!({"paths": {
            "/api/rooms/{room_id}/members/{user_id}": {"patch": {
                "security": [{"bearer": []}],
                "requestBody": {"content": {"application/json": {"schema": {}}}},
                "responses": {"200": {"description": "ok"}, "404": {"description": "no such member"}},
            }},
            "/api/rooms": {"get": {"security": [{}, {"bearer": []}], "responses": {"200": {"description": "ok"}}}},
        }});
        complete(&mut document);
        let patch = &document["paths"]["/api/rooms/{room_id}/members/{user_id}"]["patch"];
        let names: Vec<&str> =
            patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["room_id", "user_id"]);
        for status in ["200", "400", "401", "404", "413", "415", "422", "429", "503", "504"] {
            assert!(patch["responses"].get(status).is_some(), "{status}");
        }
        assert_eq!(patch["responses"]["404"]["description"], "no such member");
        let list = &document["paths"]["/api/rooms"]["get"];
        assert!(list.get("parameters").is_none());
        assert!(list["responses"]["401"]["description"].as_str().unwrap().contains("invalid_token"));
        assert!(list["responses"].get("415").is_none());
    }
}
