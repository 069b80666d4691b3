//! The API subset a handler touches after OAuth (`/v1/users/me`, `/v1/search`) and the catch-all errors.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::content::{Kind, Object, has_data_sources};
use crate::errors::ApiError;
use crate::middleware::RequestId;
use crate::store::Identity;
use crate::token::owner_json;
use crate::{Emulator, ErrorShape, body, credentials};
use uuid::Uuid;

/// Display name of the emulated integration's bot user.
const BOT_NAME: &str = "Notion emulator integration";
/// The per-workspace upload limit Notion reports for paid plans (§5.2 example).
const MAX_UPLOAD_BYTES: u64 = 5_368_709_120;

/// The API versions Notion has published; another value is refused as Notion refuses it.
const KNOWN_VERSIONS: [&str; 7] = [
    "2021-05-11",
    "2021-05-13",
    "2021-08-16",
    "2022-02-22",
    "2022-06-28",
    "2025-09-03",
    "2026-03-11",
];

/// Who calls the API, what they were given, and in which API version.
struct Caller {
    identity: Identity,
    shared: Vec<Uuid>,
    version: String,
}

impl Emulator {
    /// Bearer first, then `Notion-Version`: an unknown token is `unauthorized` whatever the version.
    fn api_caller(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        self.api_grant(headers).map(|caller| caller.identity)
    }

    fn api_grant(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = credentials::bearer(headers).ok_or_else(ApiError::unauthorized)?;
        let (identity, shared) = self
            .with(|s| {
                s.store.access_token_grant(token).map(|(i, shared)| (i.clone(), shared.to_vec()))
            })
            .ok_or_else(ApiError::unauthorized)?;
        let version = headers
            .get("notion-version")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(ApiError::missing_version)?;
        if !KNOWN_VERSIONS.contains(&version.as_str()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation_error",
                format!(
                    "Notion-Version header failed validation: Notion-Version header should be one of {}, instead was `{version}`.",
                    KNOWN_VERSIONS.join(", ")
                ),
            ));
        }
        Ok(Caller { identity, shared, version })
    }
}

/// API errors always use Notion's shape, whatever the OAuth endpoints are configured to (§5.4).
fn respond(result: Result<Value, ApiError>, request_id: &str) -> Response {
    match result {
        Ok(value) => (StatusCode::OK, Json(value)).into_response(),
        Err(error) => error.into_response(ErrorShape::Notion, request_id),
    }
}

pub(crate) async fn users_me(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let result = emulator.api_caller(&headers).map(|identity| {
        // id = bot_id: "likely but UNCONFIRMED" for real Notion (§2.4); the emulator makes it so.
        json!({
            "object": "user",
            "id": identity.bot_id,
            "name": BOT_NAME,
            "avatar_url": null,
            "type": "bot",
            "bot": {
                "owner": owner_json(&identity),
                "workspace_id": identity.workspace_id,
                "workspace_name": identity.workspace_name,
                "workspace_limits": { "max_file_upload_size_in_bytes": MAX_UPLOAD_BYTES },
            },
            "request_id": request_id,
        })
    });
    respond(result, &request_id)
}

pub(crate) async fn search(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = emulator.api_grant(&headers).and_then(|caller| {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        // A body the API cannot read is a `validation_error` there (the OAuth endpoints say
        // `invalid_request`).
        let as_validation = |error: ApiError| match error.code.as_str() {
            "invalid_request" => ApiError { code: "validation_error".to_owned(), ..error },
            _ => error,
        };
        let fields = body::parse(content_type, &body).map_err(as_validation)?;
        let request = SearchRequest::read(&fields, &caller.version).map_err(as_validation)?;
        let found = emulator.with(|s| {
            let objects = s.content.objects(&caller.identity.workspace_name);
            request.run(objects, &caller)
        })?;
        let kind = if has_data_sources(&caller.version) {
            "page_or_data_source"
        } else {
            "page_or_database"
        };
        Ok(json!({
            "object": "list",
            "results": found.results,
            "next_cursor": found.next_cursor,
            "has_more": found.next_cursor.is_some(),
            "type": kind,
            kind: {},
            "request_id": request_id,
        }))
    });
    respond(result, &request_id)
}

