//! The execution service: sandboxed code runs (local bubblewrap, Docker, Kubernetes) under hard limits on time, memory, processes and output.
//!
//! Its gRPC contract is `codesync.execution.v1.ExecutionService` in `proto/`. What exists so
//! far: the language table (`languages.toml`, [`languages`]), `ListLanguages`, and the `local`
//! sandbox ([`sandbox::local`]), tested against hostile programs but not yet behind the RPCs:
//! `Execute` answers UNIMPLEMENTED until runs are wired, stored and admitted.
#![forbid(unsafe_code)]

pub mod languages;
pub mod sandbox;

use std::sync::Arc;

use codesync_common::identity::TokenService;
use codesync_proto::execution::v1 as pb;
use codesync_proto::execution::v1::execution_service_server::{ExecutionService, ExecutionServiceServer};
use tokio::sync::OnceCell;
use tonic::{Request, Response, Status};

use crate::languages::{LanguageTable, probe_version};

/// The gRPC implementation of `ExecutionService`.
#[derive(Clone)]
pub struct ExecutionGrpcService {
    tokens: TokenService,
    languages: Arc<LanguageTable>,
    /// Versions are asked of the installed runtimes once, on first use.
    listed: Arc<OnceCell<Vec<pb::Language>>>,
}

impl ExecutionGrpcService {
    pub fn new(tokens: TokenService, languages: LanguageTable) -> Self {
        Self { tokens, languages: Arc::new(languages), listed: Arc::default() }
    }

    pub fn into_grpc_server(self) -> ExecutionServiceServer<Self> {
        ExecutionServiceServer::new(self)
    }

    async fn list(&self) -> Vec<pb::Language> {
        let mut listed = Vec::with_capacity(self.languages.all().len());
        for language in self.languages.all() {
            let available = language.available();
            let version = if available { probe_version(language).await.unwrap_or_default() } else { String::new() };
            listed.push(pb::Language {
                name: language.name.clone(),
                version,
                extensions: language.extensions.clone(),
                available,
            });
        }
        listed
    }
}

#[tonic::async_trait]
impl ExecutionService for ExecutionGrpcService {
    async fn list_languages(
        &self,
        request: Request<pb::ListLanguagesRequest>,
    ) -> Result<Response<pb::ListLanguagesResponse>, Status> {
        self.tokens.require_caller(request.metadata())?;
        let languages = self.listed.get_or_init(|| self.list()).await.clone();
        Ok(Response::new(pb::ListLanguagesResponse { languages }))
    }
}
