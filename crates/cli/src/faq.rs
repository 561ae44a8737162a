//! `cartwright faq eval`: how well the FAQ answers a labelled set of buyer questions, and
//! which confidence threshold to use.

use cartwright_assistant::eval::{self, Outcome, Report};
use cartwright_assistant::index::Weights;
use cartwright_assistant::{Retriever, embed::Embedder};
use cartwright_core::faq::{self, FaqDraft};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `faq eval` is given.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled questions: CSV with the columns split,kind,expected,query (`expected` is the
    /// key of the entry that answers it, empty when none does).
    pub queries: PathBuf,
    /// The FAQ: a Markdown or CSV file (by extension).
    #[arg(long)]
    pub faq: PathBuf,
    /// Only the questions of this split (e.g. `dev` to tune, `test` to report).
    #[arg(long)]
    pub split: Option<String>,
    /// The threshold to report at (default: the one suggested on these questions).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// The embedding model's directory (default: the configured one); `none`: lexical only.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Weights of the semantic, word and trigram scores, e.g. `0.6,0.2,0.2`.
    #[arg(long, value_parser = parse_weights)]
    pub weights: Option<Weights>,
    /// Print every question answered wrongly.
    #[arg(long)]
    pub misses: bool,
}

fn parse_weights(s: &str) -> Result<Weights, String> {
    let parts: Vec<f32> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f32>()
                .map_err(|_| format!("{p} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [semantic, words, trigrams] => Ok(Weights {
            semantic,
            words,
            trigrams,
        }),
        _ => Err("give three weights: semantic,words,trigrams".into()),
    }
}

/// Why the evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file held bad lines.
    #[error("{0}:\n{1}")]
    Invalid(PathBuf, String),
    /// The model failed.
    #[error(transparent)]
    Assistant(#[from] cartwright_assistant::AssistantError),
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| EvalError::Read(path.to_owned(), e))
}

fn invalid(path: &Path, problems: cartwright_core::Invalids) -> EvalError {
    let lines: Vec<String> = problems
        .0
        .iter()
        .map(|p| format!("  {}: {}", p.field, p.message))
        .collect();
    EvalError::Invalid(path.to_owned(), lines.join("\n"))
}

/// Reads a FAQ file, Markdown or CSV by its extension.
pub fn read_faq(path: &Path) -> Result<Vec<FaqDraft>, EvalError> {
    let text = read(path)?;
    let parsed = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        faq::parse_csv(&text)
    } else {
        faq::parse_markdown(&text)
    };
    parsed.map_err(|p| invalid(path, p))
}

/// Runs the evaluation and prints its figures.
pub fn eval(args: &EvalArgs, default_model: Option<PathBuf>) -> Result<Report, EvalError> {
    let entries = read_faq(&args.faq)?;
    let queries =
        eval::parse_queries(&read(&args.queries)?).map_err(|p| invalid(&args.queries, p))?;
    let queries: Vec<_> = queries
        .into_iter()
        .filter(|q| args.split.as_ref().is_none_or(|s| &q.split == s))
        .collect();
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let unknown: Vec<String> = queries
        .iter()
        .filter_map(|q| q.expected.as_deref())
        .filter(|e| !keys.contains(e))
        .map(str::to_owned)
        .collect();
    if !unknown.is_empty() {
        return Err(EvalError::Invalid(
            args.queries.clone(),
            format!("  no entry has the key(s) {}", unknown.join(", ")),
        ));
    }
    let model = match &args.model {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => default_model,
    };
    let embedder = match &model {
        Some(dir) => Some(Arc::new(Embedder::load(dir)?)),
        None => None,
    };
    println!(
        "retrieval: {}",
        match &embedder {
            Some(e) => format!("BM25 (words, trigrams) + {} embeddings", e.name()),
            None => "BM25 (words, trigrams) only: no embedding model".into(),
        }
    );
    let mut retriever = Retriever::new(embedder);
    let indexed: Vec<(i64, FaqDraft)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    retriever.rebuild(&indexed)?;
    let outcomes = queries
        .iter()
        .map(|q| {
            let hits = match args.weights {
                Some(w) => retriever.search_weighted(&q.query, 10, w)?,
                None => retriever.search(&q.query, 10)?,
            };
            Ok(Outcome {
                kind: q.kind.clone(),
                expected: q.expected.clone(),
                ranked: hits
                    .iter()
                    .map(|h| indexed[h.id as usize].1.key.as_str().to_owned())
                    .collect(),
                confidence: hits.first().map_or(0.0, |h| h.score),
            })
        })
        .collect::<Result<Vec<_>, EvalError>>()?;
    let suggested = eval::suggest_threshold(&outcomes, 0.95, 0.05);
    let report = eval::report(&outcomes, args.threshold.unwrap_or(suggested));
    println!(
        "questions: {} ({} answerable, {} out of scope){}",
        report.queries,
        report.in_scope,
        report.queries - report.in_scope,
        args.split
            .as_ref()
            .map_or(String::new(), |s| format!(", split {s}"))
    );
    println!("recall@1: {:.3}", report.recall_at_1);
    println!("MRR@10: {:.3}", report.mrr_at_10);
    for (kind, n, recall) in &report.recall_by_kind {
        println!("  recall@1 {kind} ({n}): {recall:.3}");
    }
    println!("at threshold {:.3}:", report.threshold);
    println!("  answered precision: {:.3}", report.answered_precision);
    println!("  answered recall: {:.3}", report.answered_recall);
    println!(
        "  out of scope answered: {:.3}",
        report.out_of_scope_answered
    );
    println!("suggested threshold (precision ≥ 0.95, out of scope ≤ 5 %): {suggested:.3}");
    if args.misses {
        for (q, o) in queries.iter().zip(&outcomes) {
            let top = o.ranked.first().map_or("-", String::as_str);
            let answered = o.confidence >= report.threshold;
            let wrong = if o.expected.is_some() {
                top != o.expected.as_deref().unwrap_or_default() || !answered
            } else {
                answered
            };
            if wrong {
                println!(
                    "miss [{}] {:?}: expected {}, got {} ({:.3})",
                    q.kind,
                    q.query,
                    q.expected.as_deref().unwrap_or("(none)"),
                    top,
                    o.confidence
                );
            }
        }
    }
    Ok(report)
}
