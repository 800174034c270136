//! The assistant service: the AI assistant's eight modes over a file's context, streamed token by token from OpenAI-compatible, Anthropic or Gemini providers.
//!
//! Its gRPC contract is `codesync.assistant.v1.AssistantService` in `proto/`. It owns the
//! provider clients ([`provider`], over [`sse`]), the modes' prompts ([`prompts`]), the limits
//! (a per-user rate and number of answers streaming at once, a request timeout, a maximum
//! context), the `ai_interactions` table ([`store`]) and the `ai-events` it publishes. An answer
//! stops, and its upstream request with it, when the caller goes away or calls `Cancel`.
#![forbid(unsafe_code)]

pub mod error;
pub mod prompts;
pub mod provider;
pub mod sse;
pub mod store;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codesync_common::ErrorCode;
use codesync_common::ServiceError;
use codesync_common::events::{Event, EventBus, Kind};
use codesync_common::grpc::{CallContext, GrpcChannel};
use codesync_common::identity::TokenService;
use codesync_common::rate_limit::{RateLimiter, retry_after_secs};
use codesync_proto::assistant::v1 as pb;
use codesync_proto::assistant::v1::assistant_service_server::{AssistantService, AssistantServiceServer};
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::rooms::v1 as rooms_pb;
use codesync_proto::rooms::v1::rooms_service_client::RoomsServiceClient;
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::error::AiError;
use crate::prompts::{Context, Position};
use crate::provider::{Piece, ProviderConfig};
use crate::sse::SseDecoder;
use crate::store::{AssistantStore, Interaction};

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

/// A user's slot among the answers streaming at once; freed when dropped.
struct StreamSlot {
    inner: Arc<Inner>,
    user_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streaming = locked(&self.inner.streaming);
        if let Some(count) = streaming.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                streaming.remove(&self.user_id);
            }
        }
    }
}

/// One answer on its way: recorded (and announced) when it ends, also when it is abandoned
/// half-way (`cancelled`).
struct Recorder {
    inner: Arc<Inner>,
    interaction: Interaction,
    started: Instant,
    finished: bool,
}

impl Recorder {
    fn finish(&mut self, status: &str) {
        self.interaction.status = status.to_string();
        self.interaction.latency_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.finished = true;
        let (inner, interaction) = (self.inner.clone(), self.interaction.clone());
        locked(&inner.in_flight).remove(&interaction.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = inner.store.insert(&interaction).await {
                    tracing::error!(interaction_id = %interaction.id, %error, "cannot store an AI interaction");
                }
                inner.events.publish(Event::new(&interaction.user_id, Kind::AiRequestFinished(interaction.to_event())));
            });
        }
        tracing::info!(
            interaction_id = %self.interaction.id,
            user_id = %self.interaction.user_id,
            mode = %self.interaction.mode,
            status,
            latency_ms = self.interaction.latency_ms,
            "an AI request ended"
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.finished {
            self.finish("cancelled");
        }
    }
}

/// The answer's events; dropping it (the caller went away) stops the answer and its upstream
/// request.
pub struct AnswerEvents {
    events: tokio_stream::wrappers::ReceiverStream<Result<pb::AskEvent, Status>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AnswerEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures::Stream for AnswerEvents {
    type Item = Result<pb::AskEvent, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(context)
    }
}

type AskStream = Pin<Box<dyn futures::Stream<Item = Result<pb::AskEvent, Status>> + Send>>;

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

