//! Reading and checking a profile file. Every problem is collected and reported with the
//! file, line, place (phase and step) and field, so one `cartwright profile check` shows all.

use super::{
    Action, CartCheck, CartKey, Condition, Coupons, ErrorTexts, Extract, History, Pacing, Phase,
    Profile, Rewards, Role, Rounds, Selector, Site, Step, Target, Template,
};
use cartwright_core::order::ErrorClass;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Spanned, Table, Value};

/// One problem in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1, when known.
    pub line: Option<usize>,
    /// Where in the profile (`phase add_item, step 2`).
    pub place: String,
    /// The field (`click`, `timeout`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.place)?;
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and checks the profile at `path`.
pub fn load_file(path: &Path) -> Result<Profile, ProfileErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ProfileErrors(vec![ProfileError {
            file: path.to_owned(),
            line: None,
            place: "file".into(),
            field: None,
            message: format!("cannot be read: {e}"),
        }])
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&text, path, &name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    site: Spanned<Table>,
    rewards: Option<Spanned<Table>>,
    #[serde(default)]
    selectors: BTreeMap<String, Spanned<Value>>,
    coupons: Option<Spanned<Table>>,
    cart: Option<Spanned<Table>>,
    errors: Option<Spanned<Table>>,
    history: Option<Spanned<Table>>,
    #[serde(default)]
    phases: BTreeMap<String, Spanned<Vec<Spanned<Value>>>>,
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ProfileError>,
    selector_names: Vec<String>,
    selectors: BTreeMap<String, Target>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn fail(
        &mut self,
        line: Option<usize>,
        place: &str,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        self.errors.push(ProfileError {
            file: self.file.to_owned(),
            line,
            place: place.to_owned(),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }
}

/// Parses profile text. `path` and `name` are used in messages and as the profile's name.
pub fn parse(text: &str, path: &Path, name: &str) -> Result<Profile, ProfileErrors> {
    let mut c = Checker {
        file: path,
        text,
        errors: Vec::new(),
        selector_names: Vec::new(),
        selectors: BTreeMap::new(),
    };
    let raw: Raw = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| c.line_of(s.start));
            c.fail(line, "file", None, e.message().to_owned());
            return Err(ProfileErrors(c.errors));
        }
    };
    c.selector_names = raw.selectors.keys().cloned().collect();

    let site_line = c.line_of(raw.site.span().start);
    let site = site(&mut c, raw.site.get_ref(), site_line);
    let rewards = raw.rewards.as_ref().map(|r| {
        let line = c.line_of(r.span().start);
        rewards(&mut c, r.get_ref(), line)
    });
    for (name, value) in &raw.selectors {
        let line = c.line_of(value.span().start);
        let place = format!("selector {name}");
        if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            c.fail(
                Some(line),
                &place,
                None,
                "selector names are letters, digits and _",
            );
        }
        if let Some(mut t) = target_value(&mut c, value.get_ref(), line, &place, "selector", false)
        {
            t.name = Some(name.clone());
            c.selectors.insert(name.clone(), t);
        }
    }
    let selectors = c.selectors.clone();
    let errors = raw.errors.as_ref().map(|e| {
        let line = c.line_of(e.span().start);
        error_texts(&mut c, e.get_ref(), line)
    });
    let coupons = raw.coupons.as_ref().map(|t| {
        let line = c.line_of(t.span().start);
        coupons(&mut c, t.get_ref(), line)
    });
    let cart = raw.cart.as_ref().map(|t| {
        let line = c.line_of(t.span().start);
        cart(&mut c, t.get_ref(), line)
    });
    let history = raw.history.as_ref().map(|t| {
        let line = c.line_of(t.span().start);
        history(&mut c, t.get_ref(), line)
    });
    let mut phases = BTreeMap::new();
    for (name, steps) in &raw.phases {
        let line = c.line_of(steps.span().start);
        let Some(phase) = Phase::parse(name) else {
            let known: Vec<_> = Phase::ALL.iter().map(|p| p.as_str()).collect();
            c.fail(
                Some(line),
                &format!("phase {name}"),
                None,
                format!("is not a phase; phases are {}", known.join(", ")),
            );
            continue;
        };
        let mut list = Vec::new();
        for (i, step) in steps.get_ref().iter().enumerate() {
            let line = c.line_of(step.span().start);
            let place = format!("phase {name}, step {}", i + 1);
            if let Some(s) = step_value(&mut c, step.get_ref(), line, &place) {
                list.push(s);
            }
        }
        phases.insert(phase, list);
    }
    let profile = Profile {
        name: name.to_owned(),
        source: path.to_owned(),
        site: site.unwrap_or_else(placeholder_site),
        rewards: rewards.flatten(),
        selectors,
        coupons: coupons.flatten(),
        cart: cart.flatten(),
        errors: errors.unwrap_or_default(),
        history: history.unwrap_or_default(),
        phases,
    };
    check_meaning(&mut c, &profile);
    if c.errors.is_empty() {
        Ok(profile)
    } else {
        Err(ProfileErrors(c.errors))
    }
}

