//! Dashboard sessions: an HttpOnly, SameSite=Lax cookie holding the API's own sign-in token,
//! checked on every request by the API's authentication (so disabling an operator or changing
//! their role ends their dashboard session at once), and a CSRF token derived from it that
//! every form must carry back.

use super::api::{Api, Body, Client};
use super::error::UiError;
use super::form::FormData;
use super::view::Chrome;
use crate::auth::{Auth, Principal, Read};
use crate::state::AppState;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use cartwright_core::ids::OperatorId;
use cartwright_core::operator::{Permission, Role};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The session cookie.
pub const SESSION_COOKIE: &str = "cw_session";
/// The sign-in form's own CSRF cookie (there is no session yet to derive one from).
const LOGIN_COOKIE: &str = "cw_login";
/// The form field (or `x-csrf-token` header) carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: a hash of its secret sign-in token, so a page from another
/// site cannot know it, and it changes with every sign-in.
fn csrf_of(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"cartwright dashboard csrf\n")
        .chain_update(token.as_bytes())
        .finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// Their sign-in token: the API accepts it as a bearer token.
    pub token: String,
    /// Who.
    pub id: OperatorId,
    /// Which of their sign-ins this is.
    pub sign_in: i64,
    /// Their current role.
    pub role: Role,
    /// Their sign-in name.
    pub username: String,
    /// The token forms must carry.
    pub csrf: String,
}

impl Session {
    /// Refuses with 403 unless the role allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), UiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(UiError::Forbidden(format!(
                "Your role ({}) can look but not change this.",
                self.role.as_str()
            )))
        }
    }

    /// The page chrome for this operator.
    pub fn chrome(&self, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            username: self.username.clone(),
            role: self.role.as_str(),
            can_operate: self.role.allows(Permission::Operate),
            can_admin: self.role.allows(Permission::Administer),
            csrf: self.csrf.clone(),
            stylesheet: super::assets::stylesheet(),
            script: super::assets::script(),
        }
    }
}

impl super::api::Bearer for Session {
    fn token(&self) -> &str {
        &self.token
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        let next = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned()
        } else {
            "/".to_owned()
        };
        let sign_in = || UiError::SignIn { next: next.clone() };
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or_else(sign_in)?
            .to_owned();
        // The API's own check, on a request that carries the token the way API clients do.
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| sign_in())?;
        let mut probe = Request::new(());
        probe.headers_mut().insert(AUTHORIZATION, bearer);
        let (mut probe, ()) = probe.into_parts();
        let principal = match Auth::<Read>::from_request_parts(&mut probe, state).await {
            Ok(Auth(principal, _)) => principal,
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => return Err(sign_in()),
            Err(e) => return Err(e.into()),
        };
        let Principal::Operator { id, role, sign_in } = principal else {
            return Err(sign_in());
        };
        let operator = state.store.operator(id).await?;
        Ok(Session {
            csrf: csrf_of(&token),
            token,
            id,
            sign_in,
            role,
            username: operator.username.to_string(),
        })
    }
}

/// A form posted by a signed-in operator, its CSRF token checked.
pub struct Posted {
    /// Who posted it.
    pub session: Session,
    /// Its fields.
    pub form: FormData,
}

impl FromRequest<AppState> for Posted {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, UiError> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let header = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let form = FormData::read(Request::from_parts(parts, body)).await?;
        let sent = header.unwrap_or_else(|| form.raw(CSRF_FIELD).to_owned());
        if !same(&sent, &session.csrf) {
            return Err(UiError::Csrf);
        }
        Ok(Posted { session, form })
    }
}

/// Lets the browser use the API's read-only URLs (screenshots, page snapshots, PDF reports,
/// CSV exports, the event stream) with its session cookie: a GET or HEAD under `/api/` that
/// carries no credentials of its own gets the session's token as its bearer token. Only
/// reads: a cookie never authorises a change through the API, so the API needs no CSRF rules.
pub async fn bearer_from_cookie(mut req: Request, next: Next) -> Response {
    let reads = req.method() == Method::GET || req.method() == Method::HEAD;
    if reads
        && req.uri().path().starts_with("/api/")
        && !req.headers().contains_key(AUTHORIZATION)
        && !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")))
        && let Some(token) = cookie(req.headers(), SESSION_COOKIE)
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        req.headers_mut().insert(AUTHORIZATION, value);
    }
    next.run(req).await
}

/// Whether the browser reached us over HTTPS (through a proxy that says so): then cookies are
/// marked `Secure`. Plain HTTP (the default, and `cartwright demo`) cannot carry those.
pub(super) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

pub(super) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or(HeaderValue::from_static("cw_invalid=; Max-Age=0"))
}

