//! Ingest: validate → split into passages → embed → store and index.
//!
//! In two steps, so that an interface can check a deadline between them: `prepare` does
//! everything that writes nothing (validation, splitting, embedding); `PreparedIngest::write`
//! commits. A request abandoned before `write` has changed nothing.

use serde_json::{Map, Value};

use super::{blocking, Service, ServiceError, Splitter};
use crate::domain::{slices, NewDocument, NewPassage, Span};
use crate::engine::{validate_document_id, Addressed, EngineError};
use crate::embed::EmbeddingProvider;

/// A document as a client sends it.
#[derive(Debug, Clone, Default)]
pub struct DocumentInput {
    /// A UUIDv7 is generated when absent.
    pub id: Option<String>,
    /// May be empty when `vector` is given.
    pub text: String,
    pub metadata: Option<Map<String, Value>>,
    /// A vector brought by the client: stored as the document's one passage, not embedded.
    pub vector: Option<Vec<f32>>,
}

/// What was ingested, per document, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub id: String,
    pub passages: usize,
    /// Tokens embedded, special tokens included.
    pub tokens: usize,
    /// Some text was cut at the model's window (only without chunking).
    pub truncated: bool,
}

/// Embedded and ready to write.
pub struct PreparedIngest {
    /// The collection as the request resolved it: the write notices a switch of its name.
    collection: Addressed,
    documents: Vec<NewDocument>,
    /// Per document: it brought its own vector (kept as given if the write must be prepared again).
    brought_vector: Vec<bool>,
    report: Vec<Ingested>,
}

/// Times a write is prepared again when its collection was switched meanwhile (a restore or a
/// re-embed took its name): one switch is rare; several in a row are not a workload.
const SWITCH_RETRIES: usize = 3;

impl PreparedIngest {
    /// Stores and indexes the documents, all or none; durable and searchable on return. If the
    /// collection was switched for another meanwhile, gives back what to ingest there instead.
    async fn try_write(self) -> Result<Result<Vec<Ingested>, Vec<DocumentInput>>, ServiceError> {
        let PreparedIngest { collection, documents, brought_vector, report } = self;
        blocking(move || match collection.try_upsert(documents)? {
            Ok(written) => {
                debug_assert_eq!(written.len(), report.len());
                Ok(Ok(report))
            }
            Err(documents) => Ok(Err(documents
                .into_iter()
                .zip(brought_vector)
                .map(|(mut doc, brought)| DocumentInput {
                    id: Some(doc.id),
                    vector: if brought { doc.passages.pop().map(|p| p.vector) } else { None },
                    text: doc.text,
                    metadata: Some(doc.metadata),
                })
                .collect())),
        })
        .await
    }
}