fn placeholder_site() -> Site {
    Site {
        name: String::new(),
        base_url: None,
        rate_limit: 1.0,
        page_timeout: Duration::from_secs(1),
        step_timeout: Duration::from_secs(1),
        confirm_timeout: Duration::from_secs(1),
        session_cookie: None,
        pacing: Pacing::default(),
        page_retries: 0,
    }
}

/// Checks the phases mean what the engine needs them to mean.
fn check_meaning(c: &mut Checker<'_>, p: &Profile) {
    for required in [
        Phase::CheckLogin,
        Phase::AddItem,
        Phase::ReadTotal,
        Phase::Place,
        Phase::Confirm,
        Phase::FindInHistory,
    ] {
        if !p.phases.contains_key(&required) {
            let why = match required {
                Phase::FindInHistory => {
                    "an order whose confirmation was lost is settled from the history, never by clicking again"
                }
                Phase::ReadTotal => "the cap is checked on the total before the order is placed",
                _ => "every order needs it",
            };
            c.fail(
                None,
                &format!("phase {}", required.as_str()),
                None,
                format!("is required: {why}"),
            );
        }
    }
    let extracts_in = |steps: &[Step], var: &str, all: bool| {
        fn walk<'s>(steps: &'s [Step], out: &mut Vec<&'s Extract>) {
            for s in steps {
                match &s.action {
                    Action::Extract(e) => out.push(e),
                    Action::Repeat { steps, .. } => walk(steps, out),
                    _ => {}
                }
            }
        }
        let mut found = Vec::new();
        walk(steps, &mut found);
        found.iter().any(|e| e.into == var && e.all == all)
    };
    let extracts = |phase: Phase, var: &str, all: bool| extracts_in(p.phase(phase), var, all);
    // A phase whose steps did not load is reported already; do not add its consequences.
    if !c.errors.is_empty() {
        return;
    }
    for (phase, var, all, what) in [
        (
            Phase::ReadTotal,
            "total",
            false,
            "an `extract` into `total` with `number = true`",
        ),
        (
            Phase::Confirm,
            "order_number",
            false,
            "an `extract` into `order_number`",
        ),
        (
            Phase::FindInHistory,
            "history",
            true,
            "an `extract` into `history` with `all = true`",
        ),
    ] {
        if !p.phase(phase).is_empty() && !extracts(phase, var, all) {
            c.fail(
                None,
                &format!("phase {}", phase.as_str()),
                None,
                format!("needs {what}"),
            );
        }
    }
    if let Some(coupons) = &p.coupons
        && !coupons.total.is_empty()
        && !extracts_in(&coupons.total, "total", false)
    {
        c.fail(
            None,
            "[coupons]",
            Some("total"),
            "needs an `extract` into `total` with `number = true`",
        );
    }
    if let Some(cart) = &p.cart {
        for var in ["cart_products", "cart_quantities"] {
            if !extracts_in(&cart.read, var, true) {
                c.fail(
                    None,
                    "[cart]",
                    Some("read"),
                    format!("needs an `extract` into `{var}` with `all = true`"),
                );
            }
        }
    }
}

fn text_of(v: &Value) -> Option<&str> {
    v.as_str()
}

fn duration(
    c: &mut Checker<'_>,
    v: &Value,
    line: usize,
    place: &str,
    field: &str,
) -> Option<Duration> {
    match v.as_str().map(humantime::parse_duration) {
        Some(Ok(d)) => Some(d),
        _ => {
            c.fail(
                Some(line),
                place,
                Some(field),
                "must be a duration like \"500ms\", \"8s\" or \"1m\"",
            );
            None
        }
    }
}

fn unknown_keys(c: &mut Checker<'_>, t: &Table, known: &[&str], line: usize, place: &str) {
    for key in t.keys() {
        if !known.contains(&key.as_str()) {
            c.fail(
                Some(line),
                place,
                Some(key),
                format!("is not a known key here; known keys: {}", known.join(", ")),
            );
        }
    }
}

