//! The event stream: every step of every run becomes an event, written to the store in small
//! batches and broadcast to live subscribers. On PostgreSQL the broadcast is fed from the
//! database's notifications, so a subscriber on any machine sees every worker's events; on
//! SQLite it is fed by the writer. A subscriber that joins late reads the backlog first and
//! then the live stream, with nothing missed and nothing twice.

use cartwright_core::order::{Event, Level, NewEvent};
use cartwright_store::{EventQuery, Store};
use futures::{Stream, StreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

enum Msg {
    Event(NewEvent),
    Flush(oneshot::Sender<()>),
}

/// Writes and broadcasts events. Cheap to share.
pub struct EventBus {
    store: Store,
    queue: mpsc::UnboundedSender<Msg>,
    live: broadcast::Sender<Arc<Event>>,
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFilter {
    /// Of this batch.
    pub batch: Option<cartwright_core::ids::BatchId>,
    /// Of this order.
    pub order: Option<cartwright_core::ids::OrderId>,
    /// Of this rewards run.
    pub rewards_run: Option<cartwright_core::ids::RewardsRunId>,
    /// At least this loud.
    pub min_level: Option<Level>,
}

impl EventFilter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        self.batch.is_none_or(|b| e.batch_id == Some(b))
            && self.order.is_none_or(|o| e.order_id == Some(o))
            && self.rewards_run.is_none_or(|r| e.rewards_run_id == Some(r))
            && self.min_level.is_none_or(|l| e.level >= l)
    }

    fn query(&self, after: Option<cartwright_core::ids::EventId>, limit: u32) -> EventQuery {
        EventQuery {
            batch: self.batch,
            order: self.order,
            rewards_run: self.rewards_run,
            min_level: self.min_level,
            after,
            limit,
        }
    }
}

