//! Live streams (server-sent events and the WebSocket) stay under the rules that let them
//! open: the caller's credential is checked again every few seconds and the stream ends once
//! it no longer passes (signed out, token revoked, operator disabled); a caller holds a
//! bounded number of them, and so does the server; all of them end when the server stops.

use crate::auth::{self, Need, Principal, Read};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cartwright_core::ids::{OperatorId, TokenId};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// Limits of live streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Streams one operator or token may hold open at once.
    pub per_caller: usize,
    /// Streams the server holds open at once.
    pub total: usize,
    /// How often an open stream's credential is checked again.
    pub recheck: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            per_caller: 16,
            total: 512,
            recheck: Duration::from_secs(5),
        }
    }
}

/// Whose stream it is, for the per-caller limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Operator(OperatorId),
    Token(TokenId),
}

impl From<&Principal> for Caller {
    fn from(p: &Principal) -> Self {
        match p {
            Principal::Operator { id, .. } => Caller::Operator(*id),
            Principal::Token { id, .. } => Caller::Token(*id),
        }
    }
}

/// The open streams: counts per caller, and the signal that ends them all.
pub struct Streams {
    limits: StreamLimits,
    open: Mutex<HashMap<Caller, usize>>,
    closing: watch::Sender<bool>,
}

impl Streams {
    /// No stream open yet.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            open: Mutex::new(HashMap::new()),
            closing: watch::Sender::new(false),
        }
    }

    /// Ends every open stream and refuses new ones: the server is stopping.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Streams open now.
    pub fn open_count(&self) -> usize {
        self.lock().values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Caller, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self, caller: Caller) -> Result<(), ApiError> {
        if *self.closing.borrow() {
            return Err(ApiError::unavailable("the server is stopping"));
        }
        let mut open = self.lock();
        let total: usize = open.values().sum();
        if total >= self.limits.total {
            return Err(ApiError::too_many(
                format!("the server has {total} live streams open, its limit; try again shortly"),
                5,
            ));
        }
        let mine = open.entry(caller).or_default();
        if *mine >= self.limits.per_caller {
            return Err(ApiError::too_many(
                format!(
                    "you have {} live streams open, the limit per caller; close one (a dashboard tab) first",
                    *mine
                ),
                5,
            ));
        }
        *mine += 1;
        Ok(())
    }

    fn release(&self, caller: Caller) {
        let mut open = self.lock();
        if let Some(n) = open.get_mut(&caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&caller);
            }
        }
    }
}

/// A caller admitted to open one live stream: authenticated with read access, counted against
/// the limits until the stream it guards is dropped. As an extractor it also reads the
/// `access_token` query parameter, for the browser clients that cannot send headers.
pub struct Live<P: Need = Read> {
    state: AppState,
    credential: String,
    caller: Caller,
    need: std::marker::PhantomData<P>,
}

impl<P: Need> FromRequestParts<AppState> for Live<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = auth::bearer(parts, true)?;
        let principal = auth::authenticate(&credential, state).await?;
        if !principal.allows(P::PERMISSION) {
            return Err(ApiError::forbidden(format!("this needs {}", P::NAME)));
        }
        let caller = Caller::from(&principal);
        state.streams.admit(caller)?;
        Ok(Live {
            state: state.clone(),
            credential,
            caller,
            need: std::marker::PhantomData,
        })
    }
}

impl<P: Need> Drop for Live<P> {
    fn drop(&mut self) {
        self.state.streams.release(self.caller);
    }
}

impl<P: Need> Live<P> {
    /// `stream`, ended when the caller's credential stops passing or the server stops.
    pub fn guard<S: Stream + Send + 'static>(
        self,
        stream: S,
    ) -> impl Stream<Item = S::Item> + Send + 'static {
        stream.take_until(Box::pin(self.ended()))
    }

    /// Resolves when the stream must end. Owns the admission, so the count drops with it.
    async fn ended(self) {
        let mut closing = self.state.streams.closing.subscribe();
        let mut tick = tokio::time::interval(self.state.streams.limits.recheck);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = async { drop(closing.wait_for(|c| *c).await) } => return,
                _ = tick.tick() => {
                    match auth::authenticate(&self.credential, &self.state).await {
                        Ok(p) if p.allows(P::PERMISSION) => {}
                        Ok(_) => return,
                        Err(e) if e.status().is_client_error() => return,
                        // The store is unreachable for now: the next check decides.
                        Err(_) => {}
                    }
                }
            }
        }
    }
}
