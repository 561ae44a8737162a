//! `bench/assistant`: the buyer assistant's retrieval with the embedding model, in process.
//! Prints the answer latency (p50/p99) of the labelled questions of `eval/faq` over 1,000
//! entries (the 46 labelled ones and 954 generated ones), the index build time for 10,000
//! entries (every text embedded from scratch, and lexical only), and the process's memory with
//! the model loaded.

use anyhow::Context;
use cartwright_assistant::eval::parse_queries;
use cartwright_assistant::{Retriever, embed::Embedder};
use cartwright_core::faq::{FaqDraft, parse_markdown};
use cartwright_core::values::{Answer, Lang, Slug, Tags, Text};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRODUCTS: &[&str] = &[
    "Netflix Premium",
    "Spotify Premium",
    "Windows 11 Pro",
    "Office 2021",
    "Canva Pro",
    "Google Play card",
    "Steam Wallet",
    "Excel course",
    "YouTube Premium",
    "Disney+ Hotstar",
    "Vidio Platinum",
    "Adobe Acrobat",
    "Zoom Pro",
    "Grammarly Premium",
    "Duolingo Plus",
    "Apple Music",
    "iCloud storage",
    "Norton antivirus",
    "Kaspersky licence",
    "Dropbox Plus",
    "vitamin C serum",
    "niacinamide toner",
    "sunscreen SPF 50",
    "gel moisturiser",
    "clay mask",
    "lip tint",
    "cushion foundation",
    "micellar water",
    "retinol cream",
    "eye cream",
];

const TOPICS: &[(&str, &str)] = &[
    (
        "How long does the {p} take to arrive?",
        "how fast do I get {p}",
    ),
    ("Can I get a refund for {p}?", "{p} money back"),
    ("Does {p} work outside Indonesia?", "{p} region abroad"),
    ("How do I activate {p}?", "activation steps for {p}"),
    ("What is the warranty on {p}?", "{p} guarantee period"),
    ("Can I share {p} with family?", "{p} on several devices"),
    ("Is {p} original?", "is the {p} genuine"),
    ("How do I renew {p}?", "extend my {p}"),
    ("What if {p} stops working?", "{p} broken after a week"),
    ("Is there a discount for {p}?", "{p} promo price"),
    ("Can I pay {p} with cash on delivery?", "{p} COD"),
    ("How do I store {p}?", "keeping {p} fresh"),
    ("Is {p} safe for sensitive skin?", "{p} for sensitive skin"),
    ("What are the ingredients of {p}?", "{p} ingredient list"),
    ("How many devices can use {p}?", "{p} device limit"),
    ("Can I change the email on {p}?", "{p} change email"),
    ("Do you send an invoice for {p}?", "{p} receipt"),
    ("Is {p} a subscription or lifetime?", "{p} lifetime"),
    ("How do I redeem the {p} code?", "redeem {p}"),
    ("What if the {p} code is already used?", "{p} code invalid"),
    ("Can I return {p} after opening?", "return opened {p}"),
    ("How do I track {p}?", "where is my {p} parcel"),
    ("Is {p} halal?", "{p} halal certificate"),
    ("Is {p} BPOM registered?", "{p} BPOM"),
    ("Can I use {p} during pregnancy?", "{p} while pregnant"),
    ("What is the expiry date of {p}?", "{p} expired when"),
    ("Is {p} available in bundles?", "{p} bundle"),
    ("Can I gift {p} to a friend?", "send {p} as a gift"),
    ("Does {p} come with a tutorial?", "{p} guide"),
    ("Why was my {p} order cancelled?", "{p} order cancelled"),
    ("Can I upgrade {p} later?", "{p} upgrade"),
    ("How do I cancel {p}?", "stop {p}"),
    ("Is {p} in stock?", "{p} ready stock"),
    ("What payment methods work for {p}?", "pay for {p}"),
];

fn draft(
    key: String,
    question: String,
    phrasing: String,
    answer: String,
) -> anyhow::Result<FaqDraft> {
    let bad = |e: String| anyhow::anyhow!(e);
    Ok(FaqDraft {
        key: Slug::parse(&key).map_err(bad)?,
        question: Text::parse(&question).map_err(bad)?,
        phrasings: vec![Text::parse(&phrasing).map_err(bad)?],
        answer: Answer::parse(&answer).map_err(bad)?,
        scope: None,
        tags: Tags::default(),
        lang: Lang::default(),
    })
}

