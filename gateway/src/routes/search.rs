//! `GET /api/rooms/{room_id}/search`: the live text of every file of a room.

use axum::extract::State;
use codesync_proto::rooms::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, MaybeSignedIn};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// What to find: 1 to 500 characters.
    #[param(min_length = 1, max_length = 500)]
    pub q: String,
    /// `q` is a regular expression (linear-time syntax: no look-around or back-references).
    #[serde(default)]
    pub regex: bool,
    #[serde(default)]
    pub case_sensitive: bool,
    /// Only where `q` is a whole word.
    #[serde(default)]
    pub whole_word: bool,
    /// At most this many matches: 1 to 1000 (default 200).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub max_results: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchMatchBody {
    pub file_id: String,
    pub filename: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in UTF-16 code units (as editors in a browser count).
    pub column: u32,
    /// The match's length in UTF-16 code units.
    pub length: u32,
    /// The line (at most 400 characters of it, around the match).
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchBody {
    pub matches: Vec<SearchMatchBody>,
    /// There were more matches than `max_results`, or the search ran out of time (5 s).
    pub truncated: bool,
    pub files_searched: u32,
}

/// Searches the live text of the room's files (whoever may read them).
#[utoipa::path(get, path = "/api/rooms/{room_id}/search", tag = "files", security((), ("bearer" = [])), params(SearchQuery), responses(
    (status = 200, description = "matches, by file path then position", body = SearchBody),
    (status = 400, description = "an empty, too long or invalid query (`invalid_query`)", body = ErrorBody),
    (status = 404, description = "no such room, or a private room of others", body = ErrorBody),
))]
async fn search(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<axum::Json<SearchBody>, ApiError> {
    let max_results = super::named_limit_param(
        "max_results",
        query.max_results.as_deref(),
        codesync_common::limits::SEARCH_MAX_RESULTS,
    )?;
    let message = pb::SearchFilesRequest {
        room_id,
        query: query.q,
        regex: query.regex,
        case_sensitive: query.case_sensitive,
        whole_word: query.whole_word,
        max_results,
    };
    let found = state.clients.rooms().search_files(visitor.context.request(message)).await?.into_inner();
    let matches = found
        .matches
        .into_iter()
        .map(|hit| SearchMatchBody {
            file_id: hit.file_id,
            filename: hit.filename,
            line: hit.line,
            column: hit.column,
            length: hit.length,
            text: hit.text,
        })
        .collect();
    Ok(axum::Json(SearchBody { matches, truncated: found.truncated, files_searched: found.files_searched }))
}
