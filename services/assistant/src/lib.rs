//! The assistant service: the AI assistant's eight modes over a file's context, streamed token by token from OpenAI-compatible, Anthropic or Gemini providers.
//!
//! Its gRPC contract is `codesync.assistant.v1.AssistantService` in `proto/`. It owns the
//! provider clients ([`provider`], over [`sse`]), the modes' prompts ([`prompts`]), the limits
//! (a per-user rate and number of answers streaming at once, a request timeout, a maximum
//! context), the `ai_interactions` table ([`store`]) and the `ai-events` it publishes. An answer
//! stops, and its upstream request with it, when the caller goes away or calls `Cancel`.
#![forbid(unsafe_code)]

mod answer;
pub mod error;
mod grpc;
pub mod prompts;
pub mod provider;
pub mod sse;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codesync_common::bus::EventBus;
use codesync_common::grpc::{CallContext, GrpcChannel};
use codesync_common::identity::TokenService;
use codesync_common::rate_limit::RateLimiter;
use codesync_common::{ErrorCode, ServiceError};
use codesync_proto::assistant::v1 as pb;
use codesync_proto::assistant::v1::assistant_service_server::AssistantServiceServer;
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use tonic::Status;

pub use crate::answer::AnswerEvents;
use crate::answer::StreamSlot;
use crate::prompts::{Context, Position};
use crate::provider::ProviderConfig;
use crate::store::AssistantStore;

#[derive(Debug, Clone)]
pub struct AssistantConfig {
    /// `None`: the assistant is off and says how to turn it on.
    pub provider: Option<ProviderConfig>,
    pub requests_per_user_per_minute: u32,
    /// Answers one user may have streaming at once.
    pub streams_per_user: usize,
    /// The longest a whole answer may take.
    pub request_timeout: Duration,
    /// The longest the provider may take to start answering (and between two pieces).
    pub idle_timeout: Duration,
    /// The user's prompt, in characters.
    pub max_prompt_chars: usize,
    /// Inline code, in bytes (a file's content is cut to a window around the cursor instead).
    pub max_code_bytes: usize,
    pub max_answer_tokens: u32,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        Self {
            provider: None,
            requests_per_user_per_minute: 20,
            streams_per_user: 2,
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(30),
            max_prompt_chars: codesync_common::limits::PROMPT_MAX_CHARS,
            max_code_bytes: codesync_common::limits::ASSISTANT_CODE_MAX_BYTES,
            max_answer_tokens: 2048,
        }
    }
}

/// The gRPC implementation of `AssistantService`.
#[derive(Clone)]
pub struct AssistantGrpcService {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: TokenService,
    config: AssistantConfig,
    http: reqwest::Client,
    store: AssistantStore,
    events: Arc<dyn EventBus>,
    rooms: RoomsServiceClient<GrpcChannel>,
    documents: DocumentsServiceClient<GrpcChannel>,
    per_user: RateLimiter,
    /// Answers streaming per user.
    streaming: Mutex<HashMap<String, usize>>,
    /// Answers in flight by interaction id: who asked, and how to stop it.
    in_flight: Mutex<HashMap<String, (String, tokio::task::AbortHandle)>>,
    /// Answers finished, failed, and the tokens they took, for `/metrics`.
    answered: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    input_tokens: std::sync::atomic::AtomicU64,
    output_tokens: std::sync::atomic::AtomicU64,
}

