//! Snapshot files over HTTP for both APIs: downloads streamed from disk, uploads (a raw body
//! or a multipart form's file) streamed to disk with a size limit. Neither holds a file in
//! memory; the file IO runs on blocking threads, fed over a small channel.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Bytes per chunk read from disk for a download.
const CHUNK: usize = 256 * 1024;

/// A stream of chunks over a channel that a blocking reader fills.
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The file as an attachment, streamed.
pub fn download(path: &Path) -> Result<Response, ApiError> {
    let file = std::fs::File::open(path).map_err(|e| ApiError::internal(format!("cannot open the snapshot: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let chunk = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // The client went away: stop reading.
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let mut response = Body::from_stream(Chunks(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(length) = HeaderValue::from_str(&size.to_string()) {
        headers.insert(header::CONTENT_LENGTH, length);
    }
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// An uploaded file, removed when dropped (also when the request is abandoned midway).
pub struct Upload(PathBuf);

impl Upload {
    pub fn new(path: PathBuf) -> Self {
        Upload(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Receives an upload into `dest` (created with its directory): a multipart form's first file
/// field (Qdrant's `snapshot`), or the raw body. More than `limit` bytes is a 413 and leaves
/// no file; an empty upload is a 400. Returns the bytes received.
pub async fn receive(request: Request, dest: &Path, limit: u64) -> Result<u64, ApiError> {
    let result = receive_into(request, dest, limit).await;
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

async fn receive_into(request: Request, dest: &Path, limit: u64) -> Result<u64, ApiError> {
    let multipart = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut sink = Sink::create(dest.to_owned(), limit)?;
    if multipart {
        let mut form = Multipart::from_request(request, &()).await.map_err(|e| ApiError::bad_request(format!("the multipart body cannot be read: {}", e.body_text())))?;
        loop {
            let field = form.next_field().await.map_err(|e| ApiError::bad_request(format!("the multipart body cannot be read: {}", e.body_text())))?;
            let Some(mut field) = field else { return Err(ApiError::bad_request("the multipart form has no file field (send the snapshot as the field `snapshot`)")) };
            if field.file_name().is_none() && field.name() != Some("snapshot") {
                continue;
            }
            while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::bad_request(format!("the upload was cut: {}", e.body_text())))? {
                sink.write(chunk).await?;
            }
            break;
        }
    } else {
        let mut stream = request.into_body().into_data_stream();
        loop {
            let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await;
            match next {
                Some(Ok(chunk)) => sink.write(chunk).await?,
                Some(Err(e)) => return Err(ApiError::bad_request(format!("the upload was cut: {e}"))),
                None => break,
            }
        }
    }
    sink.finish().await
}

/// Chunks written to a file on a blocking thread.
struct Sink {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    received: u64,
    limit: u64,
}

impl Sink {
    fn create(path: PathBuf, limit: u64) -> Result<Self, ApiError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        }
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
            }
            file.into_inner().map_err(|e| e.into_error())?.sync_all()
        });
        Ok(Sink { tx: Some(tx), done, received: 0, limit })
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(ApiError::too_large(format!("the snapshot is larger than this server accepts ({} bytes, --max-snapshot-bytes)", self.limit)));
        }
        let Some(tx) = &self.tx else { return Ok(()) };
        if tx.send(chunk).await.is_err() {
            return Err(ApiError::internal("the upload could not be written to disk"));
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64, ApiError> {
        self.tx.take();
        let written = (&mut self.done).await.map_err(ApiError::from)?;
        written.map_err(|e| ApiError::internal(format!("the upload could not be written to disk: {e}")))?;
        if self.received == 0 {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_snapshot", "the upload is empty: send the snapshot file as the body, or as the multipart field `snapshot`"));
        }
        Ok(self.received)
    }
}
