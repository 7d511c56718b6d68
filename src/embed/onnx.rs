//! The ONNX Runtime backend: one session, inputs discovered from the graph, pooled outputs.

use std::borrow::Cow;
use std::path::PathBuf;

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, ValueType};

use super::runtime::{self, Device, ExecutionProvider};
use super::{graph_rewrite, pooling, EmbedError};
use crate::model::{ModelDir, PaddingSide, Pooling};

/// The part of akidb that touches a model: a batch of token ids in, one pooled vector per text out.
/// Runs on the inference thread only, hence `&mut self` and `Send`.
pub trait Backend: Send {
    /// Pools (but does not normalize) one vector of the model's full width per text.
    fn embed(&mut self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn execution_provider(&self) -> ExecutionProvider;
}

/// How to load an ONNX model.
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    pub ort_library: PathBuf,
    pub device: Device,
    /// Intra-op threads; `None` takes the manifest's measured default, else 1.
    pub intra_threads: Option<usize>,
    /// CoreML compiles models into this cache directory.
    pub cache_dir: PathBuf,
    /// Run the model file exactly as it is, without akidb's exact load-time rewrites
    /// (see `graph_rewrite`).
    pub keep_graph: bool,
    /// Intra-op threads of the interactive lane's own session (queries, small embedding
    /// requests); 0: no interactive lane, interactive work goes first in the bulk lane.
    pub interactive_threads: usize,
    /// Let ONNX Runtime's intra-op worker threads spin while waiting for work (its default).
    /// Spinning threads burn a core that another session on the same machine could use.
    pub spinning: bool,
}

/// One model input and how akidb fills it.
#[derive(Debug, Clone)]
enum Feed {
    InputIds,
    AttentionMask,
    /// BERT segment ids: all zeros for single-text inputs.
    TokenTypeIds,
    /// cumsum(mask) - 1, clamped at 0: correct positions under left padding.
    PositionIds,
    /// Decoder KV cache fed empty: `[batch, kv_heads, 0, head_dim]`.
    EmptyPast { kv_heads: i64, head_dim: i64 },
}

pub struct OnnxBackend {
    session: Session,
    feeds: Vec<(String, Feed)>,
    output: String,
    hidden: usize,
    pooling: Pooling,
    padding_side: PaddingSide,
    pad_id: i64,
    provider: ExecutionProvider,
}

impl OnnxBackend {
    pub fn load(model: &ModelDir, options: &OnnxOptions, pad_id: u32) -> Result<Self, EmbedError> {
        let source = ModelSource::prepare(model.model_path(), options.keep_graph, &model.manifest.name)?;
        Self::load_from(model, &source, options, pad_id)
    }

    /// `load` from a model already read (and rewritten) by `ModelSource::prepare`, so that
    /// several sessions of one model read and rewrite the file once.
    pub(crate) fn load_from(model: &ModelDir, source: &ModelSource, options: &OnnxOptions, pad_id: u32) -> Result<Self, EmbedError> {
        let env = runtime::environment(&options.ort_library)?;
        let threads = options.intra_threads.or(model.manifest.intra_threads).unwrap_or(1);
        let name = model.manifest.name.clone();
        let (session, provider) = open_session(&env, source, options, threads)?;
        tracing::debug!(model = %name, threads, spinning = options.spinning, "session options");
        let feeds = session
            .inputs()
            .iter()
            .map(|input| Ok((input.name().to_owned(), feed_for(input.name(), input.dtype(), &name)?)))
            .collect::<Result<Vec<_>, EmbedError>>()?;
        if !feeds.iter().any(|(_, f)| matches!(f, Feed::InputIds)) {
            return Err(EmbedError::UnsupportedInput { model: name, input: "(no input_ids input)".into() });
        }
        let output = session
            .outputs()
            .iter()
            .find(|o| o.name() == "last_hidden_state")
            .or_else(|| session.outputs().first())
            .ok_or_else(|| EmbedError::ModelMismatch { model: name.clone(), problem: "the graph has no outputs".into() })?;
        let hidden = output.dtype().tensor_shape().and_then(|s| s.last().copied()).unwrap_or(-1);
        if hidden >= 0 && hidden as usize != model.manifest.dims {
            return Err(EmbedError::ModelMismatch {
                model: name,
                problem: format!("output {} has width {hidden}, manifest says dims {}", output.name(), model.manifest.dims),
            });
        }
        tracing::info!(model = %name, provider = provider.name(), intra_threads = threads, "model loaded");
        Ok(OnnxBackend {
            output: output.name().to_owned(),
            session,
            feeds,
            hidden: model.manifest.dims,
            pooling: model.manifest.pooling,
            padding_side: model.manifest.padding_side,
            pad_id: i64::from(pad_id),
            provider,
        })
    }