fn site(c: &mut Checker<'_>, t: &Table, line: usize) -> Option<Site> {
    let place = "[site]";
    unknown_keys(
        c,
        t,
        &[
            "name",
            "base_url",
            "rate_limit",
            "page_timeout",
            "step_timeout",
            "confirm_timeout",
            "session_cookie",
            "pacing",
            "page_retries",
        ],
        line,
        place,
    );
    let name = t
        .get("name")
        .and_then(text_of)
        .map(str::to_owned)
        .unwrap_or_default();
    let base_url = match t.get("base_url") {
        None => None,
        Some(v) => match v.as_str().map(url::Url::parse) {
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => Some(u.to_string()),
            _ => {
                c.fail(
                    Some(line),
                    place,
                    Some("base_url"),
                    "must be an http:// or https:// URL",
                );
                None
            }
        },
    };
    let rate_limit = match t.get("rate_limit") {
        None => 5.0,
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(r) if r > 0.0 && r <= 1000.0 => r,
            _ => {
                c.fail(
                    Some(line),
                    place,
                    Some("rate_limit"),
                    "must be requests per second, above 0 and at most 1000",
                );
                1.0
            }
        },
    };
    let page_retries = match t.get("page_retries") {
        None => DEFAULT_PAGE_RETRIES,
        Some(v) => match v.as_integer().and_then(|i| u32::try_from(i).ok()) {
            Some(n) if n <= 10 => n,
            _ => {
                c.fail(
                    Some(line),
                    place,
                    Some("page_retries"),
                    "must be a whole number from 0 to 10: how often a page that answered 5xx or 429, or did not load, is loaded again before the run fails",
                );
                0
            }
        },
    };
    let mut timeout = |key: &str, default: u64| match t.get(key) {
        None => Some(Duration::from_secs(default)),
        Some(v) => duration(c, v, line, place, key),
    };
    let page_timeout = timeout("page_timeout", 20)?;
    let step_timeout = timeout("step_timeout", 10)?;
    let confirm_timeout = timeout("confirm_timeout", 30)?;
    let mut pacing = Pacing::default();
    if let Some(p) = t.get("pacing") {
        match p.as_table() {
            Some(p) => {
                unknown_keys(c, p, &["click", "input"], line, "[site.pacing]");
                if let Some(v) = p.get("click") {
                    pacing.click =
                        duration(c, v, line, "[site.pacing]", "click").unwrap_or_default();
                }
                if let Some(v) = p.get("input") {
                    pacing.input =
                        duration(c, v, line, "[site.pacing]", "input").unwrap_or_default();
                }
            }
            None => c.fail(
                Some(line),
                place,
                Some("pacing"),
                "must be a table like { click = \"300ms\" }",
            ),
        }
    }
    Some(Site {
        name,
        base_url,
        rate_limit,
        page_timeout,
        step_timeout,
        confirm_timeout,
        session_cookie: t.get("session_cookie").and_then(text_of).map(str::to_owned),
        pacing,
        page_retries,
    })
}

fn rewards(c: &mut Checker<'_>, t: &Table, line: usize) -> Option<Rewards> {
    let place = "[rewards]";
    unknown_keys(
        c,
        t,
        &[
            "path",
            "points",
            "tier",
            "success",
            "warm_up",
            "concurrency",
        ],
        line,
        place,
    );
    let pointer = |c: &mut Checker<'_>, key: &str| -> Option<String> {
        let v = t.get(key)?;
        match v.as_str() {
            Some(p) if p.is_empty() || p.starts_with('/') => Some(p.to_owned()),
            _ => {
                c.fail(
                    Some(line),
                    place,
                    Some(key),
                    "must be a JSON pointer like \"/pointSummary/available\"",
                );
                None
            }
        }
    };
    let Some(path) = t.get("path").and_then(text_of).map(str::to_owned) else {
        c.fail(
            Some(line),
            place,
            Some("path"),
            "is required: the endpoint's path",
        );
        return None;
    };
    let Some(points) = pointer(c, "points") else {
        if t.get("points").is_none() {
            c.fail(
                Some(line),
                place,
                Some("points"),
                "is required: a JSON pointer to the points",
            );
        }
        return None;
    };
    Some(Rewards {
        path,
        points,
        tier: pointer(c, "tier"),
        success: pointer(c, "success"),
        warm_up: t.get("warm_up").and_then(Value::as_bool).unwrap_or(false),
        concurrency: match t.get("concurrency") {
            None => 16,
            Some(v) => match v.as_integer().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if (1..=cartwright_core::rewards::MAX_CONCURRENCY).contains(&n) => n,
                _ => {
                    c.fail(
                        Some(line),
                        place,
                        Some("concurrency"),
                        format!(
                            "must be a whole number from 1 to {}",
                            cartwright_core::rewards::MAX_CONCURRENCY
                        ),
                    );
                    16
                }
            },
        },
    })
}

fn error_texts(c: &mut Checker<'_>, t: &Table, line: usize) -> ErrorTexts {
    unknown_keys(c, t, &["business", "session_expired"], line, "[errors]");
    let mut list = |key: &str| -> Vec<String> {
        match t.get(key) {
            None => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_str) => a
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.to_lowercase()))
                .collect(),
            Some(_) => {
                c.fail(Some(line), "[errors]", Some(key), "must be a list of texts");
                Vec::new()
            }
        }
    };
    ErrorTexts {
        business: list("business"),
        session_expired: list("session_expired"),
    }
}

