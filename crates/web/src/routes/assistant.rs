//! The buyer assistant: the FAQ (CRUD, CSV and Markdown import and export), trying a question
//! with each retriever's scores, the assistant's settings (threshold, LLM fallback), the chat
//! per shop and buyer, the hand-off queue, and what the interaction graph tells the seller.

use crate::auth::{Administer, Auth, Ingest, Operate, Read};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, body_bytes};
use crate::routes::created;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cartwright_assistant::AssistantError;
use cartwright_assistant::service::{Asked, Explanation};
use cartwright_core::faq::{self, FaqDraft};
use cartwright_core::ids::{AnswerId, ConnectionId, FaqId, MarketOrderId};
use cartwright_core::values::{HttpUrl, Slug, Text};
use cartwright_store::{
    AnswerRecord, AskedCount, AssistantSettings, AssistantSettingsUpdate, ChatMessage, Exchange,
    FaqEntry, FaqImport, Handoff, NewQuestion,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router(max_upload: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_faq, create_faq))
        .routes(routes!(get_faq, update_faq, delete_faq))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import_faq))
                .layer(axum::extract::DefaultBodyLimit::max(max_upload)),
        )
        .routes(routes!(export_faq))
        .routes(routes!(try_question))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(set_mode))
        .routes(routes!(post_message, conversation))
        .routes(routes!(chat_socket))
        .routes(routes!(history))
        .routes(routes!(handoffs))
        .routes(routes!(reply))
        .routes(routes!(dismiss))
        .routes(routes!(insights))
}

impl From<AssistantError> for ApiError {
    fn from(e: AssistantError) -> Self {
        match e {
            AssistantError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "assistant failed");
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "assistant_unavailable",
                    "the assistant could not answer; try again",
                )
            }
        }
    }
}

/// Every FAQ entry, by key.
#[utoipa::path(get, path = "/faq", tag = "assistant",
    responses((status = 200, body = Vec<FaqEntry>)), security(("bearer" = [])))]
