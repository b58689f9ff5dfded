//! [`EmbeddingsClient`]: the `Embedder` port over the embeddings operation.

use std::ops::Range;

use ragspin_core::bytescan::ByteSet;
use ragspin_core::{Clock, Embedder, Embedding, Error, HttpClient, Result, Timer, Usage};
use serde::{Deserialize, Serialize};

use crate::config::{AzureConfig, EmbeddingLimits, accepts_dimensions};
use crate::transport::{CallStats, Operation, Target, Transport};

/// Estimates the tokens of a text; used for batching and for the per-input
/// limit. The default is [`estimate_tokens`].
pub type TokenEstimator = fn(&str) -> u32;

/// A deliberately simple token estimate: one token per 4 bytes, rounded up,
/// at least 1. Close for English with OpenAI's tokenizers; it undercounts
/// scripts with many tokens per byte, so keep the limits below the real ones.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4).max(1)).unwrap_or(u32::MAX)
}

/// Vectors and the tokens they cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in input order.
    pub vectors: Vec<Embedding>,
    /// `prompt_tokens` summed over the requests (`completion_tokens` is 0).
    pub usage: Usage,
    /// HTTP requests the batches needed (without retries).
    pub batches: usize,
}

/// Embeds texts with one Azure OpenAI (or OpenAI-compatible) deployment.
///
/// Inputs are split into batches of at most `max_inputs` texts and
/// `max_request_tokens` estimated tokens ([`EmbeddingsClient::plan_batches`]),
/// sent one after the other; each batch is retried on its own
/// ([`crate::RetryPolicy`]). Results are matched to inputs by `data[i].index`,
/// and the answer is checked (every index exactly once, one vector length).
pub struct EmbeddingsClient<H, C, T> {
    transport: Transport<H, C, T>,
    target: Target,
    what: String,
    cache_model: String,
    dimensions: Option<u32>,
    limits: EmbeddingLimits,
    timeout_ms: u64,
    estimate: TokenEstimator,
}

#[derive(Serialize)]
struct EmbeddingsBody<'a> {
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    /// Always `base64`: each vector comes as its little-endian `f32` bytes,
    /// a quarter of the JSON text of its numbers and nothing to parse as
    /// floats (the 1.8M floats of a 10 MB ingest were a tenth of its own
    /// time in wasm). A server that ignores it and sends numbers works too.
    encoding_format: &'static str,
}

/// The JSON of [`EmbeddingsBody`], byte for byte as `serde_json` writes it,
/// with the inputs escaped by [`push_json_string`]: a 10 MB ingest sends
/// 10 MB of text, and `serde_json`'s byte-at-a-time escaping of it took
/// ≈ 25 ms in wasm.
fn embeddings_body(
    input: &[String],
    model: Option<&str>,
    dimensions: Option<u32>,
) -> Result<Vec<u8>> {
    // The other fields through serde: `{"model":...,"encoding_format":...}`.
    let rest = serde_json::to_vec(&EmbeddingsBody {
        input: &[],
        model,
        dimensions,
        encoding_format: "base64",
    })
    .map_err(|e| Error::Internal(format!("serialize embeddings request: {e}")))?;
    let prefix = b"{\"input\":[]";
    let Some(tail) = rest.strip_prefix(prefix.as_slice()) else {
        return Err(Error::Internal(
            "embeddings request: unexpected field order".into(),
        ));
    };
    let text: usize = input.iter().map(|t| t.len() + 3).sum();
    let mut out = Vec::with_capacity(text + rest.len() + 16);
    out.extend_from_slice(b"{\"input\":[");
    for (k, text) in input.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        push_json_string(&mut out, text);
    }
    out.push(b']');
    out.extend_from_slice(tail);
    Ok(out)
}

/// `text` as a JSON string, escaped as `serde_json` does (`\"`, `\\`, the
/// short forms `\b \f \n \r \t`, other controls as `\u00xx`), copying
/// the runs between escapes whole (found 16 bytes at a time, see
/// [`ragspin_core::bytescan`]).
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const ESCAPED: ByteSet = ByteSet::new(0x20, [b'"', b'\\', b'"']);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut run = 0;
    loop {
        let i = ESCAPED.find(bytes, run);
        out.extend_from_slice(&bytes[run..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
        run = i + 1;
    }
    out.push(b'"');
}

#[derive(Deserialize)]
struct EmbeddingsAnswer {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<EmbeddingUsage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Encoded,
}

/// `data[i].embedding` as `encoding_format` `float` or `base64` sends it.
/// Told apart by the JSON type as it is read (an `untagged` enum buffered
/// every value and copied each base64 string twice: 8 µs per embedding in
/// wasm); a base64 string is decoded where it lies in the answer, not
/// copied first. A decoding error waits for the item's index to be reported.
enum Encoded {
    Floats(Vec<f32>),
    Base64(std::result::Result<Vec<f32>, String>),
}

impl<'de> Deserialize<'de> for Encoded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Encoded;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of numbers or a base64 string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<Encoded, E> {
                Ok(Encoded::Base64(decode_base64_f32(text)))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Encoded, A::Error> {
                let mut floats = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(8192));
                while let Some(x) = seq.next_element::<f32>()? {
                    floats.push(x);
                }
                Ok(Encoded::Floats(floats))
            }
        }
        d.deserialize_any(Either)
    }
}

