//! Recorded embeddings: the fake replays vectors a real model produced, so
//! retrieval can be evaluated with real semantics and no network.
//!
//! A recording is a JSON file:
//!
//! ```json
//! {"model": "sentence-transformers/all-MiniLM-L6-v2",
//!  "deployment": "all-minilm-l6-v2",
//!  "dimensions": 384,
//!  "encoding": "f16le-base64",
//!  "source": "how it was recorded",
//!  "vectors": {"<lowercase hex SHA-256 of the UTF-8 text>": "<base64 of the vector>"}}
//! ```
//!
//! `encoding` is `f16le-base64` (IEEE half floats, little-endian: half the
//! size; on all-MiniLM-L6-v2 vectors the cosine to the f32 original was
//! above 0.9999999) or `f32le-base64`. Texts are
//! keyed by their SHA-256 — the same hash the chunker gives a chunk
//! (`ChunkDraft::content_hash`) — so the file holds no text.
//!
//! With [`crate::FakeOptions::with_recording`] the fake serves the
//! recording's deployment from it. A text the recording lacks is a *miss*:
//! counted in [`crate::Stats::recording_misses`] and, by [`OnMiss`],
//! answered 400 `RecordingMiss` (the default) or with the fake's hashed
//! embedding ([`crate::model::embed`]) of the recording's length.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What the fake does with a text the recording lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMiss {
    /// Answer 400 `RecordingMiss` naming the text's hash.
    #[default]
    Error,
    /// Serve [`crate::model::embed`] of the recording's length.
    Hashed,
}

impl std::str::FromStr for OnMiss {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "error" => Ok(Self::Error),
            "hashed" => Ok(Self::Hashed),
            other => bail!("unknown miss policy {other:?}: use error or hashed"),
        }
    }
}

/// Vectors recorded from one embedding model, keyed by [`Recording::key`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The model that produced the vectors.
    pub model: String,
    /// The deployment name the fake serves them under.
    pub deployment: String,
    /// Vector length.
    pub dimensions: usize,
    /// Where it was loaded from (for messages).
    pub origin: String,
    vectors: HashMap<String, Vec<f32>>,
}

#[derive(Deserialize)]
struct File {
    model: String,
    deployment: String,
    dimensions: usize,
    encoding: String,
    vectors: HashMap<String, String>,
}

impl Recording {
    /// The key of `text`: lowercase hex SHA-256 of its UTF-8 bytes.
    pub fn key(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Read a recording file.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the embeddings recording {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse a recording; `origin` names it in messages.
    pub fn parse(json: &str, origin: &str) -> anyhow::Result<Self> {
        let file: File = serde_json::from_str(json)
            .with_context(|| format!("{origin}: not an embeddings recording"))?;
        let width = match file.encoding.as_str() {
            "f16le-base64" => 2,
            "f32le-base64" => 4,
            other => bail!("{origin}: unknown encoding {other:?} (f16le-base64 or f32le-base64)"),
        };
        if file.dimensions == 0 {
            bail!("{origin}: dimensions must be positive");
        }
        let mut vectors = HashMap::with_capacity(file.vectors.len());
        for (key, encoded) in file.vectors {
            if key.len() != 64 || !key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                bail!("{origin}: key {key:?} is not a lowercase hex SHA-256");
            }
            let bytes = STANDARD
                .decode(encoded.as_bytes())
                .with_context(|| format!("{origin}: vector {key} is not base64"))?;
            if bytes.len() != file.dimensions * width {
                bail!(
                    "{origin}: vector {key} has {} bytes, expected {} ({} × {width})",
                    bytes.len(),
                    file.dimensions * width,
                    file.dimensions
                );
            }
            let vector: Vec<f32> = if width == 2 {
                bytes
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect()
            } else {
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            if vector.iter().any(|x| !x.is_finite()) {
                bail!("{origin}: vector {key} is not finite");
            }
            vectors.insert(key, vector);
        }
        Ok(Self {
            model: file.model,
            deployment: file.deployment,
            dimensions: file.dimensions,
            origin: origin.to_owned(),
            vectors,
        })
    }

    /// The recorded vector of `text`.
    pub fn get(&self, text: &str) -> Option<&[f32]> {
        self.vectors.get(&Self::key(text)).map(Vec::as_slice)
    }

    /// How many vectors it holds.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
}

/// An IEEE 754 half float's value.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits >> 15 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        0x1f if fraction == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(encoding: &str, dims: usize, vectors: &[(&str, Vec<u8>)]) -> String {
        let vectors: serde_json::Map<String, serde_json::Value> = vectors
            .iter()
            .map(|(text, bytes)| (Recording::key(text), STANDARD.encode(bytes).into()))
            .collect();
        serde_json::json!({"model": "m", "deployment": "d", "dimensions": dims,
            "encoding": encoding, "vectors": vectors})
        .to_string()
    }

    #[test]
    fn decodes_half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3800), 0.5);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn keys_texts_by_sha256() {
        assert_eq!(
            Recording::key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn replays_f16_and_f32_vectors_by_text() {
        let half = file(
            "f16le-base64",
            2,
            &[("hello", vec![0x00, 0x3c, 0x00, 0xc0])],
        );
        let r = Recording::parse(&half, "half").unwrap();
        assert_eq!(r.get("hello"), Some(&[1.0f32, -2.0][..]));
        assert_eq!(r.get("hello "), None);
        assert_eq!((r.len(), r.dimensions, r.deployment.as_str()), (1, 2, "d"));
        let mut bytes = 0.25f32.to_le_bytes().to_vec();
        bytes.extend(0.75f32.to_le_bytes());
        let full = file("f32le-base64", 2, &[("x", bytes)]);
        let r = Recording::parse(&full, "full").unwrap();
        assert_eq!(r.get("x"), Some(&[0.25f32, 0.75][..]));
    }

    #[test]
    fn rejects_malformed_recordings_naming_the_problem() {
        let short = file("f16le-base64", 3, &[("a", vec![0; 4])]);
        let e = Recording::parse(&short, "r.json").unwrap_err().to_string();
        assert!(e.contains("r.json") && e.contains("expected 6"), "{e}");
        let e = Recording::parse(&file("bf16", 1, &[]), "r").unwrap_err();
        assert!(e.to_string().contains("unknown encoding"), "{e}");
        let bad_key = r#"{"model":"m","deployment":"d","dimensions":1,"encoding":"f32le-base64","vectors":{"nope":"AAAAAA=="}}"#;
        assert!(Recording::parse(bad_key, "r").is_err());
        let e = Recording::load("/nonexistent/recording.json").unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/recording.json"),
            "{e:#}"
        );
        assert_eq!("hashed".parse::<OnMiss>().unwrap(), OnMiss::Hashed);
        assert!("maybe".parse::<OnMiss>().is_err());
    }
}
