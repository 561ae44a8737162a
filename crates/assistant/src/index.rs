//! The FAQ index: BM25 over words, BM25 over character trigrams, and (with a model) the
//! cosine between the question and each way the entry is asked, combined into one score per
//! entry. A score is comparable across questions, so one threshold decides "answer from the
//! FAQ" or "fall back".

use crate::bm25::Bm25;
use crate::embed::dot;
use crate::text;
use cartwright_core::faq::FaqDraft;
use serde::Serialize;

/// How much each retriever counts in the combined score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    /// The best cosine between the question and the entry's question or phrasings.
    pub semantic: f32,
    /// BM25 over stemmed words of the question, phrasings and answer.
    pub words: f32,
    /// BM25 over character trigrams of the question and phrasings.
    pub trigrams: f32,
}

impl Weights {
    /// Tuned on the development half of `eval/faq` (see `cartwright faq eval`).
    pub const HYBRID: Weights = Weights {
        semantic: 0.3,
        words: 0.5,
        trigrams: 0.2,
    };
    /// Without a model: the lexical retrievers alone.
    pub const LEXICAL: Weights = Weights {
        semantic: 0.0,
        words: 0.5,
        trigrams: 0.5,
    };
}

/// One entry's scores for a question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The entry's id.
    pub id: i64,
    /// The combined score, 0‥1.
    pub score: f32,
    /// Best cosine with the question or a phrasing (none without a model).
    pub semantic: Option<f32>,
    /// Scaled word BM25.
    pub words: f32,
    /// Scaled trigram BM25.
    pub trigrams: f32,
}

/// An index over a set of entries, built whole; the service rebuilds it when entries change
/// (vectors already computed are passed back in and not computed again).
#[derive(Debug, Default, Clone)]
pub struct Index {
    ids: Vec<i64>,
    words: Bm25,
    trigrams: Bm25,
    /// Unit vectors of each entry's asked texts and of its answer's start, with the entry
    /// (position) each belongs to. The answer counts as much as a phrasing: a question is
    /// often closer to the answer's words than to how the seller put the question.
    vectors: Vec<(u32, Vec<f32>)>,
}

/// Word terms of an entry: the question and phrasings count twice, the answer once, each
/// with its English reading.
fn entry_terms(e: &FaqDraft) -> Vec<String> {
    let mut terms = Vec::new();
    for asked in e.asked() {
        let t = query_terms(asked);
        terms.extend(t.iter().cloned());
        terms.extend(t);
    }
    terms.extend(query_terms(e.answer.as_str()));
    terms
}

/// The terms of a text and of its English reading.
fn query_terms(s: &str) -> Vec<String> {
    text::readings(s)
        .iter()
        .flat_map(|r| text::terms(r))
        .collect()
}

fn entry_trigrams(e: &FaqDraft) -> Vec<String> {
    e.asked().flat_map(text::trigrams).collect()
}

impl Index {
    /// Indexes `entries`; `vectors(i)` gives the unit vectors of entry `i`'s asked texts
    /// (each of their [`text::readings`]) and of its answer's start when a model is in use.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (i64, &'a FaqDraft)>,
        mut vectors: impl FnMut(usize) -> Vec<Vec<f32>>,
    ) -> Self {
        let mut index = Index::default();
        for (position, (id, entry)) in entries.into_iter().enumerate() {
            index.ids.push(id);
            index.words.add(&entry_terms(entry));
            index.trigrams.add(&entry_trigrams(entry));
            for v in vectors(position) {
                index.vectors.push((position as u32, v));
            }
        }
        index
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether it has vectors (built with a model).
    pub fn semantic(&self) -> bool {
        !self.vectors.is_empty()
    }

    /// The `k` best entries for `question`, best first. `vectors` are the unit vectors of the
    /// question's readings when a model is in use; without them the lexical weights apply.
    pub fn search(&self, question: &str, vectors: &[Vec<f32>], k: usize) -> Vec<Hit> {
        let weights = if !vectors.is_empty() && self.semantic() {
            Weights::HYBRID
        } else {
            Weights::LEXICAL
        };
        self.search_weighted(question, vectors, k, weights)
    }

    /// [`Index::search`] with chosen weights (for tuning).
    pub fn search_weighted(
        &self,
        question: &str,
        vectors: &[Vec<f32>],
        k: usize,
        weights: Weights,
    ) -> Vec<Hit> {
        let n = self.ids.len();
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let mut words = Vec::new();
        self.words.score_into(&query_terms(question), &mut words);
        let mut trigrams = Vec::new();
        self.trigrams
            .score_into(&text::trigrams(question), &mut trigrams);
        let semantic = (!vectors.is_empty() && self.semantic()).then(|| {
            let mut best = vec![0.0f32; n];
            for (owner, v) in &self.vectors {
                let s = vectors.iter().map(|q| dot(q, v)).fold(0.0f32, f32::max);
                let b = &mut best[*owner as usize];
                if s > *b {
                    *b = s;
                }
            }
            best
        });
        let mut hits: Vec<Hit> = (0..n)
            .map(|i| {
                let s = semantic.as_ref().map(|s| s[i]);
                Hit {
                    id: self.ids[i],
                    score: weights.semantic * s.unwrap_or(0.0)
                        + weights.words * words[i]
                        + weights.trigrams * trigrams[i],
                    semantic: s,
                    words: words[i],
                    trigrams: trigrams[i],
                }
            })
            .collect();
        let k = k.min(n);
        hits.select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits
    }
}