async fn list_faq(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<Vec<FaqEntry>>> {
    Ok(axum::Json(state.store.faq_entries().await?))
}

/// Adds a FAQ entry; the index follows at once.
#[utoipa::path(post, path = "/faq", tag = "assistant", request_body = FaqDraft,
    responses((status = 201, body = FaqEntry), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_faq(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Json(draft): Json<FaqDraft>,
) -> ApiResult<Response> {
    let entry = state.store.create_faq(&draft).await?;
    Ok(created(format!("/api/v1/faq/{}", entry.id.get()), entry))
}

/// One FAQ entry.
#[utoipa::path(get, path = "/faq/{id}", tag = "assistant", params(("id" = i64, Path)),
    responses((status = 200, body = FaqEntry), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_faq(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<FaqId>,
) -> ApiResult<axum::Json<FaqEntry>> {
    Ok(axum::Json(state.store.faq_entry(id).await?))
}

/// Replaces a FAQ entry.
#[utoipa::path(put, path = "/faq/{id}", tag = "assistant", params(("id" = i64, Path)), request_body = FaqDraft,
    responses((status = 200, body = FaqEntry), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_faq(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<FaqId>,
    Json(draft): Json<FaqDraft>,
) -> ApiResult<axum::Json<FaqEntry>> {
    Ok(axum::Json(state.store.update_faq(id, &draft).await?))
}

/// Deletes a FAQ entry (answers that used it keep their text).
#[utoipa::path(delete, path = "/faq/{id}", tag = "assistant", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_faq(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<FaqId>,
) -> ApiResult<axum::http::StatusCode> {
    state.store.delete_faq(id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

fn problems(p: cartwright_core::Invalids) -> ApiError {
    let field = p.0.first().map(|i| i.field.clone()).unwrap_or_default();
    let listed: Vec<String> =
        p.0.iter()
            .take(20)
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect();
    let more = p.0.len().saturating_sub(20);
    let mut message = format!(
        "nothing imported; {} problem(s): {}",
        p.0.len(),
        listed.join("; ")
    );
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    ApiError::invalid(field, message)
}

/// Imports FAQ entries, all or none: CSV (`text/csv`, columns key, question, phrasings
/// separated by `|`, answer, scope, tags, lang) or Markdown (`text/markdown`: `## question`,
/// then `key:`, `tags:`, `lang:`, `scope:`, `also:` lines, a blank line and the answer).
/// Entries whose key exists are replaced.
#[utoipa::path(post, path = "/faq/import", tag = "assistant",
    request_body(content = String, content_type = "text/markdown"),
    responses((status = 200, body = FaqImport), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn import_faq(
    State(state): State<AppState>,
    _: Auth<Operate>,
    request: Request,
) -> ApiResult<axum::Json<FaqImport>> {
    let kind = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let csv = match kind.as_str() {
        "text/csv" => true,
        "text/markdown" | "text/plain" => false,
        _ => return Err(ApiError::unsupported_media("text/csv or text/markdown")),
    };
    let body = body_bytes(request).await?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::invalid("faq", "must be UTF-8 text"))?;
    let drafts = if csv {
        faq::parse_csv(text)
    } else {
        faq::parse_markdown(text)
    }
    .map_err(problems)?;
    Ok(axum::Json(state.store.import_faq(&drafts).await?))
}

/// The export's format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `markdown` (default) or `csv`.
    format: Option<String>,
}

/// The whole FAQ as Markdown or CSV, in the form the import reads.
#[utoipa::path(get, path = "/faq/export", tag = "assistant", params(ExportQuery),
    responses((status = 200, content_type = "text/markdown", body = String), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn export_faq(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let drafts: Vec<FaqDraft> = state
        .store
        .faq_entries()
        .await?
        .into_iter()
        .map(|e| e.draft)
        .collect();
    let (body, kind, file) = match q.format.as_deref().unwrap_or("markdown") {
        "markdown" | "md" => (
            faq::write_markdown(&drafts),
            "text/markdown; charset=utf-8",
            "faq.md",
        ),
        "csv" => (
            faq::write_csv(&drafts),
            "text/csv; charset=utf-8",
            "faq.csv",
        ),
        _ => return Err(ApiError::invalid("format", "must be markdown or csv")),
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A question to try.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryQuestion {
    /// The question, as a buyer would write it.
    pub question: Text,
}

/// How the assistant would answer a question: the closest entries with each retriever's
/// scores, the confidence and the threshold. Nothing is recorded.
#[utoipa::path(post, path = "/assistant/try", tag = "assistant", request_body = TryQuestion,
    responses((status = 200, body = Explanation), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn try_question(
    State(state): State<AppState>,
    _: Auth<Read>,
    Json(q): Json<TryQuestion>,
) -> ApiResult<axum::Json<Explanation>> {
    Ok(axum::Json(
        state.assistant.explain(q.question.as_str()).await?,
    ))
}

/// The assistant's settings, with the model in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// The stored settings (never the LLM's key).
    #[serde(flatten)]
    pub settings: AssistantSettings,
    /// The embedding model in use; none: retrieval is lexical only.
    pub model: Option<String>,
    /// The threshold in force when none is set.
    pub default_threshold: f64,
}

async fn settings_view(state: &AppState) -> ApiResult<SettingsView> {
    let model = state.assistant.model().await;
    Ok(SettingsView {
        settings: state.store.assistant_settings().await?,
        default_threshold: if model.is_some() {
            cartwright_assistant::service::THRESHOLD_HYBRID
        } else {
            cartwright_assistant::service::THRESHOLD_LEXICAL
        },
        model,
    })
}

/// The assistant's settings.
#[utoipa::path(get, path = "/assistant/settings", tag = "assistant",
    responses((status = 200, body = SettingsView)), security(("bearer" = [])))]
async fn get_settings(
    State(state): State<AppState>,
    _: Auth<Read>,
) -> ApiResult<axum::Json<SettingsView>> {
    Ok(axum::Json(settings_view(&state).await?))
}

/// The LLM fallback's endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmInput {
    /// The OpenAI-compatible base URL (`https://api.openai.com/v1`, `http://127.0.0.1:8081/v1`).
    pub base_url: HttpUrl,
    /// The model.
    pub model: Text,
    /// The API key: absent keeps the stored one, empty removes it. Sealed; never shown.
    #[serde(default)]
    pub key: Option<String>,
    /// How long to wait, in milliseconds (500 to 120,000; default 20,000).
    #[serde(default)]
    #[schema(minimum = 500, maximum = 120000)]
    pub timeout_ms: Option<i64>,
}

/// New settings for the assistant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// The seller's instructions to the LLM (at most 4,000 characters).
    #[serde(default)]
    pub instructions: String,
    /// The confidence at or above which the FAQ answers (0 to 1); absent: the default.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub threshold: Option<f64>,
    /// The LLM fallback; absent: none (questions the FAQ cannot answer go to a person).
    #[serde(default)]
    pub llm: Option<LlmInput>,
}

/// Replaces the assistant's settings (admins).
#[utoipa::path(put, path = "/assistant/settings", tag = "assistant", request_body = SettingsInput,
    responses((status = 200, body = SettingsView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_settings(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(input): Json<SettingsInput>,
) -> ApiResult<axum::Json<SettingsView>> {
    if input.instructions.chars().count() > 4000 {
        return Err(ApiError::invalid(
            "instructions",
            "must be at most 4000 characters",
        ));
    }
    if let Some(t) = input.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ApiError::invalid("threshold", "must be between 0 and 1"));
    }
    let timeout = input
        .llm
        .as_ref()
        .and_then(|l| l.timeout_ms)
        .unwrap_or(20_000);
    if !(500..=120_000).contains(&timeout) {
        return Err(ApiError::invalid(
            "llm.timeout_ms",
            "must be between 500 and 120000",
        ));
    }
    if let Some(key) = input.llm.as_ref().and_then(|l| l.key.as_ref())
        && (key.len() > 1000 || key.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "llm.key",
            "must be one line of at most 1000 characters",
        ));
    }
    let update = AssistantSettingsUpdate {
        instructions: input.instructions.trim().to_owned(),
        threshold: input.threshold,
        llm: input
            .llm
            .as_ref()
            .map(|l| (l.base_url.as_str().to_owned(), l.model.as_str().to_owned())),
        llm_key: match &input.llm {
            Some(l) => l.key.clone(),
            None => Some(String::new()),
        },
        llm_timeout_ms: timeout,
    };
    state.store.set_assistant_settings(&update).await?;
    Ok(axum::Json(settings_view(&state).await?))
}

/// How the assistant works in a shop.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeInput {
    /// `auto`: replies when confident; `suggest`: only proposes; `off`.
    #[schema(pattern = "^(auto|suggest|off)$")]
    pub mode: String,
}

