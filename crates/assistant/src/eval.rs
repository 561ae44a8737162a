//! Measuring retrieval on a labelled query file: recall@1, MRR@10, and — at a confidence
//! threshold — how often an answer is given and how often it is right, with out-of-scope
//! questions (which must not be answered) counted apart; and the threshold to suggest.

use cartwright_core::{Invalid, Invalids};
use serde::Serialize;

/// One labelled question.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// `dev` or `test` (or anything the file uses).
    pub split: String,
    /// What kind of question it is (`close`, `informal`, `out_of_scope`…).
    pub kind: String,
    /// The key of the entry that answers it; none when no entry does.
    pub expected: Option<String>,
    /// The question.
    pub query: String,
}

/// Reads `split,kind,expected,query` rows (a header line first).
pub fn parse_queries(text: &str) -> Result<Vec<Labelled>, Invalids> {
    let mut problems = Invalids::default();
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map(|h| h.iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let column = |name: &str| header.iter().position(|c| c.trim() == name);
    let (Some(split), Some(kind), Some(expected), Some(query)) = (
        column("split"),
        column("kind"),
        column("expected"),
        column("query"),
    ) else {
        problems.push(Invalid::new(
            "line 1",
            "the first line must name the columns split,kind,expected,query",
        ));
        return Err(problems);
    };
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(Invalid::new(format!("line {}", i + 2), e.to_string()));
                continue;
            }
        };
        let get = |c: usize| record.get(c).unwrap_or("").trim().to_owned();
        if get(query).is_empty() {
            problems.push(Invalid::new(
                format!("line {}", i + 2),
                "the query is empty",
            ));
            continue;
        }
        out.push(Labelled {
            split: get(split),
            kind: get(kind),
            expected: Some(get(expected)).filter(|e| !e.is_empty()),
            query: get(query),
        });
    }
    if problems.0.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// What retrieval made of one question.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The question's kind.
    pub kind: String,
    /// The entry that answers it, if any.
    pub expected: Option<String>,
    /// The ranked keys (best first, at most ten).
    pub ranked: Vec<String>,
    /// The best entry's combined score.
    pub confidence: f32,
}

impl Outcome {
    fn rank(&self) -> Option<usize> {
        let expected = self.expected.as_deref()?;
        self.ranked
            .iter()
            .position(|k| k == expected)
            .map(|r| r + 1)
    }

    fn top_right(&self) -> bool {
        self.rank() == Some(1)
    }
}

/// The figures for one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Questions in all.
    pub queries: usize,
    /// Questions an entry answers.
    pub in_scope: usize,
    /// In-scope questions whose best entry is the right one.
    pub recall_at_1: f64,
    /// Mean reciprocal rank of the right entry within the first ten.
    pub mrr_at_10: f64,
    /// The confidence at or above which the FAQ's answer is given.
    pub threshold: f32,
    /// Of the questions answered, the share answered with the right entry (an out-of-scope
    /// question answered is wrong).
    pub answered_precision: f64,
    /// Of the in-scope questions, the share answered with the right entry.
    pub answered_recall: f64,
    /// Of the out-of-scope questions, the share answered (should be none).
    pub out_of_scope_answered: f64,
    /// Recall@1 per kind of in-scope question.
    pub recall_by_kind: Vec<(String, usize, f64)>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The figures at `threshold`.
pub fn report(outcomes: &[Outcome], threshold: f32) -> Report {
    let in_scope: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected.is_some()).collect();
    let out: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected.is_none()).collect();
    let answered: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.confidence >= threshold)
        .collect();
    let right_answered = answered.iter().filter(|o| o.top_right()).count();
    let mut kinds: Vec<String> = in_scope.iter().map(|o| o.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    let recall_by_kind = kinds
        .into_iter()
        .map(|kind| {
            let of: Vec<&&Outcome> = in_scope.iter().filter(|o| o.kind == kind).collect();
            let right = of.iter().filter(|o| o.top_right()).count();
            let n = of.len();
            (kind, n, ratio(right, n))
        })
        .collect();
    Report {
        queries: outcomes.len(),
        in_scope: in_scope.len(),
        recall_at_1: ratio(
            in_scope.iter().filter(|o| o.top_right()).count(),
            in_scope.len(),
        ),
        mrr_at_10: if in_scope.is_empty() {
            0.0
        } else {
            in_scope
                .iter()
                .map(|o| o.rank().map_or(0.0, |r| 1.0 / r as f64))
                .sum::<f64>()
                / in_scope.len() as f64
        },
        threshold,
        answered_precision: ratio(right_answered, answered.len()),
        answered_recall: ratio(right_answered, in_scope.len()),
        out_of_scope_answered: ratio(
            out.iter().filter(|o| o.confidence >= threshold).count(),
            out.len(),
        ),
        recall_by_kind,
    }
}

/// The threshold that answers the most in-scope questions rightly while keeping answered
/// precision at least `precision` and out-of-scope answers at most `out_of_scope`; when no
/// threshold keeps both, the one with the best precision.
pub fn suggest_threshold(outcomes: &[Outcome], precision: f64, out_of_scope: f64) -> f32 {
    let mut candidates: Vec<f32> = outcomes.iter().map(|o| o.confidence).collect();
    candidates.push(1.0);
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best: Option<(f64, f32)> = None;
    let mut fallback = (f64::MIN, 1.0f32);
    for &t in &candidates {
        let r = report(outcomes, t);
        if r.answered_precision >= precision && r.out_of_scope_answered <= out_of_scope {
            // Ties go to the higher threshold: as many right answers, fewer risky ones.
            if best.is_none_or(|(recall, _)| r.answered_recall >= recall) {
                best = Some((r.answered_recall, t));
            }
        }
        if r.answered_precision >= fallback.0 {
            fallback = (r.answered_precision, t);
        }
    }
    best.map_or(fallback.1, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(expected: Option<&str>, ranked: &[&str], confidence: f32) -> Outcome {
        Outcome {
            kind: if expected.is_some() {
                "close"
            } else {
                "out_of_scope"
            }
            .into(),
            expected: expected.map(str::to_owned),
            ranked: ranked.iter().map(|s| (*s).to_owned()).collect(),
            confidence,
        }
    }

    #[test]
    fn figures_count_what_they_say() {
        let outcomes = [
            outcome(Some("a"), &["a", "b"], 0.9),
            outcome(Some("b"), &["a", "b"], 0.5),
            outcome(None, &["a"], 0.3),
            outcome(None, &["b"], 0.7),
        ];
        let r = report(&outcomes, 0.6);
        assert_eq!(r.in_scope, 2);
        assert!((r.recall_at_1 - 0.5).abs() < 1e-9);
        assert!((r.mrr_at_10 - 0.75).abs() < 1e-9);
        assert!((r.answered_precision - 0.5).abs() < 1e-9);
        assert!((r.answered_recall - 0.5).abs() < 1e-9);
        assert!((r.out_of_scope_answered - 0.5).abs() < 1e-9);
        assert!((suggest_threshold(&outcomes, 0.95, 0.05) - 0.9).abs() < 1e-6);
        let q = parse_queries("split,kind,expected,query\ndev,close,a,\"where, my code\"\ntest,out_of_scope,,weather?\n")
            .expect("parses");
        assert_eq!(q[0].query, "where, my code");
        assert_eq!(q[1].expected, None);
        assert!(parse_queries("a,b\n1,2\n").is_err());
    }
}
