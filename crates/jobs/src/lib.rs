//! Workers for Cartwright's durable jobs. Kinds of jobs are grouped in lanes that share a
//! concurrency limit (sign-in tests and orders share the browser; rewards checks use plain
//! HTTP); within a lane, higher-priority jobs are claimed first. Workers in any number of
//! processes share one database: claims never overlap, heartbeats keep a job owned, a job whose
//! worker stops beating is rescued by another, and a graceful shutdown hands unfinished jobs
//! back. Leases are judged by the database's clock; a worker that cannot show it still holds a
//! job's lease (a beat finds it gone, or no beat got through before it ran out) stops that
//! job's run at once, so two workers never run one job.

use cartwright_core::ids::JobId;
use cartwright_store::{Job, Store};
use futures::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

/// What a handler's future resolves to.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// Failed in a way another attempt may fix; try again after `after`.
    Retry {
        /// Why it failed.
        error: String,
        /// How long to wait first.
        after: Duration,
    },
    /// Failed for good.
    Fail {
        /// Why.
        error: String,
    },
    /// Could not start yet (what it needs is busy): queued again after `after` without
    /// counting an attempt.
    Defer {
        /// Why it waits.
        reason: String,
        /// How long.
        after: Duration,
    },
}

/// Runs jobs of one kind.
pub trait Handler: Send + Sync + 'static {
    /// Runs one job.
    fn run(&self, job: Job) -> BoxFuture<Outcome>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        Box::pin(self(job))
    }
}

/// Timing of the workers' housekeeping.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Longest sleep while idle before looking for jobs again (a notification usually wakes
    /// the worker sooner).
    pub idle_poll: Duration,
    /// How often running jobs are marked alive.
    pub heartbeat: Duration,
    /// The lease this worker takes on a running job, renewed by every beat: a job whose lease
    /// ran out (its worker stopped beating) is rescued by any worker. Each worker's own
    /// setting governs its own jobs, so nodes may differ.
    pub stale_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            idle_poll: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
        }
    }
}

struct Lane {
    name: &'static str,
    capacity: usize,
    permits: Arc<Semaphore>,
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

/// A task run every so often beside the workers (sweeps that give lost work a job).
pub type Periodic = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;

/// Workers being assembled.
pub struct Workers {
    store: Store,
    id: String,
    lanes: Vec<Lane>,
    timing: Timing,
    periodic: Vec<(Duration, Periodic)>,
}

impl Workers {
    /// Workers named `id` in the jobs they claim. Each start adds a random tag to it, so that
    /// two processes given the same name (a copied configuration, containers sharing a host
    /// name and a pid) never hold each other's leases.
    pub fn new(store: Store, id: impl Into<String>) -> Self {
        Self {
            store,
            id: id.into(),
            lanes: Vec::new(),
            timing: Timing::default(),
            periodic: Vec::new(),
        }
    }

    /// Runs `task` every `period` while the workers run (first after one period).
    pub fn every(mut self, period: Duration, task: Periodic) -> Self {
        self.periodic.push((period, task));
        self
    }

    /// Changes the housekeeping timing.
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Adds a lane of `concurrency` running jobs shared by these kinds.
    pub fn lane(
        mut self,
        name: &'static str,
        concurrency: usize,
        handlers: Vec<(&'static str, Arc<dyn Handler>)>,
    ) -> Self {
        self.lanes.push(Lane {
            name,
            capacity: concurrency.max(1),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            handlers: handlers.into_iter().collect(),
        });
        self
    }

    /// Starts claiming and running jobs.
    pub fn start(self) -> RunningWorkers {
        let (stop_tx, stop_rx) = watch::channel(false);
        let running: Arc<Mutex<HashMap<JobId, Held>>> = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<JobId>();
        let shared = Arc::new(Shared {
            store: self.store,
            id: format!("{}~{:08x}", self.id, rand::random::<u32>()),
            timing: self.timing,
            running,
            done: done_tx,
        });
        let flusher = tokio::spawn(flush_completions(
            shared.store.clone(),
            shared.id.clone(),
            shared.running.clone(),
            done_rx,
        ));
        let housekeeping = tokio::spawn(housekeeping(shared.clone(), stop_rx.clone()));
        let periodic = self
            .periodic
            .into_iter()
            .map(|(period, task)| {
                tokio::spawn(async move {
                    let mut every = tokio::time::interval_at(Instant::now() + period, period);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        every.tick().await;
                        task().await;
                    }
                })
            })
            .collect();
        let lanes = self.lanes.into_iter().map(Arc::new).collect::<Vec<_>>();
        let claiming = tokio::spawn(claim_loop(shared.clone(), lanes.clone(), stop_rx));
        RunningWorkers {
            shared,
            lanes,
            stop: stop_tx,
            claiming,
            housekeeping,
            periodic,
            flusher,
        }
    }
}

/// A job this worker runs: how to stop its run, and until when its lease is surely held by
/// this node's clock (the moment the last renewal that got through was sent, plus the lease).
struct Held {
    run: Option<AbortHandle>,
    held_until: Instant,
    /// Its run has ended and its outcome is being written: a beat that no longer finds it
    /// running is not a lost lease.
    ended: bool,
}

struct Shared {
    store: Store,
    id: String,
    timing: Timing,
    running: Arc<Mutex<HashMap<JobId, Held>>>,
    done: mpsc::UnboundedSender<JobId>,
}

impl Shared {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Held>> {
        lock_running(&self.running)
    }

