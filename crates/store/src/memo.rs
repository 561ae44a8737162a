//! Short-lived memory of values that are costly to read on every request (an operator's
//! current role, a list's total). A value is served only while the generation of its topic is
//! unchanged — any committed write to that topic in this process forgets it at once — and for
//! at most a second, which bounds how stale it can be when another node wrote.

use crate::db::{Generations, Topic};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 4096;

pub(crate) struct Memo<K, V> {
    topic: Topic,
    generations: Arc<Generations>,
    entries: Mutex<HashMap<K, (u64, Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub(crate) fn new(topic: Topic, generations: Arc<Generations>) -> Self {
        Self {
            topic,
            generations,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered value, or `compute`'s, which is remembered under the generation read
    /// before computing it.
    pub(crate) async fn get_or<E, F>(&self, key: K, compute: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let generation = self.generations.current(self.topic);
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((g, at, value)) = entries.get(&key)
                && *g == generation
                && at.elapsed() < TTL
            {
                return Ok(value.clone());
            }
        }
        let value = compute.await?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, Instant::now(), value.clone()));
        Ok(value)
    }
}
