//! Storefront profiles: one TOML file per site describing its pages as named selectors and its
//! flows as typed steps in named phases. Adding a storefront means writing a profile, not code.
//! A profile is checked completely when it loads; every problem is reported with the file,
//! the line, the phase and step, and the field.

mod load;
pub mod registry;
pub mod template;

pub use load::{ProfileError, ProfileErrors, load_file, parse};
pub use template::Template;

use cartwright_core::order::ErrorClass;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A loaded, checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile's name: its file name without `.toml`.
    pub name: String,
    /// Where it was read from.
    pub source: PathBuf,
    /// The site and its limits.
    pub site: Site,
    /// The rewards endpoint, when the site has one.
    pub rewards: Option<Rewards>,
    /// Named selectors.
    pub selectors: BTreeMap<String, Target>,
    /// How coupons are offered and applied, when the site has them.
    pub coupons: Option<Coupons>,
    /// How the cart's lines are read, to check them against the batch before paying.
    pub cart: Option<CartCheck>,
    /// Texts that, found on the page after a step fails, say why.
    pub errors: ErrorTexts,
    /// What the order history can prove about a final click whose outcome is unknown.
    pub history: History,
    /// The flows.
    pub phases: BTreeMap<Phase, Vec<Step>>,
}

/// The site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Display name.
    pub name: String,
    /// Default base URL; a storefront's own base URL wins.
    pub base_url: Option<String>,
    /// Requests per second to the site's domain, from every browser context and HTTP client
    /// together.
    pub rate_limit: f64,
    /// Longest wait for a page to load.
    pub page_timeout: Duration,
    /// Longest wait for a step's element or condition.
    pub step_timeout: Duration,
    /// Longest wait for the order confirmation after the final click.
    pub confirm_timeout: Duration,
    /// The session cookie's name, for logging which cookie signs in.
    pub session_cookie: Option<String>,
    /// Optional pauses after actions, when a site wants humane pacing.
    pub pacing: Pacing,
    /// How often a `goto` whose page answered 5xx or 429, or did not load, is loaded again
    /// in place (with backoff) before the run fails: a page load is safe to repeat.
    pub page_retries: u32,
}

/// Pauses after actions; none by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacing {
    /// After a click.
    pub click: Duration,
    /// After typing into a field.
    pub input: Duration,
}

/// The rewards endpoint: plain HTTP with the account's cookies.
#[derive(Debug, Clone)]
pub struct Rewards {
    /// Path (or absolute URL) of the endpoint.
    pub path: String,
    /// JSON pointer to the available points.
    pub points: String,
    /// JSON pointer to the tier name.
    pub tier: Option<String>,
    /// JSON pointer to a flag that must be `true`.
    pub success: Option<String>,
    /// Load the home page first, as a browser would, so the site can refresh its cookies.
    pub warm_up: bool,
    /// Checks in flight at once when a run does not say.
    pub concurrency: u32,
}

/// Coupons: how the offers are opened, which buttons apply one, what confirms it, how one
/// is taken off (to try another when looking for the best), and how a code the batch names
/// is typed in.
#[derive(Debug, Clone)]
pub struct Coupons {
    /// Steps that show the offers.
    pub open: Vec<Step>,
    /// Each enabled "Apply" button, in page order; none when the site only takes codes.
    pub option: Option<Target>,
    /// Steps after clicking an option.
    pub applied: Vec<Step>,
    /// Steps that take the applied coupon off.
    pub remove: Vec<Step>,
    /// Steps that read `total` where an offer was applied, so the `best` policy compares
    /// offers there; without them each offer's total is read by the `read_total` phase.
    pub total: Vec<Step>,
    /// Steps that type the batch's coupon code (`{{coupon.code}}`) and show it applied.
    pub code: Vec<Step>,
}

/// How the cart is read before the final click: steps that leave, in page order, one
/// product key per line in `cart_products` and one quantity per line in `cart_quantities`.
/// The engine pays only for a cart whose lines are exactly the batch's.
#[derive(Debug, Clone)]
pub struct CartCheck {
    /// Steps that read the lines.
    pub read: Vec<Step>,
    /// What a product key is compared with.
    pub key: CartKey,
}

/// What identifies a cart line's product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartKey {
    /// The product page's URL (a link on the line): compared by path.
    Url,
    /// The product's SKU.
    Sku,
    /// The product's name.
    Name,
}

impl CartKey {
    /// The name a profile uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CartKey::Url => "url",
            CartKey::Sku => "sku",
            CartKey::Name => "name",
        }
    }
}

