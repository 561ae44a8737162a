//! Templated values in profiles: `{{line.url}}`, `{{address.postcode}}`. Variables are checked
//! when the profile loads; values come from the run.

use serde_json::Value;
use std::fmt;

/// The variables a template may name, by their first part.
pub const ROOTS: &[&str] = &["base_url", "account", "line", "address", "payment", "vars"];

/// A string with `{{name.field}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Vec<String>),
}

impl Template {
    /// Parses a template, refusing unclosed braces and unknown variables.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("{s:?} has an unclosed {{{{"))?;
            let name = after[..end].trim();
            let path: Vec<String> = name.split('.').map(str::to_owned).collect();
            if name.is_empty()
                || path.iter().any(|p| {
                    p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            {
                return Err(format!(
                    "{{{{{name}}}}} is not a variable name like line.url"
                ));
            }
            if !ROOTS.contains(&path[0].as_str()) {
                return Err(format!(
                    "{{{{{name}}}}} is unknown: variables start with {}",
                    ROOTS.join(", ")
                ));
            }
            parts.push(Part::Var(path));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Fills the template from `context` (a JSON object keyed by the roots). A missing value is
    /// an error naming it: typing an empty postcode must not pass silently.
    pub fn render(&self, context: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(path) => {
                    let mut v = context;
                    for key in path {
                        v = v.get(key).ok_or_else(|| {
                            format!("{{{{{}}}}} has no value in this run", path.join("."))
                        })?;
                    }
                    match v {
                        Value::String(s) => out.push_str(s),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                        Value::Null => {
                            return Err(format!("{{{{{}}}}} is empty in this run", path.join(".")));
                        }
                        _ => {
                            return Err(format!(
                                "{{{{{}}}}} is not a single value",
                                path.join(".")
                            ));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether the template has no placeholders.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(t)?,
                Part::Var(p) => write!(f, "{{{{{}}}}}", p.join("."))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_refuses_unknowns() {
        let t = Template::parse("{{base_url}}/p/{{line.slug}}?q={{line.quantity}}").unwrap();
        let ctx = serde_json::json!({"base_url": "http://s", "line": {"slug": "x", "quantity": 2}});
        assert_eq!(t.render(&ctx).unwrap(), "http://s/p/x?q=2");
        assert!(
            Template::parse("{{nope.x}}")
                .unwrap_err()
                .contains("unknown")
        );
        assert!(Template::parse("{{line.url").is_err());
        assert!(Template::parse("{{ }}").is_err());
        let missing = Template::parse("{{address.postcode}}")
            .unwrap()
            .render(&ctx)
            .unwrap_err();
        assert!(missing.contains("address.postcode"));
        assert_eq!(
            t.to_string(),
            "{{base_url}}/p/{{line.slug}}?q={{line.quantity}}"
        );
    }
}
