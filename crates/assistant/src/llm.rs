//! The LLM fallback: an OpenAI-compatible chat-completions endpoint (OpenAI, or a local
//! llama.cpp or Ollama server), asked with streaming on; a server that answers in one JSON
//! document instead is read too. Any failure or timeout is an error the caller turns into a
//! hand-off.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One turn of the conversation sent to the model.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Turn {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// What was said.
    pub content: String,
}

/// Why the model gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No answer in time.
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    /// The endpoint could not be reached.
    #[error("the LLM could not be reached: {0}")]
    Unreachable(String),
    /// The endpoint answered with an error status.
    #[error("the LLM answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The answer was not the protocol's shape, or empty.
    #[error("the LLM's answer could not be read: {0}")]
    Malformed(String),
}

/// An endpoint to ask.
#[derive(Debug, Clone)]
pub struct Llm {
    http: reqwest::Client,
    url: String,
    model: String,
    key: Option<String>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Content>,
    #[serde(default)]
    message: Option<Content>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    content: Option<String>,
}

impl Llm {
    /// An endpoint at `base_url` (e.g. `http://127.0.0.1:8081/v1`) asking `model`.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        model: &str,
        key: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            key,
            timeout,
        }
    }

    /// The model's answer to `turns`, the whole of it within the timeout.
    pub async fn complete(&self, turns: &[Turn]) -> Result<String, LlmError> {
        match tokio::time::timeout(self.timeout, self.ask(turns)).await {
            Ok(answer) => answer,
            Err(_) => Err(LlmError::Timeout(self.timeout)),
        }
    }

    async fn ask(&self, turns: &[Turn]) -> Result<String, LlmError> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": turns,
            "stream": true,
            "temperature": 0.2,
        });
        let mut request = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| LlmError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        let streaming = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let malformed = |e: &dyn std::fmt::Display| LlmError::Malformed(e.to_string());
        let mut answer = String::new();
        if streaming {
            let mut pending = Vec::new();
            'read: while let Some(bytes) = response
                .chunk()
                .await
                .map_err(|e| LlmError::Unreachable(e.without_url().to_string()))?
            {
                pending.extend_from_slice(&bytes);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let Some(data) = line.trim().strip_prefix("data:") else {
                        continue;
                    };
                    let data = data.trim();
                    if data == "[DONE]" {
                        break 'read;
                    }
                    let chunk: Chunk = serde_json::from_str(data).map_err(|e| malformed(&e))?;
                    for choice in chunk.choices {
                        if let Some(text) = choice.delta.and_then(|d| d.content) {
                            answer.push_str(&text);
                        }
                    }
                }
            }
        } else {
            let whole: Chunk = response.json().await.map_err(|e| malformed(&e))?;
            for choice in whole.choices {
                if let Some(text) = choice.message.and_then(|m| m.content) {
                    answer.push_str(&text);
                }
            }
        }
        let answer = answer.trim().to_owned();
        if answer.is_empty() {
            return Err(LlmError::Malformed("it was empty".into()));
        }
        Ok(answer)
    }
}
