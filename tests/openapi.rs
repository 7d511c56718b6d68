//! The OpenAPI document tells the truth: schemathesis (installed by scripts/test in .venv)
//! generates requests from it, valid and invalid, against a live server with an API key, and
//! every check but the auth-header ones must pass: no schema-valid request refused, no invalid
//! one accepted, no undocumented status, every answer matching its schema.

mod common;

use std::process::Command;

use common::server::Server;
use serde_json::json;

#[test]
fn schemathesis_finds_no_failures_against_a_live_server() {
    let schemathesis = common::repo().join(".venv/bin/schemathesis");
    assert!(schemathesis.exists(), "{} is missing: run scripts/test, which installs it", schemathesis.display());
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--api-key", "st-key"]);
    let auth = [("Authorization", "Bearer st-key"), ("Content-Type", "application/json")];
    let body = json!({"name": "kb"}).to_string();
    assert_eq!(server.request("POST", "/collections", Some(body.as_bytes()), &auth).0, 201);
    let docs = json!({"documents": [{"id": "a", "text": "Paris is the capital of France.", "metadata": {"topic": "geo"}}]}).to_string();
    assert_eq!(server.request("POST", "/collections/kb/documents", Some(docs.as_bytes()), &auth).0, 200);

    let output = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(common::repo().join("tests/schemathesis.toml"))
        // Its cache of found failures goes to the temporary directory, not the repository.
        .current_dir(data.path())
        .arg("run")
        .arg(format!("http://{}/openapi.json", server.address))
        .args(["-H", "Authorization: Bearer st-key"])
        .args(["--checks", "all", "--exclude-checks", "ignored_auth,missing_required_header"])
        // A fixed seed: a failure reproduces, and CI does not flake on a new random draw.
        .args(["--workers", "2", "--seed", "1", "--no-color"])
        // Paths with ids schemathesis cannot put in a URL ('/', '.', control characters) are
        // filtered out by it before sending; that is a limit of generation, not of the API.
        .args(["--suppress-health-check", "filter_too_much"])
        // Large generated batches embed for seconds on a small machine; the server's own timeout
        // (120 s, answered as a documented 408) is the bound that matters.
        .args(["--request-timeout", "150"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "schemathesis found failures:\n{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("API Operations:") && !report.contains("failures"), "{report}");
}