/// Little-endian `f32`s from base64 (the `base64` encoding format).
fn decode_base64_f32(text: &str) -> std::result::Result<Vec<f32>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| format!("embedding is not base64: {e}"))?;
    ragspin_core::decode_f32(&bytes).ok_or_else(|| {
        format!(
            "base64 embedding of {} bytes is not a whole number of f32s",
            bytes.len()
        )
    })
}

impl Encoded {
    fn decode(self) -> std::result::Result<Vec<f32>, String> {
        match self {
            Encoded::Floats(v) => Ok(v),
            Encoded::Base64(decoded) => decoded,
        }
    }
}

#[derive(Deserialize)]
struct EmbeddingUsage {
    #[serde(default)]
    prompt_tokens: u32,
}

impl<H: HttpClient, C: Clock, T: Timer> EmbeddingsClient<H, C, T> {
    /// A client for `config.embedding_deployment` over the given ports.
    pub fn new(config: &AzureConfig, http: H, clock: C, timer: T) -> Self {
        let deployment = &config.embedding_deployment;
        let dimensions = config
            .embedding_dimensions
            .filter(|_| accepts_dimensions(&config.embedding_model));
        Self {
            transport: Transport::new(config, http, clock, timer),
            target: Target::new(config, deployment, Operation::Embeddings),
            what: format!("embeddings (deployment {deployment:?})"),
            cache_model: config.embedding_cache_model(),
            dimensions,
            limits: config.embedding_limits,
            timeout_ms: config.embedding_timeout_ms,
            estimate: estimate_tokens,
        }
    }

    /// Use another token estimator (e.g. a real tokenizer).
    #[must_use]
    pub fn with_token_estimator(mut self, estimate: TokenEstimator) -> Self {
        self.estimate = estimate;
        self
    }

    /// Seed the backoff jitter (the default seed is the clock's time).
    #[must_use]
    pub fn with_jitter_seed(self, seed: u64) -> Self {
        self.transport.reseed(seed);
        self
    }

    /// Counters since creation.
    pub fn stats(&self) -> CallStats {
        self.transport.stats()
    }

    /// The HTTP port (tests inspect the requests sent).
    pub fn http(&self) -> &H {
        &self.transport.http
    }

    /// The timer port (tests inspect the waits).
    pub fn timer(&self) -> &T {
        &self.transport.timer
    }

    /// Split `texts` into request-sized, consecutive ranges.
    ///
    /// An empty text, or one over `max_input_tokens`, is
    /// [`Error::Validation`] naming its position (`texts[3]`); nothing is sent.
    pub fn plan_batches(&self, texts: &[String]) -> Result<Vec<Range<usize>>> {
        let mut batches = Vec::new();
        let mut start = 0;
        let mut tokens: u64 = 0;
        for (i, text) in texts.iter().enumerate() {
            if text.is_empty() {
                return Err(Error::validation(
                    format!("texts[{i}]"),
                    "must not be empty (Azure OpenAI rejects empty inputs)",
                ));
            }
            let estimate = (self.estimate)(text);
            if estimate > self.limits.max_input_tokens {
                return Err(Error::validation(
                    format!("texts[{i}]"),
                    format!(
                        "about {estimate} tokens; the model accepts at most {} per input",
                        self.limits.max_input_tokens
                    ),
                ));
            }
            let full = i - start >= self.limits.max_inputs
                || tokens + u64::from(estimate) > u64::from(self.limits.max_request_tokens);
            if full && i > start {
                batches.push(start..i);
                start = i;
                tokens = 0;
            }
            tokens += u64::from(estimate);
        }
        if start < texts.len() {
            batches.push(start..texts.len());
        }
        Ok(batches)
    }

