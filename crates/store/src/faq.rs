//! The seller's FAQ and the assistant's settings. Every change to the FAQ bumps one revision
//! in the same transaction, so every node knows when its index is out of date.

use crate::db::{Ts, Tx, read, write};
use crate::{Store, StoreError};
use cartwright_core::faq::FaqDraft;
use cartwright_core::ids::FaqId;
use cartwright_core::values::{Answer, Lang, Slug, Tags, Text};
use serde::Serialize;
use utoipa::ToSchema;

/// A stored FAQ entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FaqEntry {
    /// Identifier.
    pub id: FaqId,
    /// The entry as written.
    #[serde(flatten)]
    pub draft: FaqDraft,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    key: String,
    question: String,
    phrasings: String,
    answer: String,
    scope: Option<String>,
    tags: String,
    lang: String,
    created_at: Ts,
    updated_at: Ts,
}

const COLUMNS: &str =
    "id, key, question, phrasings, answer, scope, tags, lang, created_at, updated_at";

impl TryFrom<Row> for FaqEntry {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let corrupt =
            |field: &str, e: String| StoreError::Corrupt(format!("faq_entries.{field}: {e}"));
        let phrasings: Vec<String> =
            serde_json::from_str(&r.phrasings).map_err(|e| corrupt("phrasings", e.to_string()))?;
        Ok(FaqEntry {
            id: FaqId(r.id),
            draft: FaqDraft {
                key: Slug::parse(&r.key).map_err(|e| corrupt("key", e))?,
                question: Text::parse(&r.question).map_err(|e| corrupt("question", e))?,
                phrasings: phrasings
                    .iter()
                    .map(|p| Text::parse(p))
                    .collect::<Result<_, _>>()
                    .map_err(|e| corrupt("phrasings", e))?,
                answer: Answer::parse(&r.answer).map_err(|e| corrupt("answer", e))?,
                scope: r
                    .scope
                    .as_deref()
                    .map(Text::parse)
                    .transpose()
                    .map_err(|e| corrupt("scope", e))?,
                tags: Tags::from_stored(&r.tags),
                lang: Lang::parse(&r.lang).map_err(|e| corrupt("lang", e))?,
            },
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FaqImport {
    /// Entries added.
    pub created: usize,
    /// Entries whose key was there already, replaced.
    pub updated: usize,
    /// Entries that were there and identical.
    pub unchanged: usize,
}

fn phrasings_json(d: &FaqDraft) -> String {
    serde_json::to_string(&d.phrasings).unwrap_or_else(|_| "[]".into())
}

async fn bump(tx: &mut Tx) -> Result<(), StoreError> {
    tx.touch(crate::db::Topic::Faq);
    write!(tx, |c| {
        sqlx::query("UPDATE faq_revision SET revision = revision + 1 WHERE id = 1")
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn insert(tx: &mut Tx, d: &FaqDraft, now: Ts) -> Result<i64, StoreError> {
    write!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO faq_entries (key, question, phrasings, answer, scope, tags, lang, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(d.key.as_str())
        .bind(d.question.as_str())
        .bind(phrasings_json(d))
        .bind(d.answer.as_str())
        .bind(d.scope.as_ref().map(Text::as_str))
        .bind(d.tags.to_stored())
        .bind(d.lang.as_str())
        .bind(now)
        .fetch_one(c)
        .await
    })
    .map_err(StoreError::on_write("FAQ entry", "key"))
}

async fn update(tx: &mut Tx, id: i64, d: &FaqDraft, now: Ts) -> Result<u64, StoreError> {
    write!(tx, |c| {
        sqlx::query(
            "UPDATE faq_entries SET key = $2, question = $3, phrasings = $4, answer = $5, \
             scope = $6, tags = $7, lang = $8, updated_at = $9 WHERE id = $1",
        )
        .bind(id)
        .bind(d.key.as_str())
        .bind(d.question.as_str())
        .bind(phrasings_json(d))
        .bind(d.answer.as_str())
        .bind(d.scope.as_ref().map(Text::as_str))
        .bind(d.tags.to_stored())
        .bind(d.lang.as_str())
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(StoreError::on_write("FAQ entry", "key"))
}

impl Store {
    /// Every entry, by key.
    pub async fn faq_entries(&self) -> Result<Vec<FaqEntry>, StoreError> {
        let rows: Vec<Row> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM faq_entries ORDER BY key"
            )))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// One entry.
    pub async fn faq_entry(&self, id: FaqId) -> Result<FaqEntry, StoreError> {
        let row: Option<Row> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM faq_entries WHERE id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("FAQ entry", id.get()))?
            .try_into()
    }

    /// A counter this process moves with every FAQ change it commits: a change made here is
    /// seen at once, without asking the database.
    pub fn faq_generation(&self) -> u64 {
        self.generations.current(crate::db::Topic::Faq)
    }

    /// The FAQ's revision: it moves with every change, from any node.
    pub async fn faq_revision(&self) -> Result<i64, StoreError> {
        Ok(read!(&self.db, |c| {
            sqlx::query_scalar("SELECT revision FROM faq_revision WHERE id = 1")
                .fetch_one(c)
                .await
        })?)
    }

    /// Adds an entry; its key must be free.
    pub async fn create_faq(&self, draft: &FaqDraft) -> Result<FaqEntry, StoreError> {
        draft.check()?;
        let mut tx = self.begin().await?;
        let id = insert(&mut tx, draft, Ts::now()).await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        self.faq_entry(FaqId(id)).await
    }

    /// Replaces an entry.
    pub async fn update_faq(&self, id: FaqId, draft: &FaqDraft) -> Result<FaqEntry, StoreError> {
        draft.check()?;
        let mut tx = self.begin().await?;
        if update(&mut tx, id.get(), draft, Ts::now()).await? == 0 {
            return Err(StoreError::not_found("FAQ entry", id.get()));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        self.faq_entry(id).await
    }

    /// Deletes an entry (answers that used it keep their text).
    pub async fn delete_faq(&self, id: FaqId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query("DELETE FROM faq_entries WHERE id = $1")
                .bind(id.get())
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("FAQ entry", id.get()));
        }
        write!(&mut tx, |c| {
            sqlx::query("DELETE FROM graph_nodes WHERE kind = 'faq' AND ref = $1")
                .bind(id.get().to_string())
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds or replaces (by key) every entry, all or none.
    pub async fn import_faq(&self, drafts: &[FaqDraft]) -> Result<FaqImport, StoreError> {
        for d in drafts {
            d.check()?;
        }
        let existing: std::collections::HashMap<String, FaqEntry> = self
            .faq_entries()
            .await?
            .into_iter()
            .map(|e| (e.draft.key.as_str().to_owned(), e))
            .collect();
        let now = Ts::now();
        let mut report = FaqImport::default();
        let mut tx = self.begin().await?;
        for d in drafts {
            match existing.get(d.key.as_str()) {
                Some(e) if e.draft == *d => report.unchanged += 1,
                Some(e) => {
                    update(&mut tx, e.id.get(), d, now).await?;
                    report.updated += 1;
                }
                None => {
                    insert(&mut tx, d, now).await?;
                    report.created += 1;
                }
            }
        }
        if report.created + report.updated > 0 {
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// The assistant's settings as shown: never the LLM's key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssistantSettings {
    /// The seller's instructions to the LLM (tone, what never to promise).
    pub instructions: String,
    /// The confidence at or above which the FAQ answers; none: the built-in default.
    pub threshold: Option<f64>,
    /// The LLM fallback, when one is configured.
    pub llm: Option<LlmEndpoint>,
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LlmEndpoint {
    /// Its base URL (`…/v1`).
    pub base_url: String,
    /// The model to ask.
    pub model: String,
    /// How long to wait for an answer, in milliseconds.
    pub timeout_ms: i64,
    /// Whether a key is stored (sealed; never shown).
    pub has_key: bool,
}

/// A change to the assistant's settings.
#[derive(Debug, Clone)]
pub struct AssistantSettingsUpdate {
    /// The seller's instructions.
    pub instructions: String,
    /// The threshold; none: the default.
    pub threshold: Option<f64>,
    /// The endpoint's base URL and model; none: no LLM.
    pub llm: Option<(String, String)>,
    /// The key: none keeps the stored one, an empty text removes it.
    pub llm_key: Option<String>,
    /// How long to wait for the LLM, in milliseconds.
    pub llm_timeout_ms: i64,
}

const LLM_KEY_CONTEXT: &[u8] = b"cartwright/assistant/llm-key";

impl Store {
    /// The assistant's settings.
    pub async fn assistant_settings(&self) -> Result<AssistantSettings, StoreError> {
        #[allow(clippy::type_complexity)]
        let row: (
            String,
            Option<f64>,
            Option<String>,
            Option<String>,
            bool,
            i64,
        ) = read!(&self.db, |c| {
            sqlx::query_as(
                    "SELECT instructions, threshold, llm_base_url, llm_model, llm_key IS NOT NULL, llm_timeout_ms \
                     FROM assistant_settings WHERE id = 1",
                )
                .fetch_one(c)
                .await
        })?;
        let (instructions, threshold, base_url, model, has_key, timeout_ms) = row;
        Ok(AssistantSettings {
            instructions,
            threshold,
            llm: base_url.zip(model).map(|(base_url, model)| LlmEndpoint {
                base_url,
                model,
                timeout_ms,
                has_key,
            }),
        })
    }

    /// The LLM's key, opened, when one is stored.
    pub async fn llm_key(&self) -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT llm_key FROM assistant_settings WHERE id = 1")
                .fetch_one(c)
                .await
        })?;
        sealed
            .map(|s| {
                let plain = self
                    .goods
                    .open(&s, LLM_KEY_CONTEXT)
                    .map_err(|e| StoreError::Corrupt(format!("assistant_settings.llm_key: {e}")))?;
                String::from_utf8(plain)
                    .map_err(|e| StoreError::Corrupt(format!("assistant_settings.llm_key: {e}")))
            })
            .transpose()
    }

    /// Replaces the assistant's settings; the key is sealed.
    pub async fn set_assistant_settings(
        &self,
        s: &AssistantSettingsUpdate,
    ) -> Result<AssistantSettings, StoreError> {
        let mut tx = self.begin().await?;
        let (base_url, model) = s.llm.clone().unzip();
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE assistant_settings SET instructions = $1, threshold = $2, llm_base_url = $3, \
                 llm_model = $4, llm_timeout_ms = $5, updated_at = $6 WHERE id = 1",
            )
            .bind(&s.instructions)
            .bind(s.threshold)
            .bind(base_url)
            .bind(model)
            .bind(s.llm_timeout_ms)
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if let Some(key) = &s.llm_key {
            let sealed =
                (!key.is_empty()).then(|| self.goods.seal(key.as_bytes(), LLM_KEY_CONTEXT));
            write!(&mut tx, |c| {
                sqlx::query("UPDATE assistant_settings SET llm_key = $1 WHERE id = 1")
                    .bind(sealed)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        self.assistant_settings().await
    }

    /// How the assistant works in a marketplace shop: `auto`, `suggest` or `off`.
    pub async fn assistant_mode(
        &self,
        connection: cartwright_core::ids::ConnectionId,
    ) -> Result<String, StoreError> {
        let mode: Option<String> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT assistant_mode FROM market_connections WHERE id = $1")
                .bind(connection.get())
                .fetch_optional(c)
                .await
        })?;
        mode.ok_or_else(|| StoreError::not_found("connection", connection.get()))
    }

    /// Sets how the assistant works in a shop: `auto`, `suggest` or `off`.
    pub async fn set_assistant_mode(
        &self,
        connection: cartwright_core::ids::ConnectionId,
        mode: &str,
    ) -> Result<(), StoreError> {
        if !matches!(mode, "auto" | "suggest" | "off") {
            return Err(StoreError::Invalid(cartwright_core::Invalid::new(
                "mode",
                "must be auto, suggest or off",
            )));
        }
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query("UPDATE market_connections SET assistant_mode = $2 WHERE id = $1")
                .bind(connection.get())
                .bind(mode)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("connection", connection.get()));
        }
        tx.commit().await?;
        Ok(())
    }
}
