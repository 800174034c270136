//! The execution service: sandboxed code runs (local bubblewrap, Docker, Kubernetes) under hard limits on time, memory, processes and output.
//!
//! Its gRPC contract is `codesync.execution.v1.ExecutionService` in `proto/`. It owns the
//! language table (`languages.toml`, [`languages`]), the sandboxes ([`sandbox`]), admission
//! ([`admission`]), the `executions` table ([`store`]) and the `execution-events` it publishes.
#![forbid(unsafe_code)]

pub mod admission;
mod grpc;
pub mod languages;
pub mod run;
pub mod sandbox;
pub mod store;

use std::sync::Arc;

use codesync_common::ErrorCode;
use codesync_common::ServiceError;
use codesync_common::bus::{EventBus, Staged};
use codesync_common::events::{Event, Kind, schema};
use codesync_common::grpc::{CallContext, GrpcChannel, ServiceChannels};
use codesync_common::identity::TokenService;
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::execution::v1 as pb;
use codesync_proto::execution::v1::execution_service_server::ExecutionServiceServer;
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tokio::sync::OnceCell;
use tonic::{Request, Status};

use crate::admission::{Admission, AdmissionConfig, Admitted};
pub use crate::grpc::RunEvents;
use crate::languages::{LanguageTable, probe_version};
use crate::run::Program;
use crate::sandbox::{BackendConfig, Limits, LiveOutput, Sandbox, SandboxError};
use crate::store::ExecutionStore;

/// Where runs' work directories go: outside the data directory, which may sit where the sandbox
/// user cannot pass (under /root, or a private temp dir); the system's temp dir can be crossed.
pub fn default_runs_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("codesync-runs")
}

/// The service's settings, parsed once from the configuration.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// Holds the runs' work directories; the sandbox uid must be able to traverse its path.
    pub runs_dir: std::path::PathBuf,
    /// The limits of one phase of a run; languages may lower the time and change the memory.
    pub limits: Limits,
    pub admission: AdmissionConfig,
    pub backend: BackendConfig,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            runs_dir: default_runs_dir(),
            limits: Limits::default(),
            admission: AdmissionConfig::default(),
            backend: BackendConfig::Local,
        }
    }
}

/// The gRPC implementation of `ExecutionService`.
#[derive(Clone)]
pub struct ExecutionGrpcService {
    tokens: TokenService,
    languages: Arc<LanguageTable>,
    /// Versions are asked of the installed runtimes once, on first use.
    listed: Arc<OnceCell<Vec<pb::Language>>>,
    /// The sandbox, or why this host cannot run one (the service still lists languages).
    sandbox: Result<Arc<Sandbox>, String>,
    limits: Limits,
    admission: Arc<Admission>,
    store: ExecutionStore,
    events: Arc<dyn EventBus>,
    rooms: RoomsServiceClient<GrpcChannel>,
    documents: DocumentsServiceClient<GrpcChannel>,
}

