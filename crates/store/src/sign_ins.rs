//! Sign-ins: one row per sign-in token, so a token can be ended before it expires (signing
//! out, ending a session from another device, a password change).

use crate::db::{Topic, Ts, Tx, read, stored, write};
use crate::{Store, StoreError};
use cartwright_core::ids::OperatorId;
use cartwright_core::operator::{Role, SignIn};
use time::OffsetDateTime;

/// What a request's authentication needs to know about a sign-in and its operator, read on
/// every request (remembered for at most a second) so that ending it takes effect at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAuth {
    /// Whose sign-in it is.
    pub operator: OperatorId,
    /// Their current role.
    pub role: Role,
    /// Whether the operator is disabled.
    pub disabled: bool,
    /// Their credentials' version now.
    pub auth_version: i64,
    /// Whether it was ended.
    pub revoked: bool,
    /// When it last made a request (written at most once a minute).
    pub last_seen_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct SignInRow {
    id: i64,
    created_at: Ts,
    expires_at: Ts,
    last_seen_at: Ts,
    address: String,
    client: String,
}

/// Longest user agent kept for a sign-in: enough to recognise a browser.
const CLIENT_MAX: usize = 200;

impl Store {
    /// Records a sign-in of `operator` that ends at `expires_at`, from `address` with the user
    /// agent `client`, and notes it as their last sign-in. Returns its id, which the token
    /// carries.
    pub async fn start_sign_in(
        &self,
        operator: OperatorId,
        expires_at: OffsetDateTime,
        address: &str,
        client: &str,
    ) -> Result<i64, StoreError> {
        let now = Ts::now();
        let client: String = client
            .chars()
            .filter(|c| !c.is_control())
            .take(CLIENT_MAX)
            .collect();
        let mut tx = self.begin().await?;
        tx.touch(Topic::Operators);
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO sign_ins (operator_id, created_at, expires_at, last_seen_at, address, client) \
                 VALUES ($1, $2, $3, $2, $4, $5) RETURNING id",
            )
            .bind(operator.get())
            .bind(now)
            .bind(Ts(expires_at))
            .bind(address)
            .bind(client.as_str())
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("sign-in", "operator_id"))?;
        write!(&mut tx, |c| {
            sqlx::query("UPDATE operators SET last_login_at = $2 WHERE id = $1")
                .bind(operator.get())
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(id)
    }

    /// The sign-in `id` with its operator's current state, remembered briefly like
    /// [`Store::operator_auth`]. `None` when it does not exist.
    pub async fn sign_in_auth(&self, id: i64) -> Result<Option<SignInAuth>, StoreError> {
        self.memos
            .sign_in_auth
            .get_or(id, self.read_sign_in_auth(id))
            .await
    }

    async fn read_sign_in_auth(&self, id: i64) -> Result<Option<SignInAuth>, StoreError> {
        type Row = (i64, String, bool, i64, Option<Ts>, Ts);
        let row: Option<Row> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT o.id, o.role, o.disabled, o.auth_version, s.revoked_at, s.last_seen_at \
                 FROM sign_ins s JOIN operators o ON o.id = s.operator_id WHERE s.id = $1",
            )
            .bind(id)
            .fetch_optional(c)
            .await
        })?;
        row.map(
            |(operator, role, disabled, auth_version, revoked_at, last_seen_at)| {
                Ok(SignInAuth {
                    operator: OperatorId(operator),
                    role: stored("operators.role", role.parse())?,
                    disabled,
                    auth_version,
                    revoked: revoked_at.is_some(),
                    last_seen_at: last_seen_at.0,
                })
            },
        )
        .transpose()
    }

    /// Notes that sign-in `id` made a request. Callers debounce it: it is a write.
    pub async fn touch_sign_in(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query("UPDATE sign_ins SET last_seen_at = $2 WHERE id = $1")
                .bind(id)
                .bind(Ts::now())
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// `operator`'s sign-ins that still work (not ended, not expired), newest first.
    pub async fn sign_ins(&self, operator: OperatorId) -> Result<Vec<SignIn>, StoreError> {
        let rows: Vec<SignInRow> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, created_at, expires_at, last_seen_at, address, client FROM sign_ins \
                 WHERE operator_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                 ORDER BY id DESC",
            )
            .bind(operator.get())
            .bind(Ts::now())
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| SignIn {
                id: r.id,
                created_at: r.created_at.0,
                expires_at: r.expires_at.0,
                last_seen_at: r.last_seen_at.0,
                address: r.address,
                client: r.client,
                current: false,
            })
            .collect())
    }

    /// Ends `operator`'s sign-ins: the one with id `only`, or when `None` all of them except
    /// `keep`. Returns how many were ended; ending one twice, or another operator's, ends
    /// nothing.
    pub async fn end_sign_ins(
        &self,
        operator: OperatorId,
        only: Option<i64>,
        keep: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Operators);
        let ended = end_in(&mut tx, operator, only, keep).await?;
        // Expired rows serve nothing: dropped on the way, so the table stays small.
        write!(&mut tx, |c| {
            sqlx::query("DELETE FROM sign_ins WHERE operator_id = $1 AND expires_at < $2")
                .bind(operator.get())
                .bind(Ts::now())
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(ended)
    }
}

/// Ends, inside `tx`, `operator`'s sign-ins that still work: the one with id `only`, or when
/// `None` all of them except `keep`. Returns how many.
pub(crate) async fn end_in(
    tx: &mut Tx,
    operator: OperatorId,
    only: Option<i64>,
    keep: Option<i64>,
) -> Result<u64, StoreError> {
    write!(tx, |c| {
        sqlx::query(
            "UPDATE sign_ins SET revoked_at = $2 \
             WHERE operator_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             AND ($3 IS NULL OR id = $3) AND ($4 IS NULL OR id <> $4)",
        )
        .bind(operator.get())
        .bind(Ts::now())
        .bind(only)
        .bind(keep)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(Into::into)
}
