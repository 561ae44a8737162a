//! The buyer assistant's retrieval: a FAQ index that runs offline — BM25 over words and over
//! character trigrams, and a sentence-embedding model run in process when one is present —
//! whose combined score is a confidence that one threshold turns into "answer" or "fall
//! back"; and the measurements that tune it.

pub mod bm25;
pub mod embed;
pub mod eval;
pub mod index;
pub mod llm;
pub mod service;
pub mod text;

use cartwright_core::faq::FaqDraft;
use embed::Embedder;
use index::{Hit, Index, Weights};
use std::collections::HashMap;
use std::sync::Arc;

/// What went wrong in the assistant.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// The embedding model could not be loaded or run.
    #[error("the embedding model: {0}")]
    Model(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cartwright_store::StoreError),
    /// The LLM fallback failed.
    #[error(transparent)]
    Llm(#[from] llm::LlmError),
}

/// The start of an entry's answer (its first paragraph), which is embedded too.
fn answer_lead(e: &FaqDraft) -> &str {
    let a = e.answer.as_str();
    a.split("\n\n").next().unwrap_or(a)
}

/// Every reading of every asked text of `entries`, and each answer's lead.
fn all_readings(entries: &[(i64, FaqDraft)]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|(_, e)| {
            e.asked()
                .flat_map(text::readings)
                .chain(std::iter::once(answer_lead(e).to_owned()))
        })
        .collect()
}

/// Texts embedded at once.
const EMBED_BATCH: usize = 32;

/// An index with the model that fills it, which remembers the vectors it computed so that a
/// rebuild after a change embeds only the texts that are new.
#[derive(Debug, Default)]
pub struct Retriever {
    embedder: Option<Arc<Embedder>>,
    index: Index,
    vectors: HashMap<String, Vec<f32>>,
}

impl Retriever {
    /// A retriever over no entries; `embedder` none means lexical only.
    pub fn new(embedder: Option<Arc<Embedder>>) -> Self {
        Self {
            embedder,
            index: Index::default(),
            vectors: HashMap::new(),
        }
    }

    /// A retriever with the same model and the vectors computed so far, over no entries:
    /// what a rebuild starts from.
    pub fn successor(&self) -> Self {
        Self {
            embedder: self.embedder.clone(),
            index: Index::default(),
            vectors: self.vectors.clone(),
        }
    }

    /// Whether a model is in use.
    pub fn semantic(&self) -> bool {
        self.embedder.is_some()
    }

    /// The model's name, when one is in use.
    pub fn model(&self) -> Option<&str> {
        self.embedder.as_deref().map(Embedder::name)
    }

    /// The index in use.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Indexes `entries` (id and entry) in place of what was indexed.
    pub fn rebuild(&mut self, entries: &[(i64, FaqDraft)]) -> Result<(), AssistantError> {
        if let Some(embedder) = &self.embedder {
            let texts = all_readings(entries);
            let mut missing: Vec<&str> = {
                let mut seen = std::collections::HashSet::new();
                texts
                    .iter()
                    .map(String::as_str)
                    .filter(|t| !self.vectors.contains_key(*t) && seen.insert(*t))
                    .collect()
            };
            // Texts of like length together: a batch is padded to its longest.
            missing.sort_by_key(|t| t.len());
            for chunk in missing.chunks(EMBED_BATCH) {
                let vectors = embedder.embed(chunk)?;
                for (text, v) in chunk.iter().zip(vectors) {
                    self.vectors.insert((*text).to_owned(), v);
                }
            }
            // Forget the vectors of texts no entry has any more.
            let live: std::collections::HashSet<&str> = texts.iter().map(String::as_str).collect();
            self.vectors.retain(|t, _| live.contains(t.as_str()));
        }
        let vectors = &self.vectors;
        self.index = Index::build(entries.iter().map(|(id, e)| (*id, e)), |i| {
            let e = &entries[i].1;
            e.asked()
                .flat_map(text::readings)
                .filter_map(|t| vectors.get(&t).cloned())
                .chain(vectors.get(answer_lead(e)).cloned())
                .collect()
        });
        Ok(())
    }

    /// The unit vectors of the question's readings (none without a model).
    pub fn vectors(&self, question: &str) -> Result<Vec<Vec<f32>>, AssistantError> {
        match &self.embedder {
            Some(e) => {
                let readings = text::readings(question);
                let texts: Vec<&str> = readings.iter().map(String::as_str).collect();
                e.embed(&texts)
            }
            None => Ok(Vec::new()),
        }
    }

    /// The `k` best entries for `question`, best first.
    pub fn search(&self, question: &str, k: usize) -> Result<Vec<Hit>, AssistantError> {
        let vectors = self.vectors(question)?;
        Ok(self.index.search(question, &vectors, k))
    }

    /// [`Retriever::search`] with chosen weights.
    pub fn search_weighted(
        &self,
        question: &str,
        k: usize,
        weights: Weights,
    ) -> Result<Vec<Hit>, AssistantError> {
        let vectors = self.vectors(question)?;
        Ok(self.index.search_weighted(question, &vectors, k, weights))
    }
}
