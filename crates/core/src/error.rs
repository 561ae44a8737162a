//! The validation error shared by every parser in this crate.

use std::fmt;

/// A value that was rejected, with the name of the field it came from.
///
/// `field` uses the path a client sent (`email`, `cookies[2].sameSite`, `lines[0].quantity`),
/// so an API can point at the exact place to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Where the bad value was, as a path of field names and indexes.
    pub field: String,
    /// What is wrong with it, in words an operator understands.
    pub message: String,
}

impl Invalid {
    /// A rejection of `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same rejection, nested under `parent` (`name` under `cookies[2]` → `cookies[2].name`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Several rejections at once, for inputs (like an import file) where the operator wants to see
/// every problem, not only the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalids(pub Vec<Invalid>);

impl Invalids {
    /// Records one more rejection.
    pub fn push(&mut self, invalid: Invalid) {
        self.0.push(invalid);
    }

    /// Keeps the value when it parsed, records the rejection when it did not.
    pub fn check<T>(&mut self, result: Result<T, Invalid>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// True when nothing was rejected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Invalids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_builds_client_paths() {
        assert_eq!(
            Invalid::new("name", "x").within("cookies[2]").field,
            "cookies[2].name"
        );
        assert_eq!(Invalid::new("[0]", "x").within("ids").field, "ids[0]");
        assert_eq!(Invalid::new("", "x").within("tags").field, "tags");
    }
}