    /// The request for one batch (pure; no validation).
    pub fn request_for(&self, batch: &[String]) -> Result<ragspin_core::HttpRequest> {
        let body = embeddings_body(batch, self.target.body_model.as_deref(), self.dimensions)?;
        Ok(self.target.post(body, "application/json"))
    }

    /// Embed `texts`, reporting usage. No texts, no request.
    pub async fn embed_with_usage(&self, texts: &[String]) -> Result<Embeddings> {
        let batches = self.plan_batches(texts)?;
        let mut vectors = Vec::with_capacity(texts.len());
        let mut usage = Usage::default();
        for range in &batches {
            let batch = &texts[range.clone()];
            let request = self.request_for(batch)?;
            let response = self
                .transport
                .send(&self.what, &self.target, request, self.timeout_ms)
                .await?;
            let (batch_vectors, tokens) = self
                .parse(batch.len(), &response.body)
                .map_err(|e| self.transport.fail(e))?;
            vectors.extend(batch_vectors);
            usage.prompt_tokens = usage.prompt_tokens.saturating_add(tokens);
            self.transport.record(|s| {
                s.prompt_tokens += u64::from(tokens);
                s.embedded_inputs += batch.len() as u64;
            });
        }
        if let Some(first) = vectors.first() {
            let len = first.len();
            if let Some(other) = vectors.iter().find(|v| v.len() != len) {
                return Err(self.transport.fail(Error::Upstream(format!(
                    "{}: vectors of different lengths across batches ({len} and {})",
                    self.what,
                    other.len()
                ))));
            }
        }
        Ok(Embeddings {
            vectors,
            usage,
            batches: batches.len(),
        })
    }

    fn parse(&self, expected: usize, body: &[u8]) -> Result<(Vec<Embedding>, u32)> {
        let malformed =
            |why: String| Error::Upstream(format!("{}: malformed answer: {why}", self.what));
        let answer: EmbeddingsAnswer = serde_json::from_slice(body)
            .map_err(|e| malformed(self.transport.scrub(&e.to_string())))?;
        if answer.data.len() != expected {
            return Err(malformed(format!(
                "{} vectors for {expected} inputs",
                answer.data.len()
            )));
        }
        let mut slots: Vec<Option<Embedding>> = vec![None; expected];
        for item in answer.data {
            let slot = slots
                .get_mut(item.index)
                .ok_or_else(|| malformed(format!("index {} out of range", item.index)))?;
            if slot.is_some() {
                return Err(malformed(format!("index {} appears twice", item.index)));
            }
            let embedding = item
                .embedding
                .decode()
                .map_err(|why| malformed(format!("{why} at index {}", item.index)))?;
            if embedding.is_empty() {
                return Err(malformed(format!("empty vector at index {}", item.index)));
            }
            if let Some(d) = self.dimensions
                && embedding.len() != d as usize
            {
                return Err(malformed(format!(
                    "{} dimensions at index {}, asked for {d}",
                    embedding.len(),
                    item.index
                )));
            }
            *slot = Some(embedding);
        }
        let vectors: Vec<Embedding> = slots.into_iter().flatten().collect();
        if let Some(first) = vectors.first()
            && vectors.iter().any(|v| v.len() != first.len())
        {
            return Err(malformed("vectors of different lengths".into()));
        }
        let tokens = answer.usage.map_or(0, |u| u.prompt_tokens);
        Ok((vectors, tokens))
    }
}

impl<H: HttpClient, C: Clock, T: Timer> Embedder for EmbeddingsClient<H, C, T> {
    /// The model, plus `@dims` when a vector length is requested.
    fn model(&self) -> &str {
        &self.cache_model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        Ok(self.embed_with_usage(texts).await?.vectors)
    }

    /// One range per request: up to the input-count limit and the
    /// per-request token budget ([`Self::plan_batches`]).
    fn plan(&self, texts: &[String]) -> Result<Vec<Range<usize>>> {
        self.plan_batches(texts)
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn the_request_body_is_what_serde_json_writes() {
        let pieces = [
            "a",
            "plain words here, long enough",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "漢字",
            "😀",
            "</script>",
            "\u{2028}",
        ];
        let mut texts = ragspin_testkit::PieceTexts::new(&pieces, 40, 11);
        for round in 0..3000 {
            let input: Vec<String> = (0..texts.below(4) + 1).map(|_| texts.next_text()).collect();
            let model = (round % 2 == 0).then_some("text-embedding-3-small");
            let dimensions = (round % 3 == 0).then_some(256);
            let expected = serde_json::to_vec(&EmbeddingsBody {
                input: &input,
                model,
                dimensions,
                encoding_format: "base64",
            })
            .unwrap();
            let got = embeddings_body(&input, model, dimensions).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