/// The order history as evidence: whether it lists every order (so an absence proves the
/// click placed nothing), how long a new order may take to appear, and what an empty history
/// looks like (so an empty read is known to be the history, not a page that did not load).
#[derive(Debug, Clone)]
pub struct History {
    /// The rule the evidence is judged by.
    pub rule: cartwright_core::placing::HistoryRule,
    /// What the history page shows when the account has no order.
    pub empty: Option<Target>,
}

impl Default for History {
    fn default() -> Self {
        History {
            rule: cartwright_core::placing::HistoryRule {
                reliable: false,
                absent_for: Duration::from_secs(180),
            },
            empty: None,
        }
    }
}

/// Texts that classify a failure.
#[derive(Debug, Clone, Default)]
pub struct ErrorTexts {
    /// The storefront refused for a business reason ("out of stock").
    pub business: Vec<String>,
    /// The storefront signed the account out ("please log in").
    pub session_expired: Vec<String>,
}

/// The named phases a flow is made of. Their meaning is enforced by the engine: the cap is
/// checked after `read_total` and before `place`; `place` runs only once the order is marked
/// as placing; `find_in_history` settles an order whose confirmation was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Show that the account is signed in (fails with `session_expired` otherwise).
    CheckLogin,
    /// Delete the account's saved addresses.
    ClearAddresses,
    /// Empty the cart.
    ClearCart,
    /// Add one cart line (`line.*`): run once per line.
    AddItem,
    /// Read the cart's total into `total` (and optionally `mrp`, `discount`).
    ReadTotal,
    /// Enter the delivery address (`address.*`).
    SetAddress,
    /// Choose the payment method (`payment.*`).
    ChoosePayment,
    /// The final click.
    Place,
    /// Read the new order's number into `order_number`.
    Confirm,
    /// Read every order number in the account's history into `history`.
    FindInHistory,
    /// Read the profile into `email`, `phone`, `first_name`, `last_name`.
    ReadProfile,
}

impl Phase {
    /// Every phase, in flow order.
    pub const ALL: [Phase; 11] = [
        Phase::CheckLogin,
        Phase::ClearAddresses,
        Phase::ClearCart,
        Phase::AddItem,
        Phase::ReadTotal,
        Phase::SetAddress,
        Phase::ChoosePayment,
        Phase::Place,
        Phase::Confirm,
        Phase::FindInHistory,
        Phase::ReadProfile,
    ];

    /// The name used in profiles and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::CheckLogin => "check_login",
            Phase::ClearAddresses => "clear_addresses",
            Phase::ClearCart => "clear_cart",
            Phase::AddItem => "add_item",
            Phase::ReadTotal => "read_total",
            Phase::SetAddress => "set_address",
            Phase::ChoosePayment => "choose_payment",
            Phase::Place => "place",
            Phase::Confirm => "confirm",
            Phase::FindInHistory => "find_in_history",
            Phase::ReadProfile => "read_profile",
        }
    }

    /// Parses a phase name.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One step of a phase.
#[derive(Debug, Clone)]
pub struct Step {
    /// Line in the profile, for messages.
    pub line: usize,
    /// What it does.
    pub action: Action,
    /// A failure is logged and the flow goes on.
    pub optional: bool,
    /// Overrides the site's step timeout.
    pub timeout: Option<Duration>,
    /// Runs only when this is on the page now (looked at once, never waited for).
    pub if_present: Option<Target>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open a URL (absolute, or a path on the site).
    Goto(Template),
    /// Click the first visible, enabled match.
    Click(Target),
    /// Type a value into a field (replacing what it holds).
    Fill {
        /// The field.
        target: Target,
        /// What to type.
        value: Template,
    },
    /// Choose an option of a `<select>` by its text or value.
    Select {
        /// The select.
        target: Target,
        /// The option.
        value: Template,
    },
    /// Press a key (`Enter`, `Tab`, `Escape`).
    Press(String),
    /// Wait for a condition.
    WaitFor(Condition),
    /// Read text (or a number, or every match) into a variable.
    Extract(Extract),
    /// Check a condition; fail with `fail` and `message` when it does not hold.
    Assert {
        /// What must hold.
        condition: Condition,
        /// How the failure is classed.
        fail: ErrorClass,
        /// What the failure says.
        message: String,
    },
    /// Repeat `steps` a number of times, or while an element is on the page (each round
    /// must make one fewer match, so a page that does not change fails rather than loops).
    Repeat {
        /// How many rounds.
        rounds: Rounds,
        /// The body.
        steps: Vec<Step>,
        /// A bound on the rounds.
        max: u32,
    },
    /// A fixed pause, for sites that want pacing. Conditions are awaited, never slept on.
    Pause(Duration),
}

/// How many rounds a `repeat` makes.
#[derive(Debug, Clone)]
pub enum Rounds {
    /// While this is on the page.
    WhilePresent(Target),
    /// This many (a template such as `{{line.quantity}}`).
    Times(Template),
}

