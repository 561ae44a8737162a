//! The signed-in operator's own page: change one's password, see one's sign-ins and end them
//! (one, or all but this one).

use super::api::{Api, Body, Client};
use super::error::UiError;
use super::form::Errors;
use super::session::{Posted, SESSION_COOKIE, Session, over_https, seconds_left, set_cookie};
use super::view::{Chrome, when};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// A sign-in as a row.
pub struct SignInRow {
    /// Id.
    pub id: i64,
    /// The browser, as its user agent says.
    pub client: String,
    /// From where.
    pub address: String,
    /// Began.
    pub created: String,
    /// Last request.
    pub seen: String,
    /// Whether it is this one.
    pub current: bool,
}

#[derive(Template)]
#[template(path = "ui/me.html")]
struct MePage {
    l: Chrome,
    rows: Vec<SignInRow>,
    e: Errors,
    notice: String,
}

async fn page(
    state: &AppState,
    session: &Session,
    e: Errors,
    notice: &str,
) -> Result<Response, UiError> {
    let mut rows: Vec<SignInRow> = state
        .store
        .sign_ins(session.id)
        .await?
        .into_iter()
        .map(|s| SignInRow {
            current: s.id == session.sign_in,
            id: s.id,
            client: if s.client.is_empty() {
                "Unknown client".to_owned()
            } else {
                s.client
            },
            address: s.address,
            created: when(s.created_at),
            seen: when(s.last_seen_at),
        })
        .collect();
    rows.sort_by_key(|r| !r.current);
    let status = e.status();
    let page = MePage {
        l: session.chrome("Your sign-in", "me"),
        rows,
        e,
        notice: notice.to_owned(),
    };
    let mut response = (status, Html(page.render()?)).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
pub struct MeQuery {
    #[serde(default)]
    changed: Option<String>,
}

/// `GET /me`.
pub async fn me(
    State(state): State<AppState>,
    Query(q): Query<MeQuery>,
    session: Session,
) -> Result<Response, UiError> {
    let notice = if q.changed.is_some() {
        "Password changed. Every other sign-in has ended."
    } else {
        ""
    };
    page(&state, &session, Errors::default(), notice).await
}

/// `POST /me/password`: changes the password; every sign-in ends, and this browser gets the
/// new one's cookie.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    let known = ["current_password", "new_password"];
    if form.raw("new_password") != form.raw("repeat_password") {
        let e = Errors::field("repeat_password", "Does not match the new password.");
        return page(&state, &session, e, "").await;
    }
    let body = json!({
        "current_password": form.raw("current_password"),
        "new_password": form.raw("new_password"),
    });
    let reply = api
        .send(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&session.token),
            Body::Json(body),
            Some(&Client::new(peer, &headers)),
        )
        .await?;
    reply.fatal()?;
    if let Some(failure) = reply.failure() {
        return page(&state, &session, Errors::from_failure(&failure, &known), "").await;
    }
    let answer = reply.json();
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| UiError::Internal("the password change answered no token".into()))?;
    let mut response = Redirect::to("/me?changed=1").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            token,
            seconds_left(&answer),
            over_https(&headers),
        ),
    );
    Ok(response)
}

/// `POST /me/sessions/{id}/end`: ends one sign-in; ending this one signs out.
pub async fn end_one(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    api.call(
        &session,
        Method::DELETE,
        &format!("/api/v1/auth/sessions/{id}"),
        Body::Empty,
    )
    .await?
    .fatal()?;
    if id == session.sign_in {
        let mut response = Redirect::to("/login").into_response();
        response.headers_mut().append(
            SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, over_https(&headers)),
        );
        return Ok(response);
    }
    Ok(Redirect::to("/me").into_response())
}

/// `POST /me/sessions/end-others`: signs out everywhere but here.
pub async fn end_others(
    Extension(api): Extension<Arc<Api>>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    api.call(
        &session,
        Method::DELETE,
        "/api/v1/auth/sessions",
        Body::Empty,
    )
    .await?
    .fatal()?;
    Ok(Redirect::to("/me").into_response())
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/me", get(me))
        .route("/me/password", post(change_password))
        .route("/me/sessions/{id}/end", post(end_one))
        .route("/me/sessions/end-others", post(end_others))
}
