//! The three provider APIs, each as its vendor speaks it: the request, and the pieces of the
//! answer read from its stream of server-sent events.
//!
//! - OpenAI chat completions (and every OpenAI-compatible server: Ollama, vLLM, llama.cpp):
//!   `POST {base}/chat/completions` with `stream: true`; `data:` chunks with
//!   `choices[0].delta.content`, a last chunk with `usage` (asked for with `stream_options`),
//!   then `data: [DONE]`.
//! - Anthropic Messages: `POST {base}/v1/messages`; `event:`/`data:` pairs: `message_start`
//!   (input tokens), `content_block_delta` (`delta.text`), `message_delta` (output tokens),
//!   `ping`, `message_stop`, and `error` mid-stream (such as `overloaded_error`).
//! - Gemini: `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`; `data:` chunks
//!   with `candidates[0].content.parts[].text` and `usageMetadata`; the stream's end is the end.

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::AiError;
use crate::sse::SseEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub const ALL: [Self; 3] = [Self::OpenAi, Self::Anthropic, Self::Gemini];

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Gemini => "https://generativelanguage.googleapis.com",
        }
    }

    fn default_model(self) -> &'static str {
        match self {
            Self::OpenAi => "gpt-4o-mini",
            Self::Anthropic => "claude-3-5-haiku-latest",
            Self::Gemini => "gemini-2.0-flash",
        }
    }
}

/// Which provider answers, where, with which key and model. The key is only ever sent to the
/// provider: it is redacted from `Debug` and never logged.
#[derive(Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish()
    }
}

impl ProviderConfig {
    /// The vendor's public endpoint and a current small model where none is given.
    pub fn new(kind: ProviderKind, base_url: Option<String>, api_key: Option<String>, model: Option<String>) -> Self {
        Self {
            kind,
            base_url: base_url.unwrap_or_else(|| kind.default_base_url().to_string()).trim_end_matches('/').to_string(),
            api_key,
            model: model.unwrap_or_else(|| kind.default_model().to_string()),
        }
    }
}

/// What is sent: the mode's instructions, the user's message with its context, and a cap on
/// the answer's length.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub system: String,
    /// Earlier turns, oldest first: (from the assistant, text).
    pub history: Vec<(bool, String)>,
    pub user: String,
    pub max_tokens: u32,
}

impl Prompt {
    /// The conversation as role-tagged messages, ending with the user's new message.
    fn messages(&self, assistant_role: &str) -> Vec<Value> {
        let mut messages: Vec<Value> = self
            .history
            .iter()
            .map(|(from_assistant, text)| json!({"role": if *from_assistant { assistant_role } else { "user" }, "content": text}))
            .collect();
        messages.push(json!({"role": "user", "content": self.user}));
        messages
    }
}

/// A piece of the answer as read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Token(String),
    /// Token counts as the provider reports them (some send them in several events).
    Usage {
        input: Option<i64>,
        output: Option<i64>,
    },
    /// The provider said the answer is complete.
    End,
}

