//! Loading the ONNX Runtime library and choosing an execution provider.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::SessionBuilder;

use super::EmbedError;

/// File name of the runtime library inside the PyPI wheel `onnxruntime==1.31.1`.
#[cfg(target_os = "macos")]
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.1.31.1.dylib";
#[cfg(not(target_os = "macos"))]
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

/// Where `scripts/setup` puts the runtime, relative to the repository root.
pub fn default_ort_library() -> PathBuf {
    Path::new("runtime").join(ORT_LIBRARY_FILE)
}

/// The process-wide ONNX Runtime environment. The library can be loaded once per process;
/// later calls get the same environment (or the same error).
pub fn environment(library: &Path) -> Result<Environment, EmbedError> {
    static ENV: OnceLock<Result<(PathBuf, Environment), (PathBuf, String)>> = OnceLock::new();
    let loaded = ENV.get_or_init(|| {
        let fail = |message: String| (library.to_owned(), message);
        if !library.is_file() {
            return Err(fail("file not found".into()));
        }
        let builder = ort::init_from(library).map_err(|e| fail(e.to_string()))?;
        let env = builder.with_name("akidb").with_telemetry(false).build().map_err(|e| fail(e.to_string()))?;
        // ort's `tracing` feature creates the environment at VERBOSE and forwards every message:
        // ONNX Runtime then formats verbose logs inside every run (measured: single-text latency
        // ~30 % worse than Python's). Warnings and errors still reach `tracing`.
        env.set_log_level(ort::logging::LogLevel::Warning);
        Ok((library.to_owned(), env))
    });
    match loaded {
        Ok((path, env)) if path == library => Ok(env.clone()),
        Ok((path, _)) => Err(EmbedError::RuntimeLibrary {
            path: library.to_owned(),
            message: format!("this process already loaded {}", path.display()),
        }),
        Err((path, message)) => Err(EmbedError::RuntimeLibrary { path: path.clone(), message: message.clone() }),
    }
}

/// `--device`: where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// CoreML on macOS, CUDA when built with it and available, else CPU (with a warning).
    #[default]
    Auto,
    Cpu,
    Coreml,
    Cuda,
}

/// The execution provider a session actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExecutionProvider {
    #[serde(rename = "CPUExecutionProvider")]
    Cpu,
    #[serde(rename = "CoreMLExecutionProvider")]
    CoreMl,
    #[serde(rename = "CUDAExecutionProvider")]
    Cuda,
}

impl ExecutionProvider {
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::CoreMl => "CoreMLExecutionProvider",
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
        }
    }
}

/// Accelerators to try, in order, for a device request. CPU is always the implicit last resort
/// for `auto`; an explicit request that cannot be honoured is an error.
pub fn candidates(device: Device) -> Result<Vec<ExecutionProvider>, EmbedError> {
    match device {
        Device::Cpu => Ok(vec![]),
        Device::Coreml => {
            check_available(ExecutionProvider::CoreMl)?;
            Ok(vec![ExecutionProvider::CoreMl])
        }
        Device::Cuda => {
            check_available(ExecutionProvider::Cuda)?;
            Ok(vec![ExecutionProvider::Cuda])
        }
        Device::Auto => {
            let usable: Vec<_> = [ExecutionProvider::CoreMl, ExecutionProvider::Cuda]
                .into_iter()
                .filter(|&ep| match check_available(ep) {
                    Ok(()) => true,
                    Err(reason) => {
                        tracing::debug!(%reason, "auto device: skipping {}", ep.name());
                        false
                    }
                })
                .collect();
            Ok(usable)
        }
    }
}

fn check_available(ep: ExecutionProvider) -> Result<(), EmbedError> {
    match ep {
        ExecutionProvider::Cpu => Ok(()),
        ExecutionProvider::CoreMl => coreml::check_available(),
        ExecutionProvider::Cuda => cuda::check_available(),
    }
}

