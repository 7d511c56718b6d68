//! Device selection and the `akidb embed` command, run as a user would.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use akidb::embed::{BatchConfig, Device, EmbedError, EmbeddingProvider, ExecutionProvider, OnnxProvider};
use common::*;

fn load(device: Device) -> Result<OnnxProvider, EmbedError> {
    OnnxProvider::load(&minilm_dir(), &options(device), BatchConfig::default())
}

#[test]
fn explicit_accelerators_that_are_missing_are_startup_errors() {
    for (device, name) in [(Device::Coreml, "coreml"), (Device::Cuda, "cuda")] {
        match load(device) {
            Err(EmbedError::DeviceUnavailable { device, reason }) => {
                assert_eq!(device, name);
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("{name}: unexpected error {other}"),
            Ok(_) if cfg!(target_os = "macos") && device == Device::Coreml => {}
            Ok(_) => panic!("{name} must not load on this machine"),
        }
    }
}

#[test]
fn auto_runs_on_cpu_here_and_says_so() {
    let provider = load(Device::Auto).expect("auto loads");
    if !cfg!(target_os = "macos") && !cfg!(feature = "cuda") {
        assert_eq!(provider.info().execution_provider, ExecutionProvider::Cpu);
    }
    assert_eq!(provider.embed_documents(vec!["x".into()]).wait().expect("embed")[0].embedding.len(), 384);
}

fn akidb(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(args)
        .current_dir(repo())
        .env_remove("AKIDB_MODEL")
        .env_remove("AKIDB_DEVICE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn akidb");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("akidb output")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    assert!(output.status.success(), "akidb failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn embed_command_prints_reference_vectors_for_arguments_and_stdin() {
    // The default model: bge-small-en-v1.5.
    let reference = read_json(&shared("fixtures/bge-small-en-v1.5/reference.json"));
    let from_args = json_lines(&akidb(&["embed", "--device", "cpu", "Hello, world!", "It's so sunny outside!"], None));
    let auto = akidb(&["embed"], Some("\"Hello, world!\"\n\n{\"text\": \"It's so sunny outside!\"}\n"));
    if !cfg!(target_os = "macos") && !cfg!(feature = "cuda") {
        let stderr = String::from_utf8_lossy(&auto.stderr);
        assert!(stderr.contains("falling back to CPUExecutionProvider"), "auto must name its fallback:\n{stderr}");
    }
    let from_stdin = json_lines(&auto);
    for lines in [&from_args, &from_stdin] {
        assert_eq!(lines.len(), 2);
        for (line, index) in lines.iter().zip([0, 2]) {
            let diff = max_abs_diff(&floats(&line["embedding"]), &floats(&reference["embeddings"][index]));
            assert!(diff <= 1e-5, "text {index}: {diff}");
            assert_eq!(line["truncated"], false);
            assert_eq!(line["tokens"].as_u64(), reference["token_ids"][index].as_array().map(|a| a.len() as u64));
        }
    }
}

#[test]
fn embed_command_fails_clearly() {
    for (args, stdin, needle) in [
        (vec!["embed", "--device", "cuda", "x"], None, "execution provider 'cuda' is not usable here"),
        (vec!["embed", "--device", "coreml", "x"], None, "execution provider 'coreml' is not usable here"),
        (vec!["embed", "--dims", "7", "x"], None, "cannot produce 7 dimensions"),
        (vec!["embed", "--model", "no-such-model", "x"], None, "model 'no-such-model' not found"),
        (vec!["embed", "--ort-lib", "/nonexistent/libonnxruntime.so", "x"], None, "scripts/setup"),
        (vec!["embed"], Some("{\"txt\": 1}\n"), "stdin line 1"),
    ] {
        let output = akidb(&args, stdin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    }
}