/// Sends the request; an answer other than 2xx becomes the matching error.
pub async fn start(
    http: &reqwest::Client,
    config: &ProviderConfig,
    prompt: &Prompt,
    timeout: Duration,
) -> Result<reqwest::Response, AiError> {
    let request = match config.kind {
        ProviderKind::OpenAi => {
            let body = json!({
                "model": config.model,
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": prompt.max_tokens,
                "messages": std::iter::once(json!({"role": "system", "content": prompt.system}))
                    .chain(prompt.messages("assistant"))
                    .collect::<Vec<Value>>(),
            });
            let request = http.post(format!("{}/chat/completions", config.base_url)).json(&body);
            match &config.api_key {
                Some(key) => request.bearer_auth(key),
                None => request,
            }
        }
        ProviderKind::Anthropic => {
            let body = json!({
                "model": config.model,
                "stream": true,
                "max_tokens": prompt.max_tokens,
                "system": prompt.system,
                "messages": prompt.messages("assistant"),
            });
            http.post(format!("{}/v1/messages", config.base_url))
                .header("x-api-key", config.api_key.clone().unwrap_or_default())
                .header("anthropic-version", "2023-06-01")
                .json(&body)
        }
        ProviderKind::Gemini => {
            let body = json!({
                "systemInstruction": {"parts": [{"text": prompt.system}]},
                "contents": prompt
                    .messages("model")
                    .into_iter()
                    .map(|message| json!({"role": message["role"], "parts": [{"text": message["content"]}]}))
                    .collect::<Vec<Value>>(),
                "generationConfig": {"maxOutputTokens": prompt.max_tokens},
            });
            http.post(format!("{}/v1beta/models/{}:streamGenerateContent?alt=sse", config.base_url, config.model))
                .header("x-goog-api-key", config.api_key.clone().unwrap_or_default())
                .json(&body)
        }
    };
    let response = tokio::time::timeout(timeout, request.header("accept", "text/event-stream").send())
        .await
        .map_err(|_| AiError::Timeout)?
        .map_err(|error| AiError::Unreachable(without_url(&error)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let body = tokio::time::timeout(Duration::from_secs(5), read_at_most(response, MAX_ERROR_BODY_BYTES))
        .await
        .unwrap_or_default();
    let message = vendor_text(&upstream_message(&body), config.api_key.as_deref());
    Err(AiError::from_status(status.as_u16(), retry_after, &message))
}

/// An error body is only read for its message: a provider (or a proxy in front of it) that
/// sends more than this is not kept in memory.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The first `limit` bytes of a body, as text; what cannot be read is left out.
async fn read_at_most(mut response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The longest piece of a vendor's text that is passed on (to the browser, to the log).
const VENDOR_TEXT_CHARS: usize = 300;

/// A vendor's words as they may be passed on: the key redacted from the whole text first, then
/// shortened (cut first, a key straddling the cut would leave most of itself behind).
pub fn vendor_text(message: &str, api_key: Option<&str>) -> String {
    let redacted = redact_key(message, api_key);
    let mut shortened: String = redacted.chars().take(VENDOR_TEXT_CHARS).collect();
    if shortened.is_empty() {
        shortened = "no details".into();
    }
    shortened
}

/// Some servers echo the credential they were sent (a proxy's error page, a misconfigured
/// OpenAI-compatible server); the message goes to the browser and the logs, the key never does.
pub fn redact_key(message: &str, api_key: Option<&str>) -> String {
    match api_key.map(str::trim).filter(|key| key.len() >= 4) {
        Some(key) => message.replace(key, "[redacted]"),
        None => message.to_string(),
    }
}

/// reqwest's own messages name the URL, which for some setups carries a key in its query:
/// say what went wrong without it.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "cannot connect to the provider"
    } else if error.is_timeout() {
        "the provider did not answer in time"
    } else {
        "the request to the provider failed"
    };
    match std::error::Error::source(error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_string(),
    }
}

/// The vendor's own sentence from an error body (`{"error": {"message": ...}}` in all three
/// APIs); the raw body when it is not JSON. Whole: [`vendor_text`] redacts, then shortens.
pub fn upstream_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    parsed
        .as_ref()
        .and_then(|value| value["error"]["message"].as_str().or_else(|| value["message"].as_str()))
        .map_or_else(|| body.trim().to_string(), str::to_string)
}

/// The pieces one event of the stream carries.
pub fn parse(kind: ProviderKind, event: &SseEvent) -> Result<Vec<Piece>, AiError> {
    match kind {
        ProviderKind::OpenAi => parse_openai(event),
        ProviderKind::Anthropic => parse_anthropic(event),
        ProviderKind::Gemini => parse_gemini(event),
    }
}

fn json_of(event: &SseEvent) -> Result<Value, AiError> {
    // Its bytes are not quoted: they are the vendor's, and might hold anything.
    serde_json::from_str(&event.data)
        .map_err(|_| AiError::BadResponse(format!("an event that is not JSON ({} bytes)", event.data.len())))
}

fn parse_openai(event: &SseEvent) -> Result<Vec<Piece>, AiError> {
    if event.data.trim() == "[DONE]" {
        return Ok(vec![Piece::End]);
    }
    let chunk = json_of(event)?;
    if chunk.get("error").is_some() {
        return Err(AiError::from_stream_error(&chunk["error"]));
    }
    let mut pieces = Vec::new();
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        if let Some(text) = choice["delta"]["content"].as_str().filter(|text| !text.is_empty()) {
            pieces.push(Piece::Token(text.to_string()));
        }
    }
    if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
        pieces
            .push(Piece::Usage { input: usage["prompt_tokens"].as_i64(), output: usage["completion_tokens"].as_i64() });
    }
    Ok(pieces)
}

fn parse_anthropic(event: &SseEvent) -> Result<Vec<Piece>, AiError> {
    match event.event.as_str() {
        "ping" => Ok(Vec::new()),
        "message_stop" => Ok(vec![Piece::End]),
        "error" => Err(AiError::from_stream_error(&json_of(event)?["error"])),
        "message_start" => {
            let message = json_of(event)?;
            let usage = &message["message"]["usage"];
            Ok(vec![Piece::Usage { input: usage["input_tokens"].as_i64(), output: usage["output_tokens"].as_i64() }])
        }
        "content_block_delta" => {
            let delta = json_of(event)?;
            Ok(delta["delta"]["text"]
                .as_str()
                .filter(|text| !text.is_empty())
                .map(|text| Piece::Token(text.to_string()))
                .into_iter()
                .collect())
        }
        "message_delta" => {
            let delta = json_of(event)?;
            Ok(vec![Piece::Usage { input: None, output: delta["usage"]["output_tokens"].as_i64() }])
        }
        // content_block_start, content_block_stop, and kinds added later.
        _ => Ok(Vec::new()),
    }
}