fn coupons(c: &mut Checker<'_>, t: &Table, line: usize) -> Option<Coupons> {
    let place = "[coupons]";
    unknown_keys(
        c,
        t,
        &["open", "option", "applied", "remove", "total", "code"],
        line,
        place,
    );
    let steps = |c: &mut Checker<'_>, key: &str| -> Vec<Step> {
        match t.get(key) {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    step_value(c, s, line, &format!("[coupons] {key}, step {}", i + 1))
                })
                .collect(),
            Some(_) => {
                c.fail(Some(line), place, Some(key), "must be a list of steps");
                Vec::new()
            }
        }
    };
    let open = steps(c, "open");
    let applied = steps(c, "applied");
    let remove = steps(c, "remove");
    let total = steps(c, "total");
    let code = steps(c, "code");
    let option = match t.get("option") {
        Some(option) => Some(target_value(c, option, line, place, "option", true)?),
        None if t.get("code").is_some() => None,
        None => {
            c.fail(
                Some(line),
                place,
                Some("option"),
                "is required unless `code` is given: the selector of each enabled Apply button",
            );
            return None;
        }
    };
    Some(Coupons {
        open,
        option,
        applied,
        remove,
        total,
        code,
    })
}

fn cart(c: &mut Checker<'_>, t: &Table, line: usize) -> Option<CartCheck> {
    let place = "[cart]";
    unknown_keys(c, t, &["read", "key"], line, place);
    let key = match t.get("key").map(|v| v.as_str()) {
        None | Some(Some("url")) => CartKey::Url,
        Some(Some("sku")) => CartKey::Sku,
        Some(Some("name")) => CartKey::Name,
        Some(_) => {
            c.fail(
                Some(line),
                place,
                Some("key"),
                "must be \"url\", \"sku\" or \"name\": what a line's product key is compared with",
            );
            CartKey::Url
        }
    };
    let read = match t.get("read") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .enumerate()
            .filter_map(|(i, s)| step_value(c, s, line, &format!("[cart] read, step {}", i + 1)))
            .collect(),
        _ => {
            c.fail(
                Some(line),
                place,
                Some("read"),
                "is required: the steps that read each line's product into `cart_products` and quantity into `cart_quantities`",
            );
            return None;
        }
    };
    Some(CartCheck { read, key })
}

fn history(c: &mut Checker<'_>, t: &Table, line: usize) -> History {
    let place = "[history]";
    unknown_keys(c, t, &["reliable", "absent_for", "empty"], line, place);
    let mut history = History::default();
    match t.get("reliable") {
        None => {}
        Some(Value::Boolean(b)) => history.rule.reliable = *b,
        Some(_) => c.fail(
            Some(line),
            place,
            Some("reliable"),
            "must be true or false: whether the history lists every order as soon as it is placed",
        ),
    }
    if let Some(v) = t.get("absent_for")
        && let Some(d) = duration(c, v, line, place, "absent_for")
    {
        if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
            c.fail(
                Some(line),
                place,
                Some("absent_for"),
                "must be between 1s and 24h: longer than the storefront ever takes to list a new order",
            );
        }
        history.rule.absent_for = d;
    }
    if let Some(v) = t.get("empty") {
        history.empty = target_value(c, v, line, place, "empty", true);
    }
    history
}

const ACTIONS: &[&str] = &[
    "goto", "click", "fill", "select", "press", "wait_for", "extract", "assert", "repeat", "pause",
];
/// How often a page is loaded again, or the steps on it done again, when the site fails
/// under them: at a fifth of requests failing, five more tries leave a page failing about
/// once in 15,000 loads.
const DEFAULT_PAGE_RETRIES: u32 = 5;
const STEP_OPTIONS: &[&str] = &["optional", "timeout", "note", "if_present"];
const CONDITIONS: &[&str] = &["present", "absent", "text", "url", "filled", "any"];
const SELECTOR_KINDS: &[&str] = &["css", "xpath", "text", "aria"];
const EXTRACT_FIELDS: &[&str] = &["target", "into", "number", "all", "pattern", "attribute"];

fn step_value(c: &mut Checker<'_>, v: &Value, line: usize, place: &str) -> Option<Step> {
    let Some(t) = v.as_table() else {
        c.fail(
            Some(line),
            place,
            None,
            "a step is a table like { click = \"add_to_bag\" }",
        );
        return None;
    };
    let actions: Vec<&String> = t.keys().filter(|k| ACTIONS.contains(&k.as_str())).collect();
    for key in t.keys() {
        if !ACTIONS.contains(&key.as_str()) && !STEP_OPTIONS.contains(&key.as_str()) {
            let hint = closest(key, ACTIONS.iter().chain(STEP_OPTIONS).copied());
            c.fail(
                Some(line),
                place,
                Some(key),
                format!("is not an action or step option{hint}"),
            );
        }
    }
    let action_key = match actions.as_slice() {
        [one] => one.as_str(),
        [] => {
            c.fail(
                Some(line),
                place,
                None,
                format!("has no action; one of {}", ACTIONS.join(", ")),
            );
            return None;
        }
        many => {
            let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            c.fail(
                Some(line),
                place,
                None,
                format!("has several actions ({}); one per step", names.join(", ")),
            );
            return None;
        }
    };
    let value = &t[action_key];
    let optional = match t.get("optional") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(_) => {
            c.fail(Some(line), place, Some("optional"), "must be true or false");
            false
        }
    };
    let timeout = t
        .get("timeout")
        .and_then(|v| duration(c, v, line, place, "timeout"));
    let if_present = t
        .get("if_present")
        .and_then(|v| target_value(c, v, line, place, "if_present", true));
    let action = action(c, action_key, value, line, place)?;
    Some(Step {
        line,
        action,
        optional,
        timeout,
        if_present,
    })
}