impl EventBus {
    /// Starts the writer (and, on PostgreSQL, the listener).
    pub fn start(store: Store) -> Arc<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(8_192);
        let from_db = store.listen_events();
        if let Some(mut from_db) = from_db {
            let live = live.clone();
            tokio::spawn(async move {
                while let Some(events) = from_db.recv().await {
                    for e in events {
                        let _ = live.send(Arc::new(e));
                    }
                }
            });
            tokio::spawn(write(store.clone(), rx, None));
        } else {
            tokio::spawn(write(store.clone(), rx, Some(live.clone())));
        }
        Arc::new(Self { store, queue, live })
    }

    /// Records an event; it is written within a few milliseconds.
    pub fn emit(&self, event: NewEvent) {
        let _ = self.queue.send(Msg::Event(event));
    }

    /// Waits until every event emitted so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Live events from now on, unfiltered.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    /// The events matching `filter`: the stored ones after `after` first (all of them when
    /// `None`), then live ones as they happen. Ends only when the receiver is dropped.
    pub fn stream(
        self: &Arc<Self>,
        filter: EventFilter,
        after: Option<cartwright_core::ids::EventId>,
    ) -> impl Stream<Item = Arc<Event>> + Send + 'static + use<> {
        self.stream_until(filter, after, std::future::pending())
            .filter_map(|s| async move {
                match s {
                    Streamed::Event(e) => Some(e),
                    Streamed::End => None,
                }
            })
    }

    /// Like [`EventBus::stream`], and once `until` resolves (the batch or run is final), the
    /// events still queued are written, those not yet sent are sent, [`Streamed::End`] says
    /// that nothing is missing, and the stream ends. A stream whose store failed ends without
    /// it.
    ///
    /// A subscriber's memory is bounded: the id it sent last (where the next store read
    /// starts) and the ids of its last few thousand events, against which live ones are
    /// checked (on PostgreSQL events of several nodes arrive in commit order, not id order).
    pub fn stream_until<U: Future<Output = ()> + Send + 'static>(
        self: &Arc<Self>,
        filter: EventFilter,
        after: Option<cartwright_core::ids::EventId>,
        until: U,
    ) -> impl Stream<Item = Streamed> + Send + 'static + use<U> {
        let bus = self.clone();
        // Subscribe before reading the backlog: an event written in between is in both and
        // is dropped from the live side by its id.
        let mut live = self.live.subscribe();
        async_stream(move |tx: mpsc::Sender<Streamed>| async move {
            let mut sent = Sent::after(after);
            if !bus.send_stored(&filter, &mut sent, &tx).await {
                return;
            }
            let mut until = std::pin::pin!(until);
            loop {
                let received = tokio::select! {
                    r = live.recv() => r,
                    () = &mut until => {
                        bus.flush().await;
                        if bus.send_stored(&filter, &mut sent, &tx).await {
                            let _ = tx.send(Streamed::End).await;
                        }
                        return;
                    }
                    // The client went away: nothing will fail a send on a quiet stream.
                    () = tx.closed() => return,
                };
                match received {
                    Ok(e) => {
                        if !filter.matches(&e) || sent.has(e.id) {
                            continue;
                        }
                        sent.note(e.id);
                        if tx.send(Streamed::Event(e)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow for the live stream: catch up from the store.
                        tracing::debug!(
                            missed = n,
                            "an event subscriber lagged; reading the store"
                        );
                        if !bus.send_stored(&filter, &mut sent, &tx).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Sends the stored events matching `filter` after the last one sent, page by page.
    /// False when the stream should end (the receiver is gone or the store failed).
    async fn send_stored(
        &self,
        filter: &EventFilter,
        sent: &mut Sent,
        tx: &mpsc::Sender<Streamed>,
    ) -> bool {
        const PAGE: u32 = 1_000;
        loop {
            let page = match self.store.events(&filter.query(sent.last, PAGE)).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "reading stored events failed");
                    return false;
                }
            };
            let full = page.len() == PAGE as usize;
            for e in page {
                sent.note(e.id);
                if tx.send(Streamed::Event(Arc::new(e))).await.is_err() {
                    return false;
                }
            }
            if !full {
                return true;
            }
        }
    }
}

/// What an [`EventBus::stream_until`] yields.
#[derive(Debug, Clone)]
pub enum Streamed {
    /// An event.
    Event(Arc<Event>),
    /// The end: every event up to the final state was sent.
    End,
}

/// What a subscriber remembers of what it sent.
struct Sent {
    /// The highest id sent: store reads start after it.
    last: Option<cartwright_core::ids::EventId>,
    recent: HashSet<i64>,
    order: std::collections::VecDeque<i64>,
}

impl Sent {
    /// Ids a subscriber remembers, to drop a live event it already sent from the store.
    const RECENT: usize = 4_096;

    fn after(after: Option<cartwright_core::ids::EventId>) -> Self {
        Self {
            last: after,
            recent: HashSet::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    fn has(&self, id: cartwright_core::ids::EventId) -> bool {
        self.recent.contains(&id.get())
    }

    fn note(&mut self, id: cartwright_core::ids::EventId) {
        self.last = self.last.max(Some(id));
        if self.recent.insert(id.get()) {
            self.order.push_back(id.get());
            if self.order.len() > Self::RECENT
                && let Some(old) = self.order.pop_front()
            {
                self.recent.remove(&old);
            }
        }
    }
}

/// A stream fed by a task: the task ends when the stream is dropped.
fn async_stream<T: Send + 'static, F, Fut>(f: F) -> impl Stream<Item = T> + Send + 'static
where
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Writes queued events in batches: whatever has arrived while the last write ran.
async fn write(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    live: Option<broadcast::Sender<Arc<Event>>>,
) {
    let mut batch = Vec::new();
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(e),
                Msg::Flush(w) => waiters.push(w),
            }
            if batch.len() >= 500 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let mut delay = Duration::from_millis(50);
            loop {
                match store.insert_events(&batch).await {
                    Ok(stored) => {
                        if let Some(live) = &live {
                            for e in stored {
                                let _ = live.send(Arc::new(e));
                            }
                        }
                        break;
                    }
                    Err(e) if e.is_unavailable() && delay < Duration::from_secs(10) => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, lost = batch.len(), "could not store events");
                        break;
                    }
                }
            }
            batch.clear();
        }
        if rx.is_empty() {
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}
