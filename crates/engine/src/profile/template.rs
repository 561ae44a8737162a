//! Templated values in profiles: `{{line.url}}`, `{{address.postcode}}`, and with a value
//! for runs that have none, `{{shipping.label | Standard}}`. Variables are checked when the
//! profile loads; values come from the run.

use serde_json::Value;
use std::fmt;

/// The variables a template may name, by their first part.
pub const ROOTS: &[&str] = &[
    "base_url", "account", "line", "address", "payment", "coupon", "shipping", "vars",
];

/// A string with `{{name.field}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A variable's path and the text used when the run has no value for it.
    Var(Vec<String>, Option<String>),
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
            let (name, fallback) = match after[..end].split_once('|') {
                Some((name, fallback)) => (name.trim(), Some(fallback.trim().to_owned())),
                None => (after[..end].trim(), None),
            };
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
            parts.push(Part::Var(path, fallback));
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
                Part::Var(path, fallback) => {
                    let v = path.iter().try_fold(context, |v, key| v.get(key));
                    let v = match (v, fallback) {
                        (None | Some(Value::Null), Some(fallback)) => {
                            out.push_str(fallback);
                            continue;
                        }
                        (None, None) => {
                            return Err(format!(
                                "{{{{{}}}}} has no value in this run",
                                path.join(".")
                            ));
                        }
                        (Some(v), _) => v,
                    };
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
                Part::Var(p, None) => write!(f, "{{{{{}}}}}", p.join("."))?,
                Part::Var(p, Some(fallback)) => write!(f, "{{{{{} | {fallback}}}}}", p.join("."))?,
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
        let shipping = Template::parse("{{shipping.label | Standard}}").unwrap();
        assert_eq!(shipping.render(&ctx).unwrap(), "Standard");
        let chosen = serde_json::json!({"shipping": {"label": "Express"}});
        assert_eq!(shipping.render(&chosen).unwrap(), "Express");
        let unset = serde_json::json!({"shipping": {"label": null}});
        assert_eq!(shipping.render(&unset).unwrap(), "Standard");
        assert_eq!(shipping.to_string(), "{{shipping.label | Standard}}");
    }
}
