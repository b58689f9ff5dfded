//! The pure-Rust fakes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ragspin_core::ports::{next_counter, validate_variable_name};
use ragspin_core::{
    ChatCompletion, ChatModel, ChatRequest, Chunk, Clock, Config, Embedder, Embedding, Error,
    HttpClient, HttpRequest, HttpResponse, KvStore, Result, Retriever, ScoredChunk, SearchQuery,
};

/// Lock ignoring poisoning: a panicking test must not cascade into others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory [`KvStore`].
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
    failure: Mutex<Option<String>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `Some(message)`, every operation fails with
    /// `Error::Storage(message)`; with `None`, the store works again.
    pub fn fail_with(&self, message: Option<&str>) {
        *lock(&self.failure) = message.map(str::to_owned);
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        lock(&self.entries).clone()
    }

    fn check(&self) -> Result<()> {
        match lock(&self.failure).as_ref() {
            Some(message) => Err(Error::Storage(message.clone())),
            None => Ok(()),
        }
    }
}

impl KvStore for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check()?;
        Ok(lock(&self.entries).get(key).cloned())
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.check()?;
        lock(&self.entries).insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.check()?;
        lock(&self.entries).remove(key);
        Ok(())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.check()?;
        let mut entries = lock(&self.entries);
        let next = next_counter(key, entries.get(key).map(Vec::as_slice), delta)?;
        entries.insert(key.to_owned(), next.to_string().into_bytes());
        Ok(next)
    }
}

/// A [`Config`] over a map: an absent name is undefined.
#[derive(Debug, Default)]
pub struct MapConfig {
    values: Mutex<HashMap<String, String>>,
    failure: Mutex<Option<String>>,
}

impl MapConfig {
    /// No variables defined.
    pub fn new() -> Self {
        Self::default()
    }

    /// Define `name` (builder style).
    #[must_use]
    pub fn with(self, name: &str, value: &str) -> Self {
        self.set(name, value);
        self
    }

    /// Define or redefine `name`.
    pub fn set(&self, name: &str, value: &str) {
        lock(&self.values).insert(name.to_owned(), value.to_owned());
    }

    /// Make `name` undefined.
    pub fn remove(&self, name: &str) {
        lock(&self.values).remove(name);
    }

    /// With `Some(message)`, every lookup fails like a broken provider
    /// (`Error::Unavailable`).
    pub fn fail_with(&self, message: Option<&str>) {
        *lock(&self.failure) = message.map(str::to_owned);
    }
}

impl Config for MapConfig {
    async fn get(&self, name: &str) -> Result<Option<String>> {
        validate_variable_name(name)?;
        if let Some(message) = lock(&self.failure).as_ref() {
            return Err(Error::Unavailable(message.clone()));
        }
        Ok(lock(&self.values).get(name).cloned())
    }
}

/// A [`Clock`] that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_unix_ms`.
    pub fn new(now_unix_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_unix_ms),
        }
    }
    /// Set the time.
    pub fn set(&self, now_unix_ms: u64) {
        self.now_ms.store(now_unix_ms, Ordering::SeqCst);
    }
    /// Move the time forward.
    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// An [`HttpClient`] that answers from a queue and records what it was sent.
///
/// An empty queue answers `Error::Upstream("no scripted response")`.
#[derive(Debug, Default)]
pub struct ScriptedHttp {
    responses: Mutex<VecDeque<Result<HttpResponse>>>,
    requests: Mutex<Vec<HttpRequest>>,
}

impl ScriptedHttp {
    /// Nothing queued.
    pub fn new() -> Self {
        Self::default()
    }
    /// Queue a response.
    pub fn push(&self, response: HttpResponse) {
        lock(&self.responses).push_back(Ok(response));
    }
    /// Queue a transport failure.
    pub fn push_error(&self, error: Error) {
        lock(&self.responses).push_back(Err(error));
    }
    /// The requests sent so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        lock(&self.requests).clone()
    }
}

impl HttpClient for ScriptedHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        lock(&self.requests).push(request);
        lock(&self.responses)
            .pop_front()
            .unwrap_or_else(|| Err(Error::Upstream("no scripted response".into())))
    }
}

/// A deterministic [`Embedder`]: feature hashing of lowercase words into
/// `dimensions` signed buckets, L2-normalised. Texts sharing words get a
/// positive cosine similarity; the empty text is the zero vector.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dimensions: usize,
    model: String,
}

impl HashEmbedder {
    /// An embedder producing `dimensions`-long vectors (at least 1).
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions: dimensions.max(1),
            model: format!("hash-{}", dimensions.max(1)),
        }
    }

    /// The vector length.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Embed one text.
    pub fn embed_one(&self, text: &str) -> Embedding {
        let mut v = vec![0f32; self.dimensions];
        for word in words(text) {
            let h = fnv1a(word.as_bytes());
            // usize is at least 32 bits on every target; the modulo keeps it in range.
            let bucket = (h % self.dimensions as u64) as usize;
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[bucket] += sign;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Embedder for HashEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// A [`ChatModel`] that answers from a queue and records what it was asked.
///
/// An empty queue answers `Error::Upstream("no scripted completion")`.
#[derive(Debug, Default)]
pub struct ScriptedChat {
    completions: Mutex<VecDeque<Result<ChatCompletion>>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl ScriptedChat {
    /// Nothing queued.
    pub fn new() -> Self {
        Self::default()
    }
    /// Queue an answer.
    pub fn push(&self, completion: ChatCompletion) {
        lock(&self.completions).push_back(Ok(completion));
    }
    /// Queue a failure.
    pub fn push_error(&self, error: Error) {
        lock(&self.completions).push_back(Err(error));
    }
    /// The requests received so far.
    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }
}

impl ChatModel for ScriptedChat {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatCompletion> {
        lock(&self.requests).push(request.clone());
        lock(&self.completions)
            .pop_front()
            .unwrap_or_else(|| Err(Error::Upstream("no scripted completion".into())))
    }
}

/// A [`Retriever`] over chunks held in memory, per index.
///
/// Score = number of distinct query words found in the chunk; chunks scoring
/// 0 are left out; ties are broken by chunk id so results are deterministic.
#[derive(Debug, Default)]
pub struct MemoryRetriever {
    chunks: Mutex<BTreeMap<String, Vec<Chunk>>>,
}

impl MemoryRetriever {
    /// No chunks.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a chunk to `index`.
    pub fn insert(&self, index: &str, chunk: Chunk) {
        lock(&self.chunks)
            .entry(index.to_owned())
            .or_default()
            .push(chunk);
    }
}

impl Retriever for MemoryRetriever {
    async fn retrieve(&self, query: &SearchQuery) -> Result<Vec<ScoredChunk>> {
        let mut query_words: Vec<String> = words(&query.text).collect();
        query_words.sort_unstable();
        query_words.dedup();
        let chunks = lock(&self.chunks);
        let mut scored: Vec<ScoredChunk> = chunks
            .get(&query.index)
            .into_iter()
            .flatten()
            .filter_map(|chunk| {
                let chunk_words: Vec<String> = words(&chunk.text).collect();
                let hits = query_words
                    .iter()
                    .filter(|w| chunk_words.contains(w))
                    .count();
                (hits > 0).then(|| ScoredChunk {
                    chunk: chunk.clone(),
                    score: hits as f32,
                })
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.chunk.id.cmp(&b.chunk.id))
        });
        scored.truncate(query.top_k);
        Ok(scored)
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