/// Switches a marketplace shop between replying automatically and suggesting only (admins).
#[utoipa::path(put, path = "/connections/{id}/assistant", tag = "assistant", params(("id" = i64, Path)),
    request_body = ModeInput,
    responses((status = 200, body = ModeInput), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_mode(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<ConnectionId>,
    Json(input): Json<ModeInput>,
) -> ApiResult<axum::Json<ModeInput>> {
    state.store.set_assistant_mode(id, &input.mode).await?;
    Ok(axum::Json(ModeInput {
        mode: state.store.assistant_mode(id).await?,
    }))
}

/// A buyer's message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// What the buyer wrote (1 to 2,000 characters).
    #[schema(min_length = 1, max_length = 2000)]
    pub text: String,
    /// The buyer's name.
    #[serde(default)]
    pub buyer_name: Option<Text>,
    /// The order it is about (it must be this buyer's, in this shop).
    #[serde(default)]
    pub order_id: Option<MarketOrderId>,
    /// The marketplace's id of the message: sending it again does nothing new.
    #[serde(default)]
    pub message_id: Option<Text>,
}

/// Path of a buyer's chat.
#[derive(Debug, Deserialize)]
pub struct BuyerPath {
    id: ConnectionId,
    buyer: String,
}

fn buyer_id(s: &str) -> ApiResult<&str> {
    let s = s.trim();
    if s.is_empty() || s.len() > 100 || s.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "buyer",
            "must be the buyer's id, 1 to 100 characters",
        ));
    }
    Ok(s)
}

