//! Encrypted backups of storefronts and accounts *with* their cookies, for moving an install
//! or keeping a copy off the machine. The file is sealed with a key derived from the admin's
//! passphrase (argon2id), not from the install's key, so it can be restored anywhere.

use crate::accounts::ImportReport;
use crate::crypto::Sealer;
use crate::db::read;
use crate::{Store, StoreError};
use cartwright_core::Invalid;
use cartwright_core::account_csv::AccountRow;
use cartwright_core::cookies::CookieJar;
use cartwright_core::storefront::{Currency, NewStorefront};
use cartwright_core::values::{Email, HttpUrl, Phone, Slug, Tags, Text};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAGIC: &[u8] = b"CWBACKUP1\n";
const CONTEXT: &[u8] = b"cartwright/backup";
/// Shortest accepted passphrase.
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Serialize, Deserialize)]
struct BackupFile {
    version: u32,
    storefronts: Vec<BackupStorefront>,
    accounts: Vec<BackupAccount>,
}

#[derive(Serialize, Deserialize)]
struct BackupStorefront {
    slug: String,
    name: String,
    profile: String,
    base_url: String,
    currency: String,
}

#[derive(Serialize, Deserialize)]
struct BackupAccount {
    storefront: String,
    label: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    tags: String,
    active: bool,
    cookies: Option<CookieJar>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct BackupSummary {
    /// Storefronts in the file.
    pub storefronts: usize,
    /// Storefronts that did not exist and were added.
    pub storefronts_created: usize,
    /// Accounts added.
    pub accounts_created: usize,
    /// Accounts updated (matched by email, else phone).
    pub accounts_updated: usize,
}

/// Derives the backup key from the passphrase with argon2id, off the async threads: it
/// takes tens of milliseconds and 19 MiB by design.
async fn passphrase_key(passphrase: &str, salt: &[u8]) -> Result<Sealer, StoreError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(Invalid::new(
            "passphrase",
            format!("must be at least {MIN_PASSPHRASE} characters"),
        )
        .into());
    }
    let (passphrase, salt) = (passphrase.to_owned(), salt.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut key = [0u8; 32];
        argon2::Argon2::default()
            .hash_password_into(passphrase.as_bytes(), &salt, &mut key)
            .map(|()| Sealer::new(&key))
            .map_err(|e| StoreError::Corrupt(format!("backup key: {e}")))
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("backup key: {e}")))?
}

/// Reads a value of the backup file through its parser; a failure names the entry.
fn field<T>(what: &str, parsed: Result<T, String>) -> Result<T, StoreError> {
    parsed.map_err(|m| Invalid::new("backup", format!("{what} {m}")).into())
}