#[tonic::async_trait]
impl AssistantService for AssistantGrpcService {
    async fn ask(&self, request: Request<pb::AskRequest>) -> Result<Response<AskStream>, Status> {
        let caller = self.inner.tokens.require_caller(request.metadata())?;
        let call = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let provider = self.inner.config.provider.clone().ok_or_else(Self::not_configured)?;
        let mode =
            pb::Mode::try_from(request.mode).ok().filter(|mode| *mode != pb::Mode::Unspecified).ok_or_else(|| {
                ServiceError::invalid(
                    ErrorCode::UnknownMode,
                    "mode must be generate, chat, review, debug, explain, refactor, complete or docs",
                )
            })?;
        let config = &self.inner.config;
        if request.prompt.chars().count() > config.max_prompt_chars {
            return Err(ServiceError::TooLarge {
                code: ErrorCode::PromptTooLarge,
                message: format!("the prompt is longer than {} characters", config.max_prompt_chars),
            }
            .into());
        }
        if request.code.len() > config.max_code_bytes {
            return Err(ServiceError::TooLarge {
                code: ErrorCode::CodeTooLarge,
                message: format!("the code is larger than {} bytes", config.max_code_bytes),
            }
            .into());
        }
        if request.file_id.is_empty() && request.code.is_empty() && request.prompt.trim().is_empty() {
            return Err(ServiceError::invalid(ErrorCode::EmptyRequest, "send a file_id, some code or a prompt").into());
        }
        if let Err(wait) = self.inner.per_user.try_acquire(&caller.user_id).await {
            return Err(ServiceError::RateLimited {
                message: format!("at most {} assistant requests a minute", config.requests_per_user_per_minute),
                retry_after_secs: retry_after_secs(wait),
            }
            .into());
        }
        let slot = self.take_slot(&caller.user_id)?;
        let context = self.context(&call, &request).await?;
        let prompt = prompts::build(mode, &context, config.max_answer_tokens);

        let interaction_id = codesync_common::new_id();
        let recorder = Recorder {
            inner: self.inner.clone(),
            interaction: Interaction {
                id: interaction_id.clone(),
                user_id: caller.user_id.clone(),
                file_id: request.file_id.clone(),
                mode: mode.api_name().to_string(),
                provider: provider.kind.name().to_string(),
                model: provider.model.clone(),
                status: String::new(),
                time_to_first_token_ms: -1,
                latency_ms: 0,
                input_tokens: 0,
                output_tokens: 0,
                created_at_ms: codesync_common::now_ms(),
            },
            started: Instant::now(),
            finished: false,
        };
        let (sender, receiver) = mpsc::channel(64);
        let inner = self.inner.clone();
        // The answer starts once it can be found for Cancel (else a quick one could end first
        // and leave its entry behind).
        let (go, registered) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _slot = slot;
            if registered.await.is_ok() {
                answer(inner, provider, prompt, recorder, sender).await;
            }
        });
        locked(&self.inner.in_flight).insert(interaction_id, (caller.user_id, task.abort_handle()));
        let _ = go.send(());
        let events = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(AnswerEvents { events, task })))
    }

    async fn cancel(&self, request: Request<pb::CancelRequest>) -> Result<Response<pb::CancelResponse>, Status> {
        let caller = self.inner.tokens.require_caller(request.metadata())?;
        let interaction_id = request.into_inner().interaction_id;
        let removed = {
            let mut in_flight = locked(&self.inner.in_flight);
            match in_flight.get(&interaction_id) {
                Some((owner, _)) if *owner == caller.user_id => in_flight.remove(&interaction_id),
                _ => None,
            }
        };
        // Someone else's answer is no more found than a finished one.
        let (_, abort) = removed.ok_or_else(|| {
            ServiceError::not_found(ErrorCode::InteractionNotFound, "no answer of yours with this id is in flight")
        })?;
        abort.abort();
        Ok(Response::new(pb::CancelResponse {}))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::AssistantStatus>, Status> {
        self.inner.tokens.require_caller(request.metadata())?;
        let status = match &self.inner.config.provider {
            Some(provider) => pb::AssistantStatus {
                configured: true,
                provider: provider.kind.name().into(),
                model: provider.model.clone(),
                message: String::new(),
            },
            None => pb::AssistantStatus {
                configured: false,
                provider: String::new(),
                model: String::new(),
                message: Self::not_configured().to_string(),
            },
        };
        Ok(Response::new(status))
    }
}

