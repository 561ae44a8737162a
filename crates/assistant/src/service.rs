//! The assistant at work: it keeps the index in step with the FAQ (rebuilt off the request
//! path when the FAQ's revision moves), records every question and what became of it, and
//! decides: the FAQ's answer when the confidence reaches the threshold, else the LLM's
//! (proposed to the seller, marked generated), else a person's (the hand-off queue).

use crate::index::Hit;
use crate::llm::{Llm, Turn};
use crate::{AssistantError, Retriever, embed::Embedder};
use cartwright_core::ids::{DeliveryId, FaqId};
use cartwright_store::{
    AnswerRecord, AnswerSource, AnswerState, AssistantSettings, ChatMessage, FaqEntry, MarketOrder,
    NewAnswer, NewQuestion, Sender, Store,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// The threshold with the model, suggested by `cartwright faq eval` on the dev half of
/// `eval/faq` (answered precision ≥ 0.95, out-of-scope answered ≤ 5 %).
pub const THRESHOLD_HYBRID: f64 = 0.401;
/// The threshold without a model, found the same way.
pub const THRESHOLD_LEXICAL: f64 = 0.296;

/// How often a node asks whether the FAQ changed.
const REVISION_CHECK: Duration = Duration::from_secs(1);
/// Entries the LLM is shown.
const PROMPT_ENTRIES: usize = 3;

/// One entry's scores for a question, as shown on the "try a question" page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Scored {
    /// The entry.
    pub faq_id: FaqId,
    /// Its key.
    pub key: String,
    /// Its question.
    pub question: String,
    /// The combined score (the confidence, for the first).
    pub score: f32,
    /// Best cosine with its question or phrasings (none without a model).
    pub semantic: Option<f32>,
    /// Scaled word BM25.
    pub words: f32,
    /// Scaled trigram BM25.
    pub trigrams: f32,
}

/// Why an answer was chosen: the closest entries with each retriever's scores.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Explanation {
    /// The embedding model in use (none: lexical only).
    pub model: Option<String>,
    /// The threshold in force.
    pub threshold: f64,
    /// The best entry's score.
    pub confidence: f64,
    /// Whether the FAQ answers (the confidence reached the threshold).
    pub confident: bool,
    /// The closest entries, best first.
    pub hits: Vec<Scored>,
}

/// A question taken in, with what became of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Asked {
    /// The buyer's message as recorded.
    pub message: ChatMessage,
    /// What became of it (none when the assistant is off for the shop).
    pub answer: Option<AnswerRecord>,
    /// The reply to send the buyer, when the answer is sent.
    pub reply: Option<String>,
    /// Whether the message had been taken in before (nothing new was done).
    pub repeated: bool,
}

/// The index and the entries it was built from, at one FAQ revision.
struct Snapshot {
    revision: i64,
    retriever: Arc<Retriever>,
    entries: HashMap<i64, FaqEntry>,
}

/// The buyer assistant.
pub struct Assistant {
    store: Store,
    model_dir: Option<std::path::PathBuf>,
    embedder: tokio::sync::OnceCell<Option<Arc<Embedder>>>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// When the revision was last read, and this process's FAQ generation then.
    checked: Mutex<Option<(Instant, u64)>>,
    rebuilding: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    /// Makes a delivery page's link from its key (for `{{delivery_link}}`).
    links: std::sync::OnceLock<Links>,
}

/// The placeholder for the buyer's delivery page.
pub const LINK: &str = "{{delivery_link}}";

/// Makes a delivery page's link from its key.
pub type Links = Arc<dyn Fn(&str) -> String + Send + Sync>;

impl std::fmt::Debug for Assistant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assistant").finish_non_exhaustive()
    }
}