fn template(
    c: &mut Checker<'_>,
    v: &Value,
    line: usize,
    place: &str,
    field: &str,
) -> Option<Template> {
    let Some(s) = v.as_str() else {
        c.fail(Some(line), place, Some(field), "must be a string");
        return None;
    };
    match Template::parse(s) {
        Ok(t) => Some(t),
        Err(m) => {
            c.fail(Some(line), place, Some(field), m);
            None
        }
    }
}

fn action(c: &mut Checker<'_>, key: &str, v: &Value, line: usize, place: &str) -> Option<Action> {
    let table = |c: &mut Checker<'_>, known: &[&str]| -> Option<Table> {
        match v.as_table() {
            Some(t) => {
                unknown_keys(c, t, known, line, &format!("{place}, {key}"));
                Some(t.clone())
            }
            None => {
                c.fail(
                    Some(line),
                    place,
                    Some(key),
                    format!("must be a table with {}", known.join(", ")),
                );
                None
            }
        }
    };
    Some(match key {
        "goto" => Action::Goto(template(c, v, line, place, "goto")?),
        "click" => Action::Click(target_value(c, v, line, place, "click", true)?),
        "press" => Action::Press(
            v.as_str()
                .filter(|k| chromiumoxide::keys::get_key_definition(k).is_some())
                .map(str::to_owned)
                .or_else(|| {
                    c.fail(
                        Some(line),
                        place,
                        Some("press"),
                        format!(
                            "{v} is not a key name: use one like \"Enter\", \"Tab\", \"Escape\" or \"ArrowDown\""
                        ),
                    );
                    None
                })?,
        ),
        "pause" => Action::Pause(duration(c, v, line, place, "pause")?),
        "fill" | "select" => {
            let t = table(c, &["target", "value"])?;
            let target = match t.get("target") {
                Some(tv) => target_value(c, tv, line, place, &format!("{key}.target"), true)?,
                None => {
                    c.fail(
                        Some(line),
                        place,
                        Some(&format!("{key}.target")),
                        "is required",
                    );
                    return None;
                }
            };
            let Some(value) = t.get("value") else {
                c.fail(
                    Some(line),
                    place,
                    Some(&format!("{key}.value")),
                    "is required",
                );
                return None;
            };
            let value = template(c, value, line, place, &format!("{key}.value"))?;
            if key == "fill" {
                Action::Fill { target, value }
            } else {
                Action::Select { target, value }
            }
        }
        "wait_for" => Action::WaitFor(condition(c, v, line, place, "wait_for")?),
        "assert" => {
            let t = table(
                c,
                &[
                    "present", "absent", "text", "url", "filled", "any", "fail", "message",
                ],
            )?;
            let fail = match t.get("fail").and_then(Value::as_str) {
                None => ErrorClass::Profile,
                Some(s) => match s.parse::<ErrorClass>() {
                    Ok(class) => class,
                    _ => {
                        c.fail(
                            Some(line),
                            place,
                            Some("assert.fail"),
                            "must be transient, session_expired, business, profile or fatal",
                        );
                        ErrorClass::Profile
                    }
                },
            };
            let message = t
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("a check failed")
                .to_owned();
            let mut cond = t.clone();
            cond.remove("fail");
            cond.remove("message");
            Action::Assert {
                condition: condition(c, &Value::Table(cond), line, place, "assert")?,
                fail,
                message,
            }
        }
        "extract" => {
            let t = table(
                c,
                EXTRACT_FIELDS,
            )?;
            let target = match t.get("target") {
                Some(tv) => target_value(c, tv, line, place, "extract.target", true)?,
                None => {
                    c.fail(Some(line), place, Some("extract.target"), "is required");
                    return None;
                }
            };
            let into = match t.get("into").and_then(Value::as_str) {
                Some(s)
                    if !s.is_empty()
                        && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') =>
                {
                    s.to_owned()
                }
                _ => {
                    c.fail(
                        Some(line),
                        place,
                        Some("extract.into"),
                        "must name a variable (letters, digits, _)",
                    );
                    return None;
                }
            };
            let pattern = match t
                .get("pattern")
                .and_then(Value::as_str)
                .map(regex::Regex::new)
            {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    c.fail(
                        Some(line),
                        place,
                        Some("extract.pattern"),
                        format!("is not a valid regular expression: {e}"),
                    );
                    None
                }
            };
            Action::Extract(Extract {
                target,
                into,
                number: t.get("number").and_then(Value::as_bool).unwrap_or(false),
                all: t.get("all").and_then(Value::as_bool).unwrap_or(false),
                pattern,
                attribute: t
                    .get("attribute")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        }
        "repeat" => {
            let t = table(c, &["while_present", "times", "steps", "max"])?;
            let rounds = match (t.get("while_present"), t.get("times")) {
                (Some(tv), None) => Rounds::WhilePresent(target_value(
                    c,
                    tv,
                    line,
                    place,
                    "repeat.while_present",
                    true,
                )?),
                (None, Some(times)) => {
                    Rounds::Times(template(c, times, line, place, "repeat.times")?)
                }
                _ => {
                    c.fail(
                        Some(line),
                        place,
                        Some("repeat"),
                        "needs exactly one of while_present or times",
                    );
                    return None;
                }
            };
            let steps = match t.get("steps") {
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        step_value(c, s, line, &format!("{place}, repeat step {}", i + 1))
                    })
                    .collect(),
                _ => {
                    c.fail(
                        Some(line),
                        place,
                        Some("repeat.steps"),
                        "must be a non-empty list of steps",
                    );
                    return None;
                }
            };
            let max = match t.get("max") {
                None => 50,
                Some(v) => match v.as_integer() {
                    Some(n @ 1..=1000) => n as u32,
                    _ => {
                        c.fail(Some(line), place, Some("repeat.max"), "must be 1 to 1000");
                        50
                    }
                },
            };
            Action::Repeat { rounds, steps, max }
        }
        _ => return None,
    })
}

