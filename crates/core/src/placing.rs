//! The irreversible click's rule, without I/O. Once an order's final click may have gone out,
//! the order leaves `placing` only on positive evidence:
//!
//! - a confirmation that shows the order's number, or a read of the account's order history,
//!   made after the click, that shows exactly one new order → placed;
//! - the history read successfully at least [`MIN_ABSENT_READS`] times over the profile's
//!   window without the order → not placed: it runs again, or fails for the storefront's
//!   refusal, but only when the profile says its history lists every order; otherwise a
//!   person decides (`unresolved`);
//! - several new orders in the history → a person decides.
//!
//! Anything else (the history unreadable, the browser gone, a timeout, a signed-out session)
//! says nothing, so the order stays `placing` and is looked at again, for as long as it takes.
//! "Could not tell" is never "did not happen". The engine gathers the evidence
//! (`engine::order::placing`); this module decides what it proves.

use crate::order::ErrorClass;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Successful reads without the order, at the least, before an absence counts.
pub const MIN_ABSENT_READS: u32 = 2;

/// What a storefront's profile says about its order history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRule {
    /// The history lists every order as soon as it is placed: an order absent from it over
    /// `absent_for` was not placed.
    pub reliable: bool,
    /// How long an order must stay absent from successful reads before the absence counts:
    /// longer than the storefront ever takes to list a new order.
    pub absent_for: Duration,
}

/// What one look at the account's history, after the click, found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// Exactly one order that was not there before the click and is not another of ours.
    Found(String),
    /// More than one such order: which one is this order cannot be told.
    Several(Vec<String>),
    /// The history was read, and it does not show a new order.
    Absent,
    /// The history could not be read, or what was read cannot be trusted: says nothing.
    Unreadable(String),
}

/// Compares a history read after the click with the one taken before it. `known` are the
/// numbers Cartwright already recorded for the account's other orders; `empty_shown` whether
/// the page showed the storefront's "no orders yet" notice.
///
/// A read counts only when it is plainly the account's history: an empty list without the
/// notice, or one that lost the orders it showed before the click, is unreadable.
pub fn look_at(
    history: &[String],
    before: &[String],
    known: &HashSet<String>,
    empty_shown: bool,
) -> Look {
    if history.is_empty() {
        return if !empty_shown {
            Look::Unreadable(
                "the history page showed no order and not its \"no orders\" notice".into(),
            )
        } else if !before.is_empty() {
            Look::Unreadable(format!(
                "the history showed no order, but it showed {} before the click",
                before.len()
            ))
        } else {
            Look::Absent
        };
    }
    if !before.is_empty() && !history.iter().any(|n| before.contains(n)) {
        return Look::Unreadable(
            "the history shows none of the orders it showed before the click".into(),
        );
    }
    let mut new: Vec<String> = Vec::new();
    for n in history {
        if !before.contains(n) && !known.contains(n) && !new.contains(n) {
            new.push(n.clone());
        }
    }
    match new.len() {
        0 => Look::Absent,
        1 => Look::Found(new.remove(0)),
        _ => Look::Several(new),
    }
}

/// The storefront's answer to the click when it refused the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Refusal {
    /// Why, as a class (`business`, `session_expired`).
    pub class: ErrorClass,
    /// What the page said.
    pub message: String,
}

/// The evidence gathered about an order whose final click may have gone out: kept with the
/// order while it is `placing` or `unresolved`, and shown to operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settling {
    /// Why the click's outcome is not known (the confirmation timed out, the run was lost…).
    pub why: String,
    /// The storefront refused the order, in these words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// Looks at the history so far.
    pub looks: u32,
    /// Of those, reads that did not show the order.
    pub absent_reads: u32,
    /// The first read that did not show it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub absent_since: Option<OffsetDateTime>,
    /// The last read that did not show it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub absent_until: Option<OffsetDateTime>,
    /// Why the last look could not read the history, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// When the last look was.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_look: Option<OffsetDateTime>,
    /// The new orders the history showed, when there were several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
}

/// What the evidence so far proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Placed, with this number.
    Placed(String),
    /// Not placed: it may run again.
    RunAgain,
    /// Not placed: the storefront refused it.
    Refused(Refusal),
    /// A person must decide, for this reason.
    Unresolved(String),
    /// Nothing yet: look again.
    KeepLooking,
}

impl Settling {
    /// Nothing gathered yet; the click's outcome is unknown for `why`.
    pub fn new(why: impl Into<String>) -> Self {
        Settling {
            why: why.into(),
            ..Settling::default()
        }
    }

    /// Adds one look, made at `at`, and says what the evidence now proves.
    pub fn record(&mut self, look: Look, at: OffsetDateTime, rule: &HistoryRule) -> Verdict {
        self.looks += 1;
        self.last_look = Some(at);
        match look {
            Look::Found(number) => {
                self.unreadable = None;
                Verdict::Placed(number)
            }
            Look::Several(numbers) => {
                self.unreadable = None;
                let message = format!(
                    "the history shows {} new orders ({}): which one is this order cannot be told",
                    numbers.len(),
                    numbers.join(", ")
                );
                self.candidates = numbers;
                Verdict::Unresolved(message)
            }
            Look::Unreadable(why) => {
                self.unreadable = Some(why);
                Verdict::KeepLooking
            }
            Look::Absent => {
                self.unreadable = None;
                self.absent_reads += 1;
                let since = *self.absent_since.get_or_insert(at);
                self.absent_until = Some(at);
                let span = at - since;
                if self.absent_reads < MIN_ABSENT_READS || span < rule.absent_for {
                    return Verdict::KeepLooking;
                }
                if !rule.reliable {
                    return Verdict::Unresolved(format!(
                        "the history has not shown the order in {} reads over {}, but the profile does not say that its history lists every order",
                        self.absent_reads,
                        words(span.unsigned_abs())
                    ));
                }
                match &self.refusal {
                    Some(refusal) => Verdict::Refused(refusal.clone()),
                    None => Verdict::RunAgain,
                }
            }
        }
    }