impl Assistant {
    /// An assistant over the store's FAQ with the embedding model in `model_dir`, loaded at
    /// first use; none (or a model that does not load): lexical retrieval only, said once in
    /// the log.
    pub fn new(store: Store, model_dir: Option<std::path::PathBuf>) -> Self {
        if model_dir.is_none() {
            tracing::warn!(
                "assistant: no embedding model, FAQ retrieval is lexical only (BM25); scripts/setup installs one"
            );
        }
        Self {
            store,
            model_dir,
            embedder: tokio::sync::OnceCell::new(),
            snapshot: RwLock::new(Arc::new(Snapshot {
                revision: -1,
                retriever: Arc::new(Retriever::new(None)),
                entries: HashMap::new(),
            })),
            checked: Mutex::new(None),
            rebuilding: tokio::sync::Mutex::new(()),
            http: reqwest::Client::new(),
            links: std::sync::OnceLock::new(),
        }
    }

    /// Lets answers give a buyer their delivery page's link again (`{{delivery_link}}`).
    pub fn set_links(&self, links: Links) {
        let _ = self.links.set(links);
    }

    /// The first delivered line of the buyer's order, when there is one.
    async fn delivered(&self, order: &MarketOrder) -> Result<Option<DeliveryId>, AssistantError> {
        if self.links.get().is_none() {
            return Ok(None);
        }
        Ok(self
            .store
            .order_deliveries(order.id)
            .await?
            .into_iter()
            .find(|(_, _, state)| *state == cartwright_core::digital::DeliveryState::Delivered)
            .map(|(id, ..)| id))
    }