impl Service {
    /// Checks, splits and embeds documents for `collection` without writing anything.
    pub async fn prepare_ingest(&self, collection: &str, inputs: Vec<DocumentInput>) -> Result<PreparedIngest, ServiceError> {
        let collection = self.collection(collection)?;
        // The name as resolved now: a switch while this embeds sends the write on (`write_ingest`).
        let addressed = collection.addressed();
        let limits = &self.limits;
        if inputs.is_empty() {
            return Err(ServiceError::invalid("documents must not be empty"));
        }
        if inputs.len() > limits.max_batch_documents {
            return Err(ServiceError::TooLarge(format!("at most {} documents per request, got {}", limits.max_batch_documents, inputs.len())));
        }
        let mut checked: Vec<(String, String, Map<String, Value>, Option<Vec<f32>>)> = Vec::with_capacity(inputs.len());
        for (i, doc) in inputs.into_iter().enumerate() {
            let id = doc.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            validate_document_id(&id).map_err(|e| ServiceError::invalid(format!("documents[{i}].id: {e}")))?;
            match &doc.vector {
                // Checked before anything is written: width, finite, bounded, a direction for cosine.
                Some(vector) => {
                    collection.prepare_vector(vector.clone()).map_err(|e| ServiceError::Invalid { code: "invalid_vector", message: format!("documents[{i}].vector: {e}") })?;
                }
                None if doc.text.is_empty() => return Err(ServiceError::invalid(format!("documents[{i}] has neither text nor vector"))),
                None if doc.text.trim().is_empty() => return Err(ServiceError::invalid(format!("documents[{i}].text is empty (only whitespace) and it has no vector"))),
                None => {}
            }
            let metadata = doc.metadata.unwrap_or_default();
            let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |b| b.len());
            if size > limits.max_metadata_bytes {
                return Err(ServiceError::TooLarge(format!("documents[{i}].metadata is {size} bytes; the limit is {}", limits.max_metadata_bytes)));
            }
            checked.push((id, doc.text, metadata, doc.vector));
        }
        // Documents brought with a vector are neither split nor embedded.
        let mut embeddings = if checked.iter().any(|(_, _, _, vector)| vector.is_none()) {
            let provider = self.bound_model(&collection, "give each document a vector")?.clone();
            let splitter = Splitter::new(collection.config.chunking, provider.encoder().clone()).map_err(|message| ServiceError::Invalid { code: "invalid_chunking", message })?;
            // Splitting counts tokens over and over: CPU work, off the async workers.
            let (back, spans) = blocking(move || {
                let spans: Vec<Option<Vec<Span>>> = checked.iter().map(|(_, text, _, vector)| vector.is_none().then(|| splitter.split(text))).collect();
                Ok((checked, spans))
            })
            .await?;
            checked = back;
            let texts: Vec<String> = checked
                .iter()
                .zip(&spans)
                .filter_map(|((_, text, _, _), spans)| spans.as_ref().map(|spans| slices(text, spans).into_iter().map(str::to_owned)))
                .flatten()
                .collect();
            let embedded = provider.embed_documents(texts).await?.into_iter();
            Some((spans.into_iter(), embedded))
        } else {
            None
        };
        let mut documents = Vec::with_capacity(checked.len());
        let mut report = Vec::with_capacity(checked.len());
        let brought_vector: Vec<bool> = checked.iter().map(|(_, _, _, vector)| vector.is_some()).collect();
        for (id, text, metadata, vector) in checked {
            if let Some(vector) = vector {
                if let Some((spans, _)) = embeddings.as_mut() {
                    spans.next();
                }
                let span = Span { start: 0, end: text.chars().count() };
                report.push(Ingested { id: id.clone(), passages: 1, tokens: 0, truncated: false });
                documents.push(NewDocument { id, text, metadata, passages: vec![NewPassage { span, vector }] });
                continue;
            }
            let Some((spans, embeddings)) = embeddings.as_mut() else { return Err(ServiceError::Worker("a document without a vector was not embedded".into())) };
            let spans = spans.next().flatten().unwrap_or_default();
            let (mut tokens, mut truncated) = (0, false);
            let mut passages = Vec::with_capacity(spans.len());
            for span in spans {
                let embedding = embeddings.next().ok_or_else(|| ServiceError::Worker("the model returned fewer vectors than texts".into()))?;
                tokens += embedding.tokens;
                truncated |= embedding.truncated;
                passages.push(NewPassage { span, vector: embedding.embedding });
            }
            if truncated {
                tracing::warn!(collection = %collection.name(), document = %id, "document truncated at the model's window (the collection has no chunking): its end is not searchable");
            }
            report.push(Ingested { id: id.clone(), passages: passages.len(), tokens, truncated });
            documents.push(NewDocument { id, text, metadata, passages });
        }
        Ok(PreparedIngest { collection: addressed, documents, brought_vector, report })
    }

    /// Writes a prepared ingest. When the collection was switched for another meanwhile (a
    /// restore or a re-embed took its name), the documents are prepared again for the
    /// collection now under `name` (re-embedded if its model differs) and written there.
    pub async fn write_ingest(&self, name: &str, mut prepared: PreparedIngest) -> Result<Vec<Ingested>, ServiceError> {
        for _ in 0..SWITCH_RETRIES {
            match prepared.try_write().await? {
                Ok(report) => return Ok(report),
                Err(inputs) => {
                    tracing::info!(collection = name, documents = inputs.len(), "collection switched during a write; writing to its successor");
                    prepared = self.prepare_ingest(name, inputs).await?;
                }
            }
        }
        Err(EngineError::Moved(name.to_owned()).into())
    }

    /// `prepare_ingest` then `write_ingest`, for callers with no deadline to check between them.
    pub async fn ingest(&self, collection: &str, inputs: Vec<DocumentInput>) -> Result<Vec<Ingested>, ServiceError> {
        let prepared = self.prepare_ingest(collection, inputs).await?;
        self.write_ingest(collection, prepared).await
    }
}