fn parse_gemini(event: &SseEvent) -> Result<Vec<Piece>, AiError> {
    let chunk = json_of(event)?;
    if chunk.get("error").is_some() {
        return Err(AiError::from_stream_error(&chunk["error"]));
    }
    let mut pieces = Vec::new();
    for part in chunk["candidates"][0]["content"]["parts"].as_array().into_iter().flatten() {
        if let Some(text) = part["text"].as_str().filter(|text| !text.is_empty()) {
            pieces.push(Piece::Token(text.to_string()));
        }
    }
    if let Some(usage) = chunk.get("usageMetadata") {
        pieces.push(Piece::Usage {
            input: usage["promptTokenCount"].as_i64(),
            output: usage["candidatesTokenCount"].as_i64(),
        });
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent { event: name.into(), data: data.into() }
    }

    #[test]
    fn openai_chunks_give_tokens_usage_and_the_end() {
        let chunk = event("message", r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#);
        assert_eq!(parse(ProviderKind::OpenAi, &chunk).unwrap(), [Piece::Token("Hel".into())]);
        let role_only = event("message", r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#);
        assert_eq!(parse(ProviderKind::OpenAi, &role_only).unwrap(), []);
        let usage = event("message", r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#);
        assert_eq!(parse(ProviderKind::OpenAi, &usage).unwrap(), [Piece::Usage { input: Some(12), output: Some(3) }]);
        assert_eq!(parse(ProviderKind::OpenAi, &event("message", "[DONE]")).unwrap(), [Piece::End]);
        assert!(matches!(parse(ProviderKind::OpenAi, &event("message", "{oops")), Err(AiError::BadResponse(_))));
    }

    #[test]
    fn anthropic_events_give_tokens_usage_pings_and_mid_stream_errors() {
        let start = event(
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        );
        assert_eq!(
            parse(ProviderKind::Anthropic, &start).unwrap(),
            [Piece::Usage { input: Some(25), output: Some(1) }]
        );
        let delta = event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        );
        assert_eq!(parse(ProviderKind::Anthropic, &delta).unwrap(), [Piece::Token("Hi".into())]);
        assert_eq!(parse(ProviderKind::Anthropic, &event("ping", r#"{"type":"ping"}"#)).unwrap(), []);
        let overloaded =
            event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert!(matches!(parse(ProviderKind::Anthropic, &overloaded), Err(AiError::Overloaded)));
        assert_eq!(
            parse(ProviderKind::Anthropic, &event("message_stop", r#"{"type":"message_stop"}"#)).unwrap(),
            [Piece::End]
        );
    }

    #[test]
    fn gemini_chunks_give_tokens_and_usage() {
        let chunk = event(
            "message",
            r#"{"candidates":[{"content":{"parts":[{"text":"Hi"},{"text":" there"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":2}}"#,
        );
        assert_eq!(
            parse(ProviderKind::Gemini, &chunk).unwrap(),
            [
                Piece::Token("Hi".into()),
                Piece::Token(" there".into()),
                Piece::Usage { input: Some(7), output: Some(2) }
            ]
        );
    }

    #[test]
    fn the_key_never_shows_in_debug_output_and_vendors_have_defaults() {
        let config = ProviderConfig::new(ProviderKind::Anthropic, None, Some("sk-secret".into()), None);
        assert!(!format!("{config:?}").contains("sk-secret"));
        assert_eq!(config.base_url, "https://api.anthropic.com");
        let local = ProviderConfig::new(
            ProviderKind::OpenAi,
            Some("http://127.0.0.1:11434/v1/".into()),
            None,
            Some("llama3".into()),
        );
        assert_eq!((local.base_url.as_str(), local.model.as_str()), ("http://127.0.0.1:11434/v1", "llama3"));
        assert_eq!(
            upstream_message(r#"{"error":{"message":"Incorrect API key provided"}}"#),
            "Incorrect API key provided"
        );
        assert_eq!(redact_key("bad key sk-secret here", Some("sk-secret")), "bad key [redacted] here");
        assert_eq!(redact_key("no key", None), "no key");
    }

    #[test]
    fn a_key_straddling_the_cut_is_redacted_before_the_cut() {
        let key = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz";
        for at in [0, 100, 280, 299, 310] {
            let message = format!("{}{key} rejected", "x".repeat(at));
            let passed_on = vendor_text(&message, Some(key));
            assert!(passed_on.chars().count() <= 300);
            for window in key.as_bytes().windows(8) {
                let piece = std::str::from_utf8(window).unwrap();
                assert!(!passed_on.contains(piece), "at {at}: '{piece}' of the key passed on: {passed_on}");
            }
        }
        // The vendors' messages reach the cut whole.
        let long = format!("{}{key}", "y".repeat(290));
        let body = serde_json::json!({"error": {"message": long}}).to_string();
        assert!(upstream_message(&body).ends_with(key));
        let streamed =
            AiError::from_stream_error(&serde_json::json!({"type": "invalid_request_error", "message": long}));
        assert!(!vendor_text(&streamed.to_string(), Some(key)).contains("sk-live"));
        let not_json = SseEvent { event: "message".into(), data: format!("{key} is not json") };
        assert!(!parse(ProviderKind::OpenAi, &not_json).unwrap_err().to_string().contains("sk-live"));
    }
}
