//! The gRPC adapter: `codesync.assistant.v1.AssistantService` on [`AssistantGrpcService`],
//! the checks of a request before its answer starts, and cancelling one.

use std::pin::Pin;
use std::time::Instant;

use codesync_common::grpc::CallContext;
use codesync_common::rate_limit::retry_after_secs;
use codesync_common::{ErrorCode, ServiceError};
use codesync_proto::assistant::v1 as pb;
use codesync_proto::assistant::v1::assistant_service_server::AssistantService;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::answer::{AnswerEvents, Recorder, answer};
use crate::store::Interaction;
use crate::{AssistantGrpcService, locked, prompts};

type AskStream = Pin<Box<dyn futures::Stream<Item = Result<pb::AskEvent, Status>> + Send>>;

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
