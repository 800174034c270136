//! One answer, from the provider's stream to the caller's: its slot among the user's
//! answers streaming at once, its record (stored and announced when it ends, however it ends),
//! and the events the caller reads.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use codesync_common::events::{Event, Kind};
use codesync_proto::assistant::v1 as pb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::Status;

use crate::error::AiError;
use crate::provider::{self, Piece, ProviderConfig};
use crate::sse::SseDecoder;
use crate::store::Interaction;
use crate::{AssistantConfig, Inner, locked};

/// A user's slot among the answers streaming at once; freed when dropped.
pub(crate) struct StreamSlot {
    pub(crate) inner: Arc<Inner>,
    pub(crate) user_id: String,
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
pub(crate) struct Recorder {
    pub(crate) inner: Arc<Inner>,
    pub(crate) interaction: Interaction,
    pub(crate) started: Instant,
    pub(crate) finished: bool,
}

impl Recorder {
    pub(crate) fn finish(&mut self, status: &str) {
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
    pub(crate) events: tokio_stream::wrappers::ReceiverStream<Result<pb::AskEvent, Status>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
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

/// Streams one answer from the provider to `events`: started, the tokens, then done or error.
pub(crate) async fn answer(
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
            tracing::warn!(interaction_id = %interaction_id, code = %error.code(), error = %message, "an AI request failed");
            inner.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            recorder.finish(error.code().as_str());
            send(pb::ask_event::Event::Error(pb::AskError { code: error.code().as_str().into(), message })).await;
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
