//! The HTTP client the CLI commands share (`ingest`, `search`, `collections`): one agent, the
//! API key, and akidb's JSON errors turned into `ClientError`s.

use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The akidb server (`akidb serve`).
    #[arg(long, env = "AKIDB_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Sent as 'Authorization: Bearer <key>' (the server's --api-key).
    #[arg(long, env = "AKIDB_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Seconds to wait for one answer (ingest batches embed on the server).
    #[arg(long, env = "AKIDB_CLIENT_TIMEOUT_SECS", default_value_t = 600, global = true)]
    pub timeout_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{status} {code}: {message}")]
    Http { status: u16, code: String, message: String, retry_after: Option<u64> },
    #[error("cannot reach akidb at {url}: {message} (is `akidb serve` running? see --url)")]
    Transport { url: String, message: String },
    #[error("unexpected answer from {url}: {message}")]
    Decode { url: String, message: String },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Largest answer read (a page of documents with their texts can be large).
const MAX_ANSWER_BYTES: u64 = 1 << 30;

#[derive(Clone)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(args.timeout_secs.max(1))))
            .build()
            .into();
        Client { base: args.url.trim_end_matches('/').to_owned(), api_key: args.api_key.clone(), agent }
    }

    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        self.answer(&url, request.call())
    }

    pub fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ClientError> {
        let url = self.url(path);
        let mut request = self.agent.post(&url);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        self.answer(&url, request.send_json(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let mut request = self.agent.delete(&url);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        self.answer(&url, request.call())
    }

    /// Streams a GET's body into `dest`; returns the bytes written.
    pub fn download(&self, path: &str, dest: &std::path::Path) -> Result<u64, ClientError> {
        let url = self.url(path);
        // A large file takes as long as it takes: no overall deadline, only the connection's.
        let mut request = self.agent.get(&url).config().timeout_global(None).build();
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.call().map_err(|e| ClientError::Transport { url: self.base.clone(), message: e.to_string() })?;
        if !response.status().is_success() {
            return self.answer(&url, Ok(response)).map(|_| 0);
        }
        let io = |e: std::io::Error| ClientError::Decode { url: url.clone(), message: format!("{}: {e}", dest.display()) };
        let mut file = std::fs::File::create(dest).map_err(io)?;
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let bytes = std::io::copy(&mut reader, &mut file).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(bytes)
    }

    /// POSTs a file as the raw body (streamed).
    pub fn upload(&self, path: &str, query: &[(&str, &str)], file: &std::path::Path) -> Result<Value, ClientError> {
        let url = self.url(path);
        let mut request = self.agent.post(&url).config().timeout_global(None).build().header("Content-Type", "application/octet-stream");
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut reader = std::fs::File::open(file).map_err(|e| ClientError::Transport { url: url.clone(), message: format!("{}: {e}", file.display()) })?;
        self.answer(&url, request.send(ureq::SendBody::from_reader(&mut reader)))
    }

    /// Waits while the server answers 503 on /ready (still loading models and indexes), up to
    /// `limit`; a server that is not there at all fails at once.
    pub fn wait_ready(&self, limit: Duration) -> Result<(), ClientError> {
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            match self.get("/ready", &[]) {
                Err(ClientError::Http { status: 503, .. }) if started.elapsed() < limit => {
                    if !said {
                        eprintln!("waiting for akidb at {} to finish loading…", self.base);
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Ok(_) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer(&self, url: &str, sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, ClientError> {
        let mut response = sent.map_err(|e| ClientError::Transport { url: self.base.clone(), message: e.to_string() })?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let body: Result<Value, _> = response.body_mut().with_config().limit(MAX_ANSWER_BYTES).read_json();
        if (200..300).contains(&status) {
            return body.map_err(|e| ClientError::Decode { url: url.to_owned(), message: e.to_string() });
        }
        let (code, message) = match &body {
            Ok(value) => (
                value["error"]["code"].as_str().unwrap_or("error").to_owned(),
                value["error"]["message"].as_str().map_or_else(|| value.to_string(), str::to_owned),
            ),
            Err(_) => ("error".to_owned(), format!("HTTP {status} from {url}")),
        };
        Err(ClientError::Http { status, code, message, retry_after })
    }
}

/// A path segment (collection name, document id) percent-escaped for a URL (RFC 3986 unreserved
/// characters kept; ten lines instead of a URL crate in the build).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
