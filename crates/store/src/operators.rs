//! Operators (people who sign in) and API tokens (machines). Passwords arrive here already
//! hashed; token secrets arrive as their SHA-256.

use crate::db::{Lock, Topic, Ts, Tx, read, stored, stored_opt, write};
use crate::{Store, StoreError};
use cartwright_core::ids::{OperatorId, TokenId};
use cartwright_core::operator::{
    ApiToken, NewOperator, NewToken, Operator, OperatorPatch, Role, Scope,
};
use cartwright_core::values::{Email, Text, Username};
use time::OffsetDateTime;

/// What a request's authentication needs to know about an operator, read on every request so
/// that disabling someone or changing their role takes effect at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAuth {
    /// The operator.
    pub id: OperatorId,
    /// Current role.
    pub role: Role,
    /// Whether sign-in is refused.
    pub disabled: bool,
    /// Sign-in tokens carrying an older version are void.
    pub auth_version: i64,
}

/// An operator with the hash to check a password against. Its `Debug` hides the hash.
#[derive(Clone)]
pub struct LoginRecord {
    /// The operator.
    pub operator: Operator,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Version to put in the sign-in token.
    pub auth_version: i64,
}

impl std::fmt::Debug for LoginRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRecord")
            .field("operator", &self.operator)
            .field("password_hash", &"***")
            .field("auth_version", &self.auth_version)
            .finish()
    }
}

/// What a request's authentication needs to know about an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuth {
    /// The token.
    pub id: TokenId,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether an admin revoked it.
    pub revoked: bool,
    /// Last recorded use.
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct OperatorRow {
    id: i64,
    username: String,
    email: Option<String>,
    role: String,
    disabled: bool,
    created_at: Ts,
    last_login_at: Option<Ts>,
}

const OPERATOR_COLUMNS: &str = "id, username, email, role, disabled, created_at, last_login_at";

