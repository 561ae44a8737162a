//! Operators, managed by admins.

use crate::auth::password::hash_password;
use crate::auth::{Administer, Auth};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::created;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cartwright_core::ids::OperatorId;
use cartwright_core::operator::{NewOperator, Operator, OperatorPatch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(unlock))
}

/// Lets an operator whose sign-ins are being slowed down after failed attempts try again at
/// once (on this server node).
#[utoipa::path(post, path = "/operators/{id}/unlock", tag = "operators", params(("id" = i64, Path)),
    responses((status = 204, description = "Their failed attempts are forgotten"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn unlock(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<OperatorId>,
) -> ApiResult<StatusCode> {
    let operator = state.store.operator(id).await?;
    state.throttle.unlock(operator.username.as_str());
    Ok(StatusCode::NO_CONTENT)
}

/// All operators.
#[utoipa::path(get, path = "/operators", tag = "operators",
    responses((status = 200, body = Vec<Operator>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    _: Auth<Administer>,
) -> ApiResult<axum::Json<Vec<Operator>>> {
    Ok(axum::Json(state.store.operators().await?))
}

/// Adds an operator.
#[utoipa::path(post, path = "/operators", tag = "operators", request_body = NewOperator,
    responses((status = 201, body = Operator), (status = 409, description = "Username or email taken", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Json(body): Json<NewOperator>,
) -> ApiResult<Response> {
    let hash = hash_password(&body.password).await?;
    let operator = state.store.create_operator(&body, &hash).await?;
    Ok(created(
        format!("/api/v1/operators/{}", operator.id),
        operator,
    ))
}

/// One operator.
#[utoipa::path(get, path = "/operators/{id}", tag = "operators", params(("id" = i64, Path)),
    responses((status = 200, body = Operator), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<OperatorId>,
) -> ApiResult<axum::Json<Operator>> {
    Ok(axum::Json(state.store.operator(id).await?))
}

/// Changes an operator. A new password, role or disabled flag ends their sign-ins. The last
/// enabled admin cannot be demoted or disabled.
#[utoipa::path(patch, path = "/operators/{id}", tag = "operators", params(("id" = i64, Path)),
    request_body = OperatorPatch,
    responses((status = 200, body = Operator), (status = 404, body = ErrorBody),
        (status = 409, description = "Would leave no enabled admin", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    _: Auth<Administer>,
    Path(id): Path<OperatorId>,
    Json(body): Json<OperatorPatch>,
) -> ApiResult<axum::Json<Operator>> {
    let hash = match &body.password {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    Ok(axum::Json(
        state
            .store
            .update_operator(id, &body, hash.as_deref())
            .await?,
    ))
}

/// Deletes an operator. The last enabled admin cannot be deleted.
#[utoipa::path(delete, path = "/operators/{id}", tag = "operators", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    Auth(who, ..): Auth<Administer>,
    Path(id): Path<OperatorId>,
) -> ApiResult<StatusCode> {
    if who.operator() == Some(id) {
        return Err(crate::error::ApiError::refused(
            "id",
            "you cannot delete your own operator while signed in as it; another admin can",
        ));
    }
    state.store.delete_operator(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