/// `n` generated entries: every topic for every product, then numbered variants.
fn generated(n: usize) -> anyhow::Result<Vec<FaqDraft>> {
    let mut out = Vec::with_capacity(n);
    let mut round = 0;
    while out.len() < n {
        for (t, (question, phrasing)) in TOPICS.iter().enumerate() {
            for (p, product) in PRODUCTS.iter().enumerate() {
                if out.len() == n {
                    return Ok(out);
                }
                let product = if round == 0 {
                    (*product).to_owned()
                } else {
                    format!("{product} plan {round}")
                };
                out.push(draft(
                    format!("g{round}-{t}-{p}"),
                    question.replace("{p}", &product),
                    phrasing.replace("{p}", &product),
                    format!(
                        "About {product}: our team answers this in the product description; \
                         write to us in the chat with your order number if anything is unclear."
                    ),
                )?);
            }
        }
        round += 1;
    }
    Ok(out)
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let quick = std::env::args().any(|a| a == "--quick");
    let model_dir = std::env::args()
        .skip_while(|a| a != "--model")
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/share/cartwright/models/all-minilm-l6-v2"))
        })
        .context("no model directory")?;
    let before = rss_mb();
    let started = Instant::now();
    let model = Arc::new(Embedder::load(&model_dir).context("loading the model")?);
    println!(
        "model: {} loaded in {:.0} ms; RSS {:.0} MB before, {:.0} MB after",
        model.name(),
        started.elapsed().as_secs_f64() * 1000.0,
        before,
        rss_mb()
    );

    let labelled = parse_markdown(&std::fs::read_to_string(repo.join("eval/faq/entries.md"))?)
        .map_err(|e| anyhow::anyhow!("{:?}", e.0))?;
    let queries = parse_queries(&std::fs::read_to_string(repo.join("eval/faq/queries.csv"))?)
        .map_err(|e| anyhow::anyhow!("{:?}", e.0))?;
    let mut entries = labelled.clone();
    entries.extend(generated(1_000 - labelled.len())?);
    let indexed: Vec<(i64, FaqDraft)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    let mut retriever = Retriever::new(Some(model.clone()));
    let started = Instant::now();
    retriever.rebuild(&indexed)?;
    println!(
        "index of {} entries built in {:.2} s; RSS {:.0} MB",
        indexed.len(),
        started.elapsed().as_secs_f64(),
        rss_mb()
    );

    // FAQ hits: the labelled questions an entry answers, each asked as a buyer would.
    let hits: Vec<&str> = queries
        .iter()
        .filter(|q| q.expected.is_some())
        .map(|q| q.query.as_str())
        .collect();
    let rounds = if quick { 1 } else { 5 };
    for q in hits.iter().take(10) {
        retriever.search(q, 5)?;
    }
    let mut latencies = Vec::with_capacity(hits.len() * rounds);
    for _ in 0..rounds {
        for q in &hits {
            let t = Instant::now();
            let found = retriever.search(q, 5)?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(!found.is_empty(), "no hit for {q}");
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "answer latency over {} entries, {} questions: p50 {:.2} ms, p99 {:.2} ms (target p50 < 15, p99 < 50)",
        indexed.len(),
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
    let mut embedding = Vec::with_capacity(hits.len());
    for q in &hits {
        let t = Instant::now();
        retriever.vectors(q)?;
        embedding.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    embedding.sort_by(f64::total_cmp);
    println!(
        "of which embedding the question (and its English reading): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&embedding, 50.0),
        percentile(&embedding, 99.0)
    );

    let big = if quick { 2_000 } else { 10_000 };
    let mut entries = labelled;
    entries.extend(generated(big - entries.len())?);
    let indexed: Vec<(i64, FaqDraft)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    let started = Instant::now();
    let mut lexical = Retriever::new(None);
    lexical.rebuild(&indexed)?;
    println!(
        "index build, {} entries, lexical only: {:.2} s",
        indexed.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut cold = Retriever::new(Some(model));
    cold.rebuild(&indexed)?;
    let texts: usize = indexed.iter().map(|(_, e)| 1 + e.phrasings.len()).sum();
    println!(
        "index build, {} entries ({} asked texts), every text embedded: {:.1} s; RSS {:.0} MB",
        indexed.len(),
        texts,
        started.elapsed().as_secs_f64(),
        rss_mb()
    );
    let started = Instant::now();
    let again = cold.successor();
    let mut again = again;
    again.rebuild(&indexed)?;
    println!(
        "index rebuild after a change, {} entries (vectors kept): {:.2} s",
        indexed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
