//! The buyer assistant in the dashboard: the hand-off queue (answer, approve, dismiss, and
//! "make it a FAQ entry" in the same step), a page to try a question and see why an answer
//! would be chosen (each retriever's scores), what the interaction graph tells (most asked per
//! product, questions the FAQ did not answer, entries never used), and the FAQ itself
//! (list, add, delete, import and export).

use super::api::{Api, Body, Failure};
use super::error::UiError;
use super::session::{Posted, Session};
use super::view::{Chrome, when};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cartwright_core::operator::Permission;
use cartwright_store::{AnswerSource, AnswerState};
use serde_json::{Value, json};
use std::sync::Arc;

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/assistant", get(queue))
        .route("/assistant/try", post(try_question))
        .route("/assistant/answers/{id}/reply", post(reply))
        .route("/assistant/answers/{id}/dismiss", post(dismiss))
        .route("/assistant/faq", get(faq))
        .route("/assistant/faq/new", post(create))
        .route("/assistant/faq/import", post(import))
        .route("/assistant/faq/{id}/delete", post(delete))
}

/// A question waiting for a person, or a proposed answer waiting for approval.
pub struct QueueRow {
    id: i64,
    buyer: String,
    question: String,
    asked: String,
    waiting: bool,
    generated: bool,
    proposal: String,
    why: String,
    suggested_key: String,
    entry_question: String,
}

/// An entry's scores for the tried question.
pub struct ScoreRow {
    key: String,
    question: String,
    score: String,
    semantic: String,
    words: String,
    trigrams: String,
}

/// A row of "most asked".
pub struct AskedRow {
    product: String,
    key: String,
    questions: i64,
}

/// A question the FAQ did not answer.
pub struct MissRow {
    question: String,
    how: &'static str,
    answer: String,
}

#[derive(Template)]
#[template(path = "ui/assistant.html")]
struct QueuePage {
    l: Chrome,
    model: String,
    threshold: String,
    llm: String,
    rows: Vec<QueueRow>,
    tried: String,
    verdict: String,
    scores: Vec<ScoreRow>,
    asked: Vec<AskedRow>,
    misses: Vec<MissRow>,
    unused: Vec<String>,
    error: String,
}

