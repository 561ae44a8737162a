//! The audit log: who did what that matters (an order settled by hand, a secret revealed),
//! written in the transaction that does it.

use crate::db::{Ts, Tx, read, write};
use crate::{Store, StoreError};
use cartwright_core::ids::OperatorId;
use serde::Serialize;
use utoipa::ToSchema;

/// Who acts: an operator (by id and name), or the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The operator, when one acts.
    pub id: Option<OperatorId>,
    /// Their name, kept in the log when the operator is deleted.
    pub name: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Identifier, increasing.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// The operator, while they exist.
    pub operator_id: Option<OperatorId>,
    /// Who, by name.
    pub actor: String,
    /// What was done (`order.resolve`).
    pub action: String,
    /// What it was done to (`order:12`).
    pub subject: String,
    /// The details.
    pub detail: serde_json::Value,
}

/// Writes one entry in `tx`.
pub(crate) async fn record(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    let detail = detail.to_string();
    write!(tx, |c| {
        sqlx::query(
            "INSERT INTO audit (at, operator_id, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Ts::now())
        .bind(actor.id.map(|o| o.get()))
        .bind(actor.name.as_str())
        .bind(action)
        .bind(subject)
        .bind(detail)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: Ts,
    operator_id: Option<i64>,
    actor: String,
    action: String,
    subject: String,
    detail: Option<String>,
}

impl Store {
    /// The audit entries about `subject` (`order:12`), oldest first.
    pub async fn audit_of(&self, subject: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, at, operator_id, actor, action, subject, detail FROM audit WHERE subject = $1 ORDER BY id",
            )
            .bind(subject)
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: r.at.0,
                operator_id: r.operator_id.map(OperatorId),
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                detail: r
                    .detail
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }
}
