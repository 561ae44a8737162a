//! The dashboard submits its forms to the API's own handlers, in process: a form becomes the
//! API request a script would send, with the operator's token, so the dashboard has no rules
//! of its own to drift from the API's, and an API error's `field` lands beside that field.

use super::error::UiError;
use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use bytes::Bytes;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// Whoever the dashboard calls the API for: their bearer token.
pub trait Bearer {
    /// The token sent as `Authorization: Bearer …`.
    fn token(&self) -> &str;
}

/// The browser a dashboard request came from, passed on to the API calls that record it
/// (signing in) or throttle by it (password checks).
pub struct Client {
    /// Its address.
    pub peer: SocketAddr,
    /// Its user agent.
    pub user_agent: Option<HeaderValue>,
}

impl Client {
    /// The client of a request from `peer` with `headers`.
    pub fn new(peer: SocketAddr, headers: &HeaderMap) -> Self {
        Self {
            peer,
            user_agent: headers.get(USER_AGENT).cloned(),
        }
    }
}

/// The API router, ready to take requests.
pub struct Api {
    router: Router,
}

/// A request body.
pub enum Body {
    /// None.
    Empty,
    /// JSON.
    Json(Value),
    /// Raw bytes of a content type.
    Raw(&'static str, Vec<u8>),
}

/// An API answer.
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
}

/// An API error answer, unpacked.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The error code (`invalid`, `conflict`, …).
    pub code: String,
    /// For people.
    pub message: String,
    /// The field at fault.
    pub field: Option<String>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The error, when the answer is one.
    pub fn failure(&self) -> Option<Failure> {
        if self.status.is_success() {
            return None;
        }
        let json = self.json();
        let error = &json["error"];
        Some(Failure {
            code: error["code"].as_str().unwrap_or("error").to_owned(),
            message: error["message"].as_str().map_or_else(
                || format!("failed with status {}", self.status),
                str::to_owned,
            ),
            field: error["field"].as_str().map(str::to_owned),
        })
    }

    /// The answer as an error page when it is an error the operator cannot fix in a form
    /// (not found, not allowed, our failure); `Ok` otherwise.
    pub fn fatal(&self) -> Result<(), UiError> {
        let Some(f) = self.failure() else {
            return Ok(());
        };
        match self.status {
            StatusCode::NOT_FOUND => Err(UiError::NotFound(f.message)),
            StatusCode::FORBIDDEN => Err(UiError::Forbidden(f.message)),
            StatusCode::UNAUTHORIZED => Err(UiError::SignIn { next: "/".into() }),
            StatusCode::SERVICE_UNAVAILABLE => Err(UiError::Unavailable),
            s if s.is_server_error() => Err(UiError::Internal(f.message)),
            _ => Ok(()),
        }
    }
}

impl Api {
    /// Wraps the API router (with its state).
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Sends one request to the API, for `client` when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
        client: Option<&Client>,
    ) -> Result<Reply, UiError> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Body::Empty => builder.body(HttpBody::empty()),
            Body::Json(v) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(HttpBody::from(v.to_string())),
            Body::Raw(kind, bytes) => builder
                .header(CONTENT_TYPE, kind)
                .body(HttpBody::from(bytes)),
        };
        let mut request = request.map_err(|e| UiError::Internal(format!("API request: {e}")))?;
        if let Some(client) = client {
            request.extensions_mut().insert(ConnectInfo(client.peer));
            if let Some(agent) = &client.user_agent {
                request.headers_mut().insert(USER_AGENT, agent.clone());
            }
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| UiError::Internal(format!("API call: {e}")))?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| UiError::Internal(format!("API answer: {e}")))?;
        Ok(Reply { status, body })
    }

    /// Sends one request as the signed-in operator and sorts the answer: the JSON body, or
    /// the API's error for the form to show; an answer no form can fix (not found, not
    /// allowed, our failure) is an error page.
    pub async fn submit(
        &self,
        session: &impl Bearer,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Result<Value, Failure>, UiError> {
        let reply = self.call(session, method, path, body).await?;
        reply.fatal()?;
        Ok(match reply.failure() {
            None => Ok(reply.json()),
            Some(failure) => Err(failure),
        })
    }

    /// Sends one request as the signed-in operator.
    pub async fn call(
        &self,
        session: &impl Bearer,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Reply, UiError> {
        self.send(method, path, Some(session.token()), body, None)
            .await
    }
}