fn condition(
    c: &mut Checker<'_>,
    v: &Value,
    line: usize,
    place: &str,
    field: &str,
) -> Option<Condition> {
    let Some(t) = v.as_table() else {
        c.fail(
            Some(line),
            place,
            Some(field),
            format!("must be a table with one of {}", CONDITIONS.join(", ")),
        );
        return None;
    };
    let keys: Vec<&String> = t.keys().collect();
    if keys.len() != 1 {
        c.fail(
            Some(line),
            place,
            Some(field),
            format!("needs exactly one of {}", CONDITIONS.join(", ")),
        );
        return None;
    }
    let (key, value) = (keys[0].as_str(), &t[keys[0]]);
    let sub = format!("{field}.{key}");
    Some(match key {
        "present" => Condition::Present(target_value(c, value, line, place, &sub, true)?),
        "absent" => Condition::Absent(target_value(c, value, line, place, &sub, true)?),
        "text" => Condition::Text(template(c, value, line, place, &sub)?),
        "url" => Condition::Url(template(c, value, line, place, &sub)?),
        "filled" => Condition::Filled(target_value(c, value, line, place, &sub, true)?),
        "any" => match value.as_array() {
            Some(list) if !list.is_empty() => {
                let targets: Vec<Target> = list
                    .iter()
                    .filter_map(|v| target_value(c, v, line, place, &sub, true))
                    .collect();
                if targets.len() != list.len() {
                    return None;
                }
                Condition::Any(targets)
            }
            _ => {
                c.fail(
                    Some(line),
                    place,
                    Some(&sub),
                    "must be a non-empty list of selectors",
                );
                return None;
            }
        },
        other => {
            c.fail(
                Some(line),
                place,
                Some(&format!("{field}.{other}")),
                "is not a condition; use present, absent, text, url, filled or any",
            );
            return None;
        }
    })
}

/// A target: a selector name, an inline selector table, or a list of either (alternatives).
fn target_value(
    c: &mut Checker<'_>,
    v: &Value,
    line: usize,
    place: &str,
    field: &str,
    names_allowed: bool,
) -> Option<Target> {
    let mut alternatives = Vec::new();
    let items: Vec<&Value> = match v {
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        Value::Array(_) => {
            c.fail(Some(line), place, Some(field), "lists no selector");
            return None;
        }
        one => vec![one],
    };
    let mut name = None;
    for item in items {
        match item {
            Value::String(n) if names_allowed => match c.selectors.get(n) {
                Some(t) => {
                    alternatives.extend(t.alternatives.iter().cloned());
                    name.get_or_insert_with(|| n.clone());
                }
                // Named but unusable: its own problem is reported already.
                None if c.selector_names.contains(n) => return None,
                None => {
                    let hint = closest(n, c.selector_names.iter().map(String::as_str));
                    c.fail(
                        Some(line),
                        place,
                        Some(field),
                        format!("no selector is named {n:?}{hint}"),
                    );
                    return None;
                }
            },
            Value::String(_) => {
                c.fail(
                    Some(line),
                    place,
                    Some(field),
                    "a named selector cannot refer to another; write the selector out",
                );
                return None;
            }
            Value::Table(t) => alternatives.push(selector_table(c, t, line, place, field)?),
            _ => {
                c.fail(
                    Some(line),
                    place,
                    Some(field),
                    "must be a selector name or a table like { css = \"…\" }",
                );
                return None;
            }
        }
    }
    Some(Target { name, alternatives })
}