/// Streams one answer from the provider to `events`: started, the tokens, then done or error.
async fn answer(
    inner: Arc<Inner>,
    provider: ProviderConfig,
    prompt: provider::Prompt,
    mut recorder: Recorder,
    events: mpsc::Sender<Result<pb::AskEvent, Status>>,
) {
    let send = |event: pb::ask_event::Event| {
        let events = events.clone();
        async move { events.send(Ok(pb::AskEvent { event: Some(event) })).await.is_ok() }
    };
    let interaction_id = recorder.interaction.id.clone();
    if !send(pb::ask_event::Event::Started(pb::AskStarted { interaction_id: interaction_id.clone() })).await {
        return;
    }
    let config = &inner.config;
    let deadline = recorder.started + config.request_timeout;
    let outcome = stream_answer(&inner.http, &provider, &prompt, config, deadline, &mut recorder, &send).await;
    match outcome {
        Ok(()) => {
            let interaction = &recorder.interaction;
            let done = pb::AskDone {
                interaction_id,
                provider: interaction.provider.clone(),
                model: interaction.model.clone(),
                latency_ms: i64::try_from(recorder.started.elapsed().as_millis()).unwrap_or(i64::MAX),
                output_tokens: interaction.output_tokens,
                input_tokens: interaction.input_tokens,
                time_to_first_token_ms: interaction.time_to_first_token_ms,
            };
            inner.answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tokens = |count: i64| u64::try_from(count).unwrap_or(0);
            inner.input_tokens.fetch_add(tokens(interaction.input_tokens), std::sync::atomic::Ordering::Relaxed);
            inner.output_tokens.fetch_add(tokens(interaction.output_tokens), std::sync::atomic::Ordering::Relaxed);
            recorder.finish("ok");
            send(pb::ask_event::Event::Done(done)).await;
        }
        Err(Some(error)) => {
            // Mid-stream error events are the vendor's words too: the key never passes on.
            let message = provider::vendor_text(&error.to_string(), provider.api_key.as_deref());
            tracing::warn!(interaction_id = %interaction_id, code = error.code(), error = %message, "an AI request failed");
            inner.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            recorder.finish(error.code());
            send(pb::ask_event::Event::Error(pb::AskError { code: error.code().into(), message })).await;
        }
        // The caller went away: the recorder's drop records the cancellation.
        Err(None) => {}
    }
}

/// Reads the provider's stream into token events. `Err(None)`: nobody is listening any more.
async fn stream_answer<F, Fut>(
    http: &reqwest::Client,
    provider: &ProviderConfig,
    prompt: &provider::Prompt,
    config: &AssistantConfig,
    deadline: Instant,
    recorder: &mut Recorder,
    send: &F,
) -> Result<(), Option<AiError>>
where
    F: Fn(pb::ask_event::Event) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Waiting for the headers counts against the request's deadline too.
    let header_wait = config.idle_timeout.min(deadline.saturating_duration_since(Instant::now()));
    let response = provider::start(http, provider, prompt, header_wait).await.map_err(Some)?;
    let mut body = response.bytes_stream();
    let mut decoder = SseDecoder::default();
    let mut token_chunks = 0_i64;
    let mut reported_output = None;
    loop {
        let wait = config.idle_timeout.min(deadline.saturating_duration_since(Instant::now()));
        let (decoded, stream_ended) = match tokio::time::timeout(wait, body.next()).await {
            Err(_) => return Err(Some(AiError::Timeout)),
            Ok(Some(Err(error))) => {
                return Err(Some(AiError::Unreachable(format!("the answer was cut off: {}", error.without_url()))));
            }
            Ok(Some(Ok(chunk))) => {
                (decoder.push(&chunk).map_err(|error| Some(AiError::BadResponse(error.to_string())))?, false)
            }
            // A last event without the blank line after it still counts, `[DONE]` and usage included.
            Ok(None) => (decoder.finish().into_iter().collect(), true),
        };
        for event in decoded {
            for piece in provider::parse(provider.kind, &event).map_err(Some)? {
                match piece {
                    Piece::Token(text) => {
                        if recorder.interaction.time_to_first_token_ms < 0 {
                            recorder.interaction.time_to_first_token_ms =
                                i64::try_from(recorder.started.elapsed().as_millis()).unwrap_or(i64::MAX);
                        }
                        token_chunks += 1;
                        if !send(pb::ask_event::Event::Token(text)).await {
                            return Err(None);
                        }
                    }
                    Piece::Usage { input, output } => {
                        if let Some(input) = input {
                            recorder.interaction.input_tokens = input;
                        }
                        if output.is_some() {
                            reported_output = output;
                        }
                    }
                    Piece::End => {
                        recorder.interaction.output_tokens = reported_output.unwrap_or(token_chunks);
                        return Ok(());
                    }
                }
            }
        }
        if stream_ended {
            break;
        }
    }
    // Gemini ends by closing the stream; the others must say so first, or the answer was cut.
    if provider.kind != provider::ProviderKind::Gemini {
        return Err(Some(AiError::BadResponse("the stream ended before the answer did".into())));
    }
    recorder.interaction.output_tokens = reported_output.unwrap_or(token_chunks);
    Ok(())
}
