//! Okapi BM25 over bags of terms, with scores scaled into 0‥1 by the most a query could score,
//! so that scores of different queries (and of the word and trigram indexes) compare.

use std::collections::HashMap;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An inverted index over documents numbered from 0 in the order they were added.
#[derive(Debug, Default, Clone)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u16)>>,
    lengths: Vec<u32>,
    total_length: u64,
}

impl Bm25 {
    /// Adds a document; its number is the count of documents before it.
    pub fn add(&mut self, terms: &[String]) {
        let doc = self.lengths.len() as u32;
        let mut counts: HashMap<&str, u16> = HashMap::new();
        for t in terms {
            *counts.entry(t).or_default() += 1;
        }
        for (term, n) in counts {
            self.postings
                .entry(term.to_owned())
                .or_default()
                .push((doc, n));
        }
        self.lengths.push(terms.len() as u32);
        self.total_length += terms.len() as u64;
    }

    /// How many documents there are.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.lengths.len() as f32;
        let df = df as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// Each matching document's score divided by the query's ceiling (every query term
    /// present, often): 1 means the document holds all of the query's terms many times.
    /// `scores` is indexed by document and overwritten.
    pub fn score_into(&self, query: &[String], scores: &mut Vec<f32>) {
        scores.clear();
        scores.resize(self.lengths.len(), 0.0);
        if self.lengths.is_empty() {
            return;
        }
        let average = self.total_length as f32 / self.lengths.len() as f32;
        let mut ceiling = 0.0;
        let mut seen: Vec<&str> = Vec::with_capacity(query.len());
        for term in query {
            if seen.contains(&term.as_str()) {
                continue;
            }
            seen.push(term);
            let Some(postings) = self.postings.get(term) else {
                // A term no document has could still have been there: it counts in the
                // ceiling as the rarest term would.
                ceiling += self.idf(0) * (K1 + 1.0);
                continue;
            };
            let idf = self.idf(postings.len());
            ceiling += idf * (K1 + 1.0);
            for &(doc, tf) in postings {
                let tf = f32::from(tf);
                let length = self.lengths[doc as usize] as f32;
                scores[doc as usize] +=
                    idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / average));
            }
        }
        if ceiling > 0.0 {
            for s in scores.iter_mut() {
                *s /= ceiling;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn the_document_with_the_rare_term_wins() {
        let mut index = Bm25::default();
        index.add(&bag("code deliver chat"));
        index.add(&bag("refund code"));
        index.add(&bag("ship courier"));
        let mut scores = Vec::new();
        index.score_into(&bag("refund code"), &mut scores);
        assert!(scores[1] > scores[0] && scores[0] > 0.0);
        assert_eq!(scores[2], 0.0);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        index.score_into(&bag("unknown"), &mut scores);
        assert!(scores.iter().all(|s| *s == 0.0));
    }
}
