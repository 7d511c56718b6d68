//! Files to documents: `.jsonl` / `.json` records, `.txt` / `.md` as they are, `.html` as its
//! text (html2text), `.pdf` as its text (pdf-extract). Each document carries `{path, bytes, modified, sha256}` in its metadata;
//! the hash is what makes a re-run skip what the server already holds.

use std::path::Path;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Whole-file kinds and record kinds, by extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    JsonLines,
    JsonArray,
    Text,
    Html,
    Pdf,
}

impl Kind {
    pub fn of(path: &Path) -> Option<Kind> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "jsonl" | "ndjson" => Kind::JsonLines,
            "json" => Kind::JsonArray,
            "txt" | "md" | "markdown" | "rst" => Kind::Text,
            "html" | "htm" => Kind::Html,
            "pdf" => Kind::Pdf,
            _ => return None,
        })
    }
}

/// A document ready to send.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: String,
    pub text: String,
    pub metadata: Map<String, Value>,
    pub sha256: String,
}

/// Something wrong with a file or one of its records: reported, skipped, counted as a failure.
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    /// Line (JSON lines) or element (JSON arrays, as `[i]`) the problem is at.
    pub place: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.place {
            Some(place) => write!(f, "{}:{place}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// What one file gave.
#[derive(Debug, Default)]
pub struct FileDocs {
    pub docs: Vec<Doc>,
    pub problems: Vec<Problem>,
    /// Documents with no text (empty files, blank records): nothing to embed.
    pub empty: usize,
    /// Ids derived from record hashes so far, with how many records had each.
    derived: std::collections::HashMap<String, usize>,
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `path`, whose id prefix is `relative` (its path from the root it was found under, with
/// `/` separators); `root`, the folder it was found under, goes into each document's metadata.
pub fn read_file(path: &Path, relative: &str, root: Option<&str>, kind: Kind) -> FileDocs {
    let mut out = FileDocs::default();
    let problem = |place: Option<String>, message: String| Problem { path: relative.to_owned(), place, message };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            out.problems.push(problem(None, format!("cannot read: {err}")));
            return out;
        }
    };
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let file_metadata = |sha256: &str| -> Map<String, Value> {
        let mut metadata = Map::new();
        metadata.insert("path".into(), json!(relative));
        metadata.insert("bytes".into(), json!(bytes.len()));
        metadata.insert("modified".into(), json!(modified));
        metadata.insert("sha256".into(), json!(sha256));
        if let Some(root) = root {
            metadata.insert("root".into(), json!(root));
        }
        metadata
    };
    if kind == Kind::Pdf {
        let sha256 = hex(Sha256::digest(&bytes));
        match pdf_text(&bytes) {
            Ok(text) if text.trim().is_empty() => out.empty += 1,
            Ok(text) => out.docs.push(Doc { id: relative.to_owned(), text, metadata: file_metadata(&sha256), sha256 }),
            Err(message) => out.problems.push(problem(None, message)),
        }
        return out;
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(err) => {
            out.problems.push(problem(None, format!("not UTF-8 text (invalid byte at offset {})", err.valid_up_to())));
            return out;
        }
    };
    match kind {
        Kind::Pdf => {}
        Kind::Text | Kind::Html => {
            let sha256 = hex(Sha256::digest(&bytes));
            let text = if kind == Kind::Html { html_text(&bytes) } else { text.to_owned() };
            if text.trim().is_empty() {
                out.empty += 1;
            } else {
                out.docs.push(Doc { id: relative.to_owned(), text, metadata: file_metadata(&sha256), sha256 });
            }
        }
        Kind::JsonLines => {
            for (number, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let place = format!("{}", number + 1);
                match serde_json::from_str::<Value>(line) {
                    Ok(value) => record(value, relative, &place, &file_metadata, &mut out),
                    Err(err) => out.problems.push(problem(Some(place), format!("not JSON: {}", json_message(&err)))),
                }
            }
        }
        Kind::JsonArray => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => {
                for (index, value) in items.into_iter().enumerate() {
                    record(value, relative, &format!("[{index}]"), &file_metadata, &mut out);
                }
            }
            Ok(_) => out.problems.push(problem(None, "expected a JSON array of {\"text\": ...} objects".into())),
            Err(err) => out.problems.push(problem(None, format!("not JSON: {err}"))),
        },
    }
    out
}

/// serde_json's message without its "at line 1 column N" (a JSON line is one line).
fn json_message(err: &serde_json::Error) -> String {
    format!("{} (column {})", err.to_string().split(" at line ").next().unwrap_or_default(), err.column())
}

/// One `{id?, text, metadata?}` record. Without an id it is `<path>#<hash>`, the first 16 hex
/// digits of the record's sha256 (text and metadata): lines added or removed elsewhere in the
/// file leave it unchanged, and an edited record is a new document (`--prune` removes the old).
/// Identical records in one file get `.2`, `.3`, … after the hash. The file's fields (path, bytes, modified, sha256) are added to the
/// record's metadata; sha256 is the record's own (its text and metadata), not the file's.
fn record(value: Value, relative: &str, place: &str, file_metadata: &dyn Fn(&str) -> Map<String, Value>, out: &mut FileDocs) {
    let problem = |message: &str| Problem { path: relative.to_owned(), place: Some(place.to_owned()), message: message.to_owned() };
    let Value::Object(mut object) = value else {
        out.problems.push(problem("expected an object {\"text\": ..., \"id\"?: ..., \"metadata\"?: {...}}"));
        return;
    };
    let text = match object.remove("text") {
        Some(Value::String(text)) => text,
        Some(_) => return out.problems.push(problem("\"text\" must be a string")),
        None => return out.problems.push(problem("missing \"text\"")),
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return out.problems.push(problem("\"id\" must be a string or a number")),
    };
    let own = match object.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return out.problems.push(problem("\"metadata\" must be an object")),
    };
    if let Some(extra) = object.keys().next() {
        return out.problems.push(problem(&format!("unknown field \"{extra}\" (expected id, text, metadata)")));
    }
    if text.trim().is_empty() {
        out.empty += 1;
        return;
    }
    let mut hasher = Sha256::new();
    hasher.update(text.as_bytes());
    hasher.update([0]);
    hasher.update(Value::Object(own.clone()).to_string().as_bytes());
    let sha256 = hex(hasher.finalize());
    let id = id.unwrap_or_else(|| {
        let base = format!("{relative}#{}", &sha256[..16]);
        let copies = out.derived.entry(base.clone()).or_insert(0);
        *copies += 1;
        if *copies == 1 { base } else { format!("{base}.{copies}") }
    });
    let mut metadata = own;
    // Ingest owns `root` (what --prune goes by) as it owns path, bytes, modified and sha256.
    metadata.remove("root");
    metadata.extend(file_metadata(&sha256));
    out.docs.push(Doc { id, text, metadata, sha256 });
}

