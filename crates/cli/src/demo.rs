//! `cartwright demo`: everything a newcomer needs to see Cartwright working, with one command.

use crate::{Server, Settings, StartError};
use cartwright_core::operator::{NewOperator, Role};
use cartwright_core::values::{Password, Username};
use cartwright_store::Store;

/// The demo admin's sign-in name.
pub const DEMO_USERNAME: &str = "admin";
/// The demo admin's password. The demo keeps its data in its own directory.
pub const DEMO_PASSWORD: &str = "cartwright-demo";

/// Creates the demo admin unless an operator exists already. Returns whether it did.
pub async fn ensure_admin(store: &Store) -> Result<bool, StartError> {
    if store.count_operators().await? > 0 {
        return Ok(false);
    }
    let (Ok(username), Ok(password)) = (
        Username::parse(DEMO_USERNAME),
        Password::parse(DEMO_PASSWORD),
    ) else {
        unreachable!("the demo credentials are valid constants");
    };
    let hash = cartwright_web::auth::password::hash_blocking(DEMO_PASSWORD).map_err(|_| {
        StartError::Io {
            what: "hashing the demo password".into(),
            source: std::io::Error::other("argon2"),
        }
    })?;
    store
        .create_operator(
            &NewOperator {
                username,
                email: None,
                password,
                role: Role::Admin,
            },
            &hash,
        )
        .await?;
    Ok(true)
}

/// Starts the server for the demo, with its admin.
pub async fn start(settings: &Settings) -> Result<Server, StartError> {
    let server = Server::start(settings).await?;
    ensure_admin(&server.store).await?;
    Ok(server)
}