impl TryFrom<OperatorRow> for Operator {
    type Error = StoreError;
    fn try_from(r: OperatorRow) -> Result<Self, StoreError> {
        Ok(Operator {
            id: OperatorId(r.id),
            username: stored("operators.username", Username::parse(&r.username))?,
            email: stored_opt("operators.email", r.email, Email::parse)?,
            role: stored("operators.role", r.role.parse())?,
            disabled: r.disabled,
            created_at: r.created_at.0,
            last_login_at: r.last_login_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    prefix: String,
    scopes: String,
    created_by: Option<i64>,
    created_at: Ts,
    expires_at: Option<Ts>,
    last_used_at: Option<Ts>,
    revoked_at: Option<Ts>,
}

#[derive(sqlx::FromRow)]
struct TokenAuthRow {
    id: i64,
    scopes: String,
    expires_at: Option<Ts>,
    revoked_at: Option<Ts>,
    last_used_at: Option<Ts>,
}

const TOKEN_COLUMNS: &str =
    "id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at, revoked_at";

fn parse_scopes(s: &str) -> Result<Vec<Scope>, String> {
    s.split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        Ok(ApiToken {
            id: TokenId(r.id),
            name: stored("api_tokens.name", Text::parse(&r.name))?,
            prefix: r.prefix,
            scopes: stored("api_tokens.scopes", parse_scopes(&r.scopes))?,
            created_by: r.created_by.map(OperatorId),
            created_at: r.created_at.0,
            expires_at: r.expires_at.map(|t| t.0),
            last_used_at: r.last_used_at.map(|t| t.0),
            revoked_at: r.revoked_at.map(|t| t.0),
        })
    }
}

impl Store {
    /// Creates an operator with an already hashed password.
    pub async fn create_operator(
        &self,
        new: &NewOperator,
        password_hash: &str,
    ) -> Result<Operator, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        tx.touch(Topic::Operators);
        let row: OperatorRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO operators (username, email, password_hash, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING {OPERATOR_COLUMNS}"
            )))
                .bind(new.username.as_str())
                .bind(new.email.as_ref().map(Email::as_str))
                .bind(password_hash)
                .bind(new.role.as_str())
                .bind(now)
                .fetch_one(c)
                .await
        })
        .map_err(StoreError::on_write("operator", "id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// How many operators exist (none means the first admin has yet to be created).
    pub async fn count_operators(&self) -> Result<i64, StoreError> {
        Ok(read!(&self.db, |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM operators")
                .fetch_one(c)
                .await
        })?)
    }

    /// One operator.
    pub async fn operator(&self, id: OperatorId) -> Result<Operator, StoreError> {
        let row: OperatorRow = self
            .db
            .row_by_id(OPERATOR_COLUMNS, "operators", id.get(), "operator")
            .await?;
        row.try_into()
    }

    /// All operators, by username.
    pub async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        let rows: Vec<OperatorRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY username"
            )))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Changes an operator. A new password, role or disabled flag voids their sign-in tokens;
    /// an admin who stops being one (or is disabled) has the API tokens they created revoked.
    /// Refuses to leave no enabled admin.
    pub async fn update_operator(
        &self,
        id: OperatorId,
        patch: &OperatorPatch,
        password_hash: Option<&str>,
    ) -> Result<Operator, StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Operators);
        tx.serialize(Lock::LastAdmin).await?;
        let current: Operator = self.lock_operator(&mut tx, id).await?;
        let role = patch.role.unwrap_or(current.role);
        let disabled = patch.disabled.unwrap_or(current.disabled);
        if current.role == Role::Admin && !current.disabled && (role != Role::Admin || disabled) {
            self.ensure_other_admin(&mut tx, id, if disabled { "disabled" } else { "role" })
                .await?;
        }
        let email = patch.email.clone().apply(current.email.clone());
        let void_tokens =
            password_hash.is_some() || role != current.role || disabled != current.disabled;
        let row: OperatorRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE operators SET email = $2, role = $3, disabled = $4, \
                 password_hash = COALESCE($5, password_hash), \
                 auth_version = auth_version + $6, updated_at = $7 \
                 WHERE id = $1 RETURNING {OPERATOR_COLUMNS}"
            )))
            .bind(id.get())
            .bind(email.as_ref().map(Email::as_str))
            .bind(role.as_str())
            .bind(disabled)
            .bind(password_hash)
            .bind(i64::from(void_tokens))
            .bind(Ts::now())
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("operator", "id"))?;
        if current.role == Role::Admin && (role != Role::Admin || disabled) {
            Self::revoke_tokens_of(&mut tx, id).await?;
        }
        if void_tokens {
            // Their tokens no longer pass; the list of their sign-ins says so too.
            crate::sign_ins::end_in(&mut tx, id, None, None).await?;
        }
        tx.commit().await?;
        row.try_into()
    }

    /// Revokes the API tokens `admin` created: a token carries its creator's authority, which
    /// ends when they stop being an enabled admin.
    async fn revoke_tokens_of(tx: &mut Tx, admin: OperatorId) -> Result<(), StoreError> {
        tx.touch(Topic::Tokens);
        write!(tx, |c| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL",
            )
            .bind(admin.get())
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Deletes an operator, revoking the API tokens they created. Refuses to delete the last
    /// enabled admin.
    pub async fn delete_operator(&self, id: OperatorId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Operators);
        tx.serialize(Lock::LastAdmin).await?;
        let current = self.lock_operator(&mut tx, id).await?;
        if current.role == Role::Admin && !current.disabled {
            self.ensure_other_admin(&mut tx, id, "id").await?;
        }
        Self::revoke_tokens_of(&mut tx, id).await?;
        tx.delete_by_id("operators", id.get(), "operator").await?;
        tx.commit().await
    }

    async fn lock_operator(&self, tx: &mut Tx, id: OperatorId) -> Result<Operator, StoreError> {
        tx.row_by_id::<OperatorRow>(OPERATOR_COLUMNS, "operators", id.get(), "operator")
            .await?
            .try_into()
    }

    /// Refuses unless an enabled admin other than `id` exists. Callers hold
    /// [`Lock::LastAdmin`], so two admins cannot demote each other at once.
    async fn ensure_other_admin(
        &self,
        tx: &mut Tx,
        id: OperatorId,
        field: &str,
    ) -> Result<(), StoreError> {
        let others: i64 = write!(tx, |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM operators WHERE role = 'admin' AND NOT disabled AND id <> $1",
            )
            .bind(id.get())
            .fetch_one(c)
            .await
        })?;
        if others == 0 {
            return Err(StoreError::Refused {
                field: field.to_owned(),
                message: "this is the last enabled admin; make another admin first".into(),
            });
        }
        Ok(())
    }

    /// The operator signing in as `username`, with their password hash.
    pub async fn login_record(
        &self,
        username: &Username,
    ) -> Result<Option<LoginRecord>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            operator: OperatorRow,
            password_hash: String,
            auth_version: i64,
        }
        let row: Option<Row> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {OPERATOR_COLUMNS}, password_hash, auth_version FROM operators WHERE username = $1"
            )))
            .bind(username.as_str())
            .fetch_optional(c)
            .await
        })?;
        row.map(|r| {
            Ok(LoginRecord {
                operator: r.operator.try_into()?,
                password_hash: r.password_hash,
                auth_version: r.auth_version,
            })
        })
        .transpose()
    }

    /// The current role and state of the operator a sign-in token names. Read on every
    /// request, so it is remembered briefly: a change made through this store is seen at once,
    /// one made on another node within a second.
    pub async fn operator_auth(&self, id: OperatorId) -> Result<Option<OperatorAuth>, StoreError> {
        self.memos
            .operator_auth
            .get_or(id, self.read_operator_auth(id))
            .await
    }

    async fn read_operator_auth(&self, id: OperatorId) -> Result<Option<OperatorAuth>, StoreError> {
        let row: Option<(String, bool, i64)> = read!(&self.db, |c| {
            sqlx::query_as("SELECT role, disabled, auth_version FROM operators WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        row.map(|(role, disabled, auth_version)| {
            Ok(OperatorAuth {
                id,
                role: stored("operators.role", role.parse())?,
                disabled,
                auth_version,
            })
        })
        .transpose()
    }

    /// Creates an API token from the SHA-256 of its secret.
    pub async fn create_token(
        &self,
        new: &NewToken,
        created_by: OperatorId,
        secret_hash: &[u8],
        prefix: &str,
    ) -> Result<ApiToken, StoreError> {
        let now = Ts::now();
        let expires = new
            .expires_in_days
            .map(|d| Ts(now.0 + time::Duration::days(i64::from(d))));
        let mut scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut tx = self.begin().await?;
        tx.touch(Topic::Tokens);
        let row: TokenRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO api_tokens (name, secret_hash, prefix, scopes, created_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TOKEN_COLUMNS}"
            )))
            .bind(new.name.as_str())
            .bind(secret_hash)
            .bind(prefix)
            .bind(scopes.join(","))
            .bind(created_by.get())
            .bind(now)
            .bind(expires)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("token", "created_by"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// All tokens, newest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<TokenRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id DESC"
            )))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Revokes a token; revoking twice keeps the first time.
    pub async fn revoke_token(&self, id: TokenId) -> Result<ApiToken, StoreError> {
        let mut tx = self.begin().await?;
        tx.touch(Topic::Tokens);
        let row: Option<TokenRow> = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                 RETURNING {TOKEN_COLUMNS}"
            )))
            .bind(id.get())
            .bind(Ts::now())
            .fetch_optional(c)
            .await
        })?;
        tx.commit().await?;
        row.ok_or_else(|| StoreError::not_found("token", id.get()))?
            .try_into()
    }

    /// The token whose secret hashes to `secret_hash`, remembered briefly like
    /// [`Store::operator_auth`].
    pub async fn token_auth(&self, secret_hash: &[u8]) -> Result<Option<TokenAuth>, StoreError> {
        self.memos
            .token_auth
            .get_or(secret_hash.to_vec(), self.read_token_auth(secret_hash))
            .await
    }

    async fn read_token_auth(&self, secret_hash: &[u8]) -> Result<Option<TokenAuth>, StoreError> {
        let row: Option<TokenAuthRow> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, scopes, expires_at, revoked_at, last_used_at FROM api_tokens \
                 WHERE secret_hash = $1",
            )
            .bind(secret_hash)
            .fetch_optional(c)
            .await
        })?;
        row.map(
            |TokenAuthRow {
                 id,
                 scopes,
                 expires_at,
                 revoked_at,
                 last_used_at,
             }| {
                Ok(TokenAuth {
                    id: TokenId(id),
                    scopes: stored("api_tokens.scopes", parse_scopes(&scopes))?,
                    expires_at: expires_at.map(|t| t.0),
                    revoked: revoked_at.is_some(),
                    last_used_at: last_used_at.map(|t| t.0),
                })
            },
        )
        .transpose()
    }

    /// Notes that a token was used. Callers skip it when [`TokenAuth::last_used_at`] is recent,
    /// so that a busy token does not turn every read into a write.
    pub async fn touch_token(&self, id: TokenId) -> Result<(), StoreError> {
        let now = Ts::now();
        let minute_ago = Ts(now.0 - time::Duration::MINUTE);
        // Not an authorisation change: the memos keep what they know.
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(id.get())
            .bind(now)
            .bind(minute_ago)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }
}