impl Store {
    /// Every storefront and account, with cookies, sealed under `passphrase`.
    pub async fn export_backup(&self, passphrase: &str) -> Result<Vec<u8>, StoreError> {
        let mut salt = [0u8; 16];
        aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut salt);
        let sealer = passphrase_key(passphrase, &salt).await?;
        let storefronts = self
            .storefronts()
            .await?
            .into_iter()
            .map(|s| BackupStorefront {
                slug: s.slug.into_inner(),
                name: s.name.into_inner(),
                profile: s.profile.into_inner(),
                base_url: s.base_url.into_inner(),
                currency: s.currency.as_str().to_owned(),
            })
            .collect();
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            slug: String,
            label: Option<String>,
            name: Option<String>,
            email: Option<String>,
            phone: Option<String>,
            tags: String,
            active: bool,
            cookies: Option<Vec<u8>>,
        }
        let rows: Vec<Row> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT a.id, s.slug, a.label, a.name, a.email, a.phone, a.tags, a.active, a.cookies \
                 FROM accounts a JOIN storefronts s ON s.id = a.storefront_id ORDER BY a.id",
            )
            .fetch_all(c)
            .await
        })?;
        let accounts = rows
            .into_iter()
            .map(|r| {
                Ok(BackupAccount {
                    storefront: r.slug,
                    label: r.label,
                    name: r.name,
                    email: r.email,
                    phone: r.phone,
                    tags: r.tags,
                    active: r.active,
                    cookies: r
                        .cookies
                        .map(|c| self.open_jar(cartwright_core::ids::AccountId(r.id), &c))
                        .transpose()?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let file = BackupFile {
            version: 1,
            storefronts,
            accounts,
        };
        let plain = serde_json::to_vec(&file).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + salt.len() + plain.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&sealer.seal(&plain, CONTEXT));
        Ok(out)
    }

    /// Restores a backup in one transaction: missing storefronts are added (by slug), accounts
    /// are upserted by email, else phone, with their cookies. Any bad entry restores nothing.
    pub async fn restore_backup(
        &self,
        data: &[u8],
        passphrase: &str,
    ) -> Result<BackupSummary, StoreError> {
        let bad = |m: &str| StoreError::Invalid(Invalid::new("backup", m));
        let rest = data
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("is not a Cartwright backup file"))?;
        if rest.len() < 16 {
            return Err(bad("is truncated"));
        }
        let (salt, sealed) = rest.split_at(16);
        let plain = passphrase_key(passphrase, salt)
            .await?
            .open(sealed, CONTEXT)
            .map_err(|_| {
                StoreError::Invalid(Invalid::new("passphrase", "does not open this backup"))
            })?;
        let file: BackupFile = serde_json::from_slice(&plain)
            .map_err(|e| bad(&format!("has unreadable contents: {e}")))?;
        if file.version != 1 {
            return Err(bad(&format!(
                "is version {}, which this Cartwright cannot read",
                file.version
            )));
        }
        if let Some(a) = file
            .accounts
            .iter()
            .find(|a| !file.storefronts.iter().any(|s| s.slug == a.storefront))
        {
            return Err(bad(&format!(
                "has an account of storefront {:?}, which it does not contain",
                a.storefront
            )));
        }
        // Check and seal everything before taking the write lock.
        let mut plans = Vec::with_capacity(file.storefronts.len());
        for s in &file.storefronts {
            let new = NewStorefront {
                slug: field("storefront slug", Slug::parse(&s.slug))?,
                name: field("storefront name", Text::parse(&s.name))?,
                profile: field("storefront profile", Slug::parse(&s.profile))?,
                base_url: field("storefront base_url", HttpUrl::parse(&s.base_url))?,
                currency: field("storefront currency", Currency::parse(&s.currency))?,
            };
            let rows = file
                .accounts
                .iter()
                .filter(|a| a.storefront == s.slug)
                .enumerate()
                .map(|(i, a)| {
                    Ok(AccountRow {
                        line: i + 1,
                        label: a
                            .label
                            .as_deref()
                            .map(|v| field("account label", Text::parse(v)))
                            .transpose()?,
                        name: a
                            .name
                            .as_deref()
                            .map(|v| field("account name", Text::parse(v)))
                            .transpose()?,
                        email: a
                            .email
                            .as_deref()
                            .map(|v| field("account email", Email::parse(v)))
                            .transpose()?,
                        phone: a
                            .phone
                            .as_deref()
                            .map(|v| field("account phone", Phone::parse(v)))
                            .transpose()?,
                        tags: Some(Tags::from_stored(&a.tags)),
                        active: Some(a.active),
                        cookies: a.cookies.clone(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            plans.push((new, rows));
        }

        let mut summary = BackupSummary {
            storefronts: file.storefronts.len(),
            ..Default::default()
        };
        let mut tx = self.begin().await?;
        for (new, rows) in plans {
            let storefront = match crate::storefronts::by_slug_in(&mut tx, &new.slug).await? {
                Some(existing) => existing,
                None => {
                    summary.storefronts_created += 1;
                    crate::storefronts::create_in(&mut tx, &new).await?
                }
            };
            let mut report = ImportReport::default();
            self.import_in(&mut tx, storefront.id, rows, &mut report, false)
                .await?;
            if let Some(e) = report.errors.first() {
                return Err(bad(&format!(
                    "account {} of storefront {}: {} {}",
                    e.line, new.slug, e.field, e.message
                )));
            }
            summary.accounts_created += report.created;
            summary.accounts_updated += report.updated;
        }
        tx.commit().await?;
        Ok(summary)
    }
}