    /// `text` with its `{{delivery_link}}` filled in from the answer's delivery (reading the
    /// link is audited as the assistant's). Answers keep the placeholder at rest: the link
    /// opens the buyer's goods.
    pub async fn with_link(&self, answer: &AnswerRecord) -> Result<Option<String>, AssistantError> {
        let Some(text) = &answer.text else {
            return Ok(None);
        };
        if !text.contains(LINK) {
            return Ok(Some(text.clone()));
        }
        let (Some(links), Some(id)) =
            (self.links.get(), answer.explanation["delivery_id"].as_i64())
        else {
            return Ok(Some(text.replace(LINK, "")));
        };
        let actor = cartwright_store::Actor {
            id: None,
            name: "assistant".into(),
        };
        let token = self
            .store
            .delivery_token_audited(DeliveryId(id), &actor)
            .await?;
        Ok(Some(text.replace(LINK, &links(&token))))
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The embedding model in use, if any (loaded at first use).
    pub async fn model(&self) -> Option<String> {
        self.embedder().await.map(|e| e.name().to_owned())
    }

    /// The loaded model, when there is one.
    async fn embedder(&self) -> Option<Arc<Embedder>> {
        self.embedder
            .get_or_init(|| async {
                let dir = self.model_dir.clone()?;
                let loaded = tokio::task::spawn_blocking(move || Embedder::load(&dir)).await;
                match loaded {
                    Ok(Ok(e)) => {
                        tracing::info!(model = e.name(), "assistant: FAQ retrieval with BM25 and sentence embeddings");
                        Some(Arc::new(e))
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "assistant: the embedding model did not load, FAQ retrieval is lexical only");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "assistant: the embedding model did not load, FAQ retrieval is lexical only");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    /// The index at the FAQ's current revision (at once after a change made by this process,
    /// within a second after one made by another node), rebuilt
    /// first when the FAQ changed; only texts not seen before are embedded.
    async fn fresh(&self) -> Result<Arc<Snapshot>, AssistantError> {
        let due = {
            let generation = self.store.faq_generation();
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            let due =
                checked.is_none_or(|(at, g)| at.elapsed() >= REVISION_CHECK || g != generation);
            if due {
                *checked = Some((Instant::now(), generation));
            }
            due
        };
        let current = self.current();
        if !due && current.revision >= 0 {
            return Ok(current);
        }
        let revision = self.store.faq_revision().await?;
        if revision == current.revision {
            return Ok(current);
        }
        let _one = self.rebuilding.lock().await;
        let current = self.current();
        if revision == current.revision {
            return Ok(current);
        }
        let started = Instant::now();
        // Entries read after the revision: a change in between is read now and again at the
        // next check, never missed.
        let entries = self.store.faq_entries().await?;
        let indexed: Vec<(i64, cartwright_core::faq::FaqDraft)> = entries
            .iter()
            .map(|e| (e.id.get(), e.draft.clone()))
            .collect();
        let previous = current.retriever.clone();
        let first = current.revision < 0;
        let embedder = self.embedder().await;
        let retriever = tokio::task::spawn_blocking(move || {
            let mut next = if first {
                Retriever::new(embedder)
            } else {
                previous.successor()
            };
            next.rebuild(&indexed).map(|()| next)
        })
        .await
        .map_err(|e| AssistantError::Model(format!("the index build stopped: {e}")))??;
        let snapshot = Arc::new(Snapshot {
            revision,
            retriever: Arc::new(retriever),
            entries: entries.into_iter().map(|e| (e.id.get(), e)).collect(),
        });
        tracing::debug!(
            entries = snapshot.entries.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "assistant: FAQ index rebuilt"
        );
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot.clone();
        Ok(snapshot)
    }

    /// The threshold in force: the configured one, else the default for the retrieval in use.
    fn threshold(settings: &AssistantSettings, snapshot: &Snapshot) -> f64 {
        settings
            .threshold
            .unwrap_or(if snapshot.retriever.semantic() {
                THRESHOLD_HYBRID
            } else {
                THRESHOLD_LEXICAL
            })
    }

    async fn search(
        &self,
        snapshot: &Arc<Snapshot>,
        question: &str,
        k: usize,
    ) -> Result<Vec<Hit>, AssistantError> {
        let retriever = snapshot.retriever.clone();
        let question = question.to_owned();
        tokio::task::spawn_blocking(move || retriever.search(&question, k))
            .await
            .map_err(|e| AssistantError::Model(format!("the search stopped: {e}")))?
    }

    /// The closest entries for a question with each retriever's scores, and whether the FAQ
    /// would answer it.
    pub async fn explain(&self, question: &str) -> Result<Explanation, AssistantError> {
        let snapshot = self.fresh().await?;
        let settings = self.store.assistant_settings().await?;
        self.explain_in(&snapshot, &settings, question, 5).await
    }

    async fn explain_in(
        &self,
        snapshot: &Arc<Snapshot>,
        settings: &AssistantSettings,
        question: &str,
        k: usize,
    ) -> Result<Explanation, AssistantError> {
        let threshold = Self::threshold(settings, snapshot);
        let hits = self.search(snapshot, question, k).await?;
        let confidence = hits.first().map_or(0.0, |h| f64::from(h.score));
        Ok(Explanation {
            model: snapshot.retriever.model().map(str::to_owned),
            threshold,
            confidence,
            confident: !hits.is_empty() && confidence >= threshold,
            hits: hits
                .into_iter()
                .filter_map(|h| {
                    let e = snapshot.entries.get(&h.id)?;
                    Some(Scored {
                        faq_id: e.id,
                        key: e.draft.key.to_string(),
                        question: e.draft.question.to_string(),
                        score: h.score,
                        semantic: h.semantic,
                        words: h.words,
                        trigrams: h.trigrams,
                    })
                })
                .collect(),
        })
    }

    /// Takes in a buyer's question: records it, decides, records the answer. Taking in the
    /// same marketplace message again does nothing new.
    pub async fn ask(&self, q: &NewQuestion<'_>) -> Result<Asked, AssistantError> {
        let (message, new) = self.store.record_question(q).await?;
        if !new && let Some(answer) = self.store.answer_to(message.id).await? {
            return self.asked(message, answer, true).await;
        }
        // A question recorded before without an answer (its first taking-in failed after
        // recording it) is decided now.
        let mode = match q.connection_id {
            Some(c) => self.store.assistant_mode(c).await?,
            None => "auto".to_owned(),
        };
        if mode == "off" {
            return Ok(Asked {
                message,
                answer: None,
                reply: None,
                repeated: !new,
            });
        }
        let snapshot = self.fresh().await?;
        // Read once: the threshold and the fallback come from the same settings.
        let settings = self.store.assistant_settings().await?;
        let explanation = self
            .explain_in(&snapshot, &settings, &message.text, PROMPT_ENTRIES)
            .await?;
        let orders = match q.connection_id {
            Some(c) => self.store.buyer_orders(c, q.buyer_id, 5).await?,
            None => Vec::new(),
        };
        let about = q
            .order_id
            .and_then(|id| orders.iter().find(|o| o.id == id))
            .or(orders.first());
        let mut why = serde_json::to_value(&explanation).unwrap_or_default();
        let best = explanation
            .hits
            .first()
            .and_then(|h| snapshot.entries.get(&h.faq_id.get()));
        let best = best.filter(|_| explanation.confident);
        let delivery = match (best, about) {
            (Some(e), Some(order)) if e.draft.answer.as_str().contains(LINK) => {
                self.delivered(order).await?
            }
            _ => None,
        };
        if let (Some(d), Some(o)) = (delivery, why.as_object_mut()) {
            o.insert("delivery_id".into(), d.get().into());
        }
        let from_faq = best.and_then(|e| {
            personalise(e.draft.answer.as_str(), about, delivery.is_some()).map(|text| (e.id, text))
        });
        let send = if mode == "auto" {
            AnswerState::Sent
        } else {
            AnswerState::Suggested
        };
        let (source, state, faq_id, text) = match from_faq {
            Some((id, text)) => (AnswerSource::Faq, send, Some(id), Some(text)),
            None => match self
                .generate(&snapshot, &settings, &explanation, &message, &orders)
                .await
            {
                Ok(Some(text)) => (
                    AnswerSource::Generated,
                    AnswerState::Suggested,
                    None,
                    Some(text),
                ),
                Ok(None) => (AnswerSource::HandedOff, AnswerState::Waiting, None, None),
                Err(e) => {
                    tracing::warn!(error = %e, "assistant: the LLM fallback failed; handed to a person");
                    if let Some(o) = why.as_object_mut() {
                        o.insert("fallback_error".into(), e.to_string().into());
                    }
                    (AnswerSource::HandedOff, AnswerState::Waiting, None, None)
                }
            },
        };
        let recorded = self
            .store
            .record_answer(
                message.id,
                &NewAnswer {
                    source,
                    state,
                    faq_id,
                    confidence: Some(explanation.confidence),
                    explanation: &why,
                    text: text.as_deref(),
                },
            )
            .await;
        let answer = match recorded {
            Ok(a) => a,
            // Decided at the same time elsewhere (a push and a poll): theirs stands.
            Err(cartwright_store::StoreError::Conflict { .. }) => self
                .store
                .answer_to(message.id)
                .await?
                .ok_or_else(|| AssistantError::Model("the answer went missing".into()))?,
            Err(e) => return Err(e.into()),
        };
        self.asked(message, answer, !new).await
    }

    /// What a question came to, with the reply as the buyer gets it when it was sent.
    async fn asked(
        &self,
        message: ChatMessage,
        answer: AnswerRecord,
        repeated: bool,
    ) -> Result<Asked, AssistantError> {
        let reply = if answer.state == AnswerState::Sent {
            self.with_link(&answer).await?
        } else {
            None
        };
        Ok(Asked {
            message,
            reply,
            answer: Some(answer),
            repeated,
        })
    }

    /// The LLM's answer, when one is configured (`None` when none is).
    async fn generate(
        &self,
        snapshot: &Snapshot,
        settings: &AssistantSettings,
        explanation: &Explanation,
        message: &ChatMessage,
        orders: &[MarketOrder],
    ) -> Result<Option<String>, AssistantError> {
        let Some(endpoint) = &settings.llm else {
            return Ok(None);
        };
        let key = self.store.llm_key().await?;
        let llm = Llm::new(
            self.http.clone(),
            &endpoint.base_url,
            &endpoint.model,
            key,
            Duration::from_millis(endpoint.timeout_ms.max(1) as u64),
        );
        let history = self
            .store
            .conversation(message.connection_id, &message.buyer_id, 8)
            .await?;
        let turns = prompt(
            &settings.instructions,
            explanation
                .hits
                .iter()
                .filter_map(|h| snapshot.entries.get(&h.faq_id.get())),
            orders,
            &history,
            message,
        );
        Ok(Some(llm.complete(&turns).await?))
    }
}

/// The FAQ answer with the buyer's own order filled in where it says `{{order}}`,
/// `{{order_state}}`, `{{paid_at}}` or `{{delivered_at}}`; `{{delivery_link}}` stays (filled
/// in only when sent) if the order has a delivered line (`delivered`). None when it needs an
/// order fact there is none of: the question then falls back.
pub fn personalise(answer: &str, order: Option<&MarketOrder>, delivered: bool) -> Option<String> {
    if !answer.contains("{{") {
        return Some(answer.to_owned());
    }
    let when = |t: Option<time::OffsetDateTime>| {
        t.map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
    };
    let facts = [
        ("{{order}}", order.map(|o| o.external_id.clone())),
        (
            "{{order_state}}",
            order.map(|o| o.state.as_str().replace('_', " ")),
        ),
        ("{{paid_at}}", order.and_then(|o| when(o.paid_at))),
        ("{{delivered_at}}", order.and_then(|o| when(o.delivered_at))),
        (LINK, delivered.then(|| LINK.to_owned())),
    ];
    let mut text = answer.to_owned();
    for (name, value) in facts {
        if text.contains(name) {
            text = text.replace(name, &value?);
        }
    }
    (!text.replace(LINK, "").contains("{{")).then_some(text)
}

/// The conversation sent to the LLM: the seller's instructions and the rules, the closest
/// FAQ entries, this buyer's orders (only theirs), the recent chat, and the question.
pub fn prompt<'a>(
    instructions: &str,
    entries: impl Iterator<Item = &'a FaqEntry>,
    orders: &[MarketOrder],
    history: &[ChatMessage],
    question: &ChatMessage,
) -> Vec<Turn> {
    let mut system = String::from(
        "You answer a buyer in a marketplace shop's chat, for the seller. Answer briefly, in \
         the buyer's language, only from the FAQ entries and order facts below. If they do not \
         answer the question, say that a person will reply soon. Never invent codes, links, \
         prices or promises.",
    );
    if !instructions.trim().is_empty() {
        system.push_str("\n\nThe seller's instructions:\n");
        system.push_str(instructions.trim());
    }
    system.push_str("\n\nFAQ entries closest to the question:");
    for e in entries {
        system.push_str(&format!(
            "\n- Q: {}\n  A: {}",
            e.draft.question,
            e.draft.answer.as_str()
        ));
    }
    if orders.is_empty() {
        system.push_str("\n\nThis buyer has no orders we know of.");
    } else {
        system.push_str("\n\nThis buyer's orders (newest first):");
        for o in orders {
            system.push_str(&format!(
                "\n- {}: {}{}{}",
                o.external_id,
                o.state.as_str().replace('_', " "),
                o.paid_at.map_or(String::new(), |t| format!(", paid {t}")),
                o.delivered_at
                    .map_or(String::new(), |t| format!(", delivered {t}")),
            ));
        }
    }
    let mut turns = vec![Turn {
        role: "system",
        content: system,
    }];
    for m in history.iter().filter(|m| m.id != question.id) {
        turns.push(Turn {
            role: if m.sender == Sender::Buyer {
                "user"
            } else {
                "assistant"
            },
            content: m.text.clone(),
        });
    }
    turns.push(Turn {
        role: "user",
        content: question.text.clone(),
    });
    turns
}