/// A condition on the page.
#[derive(Debug, Clone)]
pub enum Condition {
    /// The element is on the page and visible.
    Present(Target),
    /// The element is gone or hidden.
    Absent(Target),
    /// The page's text contains this (case- and whitespace-insensitive).
    Text(Template),
    /// The URL contains this.
    Url(Template),
    /// The field holds a value (a field the page fills by itself, like a city from a PIN code).
    Filled(Target),
    /// Any of these elements is present.
    Any(Vec<Target>),
}

/// What `extract` reads.
#[derive(Debug, Clone)]
pub struct Extract {
    /// The element(s).
    pub target: Target,
    /// The variable it goes into.
    pub into: String,
    /// Read a number (`₹1,299.50` → 1299.50) rather than text.
    pub number: bool,
    /// Read every match into a list rather than the first.
    pub all: bool,
    /// Keep only this regular expression's first group (or whole match).
    pub pattern: Option<regex::Regex>,
    /// Read this attribute rather than the text.
    pub attribute: Option<String>,
}

/// Alternatives tried in order until one matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The selector's name in the profile, when it was named: for events and messages.
    pub name: Option<String>,
    /// The ways to find it.
    pub alternatives: Vec<Selector>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.name, self.alternatives.first()) {
            (Some(name), _) => f.write_str(name),
            (None, Some(Selector::Css { css, .. })) => write!(f, "{css}"),
            (None, Some(Selector::XPath { xpath })) => write!(f, "{xpath}"),
            (None, Some(Selector::Text { text, .. })) => write!(f, "\"{text}\""),
            (None, Some(Selector::Aria { label, .. })) => write!(f, "[aria \"{label}\"]"),
            (None, None) => f.write_str("(nothing)"),
        }
    }
}

/// A selector as a profile writes it, in short: `css "…"`, `text "…" (button)`.
pub fn describe_selector(s: &Selector) -> String {
    let within = |w: &Option<Box<Target>>| match w {
        Some(t) => format!(" within {t}"),
        None => String::new(),
    };
    match s {
        Selector::Css { css, within: w } => format!("css \"{css}\"{}", within(w)),
        Selector::XPath { xpath } => format!("xpath \"{xpath}\""),
        Selector::Text {
            text,
            role,
            contains,
            within: w,
        } => format!(
            "text{} \"{text}\"{}{}",
            if *contains { " containing" } else { "" },
            match role {
                Some(Role::Button) => " (button)",
                Some(Role::Link) => " (link)",
                Some(Role::Field) => " (field)",
                None => "",
            },
            within(w)
        ),
        Selector::Aria {
            label, within: w, ..
        } => format!("aria \"{label}\"{}", within(w)),
    }
}

/// One way to find an element.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// A CSS selector.
    Css {
        /// The selector.
        css: String,
        /// Only inside this.
        within: Option<Box<Target>>,
    },
    /// An XPath expression.
    XPath {
        /// The expression.
        xpath: String,
    },
    /// An element whose text matches, optionally of a role (`button`, `link`, `field`).
    Text {
        /// The text, compared case- and whitespace-insensitively; may hold `{{…}}`.
        text: Template,
        /// `button`, `link`, `field` or any element.
        role: Option<Role>,
        /// Whole text (default) or containing it.
        contains: bool,
        /// Only inside this.
        within: Option<Box<Target>>,
    },
    /// An element whose `aria-label` (or label text, for fields) matches.
    Aria {
        /// The label, compared case- and whitespace-insensitively; may hold `{{…}}`.
        label: Template,
        /// Whole label or containing it (the default).
        contains: bool,
        /// Only inside this.
        within: Option<Box<Target>>,
    },
}

/// Element roles a text selector may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `<button>`, `[role=button]`, `input[type=submit|button]`.
    Button,
    /// `<a href>`, `[role=link]`.
    Link,
    /// Inputs, selects, text areas: matched by their label.
    Field,
}

impl Profile {
    /// The steps of a phase (empty when the profile has none).
    pub fn phase(&self, phase: Phase) -> &[Step] {
        self.phases.get(&phase).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_the_profile_wrote_them() {
        let target = |selector| Target {
            name: None,
            alternatives: vec![selector],
        };
        let aria = target(Selector::Aria {
            label: Template::parse("Standard").unwrap(),
            contains: true,
            within: None,
        });
        assert_eq!(aria.to_string(), "[aria \"Standard\"]");
        let text = target(Selector::Text {
            text: Template::parse("{{payment.label}}").unwrap(),
            role: Some(Role::Button),
            contains: false,
            within: None,
        });
        assert_eq!(text.to_string(), "\"{{payment.label}}\"");
    }
}