/// A slug from the question, for the "make it a FAQ entry" key (the operator may change it).
fn slug(text: &str) -> String {
    let mut out = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6)
    {
        if out.len() + word.len() + 1 > 40 {
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    if out.is_empty() {
        "new-entry".into()
    } else {
        out
    }
}

fn score(v: &Value) -> String {
    v.as_f64().map_or_else(|| "—".into(), |s| format!("{s:.3}"))
}

async fn queue_page(
    state: &AppState,
    session: &Session,
    tried: (String, Option<Value>),
    error: String,
) -> Result<Response, UiError> {
    let store = &state.store;
    let settings = store.assistant_settings().await?;
    let model = state.assistant.model().await;
    let threshold = settings.threshold.unwrap_or(if model.is_some() {
        cartwright_assistant::service::THRESHOLD_HYBRID
    } else {
        cartwright_assistant::service::THRESHOLD_LEXICAL
    });
    let rows = store
        .handoffs(true, 200)
        .await?
        .into_iter()
        .map(|h| QueueRow {
            id: h.answer.id.get(),
            buyer: h
                .message
                .buyer_name
                .clone()
                .unwrap_or_else(|| h.message.buyer_id.clone()),
            suggested_key: slug(&h.message.text),
            // An entry's question is one line of at most 200 characters.
            entry_question: h
                .message
                .text
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
            question: h.message.text,
            asked: when(h.message.created_at),
            waiting: h.answer.state == AnswerState::Waiting,
            generated: h.answer.source == AnswerSource::Generated,
            proposal: h.answer.text.unwrap_or_default(),
            why: h.answer.explanation["fallback_error"]
                .as_str()
                .map(|e| format!("The LLM fallback failed: {e}"))
                .unwrap_or_default(),
        })
        .collect();
    let (question, explained) = tried;
    let (verdict, scores) = match explained {
        Some(e) => (
            if e["confident"].as_bool().unwrap_or(false) {
                format!(
                    "Answered from the FAQ: confidence {} reaches the threshold {}.",
                    score(&e["confidence"]),
                    score(&e["threshold"])
                )
            } else {
                format!(
                    "Not answered from the FAQ: confidence {} is below the threshold {}; it would go to the LLM fallback or a person.",
                    score(&e["confidence"]),
                    score(&e["threshold"])
                )
            },
            e["hits"]
                .as_array()
                .map(|hits| {
                    hits.iter()
                        .map(|h| ScoreRow {
                            key: h["key"].as_str().unwrap_or_default().to_owned(),
                            question: h["question"].as_str().unwrap_or_default().to_owned(),
                            score: score(&h["score"]),
                            semantic: score(&h["semantic"]),
                            words: score(&h["words"]),
                            trigrams: score(&h["trigrams"]),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        None => (String::new(), Vec::new()),
    };
    let asked = store
        .most_asked(20)
        .await?
        .into_iter()
        .map(|a| AskedRow {
            product: a.product,
            key: a.faq_key,
            questions: a.questions,
        })
        .collect();
    let misses = store
        .unanswered_by_faq(20)
        .await?
        .into_iter()
        .map(|x| {
            let answer = x.answer;
            MissRow {
                question: x.message.text,
                how: match answer.as_ref().map(|a| a.source) {
                    Some(AnswerSource::Generated) => "generated",
                    Some(AnswerSource::Operator) => "answered by a person",
                    _ => "handed off",
                },
                answer: answer.and_then(|a| a.text).unwrap_or_default(),
            }
        })
        .collect();
    let unused = store
        .unused_faq()
        .await?
        .into_iter()
        .map(|e| e.draft.key.to_string())
        .collect();
    let status = super::view::form_status(&error);
    let page = QueuePage {
        l: session.chrome("Assistant", "assistant"),
        model: model.map_or_else(
            || "no embedding model: retrieval is lexical only (BM25); scripts/setup installs all-MiniLM-L6-v2".into(),
            |m| format!("BM25 and {m} sentence embeddings"),
        ),
        threshold: format!("{threshold:.2}"),
        llm: settings.llm.map_or_else(
            || "none: what the FAQ cannot answer goes to the queue below".into(),
            |l| format!("{} at {}", l.model, l.base_url),
        ),
        rows,
        tried: question,
        verdict,
        scores,
        asked,
        misses,
        unused,
        error,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /assistant`.
async fn queue(State(state): State<AppState>, session: Session) -> Result<Response, UiError> {
    queue_page(&state, &session, (String::new(), None), String::new()).await
}

/// `POST /assistant/try`: the question through the API's explanation; nothing is recorded.
async fn try_question(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    let question = form.get("question").to_owned();
    let body = Body::Json(json!({ "question": question }));
    match api
        .submit(&session, Method::POST, "/api/v1/assistant/try", body)
        .await?
    {
        Ok(explained) => {
            queue_page(&state, &session, (question, Some(explained)), String::new()).await
        }
        Err(f) => queue_page(&state, &session, (question, None), f.message).await,
    }
}

/// `POST /assistant/answers/{id}/reply`: the reply (or the approval) through the API, and
/// with "make it a FAQ entry" ticked, the entry in the same step.
async fn reply(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let mut body = json!({ "text": form.text("text") });
    if form.checked("make_faq") {
        body["faq"] = json!({ "key": form.get("key"), "question": form.text("question") });
    }
    let path = format!("/api/v1/assistant/answers/{id}/reply");
    match api
        .submit(&session, Method::POST, &path, Body::Json(body))
        .await?
    {
        Ok(_) => Ok(Redirect::to("/assistant").into_response()),
        Err(f) => queue_page(&state, &session, (String::new(), None), failure(f)).await,
    }
}

fn failure(f: Failure) -> String {
    match f.field {
        Some(field) => format!("{field}: {}", f.message),
        None => f.message,
    }
}

/// `POST /assistant/answers/{id}/dismiss`.
async fn dismiss(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let path = format!("/api/v1/assistant/answers/{id}/dismiss");
    match api
        .submit(&session, Method::POST, &path, Body::Empty)
        .await?
    {
        Ok(_) => Ok(Redirect::to("/assistant").into_response()),
        Err(f) => queue_page(&state, &session, (String::new(), None), failure(f)).await,
    }
}

/// A FAQ entry as a row.
pub struct FaqRow {
    id: i64,
    key: String,
    question: String,
    phrasings: usize,
    answer: String,
    scope: String,
    lang: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "ui/assistant_faq.html")]
struct FaqPage {
    l: Chrome,
    rows: Vec<FaqRow>,
    message: String,
    error: String,
    values: super::form::Values,
}

async fn faq_page(
    state: &AppState,
    session: &Session,
    message: String,
    error: String,
    values: super::form::Values,
) -> Result<Response, UiError> {
    let rows = state
        .store
        .faq_entries()
        .await?
        .into_iter()
        .map(|e| FaqRow {
            id: e.id.get(),
            key: e.draft.key.to_string(),
            question: e.draft.question.to_string(),
            phrasings: e.draft.phrasings.len(),
            answer: e.draft.answer.as_str().chars().take(160).collect(),
            scope: e.draft.scope.map(|s| s.to_string()).unwrap_or_default(),
            lang: e.draft.lang.as_str().to_owned(),
            updated: when(e.updated_at),
        })
        .collect();
    let status = super::view::form_status(&error);
    let page = FaqPage {
        l: session.chrome("FAQ", "assistant"),
        rows,
        message,
        error,
        values,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /assistant/faq`.
async fn faq(State(state): State<AppState>, session: Session) -> Result<Response, UiError> {
    faq_page(
        &state,
        &session,
        String::new(),
        String::new(),
        Default::default(),
    )
    .await
}

/// `POST /assistant/faq/new`: one entry through the API (phrasings one a line).
async fn create(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let phrasings: Vec<&str> = form
        .raw("phrasings")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut body = json!({
        "key": form.get("key"),
        "question": form.get("question"),
        "phrasings": phrasings,
        "answer": form.raw("answer"),
    });
    if !form.get("scope").is_empty() {
        body["scope"] = json!(form.get("scope"));
    }
    if !form.get("lang").is_empty() {
        body["lang"] = json!(form.get("lang"));
    }
    match api
        .submit(&session, Method::POST, "/api/v1/faq", Body::Json(body))
        .await?
    {
        Ok(e) => {
            let key = e["key"].as_str().unwrap_or_default();
            faq_page(
                &state,
                &session,
                format!("Added {key}; the assistant uses it at once."),
                String::new(),
                Default::default(),
            )
            .await
        }
        Err(f) => faq_page(&state, &session, String::new(), failure(f), form.values()).await,
    }
}

/// `POST /assistant/faq/import`: pasted Markdown or CSV through the API's import (all or
/// nothing).
async fn import(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let kind = if form.get("format") == "csv" {
        "text/csv"
    } else {
        "text/markdown"
    };
    let body = Body::Raw(kind, form.raw("faq").as_bytes().to_vec());
    match api
        .submit(&session, Method::POST, "/api/v1/faq/import", body)
        .await?
    {
        Ok(r) => {
            let message = format!(
                "Imported: {} added, {} replaced, {} unchanged.",
                r["created"], r["updated"], r["unchanged"]
            );
            faq_page(&state, &session, message, String::new(), Default::default()).await
        }
        Err(f) => faq_page(&state, &session, String::new(), f.message, form.values()).await,
    }
}

/// `POST /assistant/faq/{id}/delete`.
async fn delete(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Operate)?;
    let path = format!("/api/v1/faq/{id}");
    match api
        .submit(&session, Method::DELETE, &path, Body::Empty)
        .await?
    {
        Ok(_) => Ok(Redirect::to("/assistant/faq").into_response()),
        Err(f) => {
            faq_page(
                &state,
                &session,
                String::new(),
                failure(f),
                Default::default(),
            )
            .await
        }
    }
}
