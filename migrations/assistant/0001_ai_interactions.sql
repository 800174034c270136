-- Each request to the assistant: who asked what kind of question about which file, and how the
-- provider did. Neither the prompt nor the answer is stored.
CREATE TABLE ai_interactions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    -- Empty for inline code.
    file_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    -- ok, cancelled, or the error's code (ai_timeout, ai_overloaded, ...).
    status TEXT NOT NULL,
    time_to_first_token_ms BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX ai_interactions_by_user_and_time ON ai_interactions (user_id, created_at_ms);