/// The text of a PDF's pages. pdf-extract can panic on malformed files: a panic is this file's
/// problem, not the run's.
fn pdf_text(bytes: &[u8]) -> Result<String, String> {
    match std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes)) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(err)) => Err(format!("cannot read the PDF: {err}")),
        Err(_) => Err("cannot read the PDF (the extractor failed on it)".into()),
    }
}

/// The text of an HTML page: html2text's plain rendering without decorations (no `#`, `**`),
/// wide enough not to wrap lines; scripts and styles are dropped by the parser.
fn html_text(bytes: &[u8]) -> String {
    html2text::config::plain_no_decorate().string_from_read(bytes, 100_000).unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn record_ids_without_an_id_do_not_move_when_lines_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let before = write(dir.path(), "r.jsonl", b"{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"two\"}\n");
        let ids = |path: &Path| read_file(path, "r.jsonl", Some("/data"), Kind::JsonLines).docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
        let first = ids(&before);
        assert_eq!(first.len(), 3);
        assert_eq!(first[2], format!("{}.2", first[1]), "identical records are told apart by a count");
        let after = write(dir.path(), "r.jsonl", b"{\"text\": \"zero\"}\n{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"two\"}\n");
        assert_eq!(ids(&after)[1..], first[..], "a line added at the top moves no id");
        let docs = read_file(&after, "r.jsonl", Some("/data"), Kind::JsonLines).docs;
        assert_eq!(docs[0].metadata["root"], "/data");
    }

    #[test]
    fn json_lines_keep_good_records_and_name_the_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "r.jsonl", b"{\"id\": \"a\", \"text\": \"alpha\", \"metadata\": {\"lang\": \"en\"}}\n\n{\"text\": \"beta\"}\n{oops\n{\"text\": 3}\n");
        let got = read_file(&path, "sub/r.jsonl", None, Kind::JsonLines);
        let ids: Vec<&str> = got.docs.iter().map(|d| d.id.as_str()).collect();
        let beta = &got.docs[1];
        assert_eq!(ids, ["a", format!("sub/r.jsonl#{}", &beta.sha256[..16]).as_str()]);
        assert_eq!(got.docs[0].metadata["lang"], "en");
        assert_eq!(got.docs[0].metadata["path"], "sub/r.jsonl");
        let problems: Vec<String> = got.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("sub/r.jsonl:4: not JSON"), "{problems:?}");
        assert_eq!(problems[1], "sub/r.jsonl:5: \"text\" must be a string");
    }

    #[test]
    fn html_becomes_text_and_bad_utf8_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let html = write(dir.path(), "p.html", b"<html><head><style>p{}</style><script>var x;</script></head><body><h1>Title</h1><p>Hello <b>world</b></p></body></html>");
        let got = read_file(&html, "p.html", None, Kind::Html);
        let text = &got.docs[0].text;
        assert!(text.contains("Title") && text.contains("Hello world"), "{text:?}");
        assert!(!text.contains("var x") && !text.contains("p{}"), "{text:?}");
        let bad = write(dir.path(), "bad.txt", b"ok \xff\xfe");
        let got = read_file(&bad, "bad.txt", None, Kind::Text);
        assert!(got.docs.is_empty());
        assert_eq!(got.problems[0].to_string(), "bad.txt: not UTF-8 text (invalid byte at offset 3)");
    }

    /// A one-page PDF with one line of text, its xref offsets computed.
    fn tiny_pdf(line: &str) -> Vec<u8> {
        let stream = format!("BT /F1 12 Tf 72 720 Td ({line}) Tj ET");
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
            format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        ];
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend(format!("{} 0 obj\n{object}\nendobj\n", i + 1).bytes());
        }
        let xref = pdf.len();
        pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
        for offset in offsets {
            pdf.extend(format!("{offset:010} 00000 n \n").bytes());
        }
        pdf.extend(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).bytes());
        pdf
    }

    #[test]
    fn pdf_text_is_extracted_and_a_broken_pdf_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "a.pdf", &tiny_pdf("Quarterly revenue grew by nine percent"));
        let got = read_file(&good, "a.pdf", None, Kind::Pdf);
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        assert!(got.docs[0].text.contains("Quarterly revenue grew by nine percent"), "{:?}", got.docs[0].text);
        let broken = write(dir.path(), "b.pdf", b"%PDF-1.4 this is not really a pdf");
        let got = read_file(&broken, "b.pdf", None, Kind::Pdf);
        assert!(got.docs.is_empty());
        assert!(got.problems[0].to_string().starts_with("b.pdf: cannot read the PDF"), "{:?}", got.problems);
    }

    #[test]
    fn the_hash_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.md", b"# A\ntext");
        let first = read_file(&path, "a.md", None, Kind::Text).docs[0].sha256.clone();
        assert_eq!(read_file(&path, "a.md", None, Kind::Text).docs[0].sha256, first);
        write(dir.path(), "a.md", b"# A\nnew text");
        assert_ne!(read_file(&path, "a.md", None, Kind::Text).docs[0].sha256, first);
    }
}