    /// How long to wait before the next look: `first`, doubled for each look so far, at most
    /// `max`, and never past the moment an absence seen so far would have lasted the window.
    pub fn next_look_in(&self, first: Duration, max: Duration, rule: &HistoryRule) -> Duration {
        let backoff = first
            .saturating_mul(1u32 << self.looks.saturating_sub(1).min(16))
            .min(max);
        match (self.absent_since, self.absent_until) {
            (Some(since), Some(until)) => {
                let left = (since + rule.absent_for - until).unsigned_abs();
                let ends_later = since + rule.absent_for > until;
                if ends_later {
                    backoff.min(left.max(first))
                } else {
                    first.min(backoff)
                }
            }
            _ => backoff,
        }
    }
}

/// A duration in words: `3m 20s`.
fn words(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(numbers: &[&str]) -> HashSet<String> {
        numbers.iter().map(|s| (*s).to_owned()).collect()
    }

    fn list(numbers: &[&str]) -> Vec<String> {
        numbers.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_look_counts_only_what_is_plainly_the_accounts_history() {
        let none = known(&[]);
        assert_eq!(
            look_at(&list(&["A", "B"]), &list(&["A"]), &none, false),
            Look::Found("B".into())
        );
        assert_eq!(
            look_at(&list(&["A", "B"]), &list(&["A"]), &known(&["B"]), false),
            Look::Absent,
            "another of our orders is not this one"
        );
        assert!(matches!(
            look_at(&list(&["A", "B", "C"]), &list(&["A"]), &none, false),
            Look::Several(n) if n == list(&["B", "C"])
        ));
        assert_eq!(look_at(&[], &[], &none, true), Look::Absent);
        assert!(
            matches!(look_at(&[], &[], &none, false), Look::Unreadable(_)),
            "an empty list without the notice is a page that did not load"
        );
        assert!(matches!(
            look_at(&[], &list(&["A"]), &none, true),
            Look::Unreadable(_)
        ));
        assert!(
            matches!(
                look_at(&list(&["X"]), &list(&["A"]), &none, false),
                Look::Unreadable(_)
            ),
            "none of the earlier orders: not this history"
        );
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs)
    }

    const RELIABLE: HistoryRule = HistoryRule {
        reliable: true,
        absent_for: Duration::from_secs(60),
    };

    #[test]
    fn an_absence_counts_only_when_read_over_the_window_and_the_history_is_trusted() {
        let mut s = Settling::new("the confirmation timed out");
        assert_eq!(
            s.record(Look::Absent, at(0), &RELIABLE),
            Verdict::KeepLooking
        );
        assert_eq!(
            s.record(Look::Unreadable("500".into()), at(30), &RELIABLE),
            Verdict::KeepLooking
        );
        assert_eq!(
            s.record(Look::Absent, at(59), &RELIABLE),
            Verdict::KeepLooking,
            "not yet the window"
        );
        assert_eq!(s.record(Look::Absent, at(60), &RELIABLE), Verdict::RunAgain);
        assert_eq!((s.looks, s.absent_reads), (4, 3));

        let untrusted = HistoryRule {
            reliable: false,
            ..RELIABLE
        };
        let mut s = Settling::new("lost");
        s.record(Look::Absent, at(0), &untrusted);
        assert!(matches!(
            s.record(Look::Absent, at(61), &untrusted),
            Verdict::Unresolved(_)
        ));

        let mut s = Settling::new("refused");
        s.refusal = Some(Refusal {
            class: ErrorClass::Business,
            message: "out of stock".into(),
        });
        s.record(Look::Absent, at(0), &RELIABLE);
        assert!(matches!(
            s.record(Look::Absent, at(60), &RELIABLE),
            Verdict::Refused(r) if r.class == ErrorClass::Business
        ));
    }

    #[test]
    fn unreadable_forever_never_decides() {
        let mut s = Settling::new("the browser crashed");
        for i in 0..1_000 {
            assert_eq!(
                s.record(Look::Unreadable("502".into()), at(i * 600), &RELIABLE),
                Verdict::KeepLooking
            );
        }
        assert_eq!(
            s.record(Look::Found("N1".into()), at(600_000), &RELIABLE),
            Verdict::Placed("N1".into())
        );
    }

    #[test]
    fn looks_back_off_but_not_past_the_end_of_the_window() {
        let first = Duration::from_secs(1);
        let max = Duration::from_secs(120);
        let mut s = Settling::new("x");
        for i in 0..3 {
            s.record(Look::Unreadable("down".into()), at(i), &RELIABLE);
        }
        assert_eq!(
            s.next_look_in(first, max, &RELIABLE),
            Duration::from_secs(4)
        );
        for i in 0..10 {
            s.record(Look::Unreadable("down".into()), at(i), &RELIABLE);
        }
        assert_eq!(s.next_look_in(first, max, &RELIABLE), max);
        s.record(Look::Absent, at(100), &RELIABLE);
        assert_eq!(
            s.next_look_in(first, max, &RELIABLE),
            Duration::from_secs(60),
            "the absence would last the window then"
        );
        s.record(Look::Absent, at(150), &RELIABLE);
        assert_eq!(
            s.next_look_in(first, max, &RELIABLE),
            Duration::from_secs(10)
        );
    }
}