    fn inputs(&self, batch: &[&[u32]]) -> Result<(Vec<(Cow<'static, str>, SessionInputValue<'static>)>, Vec<i64>, usize), EmbedError> {
        let rows = batch.len();
        let seq = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; rows * seq];
        let mut mask = vec![0i64; rows * seq];
        for (r, text) in batch.iter().enumerate() {
            let start = match self.padding_side {
                PaddingSide::Right => 0,
                PaddingSide::Left => seq - text.len(),
            };
            for (i, &id) in text.iter().enumerate() {
                ids[r * seq + start + i] = i64::from(id);
                mask[r * seq + start + i] = 1;
            }
        }
        let shape = [rows as i64, seq as i64];
        let int_tensor = |data: Vec<i64>| -> Result<SessionInputValue<'static>, EmbedError> {
            Ok(Tensor::from_array((shape, data)).map_err(EmbedError::runtime("create an input tensor"))?.into())
        };
        let mut values = Vec::with_capacity(self.feeds.len());
        for (name, feed) in &self.feeds {
            let value = match feed {
                Feed::InputIds => int_tensor(ids.clone())?,
                Feed::AttentionMask => int_tensor(mask.clone())?,
                Feed::TokenTypeIds => int_tensor(vec![0; rows * seq])?,
                Feed::PositionIds => int_tensor(position_ids(&mask, seq))?,
                Feed::EmptyPast { kv_heads, head_dim } => Tensor::<f32>::from_array(([rows as i64, *kv_heads, 0, *head_dim], Vec::new()))
                    .map_err(EmbedError::runtime("create an empty past tensor"))?
                    .into(),
            };
            values.push((Cow::Owned(name.clone()), value));
        }
        Ok((values, mask, seq))
    }
}

impl Backend for OnnxBackend {
    fn embed(&mut self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if batch.iter().any(|ids| ids.is_empty()) {
            return Err(EmbedError::InvalidInput("a text tokenized to zero tokens".into()));
        }
        let (inputs, mask, seq) = self.inputs(batch)?;
        let outputs = self.session.run(inputs).map_err(EmbedError::runtime("run the model"))?;
        let value = outputs.get(self.output.as_str()).ok_or_else(|| EmbedError::Runtime {
            action: "read the model output",
            message: format!("output {} missing", self.output),
        })?;
        let (shape, states) = value.try_extract_tensor::<f32>().map_err(EmbedError::runtime("read the model output"))?;
        let expected = [batch.len() as i64, seq as i64, self.hidden as i64];
        if shape[..] != expected {
            return Err(EmbedError::Runtime {
                action: "read the model output",
                message: format!("expected shape {expected:?}, got {:?}", &shape[..]),
            });
        }
        let per_text = seq * self.hidden;
        Ok((0..batch.len())
            .map(|r| pooling::pool(&states[r * per_text..(r + 1) * per_text], &mask[r * seq..(r + 1) * seq], self.hidden, self.pooling))
            .collect())
    }

    fn execution_provider(&self) -> ExecutionProvider {
        self.provider
    }
}

fn position_ids(mask: &[i64], seq: usize) -> Vec<i64> {
    let mut positions = vec![0i64; mask.len()];
    for (row_mask, row_pos) in mask.chunks(seq.max(1)).zip(positions.chunks_mut(seq.max(1))) {
        let mut running = 0i64;
        for (m, p) in row_mask.iter().zip(row_pos.iter_mut()) {
            running += m;
            *p = (running - 1).max(0);
        }
    }
    positions
}

