//! Retrieval on the labelled set in `eval/faq`, with the real model `scripts/setup` installs:
//! tuned on the dev half, measured on the test half. The bounds are floors a little under
//! today's figures (recall@1 0.81, answered precision 0.94 with the model), so a change that
//! makes retrieval worse fails here.

use cartwright_assistant::eval::{self, Outcome};
use cartwright_assistant::{Retriever, embed::Embedder};
use cartwright_core::faq::{self, FaqDraft};
use std::path::PathBuf;
use std::sync::Arc;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> Arc<Embedder> {
    let home = std::env::var("HOME").expect("HOME is set");
    let dir = PathBuf::from(home).join(".local/share/cartwright/models/all-minilm-l6-v2");
    Arc::new(Embedder::load(&dir).expect("the model scripts/setup installs loads"))
}

fn outcomes(retriever: &Retriever, entries: &[(i64, FaqDraft)], split: &str) -> Vec<Outcome> {
    let text = std::fs::read_to_string(repo().join("eval/faq/queries.csv")).expect("queries");
    eval::parse_queries(&text)
        .expect("queries parse")
        .into_iter()
        .filter(|q| q.split == split)
        .map(|q| {
            let hits = retriever.search(&q.query, 10).expect("search");
            Outcome {
                kind: q.kind,
                expected: q.expected,
                ranked: hits
                    .iter()
                    .map(|h| entries[h.id as usize].1.key.to_string())
                    .collect(),
                confidence: hits.first().map_or(0.0, |h| h.score),
            }
        })
        .collect()
}

fn entries() -> Vec<(i64, FaqDraft)> {
    let text = std::fs::read_to_string(repo().join("eval/faq/entries.md")).expect("entries");
    faq::parse_markdown(&text)
        .expect("entries parse")
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect()
}

#[test]
fn sentence_vectors_put_like_questions_together() {
    let model = model();
    let v = model
        .embed(&[
            "where is my code",
            "I have not received my code",
            "how should I store the serum",
        ])
        .expect("embeds");
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].len(), model.dimension());
    let norm: f32 = v[0].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
    let near = cartwright_assistant::embed::dot(&v[0], &v[1]);
    let far = cartwright_assistant::embed::dot(&v[0], &v[2]);
    assert!(near > far + 0.2, "near {near}, far {far}");
}

#[test]
fn the_labelled_set_keeps_its_figures_with_and_without_the_model() {
    let entries = entries();
    assert!(entries.len() >= 40);
    for (embedder, least_recall) in [(Some(model()), 0.8), (None, 0.75)] {
        let mut retriever = Retriever::new(embedder);
        retriever.rebuild(&entries).expect("indexes");
        let dev = outcomes(&retriever, &entries, "dev");
        let threshold = eval::suggest_threshold(&dev, 0.95, 0.05);
        let test = eval::report(&outcomes(&retriever, &entries, "test"), threshold);
        assert!(test.queries >= 100);
        assert!(
            test.recall_at_1 >= least_recall,
            "recall@1 {} (model: {})",
            test.recall_at_1,
            retriever.semantic()
        );
        assert!(test.answered_precision >= 0.9, "{test:?}");
        assert!(test.out_of_scope_answered <= 0.1, "{test:?}");
    }
}

#[test]
fn a_rebuild_follows_additions_and_removals() {
    let mut entries = entries();
    let mut retriever = Retriever::new(Some(model()));
    retriever.rebuild(&entries).expect("indexes");
    let question = "do you ship to the moon base";
    let before = retriever.search(question, 1).expect("search")[0].score;
    let moon = faq::parse_markdown(
        "## Do you ship to the moon base?\nkey: moon\n\nYes, by rocket on Fridays.\n",
    )
    .expect("parses")
    .remove(0);
    entries.push((entries.len() as i64, moon));
    retriever.rebuild(&entries).expect("indexes again");
    let hits = retriever.search(question, 1).expect("search");
    assert_eq!(hits[0].id, entries.len() as i64 - 1);
    assert!(hits[0].score > before);
    entries.pop();
    retriever.rebuild(&entries).expect("indexes without it");
    let hits = retriever.search(question, 1).expect("search");
    assert_ne!(hits[0].id, entries.len() as i64);
}
