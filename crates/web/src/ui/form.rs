//! Posted forms: their fields as sent, and the errors to show beside them.

use super::api::Failure;
use super::error::UiError;
use axum::extract::Request;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The fields of an `application/x-www-form-urlencoded` body, in order (a name may repeat).
#[derive(Debug, Clone, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// Reads the body of `req`.
    pub async fn read(req: Request) -> Result<Self, UiError> {
        let bytes = crate::extract::body_bytes(req).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                UiError::BadRequest("The form is larger than the server accepts.".into())
            } else {
                UiError::BadRequest("The form could not be read.".into())
            }
        })?;
        Ok(Self(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// The first value of `name` as sent, or "".
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or "".
    pub fn get(&self, name: &str) -> &str {
        self.raw(name).trim()
    }

    /// Every value of `name`, trimmed.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Whether a checkbox named `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "false")
    }

    /// The values to fill a form with again.
    pub fn values(&self) -> Values {
        let mut map = BTreeMap::new();
        for (k, v) in &self.0 {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Values(map)
    }

    /// `name` as JSON: absent when empty, else a string.
    pub fn text(&self, name: &str) -> Value {
        match self.get(name) {
            "" => Value::Null,
            v => json!(v),
        }
    }
}

/// A field's value as JSON: a number when it reads as one, else the text (for the API to
/// refuse with the field named), `null` when empty.
pub fn number(value: &str) -> Value {
    let value = value.trim();
    if value.is_empty() {
        Value::Null
    } else if let Ok(n) = value.parse::<i64>() {
        json!(n)
    } else {
        json!(value)
    }
}

/// A JSON object without its `null` members (absent fields take the API's defaults).
pub fn without_nulls(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// The values a form shows.
#[derive(Debug, Clone, Default)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    /// The value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// Sets `name`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// Whether `name` holds `value` (for `selected` and `checked`).
    pub fn is(&self, name: &str, value: &str) -> bool {
        self.get(name) == value
    }
}

/// Errors to show: by field, and one for the whole form.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    fields: BTreeMap<String, String>,
    /// The message for the whole form, when there is one.
    pub summary: String,
}

impl Errors {
    /// The API's error, placed beside its field when the form has it (`known` lists the
    /// form's field names; an API field `lines[0].quantity` belongs to the form field
    /// `lines[0].quantity` or to its parent `lines`).
    pub fn from_failure(failure: &Failure, known: &[&str]) -> Self {
        let mut errors = Errors::default();
        let field = failure.field.clone().unwrap_or_default();
        let message = capitalised(&failure.message);
        let place = known
            .iter()
            .filter(|k| {
                field == **k
                    || field.starts_with(&format!("{k}."))
                    || field.starts_with(&format!("{k}["))
            })
            .max_by_key(|k| k.len());
        match place {
            Some(k) => {
                errors.fields.insert((*k).to_owned(), message);
                errors.summary = "Please correct the field marked below.".into();
            }
            None if !field.is_empty() => errors.summary = format!("{field}: {message}"),
            None => errors.summary = message,
        }
        errors
    }

    /// An error beside one field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        let mut errors = Errors::summary("Please correct the field marked below.");
        errors.fields.insert(name.to_owned(), message.into());
        errors
    }

    /// An error for the whole form.
    pub fn summary(message: impl Into<String>) -> Self {
        Errors {
            summary: message.into(),
            ..Default::default()
        }
    }

    /// The message for `field`, or "".
    pub fn get(&self, field: &str) -> &str {
        self.fields.get(field).map_or("", String::as_str)
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// Whether there is any error.
    pub fn any(&self) -> bool {
        !self.fields.is_empty() || !self.summary.is_empty()
    }

    /// The status of a page showing these errors: 422 when there are any.
    pub fn status(&self) -> axum::http::StatusCode {
        if self.any() {
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        } else {
            axum::http::StatusCode::OK
        }
    }
}

fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_fields_land_on_the_closest_form_field() {
        let failure = Failure {
            code: "invalid".into(),
            message: "must be 1 to 10".into(),
            field: Some("lines[1].quantity".into()),
        };
        let errors = Errors::from_failure(&failure, &["lines", "lines[1].quantity", "name"]);
        assert_eq!(errors.get("lines[1].quantity"), "Must be 1 to 10");
        assert!(!errors.has("lines"));
        let errors = Errors::from_failure(&failure, &["name"]);
        assert_eq!(errors.summary, "lines[1].quantity: Must be 1 to 10");
    }

    #[test]
    fn numbers_stay_text_when_they_are_not() {
        assert_eq!(number(" 12 "), json!(12));
        assert_eq!(number("twelve"), json!("twelve"));
        assert_eq!(number(""), Value::Null);
    }
}