    /// Renews the leases of the jobs this worker runs, and stops the run of every job whose
    /// lease it can no longer show: the beat found it gone, or no beat got through before the
    /// lease ran out.
    async fn beat(&self) {
        let sent = Instant::now();
        let ids: Vec<JobId> = self.running().keys().copied().collect();
        let renewed = match self
            .store
            .heartbeat_jobs(&self.id, &ids, self.timing.stale_after)
            .await
        {
            Ok(renewed) => Some(renewed),
            Err(e) => {
                tracing::warn!(error = %e, "job heartbeat failed");
                None
            }
        };
        let mut running = self.running();
        if let Some(renewed) = &renewed {
            for id in renewed {
                if let Some(held) = running.get_mut(id) {
                    held.held_until = sent + self.timing.stale_after;
                }
            }
        }
        let now = Instant::now();
        let lost: Vec<JobId> = running
            .iter()
            .filter(|(id, held)| {
                // Asked about and not renewed; or not renewed in time.
                !held.ended
                    && (renewed
                        .as_ref()
                        .is_some_and(|r| ids.contains(id) && !r.contains(id))
                        || held.held_until <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(held) = running.remove(&id) {
                if let Some(run) = held.run {
                    run.abort();
                }
                tracing::warn!(job = %id, "lost the lease on a job: its run is stopped (another worker may take it)");
            }
        }
    }
}

fn lock_running(
    running: &Mutex<HashMap<JobId, Held>>,
) -> std::sync::MutexGuard<'_, HashMap<JobId, Held>> {
    running.lock().unwrap_or_else(|p| p.into_inner())
}

/// Workers at work.
pub struct RunningWorkers {
    shared: Arc<Shared>,
    lanes: Vec<Arc<Lane>>,
    stop: watch::Sender<bool>,
    claiming: tokio::task::JoinHandle<JoinSet<()>>,
    housekeeping: tokio::task::JoinHandle<()>,
    periodic: Vec<tokio::task::JoinHandle<()>>,
    flusher: tokio::task::JoinHandle<()>,
}

impl RunningWorkers {
    /// The name these workers' claims carry in the jobs table.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Jobs this process is running now.
    pub fn running(&self) -> usize {
        self.shared.running().len()
    }

    /// Stops claiming, lets running jobs finish for up to `grace`, then hands the unfinished
    /// ones back to the queue (without counting their attempt) for another worker.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut tasks = self.claiming.await.unwrap_or_default();
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let unfinished: Vec<JobId> = self.shared.running().drain().map(|(id, _)| id).collect();
            if let Err(e) = self
                .shared
                .store
                .release_jobs(&self.shared.id, &unfinished)
                .await
            {
                tracing::warn!(error = %e, "could not hand unfinished jobs back; they will be rescued");
            } else if !unfinished.is_empty() {
                tracing::info!(
                    jobs = unfinished.len(),
                    "handed unfinished jobs back to the queue"
                );
            }
        }
        drop(tasks);
        for task in &self.periodic {
            task.abort();
        }
        self.housekeeping.abort();
        let _ = self.housekeeping.await;
        drop(self.lanes);
        // The flusher ends once the last sender (inside the shared state) is gone.
        drop(self.shared);
        let _ = self.flusher.await;
    }
}