/// A run that was admitted and is ready to start: who asked, what runs, and its slot.
struct AdmittedRun {
    user_id: String,
    room_id: String,
    file_id: String,
    language: String,
    entry: String,
    program: pb::InlineProgram,
    stdin: String,
    sandbox: Arc<Sandbox>,
    /// Held until the run ends: the slot frees when it drops.
    _slot: Admitted,
}
impl ExecutionGrpcService {
    /// Sets up the configured sandbox backend; if it cannot run here, the service still answers
    /// (languages, past runs) and refuses runs with 503 and the reason.
    pub async fn new(
        store: ExecutionStore,
        tokens: TokenService,
        languages: LanguageTable,
        config: ExecutionConfig,
        events: Arc<dyn EventBus>,
        channels: &ServiceChannels,
        redis: Option<codesync_common::redis::Redis>,
    ) -> Self {
        let limits = config.limits;
        let sandbox = match Sandbox::connect(&config.backend, config.runs_dir).await {
            Ok(sandbox) => {
                tracing::info!(
                    backend = sandbox.backend_name(),
                    confinement = %sandbox.confinement(),
                    wall_time_s = limits.wall_time.as_secs(),
                    memory_mb = limits.memory_bytes >> 20,
                    processes = limits.pids,
                    cpu_percent = limits.cpu_percent,
                    output_bytes = limits.output_bytes,
                    "code execution is ready"
                );
                Ok(Arc::new(sandbox))
            }
            Err(error) => {
                tracing::warn!(%error, "code execution is off: the sandbox cannot be set up");
                Err(error.to_string())
            }
        };
        Self {
            tokens,
            languages: Arc::new(languages),
            listed: Arc::default(),
            sandbox,
            limits: config.limits,
            admission: Arc::new(Admission::new(config.admission, redis)),
            store,
            events,
            rooms: RoomsServiceClient::new(channels.rooms.clone()),
            documents: DocumentsServiceClient::new(channels.documents.clone())
                .max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    pub fn into_grpc_server(self) -> ExecutionServiceServer<Self> {
        ExecutionServiceServer::new(self)
    }

    /// Checks the caller and the program, and waits for a slot: everything that can refuse a
    /// run happens here, before anything runs or streams.
    async fn admit(&self, request: Request<pb::ExecuteRequest>) -> Result<AdmittedRun, ServiceError> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let request = request.into_inner();
        let (program, room_id, file_id) = match request.source {
            Some(pb::execute_request::Source::Program(program)) => (program, String::new(), String::new()),
            Some(pb::execute_request::Source::FileId(file_id)) => {
                let (program, room_id) = self.room_program(&context, file_id.clone()).await?;
                (program, room_id, file_id)
            }
            None => {
                return Err(ServiceError::invalid(ErrorCode::NoProgram, "name a file_id or send a language and files"));
            }
        };
        let checked = Program {
            language: &program.language,
            files: &program.files,
            entry: &program.entry,
            stdin: &request.stdin,
        };
        let (language, entry) = run::resolve(&self.languages, &checked)?;
        let language = language.name.clone();
        let sandbox =
            self.sandbox.as_ref().map_err(|reason| ServiceError::Unavailable { message: unavailable(reason) })?;
        let slot = self.admission.admit(&caller.user_id).await?;
        Ok(AdmittedRun {
            user_id: caller.user_id,
            room_id,
            file_id,
            language,
            entry,
            program,
            stdin: request.stdin,
            sandbox: sandbox.clone(),
            _slot: slot,
        })
    }

    /// Runs an admitted program to its end, then stores and announces the result. A sandbox
    /// that fails is reported as an `internal_error` result; the log says why.
    async fn finish(&self, admitted: AdmittedRun, live: Option<&LiveOutput>) -> pb::ExecutionResult {
        let program = Program {
            language: &admitted.language,
            files: &admitted.program.files,
            entry: &admitted.entry,
            stdin: &admitted.stdin,
        };
        let outcome = match self.languages.by_name(&admitted.language) {
            Some(language) => {
                run::run(&admitted.sandbox, language, &admitted.entry, &program, &self.limits, live).await
            }
            None => Err(SandboxError::Setup(format!("the language {} went away", admitted.language))),
        };
        let mut result = outcome.unwrap_or_else(|error| {
            tracing::error!(%error, language = %admitted.language, "a run failed in the sandbox");
            let message = match error {
                SandboxError::Invalid(message) => message,
                _ => "the sandbox failed on the server; its log says why".to_string(),
            };
            pb::ExecutionResult {
                language: admitted.language.clone(),
                status: pb::ExecutionStatus::InternalError.into(),
                stderr: message,
                exit_code: -1,
                ..Default::default()
            }
        });
        result.id = codesync_common::new_id();
        result.created_at_ms = codesync_common::now_ms();
        result.user_id = admitted.user_id;
        result.room_id = admitted.room_id;
        result.file_id = admitted.file_id;
        tracing::info!(
            execution_id = %result.id,
            user_id = %result.user_id,
            language = %result.language,
            status = pb::ExecutionStatus::api_name_of(result.status),
            wall_time_ms = result.wall_time_ms,
            "a run ended"
        );
        let mut staged = Staged::new(self.events.as_ref(), vec![finished_event(&result)]);
        match self.store.insert(&result, &mut staged).await {
            Ok(()) => staged.committed().await,
            Err(error) => {
                tracing::error!(execution_id = %result.id, %error, "cannot store a run's result");
                // The run happened all the same: it is announced without its record.
                Staged::new(self.events.as_ref(), vec![finished_event(&result)]).committed().await;
            }
        }
        result
    }

    /// A room's file as a program: the file is the entry, and the room's other files that fit
    /// (up to the run's limits) sit beside it. Whoever can read the file can run it; the rooms
    /// service decides that, with the caller's own credentials.
    async fn room_program(
        &self,
        context: &CallContext,
        file_id: String,
    ) -> Result<(pb::InlineProgram, String), ServiceError> {
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
        // A run belongs to the room (its members' log, notifications) only when a member made it:
        // anyone may run a public room's file, and an outsider's run is theirs alone.
        let access = codesync_common::access::check_room(&self.rooms, context, &entry.room_id).await?;
        let is_member = access.role != rooms_pb::Role::Unspecified as i32;
        let room_id = if is_member { entry.room_id } else { String::new() };
        Ok((pb::InlineProgram { language: String::new(), files, entry: entry.filename }, room_id))
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

/// Why no code runs here, as runs and the language list say it.
fn unavailable(reason: &str) -> String {
    format!("code execution is not available on this server: {reason}")
}

/// The `execution-events` record of a finished run: what notifications and analytics need,
/// without the output.
fn finished_event(result: &pb::ExecutionResult) -> Event {
    let key = if result.room_id.is_empty() { &result.user_id } else { &result.room_id };
    let finished = schema::ExecutionFinished {
        execution_id: result.id.clone(),
        user_id: result.user_id.clone(),
        room_id: result.room_id.clone(),
        file_id: result.file_id.clone(),
        language: result.language.clone(),
        status: result.status,
        exit_code: result.exit_code,
        signal: result.signal,
        wall_time_ms: result.wall_time_ms,
        peak_memory_bytes: result.peak_memory_bytes,
    };
    Event::new(key, Kind::ExecutionFinished(finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_is_announced_with_what_notifications_and_analytics_need_and_no_output() {
        let result = pb::ExecutionResult {
            id: "run-1".into(),
            user_id: "ada".into(),
            room_id: "room-1".into(),
            file_id: "file-1".into(),
            language: "python".into(),
            status: pb::ExecutionStatus::TimeLimit.into(),
            stdout: "secret output".into(),
            exit_code: -1,
            signal: 9,
            wall_time_ms: 30_000,
            peak_memory_bytes: 1 << 20,
            ..Default::default()
        };
        let event = finished_event(&result);
        assert_eq!((event.topic(), event.key.as_str()), (codesync_common::events::EXECUTION_EVENTS, "room-1"));
        let Kind::ExecutionFinished(finished) = &event.kind else { panic!("{event:?}") };
        assert_eq!(pb::ExecutionStatus::try_from(finished.status), Ok(pb::ExecutionStatus::TimeLimit));
        assert_eq!((finished.language.as_str(), finished.user_id.as_str()), ("python", "ada"));
        assert_eq!(finished.wall_time_ms, 30_000);
        assert!(!format!("{event:?}").contains("secret output"), "output stays in the executions table");

        let inline = pb::ExecutionResult { user_id: "ada".into(), ..Default::default() };
        assert_eq!(finished_event(&inline).key, "ada", "an inline program's events are keyed by its user");
    }
}
