//! Settings: storefront profiles (view, validate), operators and their roles, API tokens.

use super::api::{Api, Body};
use super::error::UiError;
use super::form::{Errors, Values, without_nulls};
use super::session::{Posted, Session};
use super::view::{Chrome, when, when_opt};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cartwright_core::operator::Permission;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A profile's summary, or its problems.
pub struct ProfileView {
    /// Its name.
    pub name: String,
    /// The storefronts using it.
    pub used_by: String,
    /// Where it was read from.
    pub source: String,
    /// The site's name.
    pub site: String,
    /// Requests per second.
    pub rate: String,
    /// Its phases.
    pub phases: String,
    /// Whether it has a rewards endpoint.
    pub rewards: bool,
    /// Problems (empty when it is valid).
    pub problems: Vec<String>,
}

fn view_of(
    name: &str,
    used_by: String,
    loaded: Result<&cartwright_engine::profile::Profile, Vec<String>>,
) -> ProfileView {
    match loaded {
        Ok(p) => ProfileView {
            name: name.to_owned(),
            used_by,
            source: p.source.display().to_string(),
            site: p.site.name.clone(),
            rate: format!("{} requests/s", p.site.rate_limit),
            phases: p
                .phases
                .keys()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            rewards: p.rewards.is_some(),
            problems: Vec::new(),
        },
        Err(problems) => ProfileView {
            name: name.to_owned(),
            used_by,
            source: String::new(),
            site: String::new(),
            rate: String::new(),
            phases: String::new(),
            rewards: false,
            problems,
        },
    }
}

#[derive(Template)]
#[template(path = "ui/settings.html")]
struct ProfilesPage {
    l: Chrome,
    profiles: Vec<ProfileView>,
    checked: Option<ProfileView>,
    text: String,
}

async fn profiles_page(
    state: &AppState,
    session: &Session,
    checked: Option<ProfileView>,
    text: String,
) -> Result<Response, UiError> {
    let storefronts = state.store.storefronts().await?;
    let mut names: BTreeSet<String> = ["demo".to_owned()].into();
    names.extend(storefronts.iter().map(|s| s.profile.to_string()));
    let profiles = names
        .iter()
        .map(|name| {
            let used_by = storefronts
                .iter()
                .filter(|s| s.profile.as_str() == name)
                .map(|s| s.name.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            match state.engine.profiles().get(name) {
                Ok(p) => view_of(name, used_by, Ok(&p)),
                Err(e) => view_of(
                    name,
                    used_by,
                    Err(e.to_string().lines().map(str::to_owned).collect()),
                ),
            }
        })
        .collect();
    let status = if checked.as_ref().is_some_and(|c| !c.problems.is_empty()) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ProfilesPage {
        l: session.chrome("Settings", "settings"),
        profiles,
        checked,
        text,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /settings`: the storefront profiles in use.
pub async fn profiles(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    profiles_page(&state, &session, None, String::new()).await
}

/// `POST /settings/profiles/validate`: checks a pasted profile without saving it.
pub async fn validate(
    State(state): State<AppState>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    let text = form.raw("profile").to_owned();
    let name = match form.get("name") {
        "" => "pasted",
        n => n,
    }
    .to_owned();
    let path = std::path::PathBuf::from(format!("{name}.toml"));
    let checked = match cartwright_engine::profile::parse(&text, &path, &name) {
        Ok(p) => view_of(&name, String::new(), Ok(&p)),
        Err(errors) => view_of(
            &name,
            String::new(),
            Err(errors.0.iter().map(ToString::to_string).collect()),
        ),
    };
    profiles_page(&state, &session, Some(checked), text).await
}

/// An operator as a row.
pub struct OperatorRow {
    /// Id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: &'static str,
    /// Disabled.
    pub disabled: bool,
    /// Last sign-in.
    pub last_login: String,
    /// Whether this is the operator looking.
    pub me: bool,
}

#[derive(Template)]
#[template(path = "ui/operators.html")]
struct OperatorsPage {
    l: Chrome,
    rows: Vec<OperatorRow>,
    v: Values,
    e: Errors,
}

async fn operators_page(
    state: &AppState,
    session: &Session,
    v: Values,
    e: Errors,
) -> Result<Response, UiError> {
    session.require(Permission::Administer)?;
    let rows = state
        .store
        .operators()
        .await?
        .into_iter()
        .map(|o| OperatorRow {
            id: o.id.get(),
            username: o.username.to_string(),
            email: o.email.as_ref().map_or(String::new(), |e| e.to_string()),
            role: o.role.as_str(),
            disabled: o.disabled,
            last_login: when_opt(o.last_login_at),
            me: o.id == session.id,
        })
        .collect();
    let status = e.status();
    let page = OperatorsPage {
        l: session.chrome("Operators", "settings"),
        rows,
        v,
        e,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /settings/operators` (admins).
pub async fn operators(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, UiError> {
    let mut v = Values::default();
    v.set("role", "operator");
    operators_page(&state, &session, v, Errors::default()).await
}

/// `POST /settings/operators`: adds an operator.
pub async fn operator_create(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Administer)?;
    let body = without_nulls(json!({
        "username": form.text("username"),
        "email": form.text("email"),
        "password": form.raw("password"),
        "role": form.text("role"),
    }));
    let reply = api
        .submit(
            &session,
            Method::POST,
            "/api/v1/operators",
            Body::Json(body),
        )
        .await?;
    match reply {
        Ok(_) => Ok(Redirect::to("/settings/operators").into_response()),
        Err(failure) => {
            let errors = Errors::from_failure(&failure, &["username", "email", "password", "role"]);
            let mut v = form.values();
            v.set("password", "");
            operators_page(&state, &session, v, errors).await
        }
    }
}

/// `POST /settings/operators/{id}`: changes a role, or disables or enables an operator.
pub async fn operator_update(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Administer)?;
    let body = json!({"role": form.get("role"), "disabled": form.checked("disabled")});
    let reply = api
        .submit(
            &session,
            Method::PATCH,
            &format!("/api/v1/operators/{id}"),
            Body::Json(body),
        )
        .await?;
    match reply {
        Ok(_) => Ok(Redirect::to("/settings/operators").into_response()),
        Err(failure) => {
            let mut v = Values::default();
            v.set("role", "operator");
            operators_page(&state, &session, v, Errors::summary(failure.message)).await
        }
    }
}

/// A token as a row.
pub struct TokenRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The first characters of its secret.
    pub prefix: String,
    /// Scopes.
    pub scopes: String,
    /// Created.
    pub created: String,
    /// Expires.
    pub expires: String,
    /// Last used.
    pub used: String,
    /// Revoked.
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "ui/tokens.html")]
struct TokensPage {
    l: Chrome,
    rows: Vec<TokenRow>,
    v: Values,
    e: Errors,
    secret: String,
}

