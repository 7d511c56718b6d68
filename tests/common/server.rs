//! A real `akidb serve` on an ephemeral port, and a minimal HTTP/1.1 client for talking to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Server {
    child: Child,
    pub address: String,
    /// The Qdrant-compatible listener's address, when started with `--qdrant-port`.
    pub qdrant: Option<String>,
}

/// A port free at the time of asking (for `--qdrant-port`, which takes a number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Server {
    /// Starts the server on the default model with `data_dir` and extra flags; waits until ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// `start` with extra environment variables (e.g. FAILPOINTS for builds with failpoints).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_in(&super::repo(), data_dir, extra, env)
    }

    /// `start_with_env` from the working directory `cwd`.
    pub fn start_in(cwd: &Path, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        // The Qdrant listener's default port would collide between servers run in parallel.
        let qdrant = extra.contains(&"--qdrant-port");
        // Tests run on MiniLM (6 layers: twice as fast as the default bge-small) unless they name
        // a model; tests/models.rs covers the default.
        let model: &[&str] = if extra.contains(&"--model") { &[] } else { &["--model", "minilm-l6-v2"] };
        // Quiet unless a test asks for a log level (a path that only runs when logged).
        let log: &[&str] = if extra.contains(&"--log") { &[] } else { &["--log", "warn"] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_akidb"))
            .args(["serve", "--port", "0", "--device", "cpu", "--data-dir"])
            .arg(data_dir)
            .args(if qdrant { &[][..] } else { &["--qdrant-port", "0"][..] })
            .args(model)
            .args(log)
            .args(extra)
            .current_dir(cwd)
            .env_remove("AKIDB_API_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn akidb serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("read the listening line");
        let address = line.trim().rsplit("http://").next().expect("address").to_owned();
        assert!(address.contains(':'), "unexpected first line from akidb serve: {line:?}");
        let qdrant = qdrant.then(|| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read the Qdrant listener's line");
            line.trim().rsplit("http://").next().expect("address").to_owned()
        });
        let server = Server { child, address, qdrant };
        let deadline = Instant::now() + Duration::from_secs(120);
        while server.get("/ready").0 != 200 {
            assert!(Instant::now() < deadline, "server did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(body.to_string().as_bytes()), &[])
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.request("DELETE", path, None, &[])
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> (u16, Value) {
        let (status, _, body) = self.raw(method, path, body, headers);
        let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value)
    }

    /// `request` to the Qdrant-compatible listener.
    pub fn qdrant(&self, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> (u16, Value) {
        let address = self.qdrant.clone().expect("started without --qdrant-port");
        let body = body.map(|b| b.to_string());
        let (status, _, body) = raw_to(&address, method, path, body.as_deref().map(str::as_bytes), headers);
        let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value)
    }

    /// One request on its own connection; returns status, lower-cased headers and body.
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        raw_to(&self.address, method, path, body, headers)
    }
}

/// One request to `address` on its own connection.
pub fn raw_to(address: &str, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
        let body = body.unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {address}\r\n"));
        }
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) && !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write head");
        // The server may answer (413) before reading a huge body; a failed write is not a failed test.
        let _ = stream.write_all(body);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        parse_response(&response)
    }
}

impl Server {
    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "server exited with {exit}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&bytes[..split]);
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let mut body = bytes[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// Asserts an error response: status, `error.code`, and a message containing `needle`.
pub fn assert_error(response: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (got, body) = response;
    assert_eq!(*got, status, "status for {body}");
    assert_eq!(body["error"]["code"], code, "code in {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}
