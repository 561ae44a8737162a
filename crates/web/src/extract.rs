//! Request extractors that answer in the API's error format: a bad body or query names the
//! field at fault, malformed JSON is a 400, a body over the route's limit a 413.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// A JSON body, deserialised with the path of any bad field.
pub struct Json<T>(pub T);

/// The body as raw bytes, with the route's size limit enforced as a 413.
pub async fn body_bytes(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::unsupported_media(
                "JSON with Content-Type: application/json",
            ));
        }
        let bytes = body_bytes(req).await?;
        // serde reads a struct from an array too (`[null, null]`): every body here is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::invalid(
                "",
                "the body must be a JSON object, not an array",
            ));
        }
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document into `T`, mapping serde's errors onto the API's: syntax errors are
/// 400 `bad_request`; type errors, missing and unknown fields are 422 `invalid` with the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
            _ => ApiError::bad_request(format!(
                "malformed JSON: {}",
                without_position(&inner.to_string())
            )),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON: {}",
            without_position(&e.to_string())
        ))
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more.
fn without_position(message: &str) -> &str {
    message.rsplit_once(" at line ").map_or(message, |(m, _)| m)
}

/// Turns a serde data error into a 422 naming the field: for missing and unknown fields the
/// name is in the message, not the path.
fn data_error(path: &str, message: &str) -> ApiError {
    let message = without_position(message);
    let path = if path == "." { "" } else { path };
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let name = rest.split('`').next().unwrap_or_default();
            // A missing field's path is its parent; an unknown field's path is the field.
            let field = if path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.to_owned()
            } else {
                format!("{path}.{name}")
            };
            let message = if prefix.starts_with("missing") {
                "is required".to_owned()
            } else {
                let expected = rest
                    .split_once('`')
                    .map_or("", |(_, tail)| tail)
                    .trim_start_matches(',')
                    .trim();
                if expected.is_empty() {
                    "is not a known field".to_owned()
                } else {
                    format!("is not a known field; {expected}")
                }
            };
            return ApiError::invalid(field, message);
        }
    }
    ApiError::invalid(path, in_words(message))
}

/// The standard library's number-parsing messages, said for people.
fn in_words(message: &str) -> String {
    match message {
        "invalid digit found in string" => "must be a whole number of 0 or more".into(),
        "number too large to fit in target type" => "is too large".into(),
        "number too small to fit in target type" => "is too small".into(),
        "cannot parse integer from empty string" => "must not be empty".into(),
        "invalid float literal" => "must be a number".into(),
        other => other.to_owned(),
    }
}

/// Query parameters, deserialised with the name of any bad parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                data_error(&path, &e.into_inner().to_string())
            })
    }
}

/// Path parameters; a malformed id is a 400 naming the parameter.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| {
                let text = e.body_text();
                let text = text.strip_prefix("Invalid URL: ").unwrap_or(&text);
                ApiError::bad_request(format!("the URL path does not fit this route: {text}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    fn err(json: &str) -> (StatusCode, Option<String>) {
        let e = parse_json::<Body>(json.as_bytes()).unwrap_err();
        (e.status(), e.field_name())
    }

    #[test]
    fn json_errors_name_fields() {
        assert_eq!(err("{"), (StatusCode::BAD_REQUEST, None));
        assert_eq!(err(r#"{"name":"a"} x"#), (StatusCode::BAD_REQUEST, None));
        assert_eq!(
            err("{}"),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name".into()))
        );
        assert_eq!(
            err(r#"{"name":1}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name".into()))
        );
        assert_eq!(
            err(r#"{"name":"a","inner":{"n":"x"}}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("inner.n".into()))
        );
        assert_eq!(
            err(r#"{"name":"a","inner":{}}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("inner.n".into()))
        );
        assert_eq!(
            err(r#"{"name":"a","nmae":1}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("nmae".into()))
        );
    }
}
