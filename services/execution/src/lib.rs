//! The execution service: sandboxed code runs (local bubblewrap, Docker, Kubernetes) under hard limits on time, memory, processes and output.
//!
//! Its gRPC contract is `codesync.execution.v1.ExecutionService` in `proto/`. What exists so
//! far: the language table (`languages.toml`, [`languages`]), `ListLanguages`, and the `local`
//! sandbox ([`sandbox::local`]), tested against hostile programs, behind `Execute` for inline
//! programs and a room's files, with admission ([`admission`]). Streaming, storage and events
//! come next.
#![forbid(unsafe_code)]

pub mod admission;
pub mod languages;
pub mod run;
pub mod sandbox;

use std::sync::Arc;

use codesync_common::ServiceError;
use codesync_common::grpc::{CallContext, GrpcChannel};
use codesync_common::identity::TokenService;
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::execution::v1 as pb;
use codesync_proto::execution::v1::execution_service_server::{ExecutionService, ExecutionServiceServer};
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tokio::sync::OnceCell;
use tonic::{Request, Response, Status};

use crate::admission::{Admission, AdmissionConfig};
use crate::languages::{LanguageTable, probe_version};
use crate::run::Program;
use crate::sandbox::local::LocalSandbox;
use crate::sandbox::{Limits, SandboxError};

/// Where runs' work directories go: outside the data directory, which may sit where the sandbox
/// user cannot pass (under /root, or a private temp dir); the system's temp dir can be crossed.
pub fn default_runs_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("codesync-runs")
}

/// The gRPC implementation of `ExecutionService`.
#[derive(Clone)]
pub struct ExecutionGrpcService {
    tokens: TokenService,
    languages: Arc<LanguageTable>,
    /// Versions are asked of the installed runtimes once, on first use.
    listed: Arc<OnceCell<Vec<pb::Language>>>,
    /// The sandbox, or why this host cannot run one (the service still lists languages).
    sandbox: Result<Arc<LocalSandbox>, String>,
    limits: Limits,
    admission: Arc<Admission>,
    rooms: RoomsServiceClient<GrpcChannel>,
    documents: DocumentsServiceClient<GrpcChannel>,
}

impl ExecutionGrpcService {
    /// `runs_dir` holds the runs' work directories; the sandbox uid must be able to traverse its path.
    pub fn new(
        tokens: TokenService,
        languages: LanguageTable,
        runs_dir: std::path::PathBuf,
        rooms_channel: GrpcChannel,
        documents_channel: GrpcChannel,
    ) -> Self {
        let sandbox = LocalSandbox::new(runs_dir).map(Arc::new).map_err(|error| {
            tracing::warn!(%error, "code execution is off: the local sandbox cannot be set up");
            error.to_string()
        });
        Self {
            tokens,
            languages: Arc::new(languages),
            listed: Arc::default(),
            sandbox,
            limits: Limits::default(),
            admission: Arc::new(Admission::new(AdmissionConfig::default())),
            rooms: RoomsServiceClient::new(rooms_channel),
            documents: DocumentsServiceClient::new(documents_channel).max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    pub fn into_grpc_server(self) -> ExecutionServiceServer<Self> {
        ExecutionServiceServer::new(self)
    }

    /// A room's file as a program: the file is the entry, and the room's other files that fit
    /// (up to the run's limits) sit beside it. Whoever can read the file can run it; the rooms
    /// service decides that, with the caller's own credentials.
    async fn room_program(&self, context: &CallContext, file_id: String) -> Result<pb::InlineProgram, ServiceError> {
        let peer = |service: &'static str| move |status: Status| ServiceError::from_peer(service, status);
        let entry = self
            .rooms
            .clone()
            .get_file(context.request(rooms_pb::GetFileRequest { file_id }))
            .await
            .map_err(peer("rooms"))?;
        let entry = entry.into_inner();
        let listed = self
            .rooms
            .clone()
            .list_files(context.request(rooms_pb::ListFilesRequest { room_id: entry.room_id.clone() }))
            .await
            .map_err(peer("rooms"))?
            .into_inner()
            .files;
        // The entry first; then the files of its language; then the rest, while they fit.
        let language = self.languages.for_file(&entry.filename);
        let mut ordered: Vec<rooms_pb::File> = listed.into_iter().filter(|file| file.id != entry.id).collect();
        ordered.sort_by_key(|file| !language.is_some_and(|language| language.handles(&file.filename)));
        let mut files = Vec::new();
        let mut total = 0_usize;
        // At most MAX_FILES documents are fetched, however many files the room holds.
        for file in std::iter::once(entry.clone()).chain(ordered).take(run::MAX_FILES) {
            let request = GetDocumentRequest { file_id: file.id.clone(), include_state: false };
            let text = self
                .documents
                .clone()
                .get_document(context.request(request))
                .await
                .map_err(peer("documents"))?
                .into_inner()
                .text;
            if file.id != entry.id && total + text.len() > run::MAX_SOURCE_BYTES {
                continue;
            }
            total += text.len();
            files.push(pb::SourceFile { name: file.filename, content: text });
        }
        Ok(pb::InlineProgram { language: String::new(), files, entry: entry.filename })
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
    async fn execute(&self, request: Request<pb::ExecuteRequest>) -> Result<Response<pb::ExecutionResult>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request);
        let request = request.into_inner();
        let inline = match request.source {
            Some(pb::execute_request::Source::Program(program)) => program,
            Some(pb::execute_request::Source::FileId(file_id)) => self.room_program(&context, file_id).await?,
            None => {
                return Err(ServiceError::invalid("no_program", "name a file_id or send a language and files").into());
            }
        };
        let program =
            Program { language: &inline.language, files: &inline.files, entry: &inline.entry, stdin: &request.stdin };
        let (language, entry) = run::resolve(&self.languages, &program)?;
        let sandbox = self.sandbox.as_ref().map_err(|reason| ServiceError::Unavailable {
            message: format!("code execution is not available on this server: {reason}"),
        })?;
        // Held until the run ends: the slot frees when it drops.
        let _slot = self.admission.admit(&caller.user_id).await?;
        let mut result =
            run::run(sandbox, language, &entry, &program, &self.limits).await.map_err(|error| match error {
                SandboxError::Invalid(message) => ServiceError::invalid("invalid_file_name", message),
                other => ServiceError::internal(other),
            })?;
        result.id = codesync_common::new_id();
        result.created_at_ms = codesync_common::now_ms();
        tracing::info!(user_id = %caller.user_id, language = %result.language, status = result.status, wall_time_ms = result.wall_time_ms, "a run ended");
        Ok(Response::new(result))
    }

    async fn list_languages(
        &self,
        request: Request<pb::ListLanguagesRequest>,
    ) -> Result<Response<pb::ListLanguagesResponse>, Status> {
        self.tokens.require_caller(request.metadata())?;
        let languages = self.listed.get_or_init(|| self.list()).await.clone();
        Ok(Response::new(pb::ListLanguagesResponse { languages }))
    }
}