impl RunningWorkers {
    /// Stops everything at once without handing jobs back or writing anything, as if the
    /// process had died: its running jobs stay claimed until another worker rescues them
    /// after `stale_after`. For crash drills.
    pub async fn abandon(self) {
        let _ = self.stop.send(true);
        self.housekeeping.abort();
        self.flusher.abort();
        for task in &self.periodic {
            task.abort();
        }
        if let Ok(mut tasks) = self.claiming.await {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

async fn claim_loop(
    shared: Arc<Shared>,
    lanes: Vec<Arc<Lane>>,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    loop {
        if *stop.borrow() {
            return tasks;
        }
        while tasks.try_join_next().is_some() {}
        // Register for the wake-up before looking, so an enqueue in between is not missed.
        let signal = shared.store.job_signal().notified();
        tokio::pin!(signal);
        signal.as_mut().enable();
        let mut claimed_any = false;
        for lane in &lanes {
            let free = lane.permits.available_permits();
            // Claim in batches: a wide lane waits until a quarter of it is free (or it is idle)
            // rather than spending one claim per finished job.
            if free == 0 || (free < lane.capacity / 4 && free < lane.capacity) {
                continue;
            }
            let kinds: Vec<&str> = lane.handlers.keys().copied().collect();
            // The lease is surely held until this moment (by this node's clock) plus the lease:
            // the database counts it from when the claim reached it, which is later.
            let claimed_at = Instant::now();
            let jobs = match shared
                .store
                .claim_jobs(
                    &shared.id,
                    &kinds,
                    free.min(100) as i64,
                    shared.timing.stale_after,
                )
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(lane = lane.name, error = %e, "claiming jobs failed; retrying shortly");
                    Vec::new()
                }
            };
            claimed_any |= !jobs.is_empty();
            for job in jobs {
                let Ok(permit) = lane.permits.clone().try_acquire_owned() else {
                    // Cannot happen (claimed no more than free permits); hand it back.
                    let _ = shared.store.release_jobs(&shared.id, &[job.id]).await;
                    continue;
                };
                let Some(handler) = lane.handlers.get(job.kind.as_str()).cloned() else {
                    continue;
                };
                // Held locked until the run's handle is recorded: the run cannot finish (and
                // take its entry away) before it is there.
                let mut running = shared.running();
                running.insert(
                    job.id,
                    Held {
                        run: None,
                        held_until: claimed_at + shared.timing.stale_after,
                        ended: false,
                    },
                );
                let id = job.id;
                let shared_ = shared.clone();
                let run = tasks.spawn(async move {
                    let shared = shared_;
                    let id = job.id;
                    let outcome = AssertUnwindSafe(handler.run(job))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| (*s).to_owned())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            Outcome::Fail {
                                error: format!("the handler panicked: {what}"),
                            }
                        });
                    finish(&shared, id, outcome).await;
                    drop(permit);
                });
                if let Some(held) = running.get_mut(&id) {
                    held.run = Some(run);
                }
            }
        }
        if !claimed_any {
            tokio::select! {
                _ = &mut signal => {}
                _ = tokio::time::sleep(shared.timing.idle_poll) => {}
                _ = stop.changed() => {}
                // A finished job frees a permit: look again.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }
}

async fn finish(shared: &Shared, id: JobId, outcome: Outcome) {
    if matches!(outcome, Outcome::Done) {
        // Completions are written in batches by the flusher; it removes the job from the
        // running set once written, so heartbeats keep covering it until then.
        if let Some(held) = shared.running().get_mut(&id) {
            held.ended = true;
        }
        let _ = shared.done.send(id);
        return;
    }
    // Out of the running set before the job goes back to the queue: once it is there, this
    // worker may claim it again, and that claim's entry must not be the one removed.
    shared.running().remove(&id);
    let result = match &outcome {
        Outcome::Done => return,
        Outcome::Retry { error, after } => {
            shared
                .store
                .retry_job(&shared.id, id, error, *after, false)
                .await
        }
        Outcome::Fail { error } => {
            shared
                .store
                .retry_job(&shared.id, id, error, Duration::ZERO, true)
                .await
        }
        Outcome::Defer { reason, after } => {
            shared.store.defer_job(&shared.id, id, reason, *after).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(job = %id, error = %e, "could not record a job's outcome; it will be rescued");
    }
}

/// Marks finished jobs done in batches. Ends when every sender is gone (the workers stopped).
async fn flush_completions(
    store: Store,
    worker: String,
    running: Arc<Mutex<HashMap<JobId, Held>>>,
    mut done: mpsc::UnboundedReceiver<JobId>,
) {
    let mut batch = Vec::new();
    while let Some(first) = done.recv().await {
        batch.push(first);
        while batch.len() < 500 {
            match done.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        if let Err(e) = store.complete_jobs(&worker, &batch).await {
            tracing::warn!(error = %e, jobs = batch.len(), "could not mark jobs done; they will be rescued and run again");
        }
        let mut running = lock_running(&running);
        for id in batch.drain(..) {
            running.remove(&id);
        }
    }
}

async fn housekeeping(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut beat = tokio::time::interval(shared.timing.heartbeat);
    let mut rescue = tokio::time::interval(shared.timing.stale_after / 2);
    loop {
        tokio::select! {
            _ = beat.tick() => shared.beat().await,
            _ = rescue.tick() => {
                match shared.store.rescue_jobs().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "rescued jobs whose worker stopped answering"),
                    Err(e) => tracing::warn!(error = %e, "rescuing jobs failed"),
                }
            }
            _ = stop.changed() => {
                // Keep beating while running jobs drain; the owner aborts this task at the end.
                if *stop.borrow() {
                    loop {
                        beat.tick().await;
                        shared.beat().await;
                    }
                }
            }
        }
    }
}