async fn tokens_page(
    state: &AppState,
    session: &Session,
    v: Values,
    e: Errors,
    secret: String,
) -> Result<Response, UiError> {
    session.require(Permission::Administer)?;
    let rows = state
        .store
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.get(),
            name: t.name.to_string(),
            prefix: t.prefix.clone(),
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            created: when(t.created_at),
            expires: when_opt(t.expires_at),
            used: when_opt(t.last_used_at),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    let status = e.status();
    let page = TokensPage {
        l: session.chrome("API tokens", "settings"),
        rows,
        v,
        e,
        secret,
    };
    let mut response = (status, Html(page.render()?)).into_response();
    // The secret is on this page only: never from a cache.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `GET /settings/tokens` (admins).
pub async fn tokens(State(state): State<AppState>, session: Session) -> Result<Response, UiError> {
    let mut v = Values::default();
    v.set("scope_read", "on");
    tokens_page(&state, &session, v, Errors::default(), String::new()).await
}

/// `POST /settings/tokens`: creates a token and shows its secret this once.
pub async fn token_create(
    State(state): State<AppState>,
    Extension(api): Extension<Arc<Api>>,
    Posted { session, form }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Administer)?;
    let scopes: Vec<&str> = ["read", "operate", "extension", "webhook"]
        .into_iter()
        .filter(|s| form.checked(&format!("scope_{s}")))
        .collect();
    let days = form.get("expires_in_days");
    let body = without_nulls(json!({
        "name": form.text("name"),
        "scopes": scopes,
        "expires_in_days": super::form::number(days),
    }));
    let reply = api
        .submit(&session, Method::POST, "/api/v1/tokens", Body::Json(body))
        .await?;
    match reply {
        Ok(created) => {
            let secret = created["secret"].as_str().unwrap_or_default().to_owned();
            let mut v = Values::default();
            v.set("scope_read", "on");
            tokens_page(&state, &session, v, Errors::default(), secret).await
        }
        Err(failure) => {
            let errors = Errors::from_failure(&failure, &["name", "scopes", "expires_in_days"]);
            tokens_page(&state, &session, form.values(), errors, String::new()).await
        }
    }
}

/// `POST /settings/tokens/{id}/revoke`.
pub async fn token_revoke(
    Extension(api): Extension<Arc<Api>>,
    Path(id): Path<i64>,
    Posted { session, .. }: Posted,
) -> Result<Response, UiError> {
    session.require(Permission::Administer)?;
    let _ = api
        .submit(
            &session,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Body::Empty,
        )
        .await?;
    Ok(Redirect::to("/settings/tokens").into_response())
}

/// This module's pages.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/settings", get(profiles))
        .route("/settings/profiles/validate", post(validate))
        .route("/settings/operators", get(operators).post(operator_create))
        .route("/settings/operators/{id}", post(operator_update))
        .route("/settings/tokens", get(tokens).post(token_create))
        .route("/settings/tokens/{id}/revoke", post(token_revoke))
}
