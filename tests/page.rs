//! The built-in page in a real browser: Debian's Chromium, headless, against a real server.
//! scripts/test installs Chromium; without it this test fails (it does not skip).

mod common;

use std::process::Command;

use common::server::Server;
use serde_json::json;

fn chromium() -> String {
    let candidates = [std::env::var("CHROMIUM").unwrap_or_default(), "chromium".into(), "chromium-browser".into(), "google-chrome".into()];
    for candidate in candidates.iter().filter(|c| !c.is_empty()) {
        if Command::new(candidate).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return candidate.clone();
        }
    }
    panic!("no Chromium found (tried $CHROMIUM, chromium, chromium-browser, google-chrome): scripts/test installs Debian's chromium");
}

/// The page's DOM once its script has run (fetches included), as Chromium renders it.
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=15000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_page_searches_and_shows_highlighted_passages_in_a_real_browser() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    assert_eq!(server.post("/collections", &json!({"name": "kb"})).0, 201);
    let documents = json!({"documents": [
        {"id": "tokio", "text": "Use tokio::spawn to run a task in the background.", "metadata": {"lang": "rust"}},
        {"id": "bread", "text": "Sourdough bread needs a long fermentation.", "metadata": {"lang": "food"}},
        {"id": "paris", "text": "Paris is the capital of France.", "metadata": {"lang": "geo"}}
    ]});
    assert_eq!(server.post("/collections/kb/documents", &documents).0, 200);

    let dom = rendered(&format!("http://{}/?collection=kb&q=spawn%20a%20background%20task&k=2", server.address));
    let first = dom.find("class=\"hit\"").unwrap_or_else(|| panic!("no results rendered:\n{dom}"));
    assert!(dom[first..].starts_with("class=\"hit\" data-id=\"tokio\""), "tokio is not first:\n{dom}");
    assert_eq!(dom.matches("class=\"hit\"").count(), 2, "k=2 gives two results:\n{dom}");
    assert!(dom.contains("<mark>spawn</mark>") && dom.contains("<mark>background</mark>"), "matches are highlighted:\n{dom}");
    assert!(dom.contains("{\"lang\":\"rust\"}"), "metadata is shown:\n{dom}");
    assert!(dom.contains("<dt>documents</dt><dd>3</dd>"), "collection stats are shown:\n{dom}");
    assert!(dom.contains("models: minilm-l6-v2 (default, self-test passed)"), "the loaded models are shown:\n{dom}");

    // A filter that matches nothing but bread.
    let dom = rendered(&format!("http://{}/?collection=kb&q=task&where=%7B%22lang%22%3A%22food%22%7D", server.address));
    assert_eq!(dom.matches("class=\"hit\"").count(), 1, "{dom}");
    assert!(dom.contains("data-id=\"bread\""), "{dom}");
}

#[test]
fn with_an_api_key_the_page_loads_and_asks_for_the_key() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--api-key", "s3cret"]);
    let dom = rendered(&format!("http://{}/", server.address));
    assert!(dom.contains("<section id=\"keyform\">"), "the key form is shown:\n{dom}");
    assert!(dom.contains("<main id=\"app\" hidden=\"\">"), "the app waits for the key:\n{dom}");
}