/// Takes in a buyer's message in a shop's chat and answers it: from the FAQ when the
/// assistant is sure (sent when the shop replies automatically, else proposed), from the LLM
/// when one is configured (proposed, marked generated), else handed to a person. Recorded
/// with the interaction graph; the same `message_id` twice is one message.
#[utoipa::path(post, path = "/chat/{id}/buyers/{buyer}/messages", tag = "assistant",
    params(("id" = i64, Path), ("buyer" = String, Path)), request_body = MessageInput,
    responses((status = 200, body = Asked), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn post_message(
    State(state): State<AppState>,
    _: Auth<Ingest>,
    Path(path): Path<BuyerPath>,
    Json(input): Json<MessageInput>,
) -> ApiResult<axum::Json<Asked>> {
    let buyer = buyer_id(&path.buyer)?;
    let text = input.text.trim();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(ApiError::invalid("text", "must be 1 to 2000 characters"));
    }
    state.store.connection(path.id).await?;
    let asked = state
        .assistant
        .ask(&NewQuestion {
            connection_id: Some(path.id),
            buyer_id: buyer,
            buyer_name: input.buyer_name.as_ref().map(Text::as_str),
            order_id: input.order_id,
            text,
            external_id: input.message_id.as_ref().map(Text::as_str),
        })
        .await?;
    Ok(axum::Json(asked))
}

/// A message sent over the chat WebSocket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketMessage {
    text: String,
    #[serde(default)]
    buyer_name: Option<Text>,
    #[serde(default)]
    order_id: Option<MarketOrderId>,
    #[serde(default)]
    message_id: Option<Text>,
}

/// What the chat WebSocket sends: an answer to a message sent on it, a new message in the
/// chat (a person's reply, an approved answer, a message that came another way), or why a
/// message sent on it was refused.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SocketEvent<'a> {
    Answered(&'a Asked),
    Message(&'a ChatMessage),
    Error { message: String },
}

/// The chat with a buyer over a WebSocket: send `{"text": …, "order_id"?, "message_id"?,
/// "buyer_name"?}` and get `{"type": "answered", …}` back (as `POST …/messages` answers); every
/// new message of the chat after the socket opened arrives as `{"type": "message", …}`.
/// Needs the `ingest` permission; a browser may open it only from this server's own pages.
#[utoipa::path(get, path = "/chat/{id}/buyers/{buyer}/ws", tag = "assistant",
    params(("id" = i64, Path), ("buyer" = String, Path)),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many live streams open", body = ErrorBody)),
    security(("bearer" = [])))]
async fn chat_socket(
    State(state): State<AppState>,
    live: crate::streams::Live<Ingest>,
    headers: axum::http::HeaderMap,
    Path(path): Path<BuyerPath>,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> ApiResult<Response> {
    crate::routes::batches::same_origin(&headers, state.options.public_origin.as_deref())?;
    let buyer = buyer_id(&path.buyer)?.to_owned();
    state.store.connection(path.id).await?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!("this is a WebSocket endpoint: {}", e.body_text()))
    })?;
    let seen = state
        .store
        .conversation(Some(path.id), &buyer, 1)
        .await?
        .last()
        .map_or(0, |m| m.id.get());
    let connection = path.id;
    let ticks = futures::stream::unfold((), |()| async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        Some(((), ()))
    });
    let ticks = live.guard(ticks);
    Ok(upgrade.on_upgrade(move |socket| chat_relay(state, socket, connection, buyer, seen, ticks)))
}