fn selector_table(
    c: &mut Checker<'_>,
    t: &Table,
    line: usize,
    place: &str,
    field: &str,
) -> Option<Selector> {
    let sub = format!("{place}, {field}");
    unknown_keys(
        c,
        t,
        &["css", "xpath", "text", "role", "contains", "aria", "within"],
        line,
        &sub,
    );
    let within = match t.get("within") {
        None => None,
        Some(w) => Some(Box::new(target_value(
            c,
            w,
            line,
            place,
            &format!("{field}.within"),
            true,
        )?)),
    };
    let contains = t.get("contains").and_then(Value::as_bool);
    let kinds = SELECTOR_KINDS
        .iter()
        .filter(|k| t.contains_key(**k))
        .count();
    if kinds != 1 {
        c.fail(
            Some(line),
            place,
            Some(field),
            "a selector has exactly one of css, xpath, text, aria",
        );
        return None;
    }
    if let Some(css) = t.get("css").and_then(Value::as_str) {
        return Some(Selector::Css {
            css: css.to_owned(),
            within,
        });
    }
    if let Some(xpath) = t.get("xpath").and_then(Value::as_str) {
        return Some(Selector::XPath {
            xpath: xpath.to_owned(),
        });
    }
    if let Some(text) = t.get("text").and_then(Value::as_str) {
        let text = match Template::parse(text) {
            Ok(t) => t,
            Err(m) => {
                c.fail(Some(line), place, Some(&format!("{field}.text")), m);
                return None;
            }
        };
        let role = match t.get("role").and_then(Value::as_str) {
            None => None,
            Some("button") => Some(Role::Button),
            Some("link") => Some(Role::Link),
            Some("field") => Some(Role::Field),
            Some(other) => {
                c.fail(
                    Some(line),
                    place,
                    Some(&format!("{field}.role")),
                    format!("{other:?} is not a role; use button, link or field"),
                );
                return None;
            }
        };
        return Some(Selector::Text {
            text,
            role,
            contains: contains.unwrap_or(false),
            within,
        });
    }
    if let Some(label) = t.get("aria").and_then(Value::as_str) {
        let label = match Template::parse(label) {
            Ok(t) => t,
            Err(m) => {
                c.fail(Some(line), place, Some(&format!("{field}.aria")), m);
                return None;
            }
        };
        return Some(Selector::Aria {
            label,
            contains: contains.unwrap_or(true),
            within,
        });
    }
    c.fail(
        Some(line),
        place,
        Some(field),
        "the selector's value must be a string",
    );
    None
}