/// Where to go after signing in: a path on this site, never another origin.
/// Where to go after signing in: a path on this site only. The value is resolved the way a
/// browser resolves a `Location` (tabs and newlines dropped, backslashes read as slashes), and
/// kept only when it stays on this origin; what is sent back is that normalised path, so the
/// browser cannot read it any other way (`/%09/evil.example` is `//evil.example` to it).
fn safe_next(next: Option<&str>) -> String {
    const HERE: &str = "http://cartwright.invalid/";
    let resolved = next.filter(|n| n.starts_with('/')).and_then(|n| {
        let base = url::Url::parse(HERE).ok()?;
        let url = base.join(n).ok()?;
        (url.origin() == base.origin()).then_some(url)
    });
    match resolved {
        Some(url) => url[url::Position::BeforePath..].to_owned(),
        None => "/".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    l: Chrome,
    next: String,
    username: String,
    message: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(
    secure: bool,
    status: StatusCode,
    next: String,
    username: String,
    message: String,
) -> Response {
    let mut random = [0u8; 16];
    if getrandom::fill(&mut random).is_err() {
        return UiError::Internal("no randomness for the sign-in form".into()).into_response();
    }
    let csrf: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let page = LoginPage {
        l: Chrome::anonymous("Sign in", csrf.clone()),
        next,
        username,
        message,
    };
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            response
                .headers_mut()
                .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, 3600, secure));
            response
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let secure = over_https(&headers);
    if cookie(&headers, SESSION_COOKIE).is_some() {
        let mut parts = Request::new(()).into_parts().0;
        parts.headers = headers;
        if Session::from_request_parts(&mut parts, &state)
            .await
            .is_ok()
        {
            return Redirect::to(&next).into_response();
        }
    }
    login_page(secure, StatusCode::OK, next, String::new(), String::new())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// `POST /login`: signs in through the API's sign-in (same throttle, same checks) and keeps
/// the token in the session cookie.
pub async fn login(
    Extension(api): Extension<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let secure = over_https(&headers);
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same(c, &form.csrf)) {
        return login_page(
            secure,
            StatusCode::FORBIDDEN,
            next,
            form.username,
            "The sign-in form expired; please try again.".into(),
        );
    }
    let body = serde_json::json!({"username": form.username, "password": form.password});
    let reply = match api
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(body),
            Some(&Client::new(peer, &headers)),
        )
        .await
    {
        Ok(reply) => reply,
        Err(e) => return e.into_response(),
    };
    if let Some(failure) = reply.failure() {
        let message = match failure.code.as_str() {
            "too_many_requests" => "Too many failed sign-ins; wait a few minutes.".to_owned(),
            "unauthorized" => "Wrong username or password.".to_owned(),
            _ => failure.message,
        };
        return login_page(secure, reply.status, next, form.username, message);
    }
    let json = reply.json();
    let Some(token) = json["token"].as_str() else {
        return UiError::Internal("the sign-in answer has no token".into()).into_response();
    };
    let ttl = seconds_left(&json);
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, set_cookie(SESSION_COOKIE, token, ttl, secure));
    headers.append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0, secure));
    response
}

/// Seconds until the token of a sign-in answer (`expires_at`) expires: the cookie's lifetime.
pub(super) fn seconds_left(answer: &serde_json::Value) -> u64 {
    answer["expires_at"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(3600, |at| {
            (at - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0) as u64
        })
}

/// `POST /logout`: ends the sign-in (its token stops working everywhere) and forgets the
/// session cookie.
pub async fn logout(
    Extension(api): Extension<Arc<Api>>,
    headers: HeaderMap,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    api.call(&session, Method::POST, "/api/v1/auth/logout", Body::Empty)
        .await?
        .fatal()?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, over_https(&headers)),
    );
    Ok(response)
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; cw_session=tok; b=2"));
        headers.append(COOKIE, HeaderValue::from_static("cw_login=x"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(&headers, "cw"), None);
        headers.insert(COOKIE, HeaderValue::from_static("cw_session="));
        assert_eq!(
            cookie(&headers, SESSION_COOKIE),
            None,
            "an emptied cookie is no session"
        );
    }

    #[test]
    fn csrf_tokens_follow_the_session_and_compare_whole() {
        let a = csrf_of("token-a");
        assert_eq!(a.len(), 32);
        assert_eq!(a, csrf_of("token-a"));
        assert_ne!(a, csrf_of("token-b"));
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &a[..31]));
        assert!(!same(&a, ""));
    }

    #[test]
    fn after_sign_in_only_local_paths() {
        assert_eq!(safe_next(Some("/accounts?q=1")), "/accounts?q=1");
        for bad in [
            "//evil.example.com/",
            "https://evil.example.com/",
            "/\\evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\/evil.example",
            "/\t\\evil.example",
            "",
            "accounts",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        // What goes back is the normalised path the browser would go to.
        assert_eq!(safe_next(Some("/a/../batches/1")), "/batches/1");
        assert_eq!(safe_next(Some("/search?q=a b")), "/search?q=a%20b");
    }
}
