//! The dashboard's failures, answered as HTML pages (or a redirect to sign in).

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use cartwright_store::StoreError;

/// Why a dashboard request failed.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No valid session: off to the sign-in page, then back to `next`.
    #[error("not signed in")]
    SignIn {
        /// Where to return after signing in.
        next: String,
    },
    /// Signed in without the right.
    #[error("{0}")]
    Forbidden(String),
    /// The form's CSRF token is missing or wrong.
    #[error("this form has expired")]
    Csrf,
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// A request the dashboard cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// The database is busy or away.
    #[error("the database is busy or unreachable; retry shortly")]
    Unavailable,
    /// Our failure; the details go to the log.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => UiError::NotFound(e.to_string()),
            StoreError::Invalid(invalid) => {
                UiError::BadRequest(format!("{}: {}", invalid.field, invalid.message))
            }
            e if e.is_unavailable() => UiError::Unavailable,
            e => UiError::Internal(e.to_string()),
        }
    }
}

impl From<cartwright_core::Invalid> for UiError {
    fn from(e: cartwright_core::Invalid) -> Self {
        UiError::BadRequest(format!("{}: {}", e.field, e.message))
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        UiError::Internal(format!("template: {e}"))
    }
}

impl From<crate::ApiError> for UiError {
    fn from(e: crate::ApiError) -> Self {
        match e.status() {
            StatusCode::NOT_FOUND => UiError::NotFound("Nothing is there.".into()),
            StatusCode::FORBIDDEN => UiError::Forbidden("Your role does not allow this.".into()),
            StatusCode::SERVICE_UNAVAILABLE => UiError::Unavailable,
            s if s.is_client_error() => UiError::BadRequest(format!("{e:?}")),
            _ => UiError::Internal(format!("{e:?}")),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
    stylesheet: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            UiError::SignIn { next } => {
                let mut location = String::from("/login");
                if next != "/" {
                    location.push_str("?next=");
                    location.extend(form_urlencoded::byte_serialize(next.as_bytes()));
                }
                return Redirect::to(&location).into_response();
            }
            UiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            UiError::Csrf => (StatusCode::FORBIDDEN, "This form has expired"),
            UiError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            UiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            UiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Busy"),
            UiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        };
        let message = match &self {
            UiError::Internal(detail) => {
                tracing::error!(error = %detail, "dashboard request failed");
                "Cartwright could not answer this request; the server log has the details.".into()
            }
            UiError::Csrf => {
                "The page was open too long or came from elsewhere. Go back, reload it and try again."
                    .into()
            }
            other => other.to_string(),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message,
            stylesheet: super::assets::stylesheet(),
        };
        let body = page.render().unwrap_or_else(|_| title.to_owned());
        (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
    }
}
