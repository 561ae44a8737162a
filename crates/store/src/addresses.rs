//! Shipping addresses. At most one is the default, which the database enforces with a partial
//! unique index; setting a new default clears the old one in the same transaction.

use crate::db::{Lock, Ts, Tx, read, stored, stored_opt, write};
use crate::{Store, StoreError};
use cartwright_core::address::{Address, AddressPatch, NewAddress};
use cartwright_core::ids::AddressId;
use cartwright_core::values::{Phone, Postcode, Text};

#[derive(sqlx::FromRow)]
pub(crate) struct AddressRow {
    id: i64,
    label: Option<String>,
    full_name: String,
    line1: String,
    street: Option<String>,
    landmark: Option<String>,
    postcode: String,
    city: String,
    state: String,
    phone: String,
    kind: String,
    is_default: bool,
    created_at: Ts,
    updated_at: Ts,
}

pub(crate) const ADDRESS_COLUMNS: &str = "id, label, full_name, line1, street, landmark, postcode, city, \
    state, phone, kind, is_default, created_at, updated_at";

impl TryFrom<AddressRow> for Address {
    type Error = StoreError;
    fn try_from(r: AddressRow) -> Result<Self, StoreError> {
        Ok(Address {
            id: AddressId(r.id),
            label: stored_opt("addresses.label", r.label, Text::parse)?,
            full_name: stored("addresses.full_name", Text::parse(&r.full_name))?,
            line1: stored("addresses.line1", Text::parse(&r.line1))?,
            street: stored_opt("addresses.street", r.street, Text::parse)?,
            landmark: stored_opt("addresses.landmark", r.landmark, Text::parse)?,
            postcode: stored("addresses.postcode", Postcode::parse(&r.postcode))?,
            city: stored("addresses.city", Text::parse(&r.city))?,
            state: stored("addresses.state", Text::parse(&r.state))?,
            phone: stored("addresses.phone", Phone::parse(&r.phone))?,
            kind: stored("addresses.kind", r.kind.parse())?,
            is_default: r.is_default,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

async fn clear_default(tx: &mut Tx) -> Result<(), StoreError> {
    write!(tx, |c| {
        sqlx::query("UPDATE addresses SET is_default = FALSE WHERE is_default")
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

impl Store {
    /// Adds an address. The first address, or one marked default, becomes the default.
    pub async fn create_address(&self, new: &NewAddress) -> Result<Address, StoreError> {
        let mut tx = self.begin().await?;
        tx.serialize(Lock::DefaultAddress).await?;
        let has_default: bool = write!(&mut tx, |c| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM addresses WHERE is_default)")
                .fetch_one(c)
                .await
        })?;
        if new.is_default && has_default {
            clear_default(&mut tx).await?;
        }
        let row: AddressRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO addresses (label, full_name, line1, street, landmark, postcode, city, \
                 state, phone, kind, is_default, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
                 RETURNING {ADDRESS_COLUMNS}"
            )))
            .bind(new.label.as_ref().map(Text::as_str))
            .bind(new.full_name.as_str())
            .bind(new.line1.as_str())
            .bind(new.street.as_ref().map(Text::as_str))
            .bind(new.landmark.as_ref().map(Text::as_str))
            .bind(new.postcode.as_str())
            .bind(new.city.as_str())
            .bind(new.state.as_str())
            .bind(new.phone.as_str())
            .bind(new.kind.as_str())
            .bind(new.is_default || !has_default)
            .bind(Ts::now())
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("address", "id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// One address.
    pub async fn address(&self, id: AddressId) -> Result<Address, StoreError> {
        let row: AddressRow = self
            .db
            .row_by_id(ADDRESS_COLUMNS, "addresses", id.get(), "address")
            .await?;
        row.try_into()
    }

    /// The default address, if one is set.
    pub async fn default_address(&self) -> Result<Option<Address>, StoreError> {
        let row: Option<AddressRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE is_default"
            )))
            .fetch_optional(c)
            .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// All addresses, the default first.
    pub async fn addresses(&self) -> Result<Vec<Address>, StoreError> {
        let rows: Vec<AddressRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses ORDER BY is_default DESC, id"
            )))
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Changes an address; `is_default: true` moves the default to it.
    pub async fn update_address(
        &self,
        id: AddressId,
        patch: &AddressPatch,
    ) -> Result<Address, StoreError> {
        let mut tx = self.begin().await?;
        let current: Address = tx
            .row_by_id::<AddressRow>(ADDRESS_COLUMNS, "addresses", id.get(), "address")
            .await?
            .try_into()?;
        let is_default = patch.is_default.unwrap_or(current.is_default);
        if is_default && !current.is_default {
            tx.serialize(Lock::DefaultAddress).await?;
        }
        if is_default && !current.is_default {
            clear_default(&mut tx).await?;
        }
        let row: AddressRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE addresses SET label = $2, full_name = $3, line1 = $4, street = $5, \
                 landmark = $6, postcode = $7, city = $8, state = $9, phone = $10, kind = $11, \
                 is_default = $12, updated_at = $13 WHERE id = $1 RETURNING {ADDRESS_COLUMNS}"
            )))
            .bind(id.get())
            .bind(
                patch
                    .label
                    .clone()
                    .apply(current.label)
                    .as_ref()
                    .map(Text::as_str),
            )
            .bind(
                patch
                    .full_name
                    .as_ref()
                    .unwrap_or(&current.full_name)
                    .as_str(),
            )
            .bind(patch.line1.as_ref().unwrap_or(&current.line1).as_str())
            .bind(
                patch
                    .street
                    .clone()
                    .apply(current.street)
                    .as_ref()
                    .map(Text::as_str),
            )
            .bind(
                patch
                    .landmark
                    .clone()
                    .apply(current.landmark)
                    .as_ref()
                    .map(Text::as_str),
            )
            .bind(
                patch
                    .postcode
                    .as_ref()
                    .unwrap_or(&current.postcode)
                    .as_str(),
            )
            .bind(patch.city.as_ref().unwrap_or(&current.city).as_str())
            .bind(patch.state.as_ref().unwrap_or(&current.state).as_str())
            .bind(patch.phone.as_ref().unwrap_or(&current.phone).as_str())
            .bind(patch.kind.unwrap_or(current.kind).as_str())
            .bind(is_default)
            .bind(Ts::now())
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("address", "id"))?;
        tx.commit().await?;
        row.try_into()
    }

    /// Deletes an address. Deleting the default leaves no default until one is chosen.
    pub async fn delete_address(&self, id: AddressId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.delete_by_id("addresses", id.get(), "address").await?;
        tx.commit().await
    }
}