/// Notion's wording for a body field that fails validation.
fn invalid_field(field: &str, should: &str, got: &Value) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "validation_error",
        format!("body failed validation: body.{field} should be {should}, instead was `{got}`."),
    )
}

/// A checked search body (§5.3).
struct SearchRequest {
    query: String,
    kind: Option<Kind>,
    ascending: bool,
    start_cursor: Option<Uuid>,
    page_size: usize,
}

struct Found {
    results: Vec<Value>,
    next_cursor: Option<Uuid>,
}

impl SearchRequest {
    fn read(fields: &body::Fields, version: &str) -> Result<Self, ApiError> {
        const KEYS: [&str; 5] = ["query", "filter", "sort", "start_cursor", "page_size"];
        if let Some(unknown) = fields.names().find(|name| !KEYS.contains(name)) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation_error",
                format!(
                    "body failed validation: body.{unknown} is not a search parameter; use {}.",
                    KEYS.join(", ")
                ),
            ));
        }
        let query = fields.str("query")?.unwrap_or_default().trim().to_lowercase();
        let data_sources = has_data_sources(version);
        let kind = match fields.get("filter") {
            None => None,
            Some(filter) => {
                let value = filter.get("value").and_then(Value::as_str);
                let property = filter.get("property").and_then(Value::as_str);
                let allowed = if data_sources {
                    "`\"page\"` or `\"data_source\"`"
                } else {
                    "`\"page\"` or `\"database\"`"
                };
                match (property, value) {
                    (Some("object"), Some("page")) => Some(Kind::Page),
                    (Some("object"), Some("data_source")) if data_sources => Some(Kind::Database),
                    (Some("object"), Some("database")) if !data_sources => Some(Kind::Database),
                    (Some("object"), _) => {
                        return Err(invalid_field(
                            "filter.value",
                            allowed,
                            filter.get("value").unwrap_or(&Value::Null),
                        ));
                    }
                    _ => {
                        return Err(invalid_field(
                            "filter.property",
                            "`\"object\"`",
                            filter.get("property").unwrap_or(&Value::Null),
                        ));
                    }
                }
            }
        };
        let ascending = match fields.get("sort") {
            None => false,
            Some(sort) => {
                let timestamp = sort.get("timestamp").and_then(Value::as_str);
                if timestamp != Some("last_edited_time") {
                    return Err(invalid_field(
                        "sort.timestamp",
                        "`\"last_edited_time\"`",
                        sort.get("timestamp").unwrap_or(&Value::Null),
                    ));
                }
                match sort.get("direction").and_then(Value::as_str) {
                    Some("ascending") => true,
                    Some("descending") => false,
                    _ => {
                        return Err(invalid_field(
                            "sort.direction",
                            "`\"ascending\"` or `\"descending\"`",
                            sort.get("direction").unwrap_or(&Value::Null),
                        ));
                    }
                }
            }
        };
        let start_cursor = match fields.get("start_cursor") {
            None => None,
            Some(Value::String(text)) => Some(Uuid::parse_str(text).map_err(|_| {
                invalid_field(
                    "start_cursor",
                    "a cursor from a previous answer's `next_cursor`",
                    &Value::String(text.clone()),
                )
            })?),
            Some(other) => return Err(invalid_field("start_cursor", "a string", other)),
        };
        let page_size = match fields.get("page_size") {
            None => 100,
            // A JSON number with nothing after the point is a whole number to Notion (1.0 is 1).
            Some(value) => match value
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (1.0..=100.0).contains(n))
            {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(size) => size as usize,
                None => return Err(invalid_field("page_size", "a number from 1 to 100", value)),
            },
        };
        Ok(Self { query, kind, ascending, start_cursor, page_size })
    }

    fn run(&self, objects: &[Object], caller: &Caller) -> Result<Found, ApiError> {
        let mut matching: Vec<&Object> = objects
            .iter()
            .filter(|o| caller.shared.contains(&o.id))
            .filter(|o| self.kind.is_none_or(|kind| o.kind == kind))
            .filter(|o| o.title.to_lowercase().contains(&self.query))
            .collect();
        matching.sort_by_key(|o| (o.edited(), o.id));
        if !self.ascending {
            matching.reverse();
        }
        let start = match self.start_cursor {
            None => 0,
            Some(cursor) => matching.iter().position(|o| o.id == cursor).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "validation_error",
                    format!("start_cursor provided is invalid: {cursor}"),
                )
            })?,
        };
        let page: Vec<&Object> =
            matching.iter().skip(start).take(self.page_size).copied().collect();
        let next_cursor = matching.get(start + page.len()).map(|o| o.id);
        let user = caller.identity.user_id;
        let results = page
            .iter()
            .map(|o| match o.kind {
                Kind::Page => o.page_json(user),
                Kind::Database if has_data_sources(&caller.version) => o.data_source_json(user),
                Kind::Database => o.database_json(user, &caller.version),
            })
            .collect();
        Ok(Found { results, next_cursor })
    }
}

