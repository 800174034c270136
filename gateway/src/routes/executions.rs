//! `/api/executions/*`: so far the languages the sandbox runs.

use axum::extract::State;
use codesync_proto::execution::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::SignedIn;

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(list_languages))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageBody {
    /// The name runs use: `python`, `javascript`, `java`, `cpp`, `c`, ...
    pub name: String,
    /// The installed runtime's own version line; empty when not installed.
    pub version: String,
    pub extensions: Vec<String>,
    /// Whether this server can run it (its compiler or interpreter is installed).
    pub available: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageListBody {
    pub languages: Vec<LanguageBody>,
}

/// The languages code can be run in, and whether each is installed on this server.
#[utoipa::path(get, path = "/api/executions/languages", tag = "executions", security(("bearer" = [])), responses(
    (status = 200, description = "languages", body = LanguageListBody),
    (status = 401, description = "not signed in", body = ErrorBody),
))]
async fn list_languages(
    State(state): State<GatewayState>,
    caller: SignedIn,
) -> Result<axum::Json<LanguageListBody>, ApiError> {
    let languages =
        state.clients.execution().list_languages(caller.context.request(pb::ListLanguagesRequest {})).await?;
    let languages = languages
        .into_inner()
        .languages
        .into_iter()
        .map(|language| LanguageBody {
            name: language.name,
            version: language.version,
            extensions: language.extensions,
            available: language.available,
        })
        .collect();
    Ok(axum::Json(LanguageListBody { languages }))
}