impl codesync_common::metrics::Source for Inner {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        use std::sync::atomic::Ordering;
        let streaming: usize = locked(&self.streaming).values().sum();
        vec![
            Reading::gauge("assistant_streams", "Answers streaming now", streaming as f64),
            Reading::counter("assistant_answers", "Answers that ended well", self.answered.load(Ordering::Relaxed)),
            Reading::counter(
                "assistant_failures",
                "Answers that ended with the provider's or a network error",
                self.failed.load(Ordering::Relaxed),
            ),
            Reading::counter(
                "assistant_input_tokens",
                "Prompt tokens sent, as the providers counted them",
                self.input_tokens.load(Ordering::Relaxed),
            ),
            Reading::counter(
                "assistant_output_tokens",
                "Answer tokens received, as the providers counted them",
                self.output_tokens.load(Ordering::Relaxed),
            ),
        ]
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
/// The services the assistant calls, by name: rooms for access to a file, documents for its
/// live text.
pub struct AssistantPeers {
    pub rooms: GrpcChannel,
    pub documents: GrpcChannel,
}

impl AssistantGrpcService {
    pub fn new(
        store: AssistantStore,
        tokens: TokenService,
        config: AssistantConfig,
        events: Arc<dyn EventBus>,
        peers: AssistantPeers,
        redis: Option<codesync_common::redis::Redis>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let per_user =
            RateLimiter::shared("ai", config.requests_per_user_per_minute.max(1), Duration::from_secs(60), redis);
        let inner = Arc::new(Inner {
            tokens,
            config,
            http,
            store,
            events,
            rooms: RoomsServiceClient::new(peers.rooms),
            documents: DocumentsServiceClient::new(peers.documents).max_decoding_message_size(64 * 1024 * 1024),
            per_user,
            streaming: Mutex::default(),
            in_flight: Mutex::default(),
            answered: Default::default(),
            failed: Default::default(),
            input_tokens: Default::default(),
            output_tokens: Default::default(),
        });
        codesync_common::metrics::register(inner.clone());
        Self { inner }
    }

    pub fn into_grpc_server(self) -> AssistantServiceServer<Self> {
        AssistantServiceServer::new(self)
    }

    fn not_configured() -> ServiceError {
        ServiceError::NotConfigured {
            code: ErrorCode::AiNotConfigured,
            message: "no AI provider is configured on this server: set CODESYNC_AI_PROVIDER (openai, anthropic or \
                      gemini), CODESYNC_AI_API_KEY and CODESYNC_AI_MODEL (and CODESYNC_AI_BASE_URL for an \
                      OpenAI-compatible server such as Ollama), then restart"
                .into(),
        }
    }

    /// The request's context: a room's file (read access checked by the rooms service with the
    /// caller's credentials, the live text from the documents service), or the inline code.
    async fn context(&self, call: &CallContext, request: &pb::AskRequest) -> Result<Context, ServiceError> {
        let position = |position: &Option<pb::Position>| {
            position.map(|position| Position { line: position.line, column: position.column })
        };
        let selection = request
            .selection
            .as_ref()
            .and_then(|selection| Some((position(&selection.start)?, position(&selection.end)?)));
        let mut context = Context {
            filename: String::new(),
            language: request.language.clone(),
            content: request.code.clone(),
            selection,
            cursor: position(&request.cursor),
            prompt: request.prompt.clone(),
            history: request.history.iter().map(|turn| (turn.from_assistant, turn.text.clone())).collect(),
        };
        if request.file_id.is_empty() {
            return Ok(context);
        }
        let peer = |service: &'static str| move |status: Status| ServiceError::from_peer(service, status);
        let file = self
            .inner
            .rooms
            .clone()
            .get_file(call.request(rooms_pb::GetFileRequest { file_id: request.file_id.clone() }))
            .await
            .map_err(peer("rooms"))?
            .into_inner();
        let document = self
            .inner
            .documents
            .clone()
            .get_document(call.request(GetDocumentRequest { file_id: file.id.clone(), include_state: false }))
            .await
            .map_err(peer("documents"))?
            .into_inner();
        context.filename = file.filename;
        if context.language.is_empty() {
            context.language = file.language;
        }
        context.content = document.text;
        Ok(context)
    }

    fn take_slot(&self, user_id: &str) -> Result<StreamSlot, ServiceError> {
        let mut streaming = locked(&self.inner.streaming);
        let count = streaming.entry(user_id.to_string()).or_default();
        if *count >= self.inner.config.streams_per_user {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "you already have {} answers streaming; wait for one to finish or stop it",
                    self.inner.config.streams_per_user
                ),
                retry_after_secs: 1,
            });
        }
        *count += 1;
        Ok(StreamSlot { inner: self.inner.clone(), user_id: user_id.to_string() })
    }
}