fn feed_for(name: &str, dtype: &ValueType, model: &str) -> Result<Feed, EmbedError> {
    let unsupported = || EmbedError::UnsupportedInput { model: model.to_owned(), input: format!("{name}: {dtype}") };
    let ty = dtype.tensor_type().ok_or_else(unsupported)?;
    match name {
        "input_ids" | "attention_mask" | "token_type_ids" | "position_ids" if ty != TensorElementType::Int64 => Err(unsupported()),
        "input_ids" => Ok(Feed::InputIds),
        "attention_mask" => Ok(Feed::AttentionMask),
        "token_type_ids" => Ok(Feed::TokenTypeIds),
        "position_ids" => Ok(Feed::PositionIds),
        past if past.starts_with("past_key_values.") && ty == TensorElementType::Float32 => {
            let shape = dtype.tensor_shape().ok_or_else(unsupported)?;
            match shape[..] {
                [_, kv_heads, _, head_dim] if kv_heads > 0 && head_dim > 0 => Ok(Feed::EmptyPast { kv_heads, head_dim }),
                _ => Err(unsupported()),
            }
        }
        _ => Err(unsupported()),
    }
}

/// The model as ONNX Runtime will get it: the file itself, or akidb's rewrite of it in memory.
pub(crate) enum ModelSource {
    File(PathBuf),
    Rewritten { model: Vec<u8>, nan_scrubs_removed: usize },
}

impl ModelSource {
    pub(crate) fn prepare(path: PathBuf, keep_graph: bool, model: &str) -> Result<Self, EmbedError> {
        if keep_graph {
            return Ok(ModelSource::File(path));
        }
        let bytes = std::fs::read(&path).map_err(|e| EmbedError::Runtime { action: "read the model file", message: format!("{}: {e}", path.display()) })?;
        Ok(match graph_rewrite::remove_nan_scrubs(&bytes) {
            Some(rewritten) => {
                tracing::debug!(%model, removed = rewritten.nan_scrubs_removed, "removed no-op NaN scrubs after attention softmax (exact; --keep-graph to skip)");
                ModelSource::Rewritten { model: rewritten.model, nan_scrubs_removed: rewritten.nan_scrubs_removed }
            }
            None => ModelSource::File(path),
        })
    }

    fn commit(&self, builder: &mut ort::session::builder::SessionBuilder) -> Result<Session, EmbedError> {
        match self {
            ModelSource::File(path) => builder.commit_from_file(path),
            ModelSource::Rewritten { model, .. } => builder.commit_from_memory(model),
        }
        .map_err(EmbedError::runtime("load the model"))
    }
}

fn open_session(env: &ort::environment::Environment, source: &ModelSource, options: &OnnxOptions, threads: usize) -> Result<(Session, ExecutionProvider), EmbedError> {
    let candidates = runtime::candidates(options.device)?;
    for &ep in &candidates {
        let attempt = base_builder(env, threads, options.spinning)
            .and_then(|b| runtime::register(b, ep, &options.cache_dir))
            .and_then(|mut b| source.commit(&mut b));
        match attempt {
            Ok(session) => return Ok((session, ep)),
            Err(err) if options.device == Device::Auto => tracing::warn!(%err, "{} failed; trying the next provider", ep.name()),
            Err(err) => return Err(err),
        }
    }
    if options.device == Device::Auto {
        tracing::warn!("--device auto: no CoreML or CUDA execution provider is usable here; falling back to CPUExecutionProvider");
    }
    let mut builder = base_builder(env, threads, options.spinning)?;
    let session = source.commit(&mut builder)?;
    Ok((session, ExecutionProvider::Cpu))
}

fn base_builder(env: &ort::environment::Environment, threads: usize, spinning: bool) -> Result<ort::session::builder::SessionBuilder, EmbedError> {
    Session::builder(env)
        .map_err(EmbedError::runtime("create a session builder"))?
        // ort defaults to MaxEfficiency, under which ONNX Runtime may register an accelerator on
        // its own (CoreML on macOS): akidb registers exactly the provider --device asked for.
        .with_auto_device(ort::session::builder::AutoDevicePolicy::PreferCPU)
        .map_err(EmbedError::runtime("set the device policy"))?
        .with_intra_threads(threads)
        .map_err(EmbedError::runtime("set intra-op threads"))?
        .with_intra_op_spinning(spinning)
        .map_err(EmbedError::runtime("set intra-op spinning"))
}

#[cfg(test)]
mod tests {
    use super::position_ids;

    #[test]
    fn position_ids_skip_left_padding() {
        assert_eq!(position_ids(&[0, 0, 1, 1, 1, 1, 1, 1], 4), vec![0, 0, 0, 1, 0, 1, 2, 3]);
    }
}