/// Which object an id route reads.
#[derive(Clone, Copy)]
enum Route {
    Page,
    Database,
    DataSource,
}

fn not_found_object(route: Route, raw: &str) -> ApiError {
    let (what, id) = match route {
        Route::Page => ("page", raw),
        Route::Database => ("database", raw),
        Route::DataSource => ("data source", raw),
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        "object_not_found",
        format!(
            "Could not find {what} with ID: {id}. Make sure the relevant pages and databases are shared with your integration."
        ),
    )
}

/// `GET /v1/pages/{id}`, `/v1/databases/{id}`, `/v1/data_sources/{id}`: what was shared, and
/// 404 `object_not_found` for the rest, as Notion answers for a page it will not show.
fn read_object(
    emulator: &Emulator,
    headers: &HeaderMap,
    raw: &str,
    route: Route,
) -> Result<Value, ApiError> {
    let caller = emulator.api_grant(headers)?;
    let param = match route {
        Route::Page => "page_id",
        Route::Database => "database_id",
        Route::DataSource => "data_source_id",
    };
    let id = Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            format!("path failed validation: path.{param} should be a valid uuid, instead was `\"{raw}\"`."),
        )
    })?;
    if matches!(route, Route::DataSource) && !has_data_sources(&caller.version) {
        return Err(ApiError::invalid_request(format!(
            "Unsupported request: GET /v1/data_sources/{raw} needs Notion-Version 2025-09-03 or later."
        )));
    }
    let object = emulator
        .with(|s| s.content.find(&caller.identity.workspace_name, id))
        .filter(|o| caller.shared.contains(&o.id))
        .ok_or_else(|| not_found_object(route, &id.to_string()))?;
    let user = caller.identity.user_id;
    match (route, object.kind) {
        (Route::Page, Kind::Page) if object.id == id => Ok(object.page_json(user)),
        (Route::Database, Kind::Database) if object.id == id => {
            Ok(object.database_json(user, &caller.version))
        }
        (Route::DataSource, Kind::Database) if object.data_source_id == Some(id) => {
            Ok(object.data_source_json(user))
        }
        _ => Err(not_found_object(route, &id.to_string())),
    }
}

fn with_request_id(mut value: Value, request_id: &str) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.insert("request_id".to_owned(), json!(request_id));
    }
    value
}

pub(crate) async fn page(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = read_object(&emulator, &headers, &id, Route::Page);
    respond(result.map(|v| with_request_id(v, &request_id)), &request_id)
}

pub(crate) async fn database(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = read_object(&emulator, &headers, &id, Route::Database);
    respond(result.map(|v| with_request_id(v, &request_id)), &request_id)
}

pub(crate) async fn data_source(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = read_object(&emulator, &headers, &id, Route::DataSource);
    respond(result.map(|v| with_request_id(v, &request_id)), &request_id)
}

pub(crate) async fn not_found(Extension(RequestId(request_id)): Extension<RequestId>) -> Response {
    // Notion answers an unknown path with 400, not 404 (reference §5.4).
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_url", "Invalid request URL.")
        .into_response(ErrorShape::Notion, &request_id)
}

pub(crate) async fn method_not_allowed(
    Extension(RequestId(request_id)): Extension<RequestId>,
    method: Method,
    uri: Uri,
) -> Response {
    // Notion's wording for a request it has no handler for (§5.4 table).
    ApiError::invalid_request(format!("Unsupported request: {method} {}.", uri.path()))
        .into_response(ErrorShape::Notion, &request_id)
}