/// ", did you mean X?" for the candidate closest to `word`, when one is close.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push(
                    (prev[j] + usize::from(ca != *cb))
                        .min(prev[j + 1] + 1)
                        .min(cur[j] + 1),
                );
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn profiles_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
    }

    /// docs/profiles.md names every section, phase, step, step option, condition, selector
    /// form and `extract` field the loader knows, and every error class: the reference
    /// cannot fall behind the code.
    #[test]
    fn the_reference_names_everything_a_profile_can_say() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/profiles.md"),
        )
        .unwrap();
        let phases: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        let classes = [
            "transient",
            "session_expired",
            "business",
            "profile",
            "fatal",
        ];
        for c in classes {
            assert!(c.parse::<ErrorClass>().is_ok(), "{c} is an error class");
        }
        // The sections `Raw` reads.
        const SECTIONS: &[&str] = &[
            "site",
            "rewards",
            "selectors",
            "coupons",
            "cart",
            "errors",
            "history",
            "phases",
        ];
        let mut missing = Vec::new();
        for word in ACTIONS
            .iter()
            .chain(STEP_OPTIONS)
            .chain(CONDITIONS)
            .chain(SELECTOR_KINDS)
            .chain(EXTRACT_FIELDS)
            .chain(&phases)
            .chain(&classes)
        {
            if !doc.contains(&format!("`{word}`")) && !doc.contains(&format!("`{word} =")) {
                missing.push((*word).to_owned());
            }
        }
        for section in SECTIONS {
            if !doc.contains(&format!("`[{section}]`")) {
                missing.push(format!("[{section}]"));
            }
        }
        assert!(
            missing.is_empty(),
            "docs/profiles.md does not name {missing:?}"
        );
    }

    #[test]
    fn the_shipped_profiles_load() {
        for name in ["demo", "tira"] {
            let p = load_file(&profiles_dir().join(format!("{name}.toml")))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, name);
            for phase in [
                Phase::CheckLogin,
                Phase::AddItem,
                Phase::ReadTotal,
                Phase::Place,
                Phase::Confirm,
                Phase::FindInHistory,
            ] {
                assert!(!p.phase(phase).is_empty(), "{name}: {}", phase.as_str());
            }
            assert!(p.rewards.is_some() && p.coupons.is_some());
        }
        let demo = load_file(&profiles_dir().join("demo.toml")).unwrap();
        assert_eq!(demo.selectors["add_to_bag"].alternatives.len(), 2);
        assert!(matches!(
            &demo.phase(Phase::CheckLogin)[2].action,
            Action::Assert {
                fail: ErrorClass::SessionExpired,
                ..
            }
        ));
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("x.toml"), "x") {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const MINIMAL: &str = r#"
[site]
name = "X"
[selectors]
buy = { text = "Buy", role = "button" }
[phases]
check_login = [{ goto = "/" }]
add_item = [{ goto = "{{line.url}}" }]
read_total = [{ extract = { target = "buy", into = "total", number = true } }]
place = [{ click = "buy" }]
confirm = [{ extract = { target = "buy", into = "order_number" } }]
find_in_history = [{ extract = { target = "buy", into = "history", all = true } }]
"#;

    #[test]
    fn problems_name_the_file_line_place_and_field() {
        assert!(errors(MINIMAL).is_empty(), "{:?}", errors(MINIMAL));
        let typo = MINIMAL.replace(
            r#"place = [{ click = "buy" }]"#,
            r#"place = [{ click = "bye" }]"#,
        );
        let e = errors(&typo);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("x.toml:10: phase place, step 1, field `click`: no selector is named \"bye\" (did you mean buy?)"), "{}", e[0]);

        let bad = MINIMAL
            .replace(r#"check_login = [{ goto = "/" }]"#, r#"check_login = [{ goto = "/", timeout = "soon" }, { clik = "buy" }, { goto = "{{nope.x}}" }, { press = "Entr" }, { press = "Escape" }]"#)
            .replace("[site]\n", "[site]\nrate_limit = -1\n");
        let e = errors(&bad).join("\n");
        for expected in [
            "x.toml:2: [site], field `rate_limit`",
            "phase check_login, step 1, field `timeout`: must be a duration",
            "phase check_login, step 2, field `clik`: is not an action or step option (did you mean click?)",
            "phase check_login, step 3, field `goto`: {{nope.x}} is unknown",
            "phase check_login, step 4, field `press`: \"Entr\" is not a key name",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in\n{e}");
        }
        let no_history = MINIMAL.replace(
            r#"find_in_history = [{ extract = { target = "buy", into = "history", all = true } }]"#,
            "",
        );
        assert!(errors(&no_history)[0].contains("phase find_in_history: is required"));
        let no_total = MINIMAL.replace(r#"into = "total""#, r#"into = "sum""#);
        assert!(errors(&no_total)[0].contains("needs an `extract` into `total`"));
        assert!(errors("[site\n")[0].starts_with("x.toml:1: file:"));
        let coupons =
            format!("{MINIMAL}[coupons]\noption = \"buy\"\ntotal = [{{ goto = \"/cart\" }}]\n");
        let e = errors(&coupons);
        assert!(
            e.iter()
                .any(|e| e.contains("[coupons], field `total`: needs an `extract` into `total`")),
            "{e:?}"
        );
        assert!(
            errors(&MINIMAL.replace("[phases]", "[phases]\nplce = []"))[0]
                .contains("phase plce: is not a phase")
        );
        let cart = format!(
            "{MINIMAL}[cart]\nkey = \"colour\"\nread = [{{ extract = {{ target = {{ css = \"a\" }}, into = \"cart_products\", all = true }} }}]\n"
        );
        let e = errors(&cart);
        assert!(
            e.iter()
                .any(|e| e.contains("[cart], field `key`: must be \"url\", \"sku\" or \"name\"")),
            "{e:?}"
        );
        let e = errors(&cart.replace("colour", "url"));
        assert!(
            e.iter().any(|e| e.contains(
                "[cart], field `read`: needs an `extract` into `cart_quantities` with `all = true`"
            )),
            "{e:?}"
        );
        assert!(
            errors(&format!("{MINIMAL}[cart]\nkey = \"url\"\n"))[0]
                .contains("[cart], field `read`: is required"),
        );
    }

    #[test]
    fn the_history_section_says_what_an_absence_proves() {
        let demo = load_file(&profiles_dir().join("demo.toml")).unwrap();
        assert!(demo.history.rule.reliable);
        assert_eq!(demo.history.rule.absent_for, Duration::from_secs(60));
        assert!(demo.history.empty.is_some());
        let plain = parse(MINIMAL, Path::new("x.toml"), "x").unwrap();
        assert!(
            !plain.history.rule.reliable,
            "a history is not trusted unless the profile says so"
        );
        let bad = format!(
            "{MINIMAL}\n[history]\nreliable = \"yes\"\nabsent_for = \"2d\"\nempty = \"nope\"\n"
        );
        let e = errors(&bad).join("\n");
        for expected in [
            "[history], field `reliable`: must be true or false",
            "[history], field `absent_for`: must be between 1s and 24h",
            "[history], field `empty`",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in\n{e}");
        }
    }
}
