//! Sentence embeddings in process: a BERT-family model (all-MiniLM-L6-v2 by default) read
//! from a directory holding `config.json`, `tokenizer.json` and `model.safetensors`, run on
//! the CPU with candle, its token vectors mean-pooled over the attention mask and scaled to
//! unit length, so a dot product is the cosine similarity.

use crate::AssistantError;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use std::path::Path;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Longest input in tokens: FAQ questions and buyer messages are short, and attention costs
/// the square of the length.
const MAX_TOKENS: usize = 128;

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dimension: usize,
    name: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dimension", &self.dimension)
            .finish()
    }
}

fn model_error(dir: &Path, what: impl std::fmt::Display) -> AssistantError {
    AssistantError::Model(format!("{}: {what}", dir.display()))
}

impl Embedder {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path) -> Result<Self, AssistantError> {
        let read = |file: &str| {
            std::fs::read(dir.join(file)).map_err(|e| model_error(dir, format!("{file}: {e}")))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| model_error(dir, format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| model_error(dir, format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_error(dir, format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        let weights =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DTYPE, &Device::Cpu)
                .map_err(|e| model_error(dir, format!("model.safetensors: {e}")))?;
        let model = BertModel::load(weights, &config)
            .map_err(|e| model_error(dir, format!("model.safetensors: {e}")))?;
        let name = dir
            .file_name()
            .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            model,
            tokenizer,
            dimension: config.hidden_size,
            name,
        })
    }

    /// Length of the vectors.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The model's name (its directory's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One unit vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AssistantError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let failed = |e: &dyn std::fmt::Display| AssistantError::Model(format!("embedding: {e}"));
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| failed(&e))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let device = &self.model.device;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (rows, width), device)?;
            let mask = Tensor::from_vec(mask, (rows, width), device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(|e| failed(&e))
    }
}

/// Dot product of two vectors of the same length (the cosine when both are unit vectors).
/// Eight running sums, so that the compiler can use SIMD lanes (one sum would fix the order
/// of the additions).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(b.len().min(a8.len()));
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_is_the_plain_sum_of_products() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((super::dot(&a, &b) - plain).abs() < 1e-4);
    }
}