/// Registers `ep` on the builder; failure to register is an error (the caller decides on fallback).
pub fn register(builder: SessionBuilder, ep: ExecutionProvider, cache_dir: &Path) -> Result<SessionBuilder, EmbedError> {
    match ep {
        ExecutionProvider::Cpu => Ok(builder),
        ExecutionProvider::CoreMl => coreml::register(builder, cache_dir),
        ExecutionProvider::Cuda => cuda::register(builder),
    }
}

#[cfg(target_os = "macos")]
mod coreml {
    use std::path::Path;

    use ort::ep::{self, coreml::ComputeUnits, coreml::ModelFormat, ExecutionProvider as _};
    use ort::session::builder::SessionBuilder;

    use super::EmbedError;

    pub fn check_available() -> Result<(), EmbedError> {
        match ep::CoreML::is_available() {
            Ok(true) => Ok(()),
            Ok(false) => Err(EmbedError::DeviceUnavailable {
                device: "coreml",
                reason: "the loaded ONNX Runtime library was built without CoreML (use the macosx arm64 wheel)".into(),
            }),
            Err(e) => Err(EmbedError::DeviceUnavailable { device: "coreml", reason: e.to_string() }),
        }
    }

    pub fn register(builder: SessionBuilder, cache_dir: &Path) -> Result<SessionBuilder, EmbedError> {
        let coreml = ep::CoreML::default()
            .with_compute_units(ComputeUnits::All)
            .with_model_format(ModelFormat::MLProgram)
            .with_static_input_shapes(false)
            .with_model_cache_dir(cache_dir.display())
            .build()
            .error_on_failure();
        builder
            .with_execution_providers([coreml])
            .map_err(|e| EmbedError::DeviceUnavailable { device: "coreml", reason: e.to_string() })
    }
}

#[cfg(not(target_os = "macos"))]
mod coreml {
    use std::path::Path;

    use ort::session::builder::SessionBuilder;

    use super::EmbedError;

    fn unavailable() -> EmbedError {
        EmbedError::DeviceUnavailable { device: "coreml", reason: "CoreML exists only on macOS".into() }
    }

    pub fn check_available() -> Result<(), EmbedError> {
        Err(unavailable())
    }

    pub fn register(_builder: SessionBuilder, _cache_dir: &Path) -> Result<SessionBuilder, EmbedError> {
        Err(unavailable())
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use ort::ep::{self, ExecutionProvider as _};
    use ort::session::builder::SessionBuilder;

    use super::EmbedError;

    pub fn check_available() -> Result<(), EmbedError> {
        match ep::CUDA::is_available() {
            Ok(true) => Ok(()),
            Ok(false) => Err(EmbedError::DeviceUnavailable {
                device: "cuda",
                reason: "the loaded ONNX Runtime library has no CUDA provider: point --ort-lib at the \
                         onnxruntime-gpu wheel's libonnxruntime"
                    .into(),
            }),
            Err(e) => Err(EmbedError::DeviceUnavailable { device: "cuda", reason: e.to_string() }),
        }
    }

    pub fn register(builder: SessionBuilder) -> Result<SessionBuilder, EmbedError> {
        let cuda = ep::CUDA::default().build().error_on_failure();
        builder
            .with_execution_providers([cuda])
            .map_err(|e| EmbedError::DeviceUnavailable { device: "cuda", reason: e.to_string() })
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use ort::session::builder::SessionBuilder;

    use super::EmbedError;

    fn unavailable() -> EmbedError {
        EmbedError::DeviceUnavailable {
            device: "cuda",
            reason: "this akidb was built without the `cuda` cargo feature (cargo build --release --features cuda)".into(),
        }
    }

    pub fn check_available() -> Result<(), EmbedError> {
        Err(unavailable())
    }

    pub fn register(_builder: SessionBuilder) -> Result<SessionBuilder, EmbedError> {
        Err(unavailable())
    }
}