async fn chat_relay(
    state: AppState,
    mut socket: axum::extract::ws::WebSocket,
    connection: ConnectionId,
    buyer: String,
    mut seen: i64,
    ticks: impl futures::Stream<Item = ()> + Send,
) {
    use axum::extract::ws::Message;
    use futures::StreamExt;
    let mut ticks = std::pin::pin!(ticks);
    // Messages an `answered` frame carried: the chat's newer messages are sent as they come,
    // except these.
    let mut answered: std::collections::HashSet<i64> = std::collections::HashSet::new();
    loop {
        let mut out: Vec<String> = Vec::new();
        tokio::select! {
            tick = ticks.next() => {
                if tick.is_none() {
                    break;
                }
                let Ok(messages) = state.store.conversation(Some(connection), &buyer, 50).await else {
                    continue;
                };
                let since = seen;
                for m in messages.iter().filter(|m| m.id.get() > since) {
                    seen = m.id.get();
                    if !answered.remove(&m.id.get()) {
                        out.push(event(&SocketEvent::Message(m)));
                    }
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    out.push(answer_frame(&state, connection, &buyer, &text, &mut answered).await);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
        for text in out {
            // A client that stopped reading does not hold the socket (and its place) forever.
            let sent = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                socket.send(Message::Text(text.into())),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
    }
}

fn event(e: &SocketEvent<'_>) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

/// Takes in a message sent on the socket and gives what to send back; the messages it wrote
/// are noted, so they are not sent again as new.
async fn answer_frame(
    state: &AppState,
    connection: ConnectionId,
    buyer: &str,
    text: &str,
    answered: &mut std::collections::HashSet<i64>,
) -> String {
    let m = match serde_json::from_str::<SocketMessage>(text) {
        Ok(m) => m,
        Err(e) => {
            return event(&SocketEvent::Error {
                message: format!("not a chat message: {e}"),
            });
        }
    };
    let text = m.text.trim();
    if text.is_empty() || text.chars().count() > 2000 {
        return event(&SocketEvent::Error {
            message: "text: must be 1 to 2000 characters".into(),
        });
    }
    let asked = state
        .assistant
        .ask(&NewQuestion {
            connection_id: Some(connection),
            buyer_id: buyer,
            buyer_name: m.buyer_name.as_ref().map(Text::as_str),
            order_id: m.order_id,
            text,
            external_id: m.message_id.as_ref().map(Text::as_str),
        })
        .await;
    match asked {
        Ok(asked) => {
            answered.insert(asked.message.id.get());
            if let Some(r) = asked.answer.as_ref().and_then(|a| a.reply_id) {
                answered.insert(r.get());
            }
            event(&SocketEvent::Answered(&asked))
        }
        Err(AssistantError::Store(e))
            if !matches!(e, cartwright_store::StoreError::Database(_)) =>
        {
            event(&SocketEvent::Error {
                message: e.to_string(),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "the assistant failed on the chat socket");
            event(&SocketEvent::Error {
                message: "the assistant could not answer; try again".into(),
            })
        }
    }
}

/// The chat with a buyer in a shop, oldest first (the last 200 messages).
#[utoipa::path(get, path = "/chat/{id}/buyers/{buyer}/messages", tag = "assistant",
    params(("id" = i64, Path), ("buyer" = String, Path)),
    responses((status = 200, body = Vec<ChatMessage>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn conversation(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(path): Path<BuyerPath>,
) -> ApiResult<axum::Json<Vec<ChatMessage>>> {
    let buyer = buyer_id(&path.buyer)?;
    state.store.connection(path.id).await?;
    Ok(axum::Json(
        state.store.conversation(Some(path.id), buyer, 200).await?,
    ))
}

/// A buyer's questions and what became of each, newest first, read through the interaction
/// graph (the last 100).
#[utoipa::path(get, path = "/chat/{id}/buyers/{buyer}/history", tag = "assistant",
    params(("id" = i64, Path), ("buyer" = String, Path)),
    responses((status = 200, body = Vec<Exchange>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn history(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(path): Path<BuyerPath>,
) -> ApiResult<axum::Json<Vec<Exchange>>> {
    let buyer = buyer_id(&path.buyer)?;
    state.store.connection(path.id).await?;
    Ok(axum::Json(
        state.store.buyer_history(Some(path.id), buyer, 100).await?,
    ))
}

/// The queue's filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HandoffQuery {
    /// Also answers proposed and waiting for the seller's approval.
    #[serde(default)]
    suggested: bool,
}

/// Questions waiting for a person (oldest first, at most 200), and with `suggested` the
/// answers waiting for approval.
#[utoipa::path(get, path = "/assistant/handoffs", tag = "assistant", params(HandoffQuery),
    responses((status = 200, body = Vec<Handoff>)), security(("bearer" = [])))]
async fn handoffs(
    State(state): State<AppState>,
    _: Auth<Read>,
    Query(q): Query<HandoffQuery>,
) -> ApiResult<axum::Json<Vec<Handoff>>> {
    Ok(axum::Json(state.store.handoffs(q.suggested, 200).await?))
}

/// A new FAQ entry made from an answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerToFaq {
    /// The entry's key.
    pub key: Slug,
    /// Its question (default: the buyer's message, when it fits on one line of 200).
    #[serde(default)]
    pub question: Option<Text>,
}

/// A person's reply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    /// The reply (default: the proposed answer, to approve it as it is).
    #[serde(default)]
    pub text: Option<cartwright_core::values::Answer>,
    /// Also make the reply a FAQ entry, so the next buyer gets it at once.
    #[serde(default)]
    pub faq: Option<AnswerToFaq>,
}

/// What a reply did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replied {
    /// The answer, now sent.
    pub answer: AnswerRecord,
    /// The FAQ entry made from it, when asked for.
    pub faq: Option<FaqEntry>,
}

/// Answers a handed-off question, or approves (optionally edited) a proposed answer: the reply
/// goes to the buyer. With `faq`, the reply also becomes a FAQ entry in the same step.
#[utoipa::path(post, path = "/assistant/answers/{id}/reply", tag = "assistant", params(("id" = i64, Path)),
    request_body = ReplyInput,
    responses((status = 200, body = Replied), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn reply(
    State(state): State<AppState>,
    auth: Auth<Operate>,
    Path(id): Path<AnswerId>,
    Json(input): Json<ReplyInput>,
) -> ApiResult<axum::Json<Replied>> {
    let operator = match &auth.0 {
        crate::auth::Principal::Operator { id, .. } => *id,
        _ => return Err(ApiError::forbidden("only a person can answer a buyer")),
    };
    let current = state.store.answer(id).await?;
    let text = match (&input.text, &current.text) {
        (Some(t), _) => t.as_str().to_owned(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(ApiError::invalid(
                "text",
                "write the reply: nothing was proposed",
            ));
        }
    };
    let question = state.store.chat_message(current.message_id).await?;
    // The entry is checked before anything is sent, so a bad key sends nothing.
    let draft = match &input.faq {
        Some(f) => Some(FaqDraft {
            key: f.key.clone(),
            question: match &f.question {
                Some(q) => q.clone(),
                None => {
                    Text::parse(&question.text).map_err(|m| ApiError::invalid("faq.question", m))?
                }
            },
            phrasings: Vec::new(),
            answer: cartwright_core::values::Answer::parse(&text)
                .map_err(|m| ApiError::invalid("text", m))?,
            scope: None,
            tags: Default::default(),
            lang: Default::default(),
        }),
        None => None,
    };
    if let Some(d) = &draft
        && state
            .store
            .faq_entries()
            .await?
            .iter()
            .any(|e| e.draft.key == d.key)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            "key is already used by another FAQ entry",
        )
        .with_field("faq.key"));
    }
    let answer = state.store.answer_by_operator(id, operator, &text).await?;
    let faq = match draft {
        Some(d) => Some(state.store.create_faq(&d).await?),
        None => None,
    };
    Ok(axum::Json(Replied { answer, faq }))
}

/// Closes a handed-off question or a proposed answer without replying.
#[utoipa::path(post, path = "/assistant/answers/{id}/dismiss", tag = "assistant", params(("id" = i64, Path)),
    responses((status = 200, body = AnswerRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn dismiss(
    State(state): State<AppState>,
    _: Auth<Operate>,
    Path(id): Path<AnswerId>,
) -> ApiResult<axum::Json<AnswerRecord>> {
    Ok(axum::Json(state.store.dismiss_answer(id).await?))
}

/// What the interaction graph tells the seller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Insights {
    /// Per product, the entries that answered most questions about it.
    pub most_asked: Vec<AskedCount>,
    /// Questions the FAQ did not answer (generated, handed off, answered by a person): what
    /// to write entries from.
    pub not_from_faq: Vec<Exchange>,
    /// Entries no answer ever used.
    pub unused: Vec<FaqEntry>,
}

/// The most asked questions per product, the questions that fell back or were handed off,
/// and the FAQ entries never used.
#[utoipa::path(get, path = "/assistant/insights", tag = "assistant",
    responses((status = 200, body = Insights)), security(("bearer" = [])))]
async fn insights(State(state): State<AppState>, _: Auth<Read>) -> ApiResult<axum::Json<Insights>> {
    Ok(axum::Json(Insights {
        most_asked: state.store.most_asked(50).await?,
        not_from_faq: state.store.unanswered_by_faq(50).await?,
        unused: state.store.unused_faq().await?,
    }))
}
