//! Exact load-time rewrites of an ONNX graph, done on the protobuf wire format so every field
//! we do not touch is copied byte for byte (no ONNX schema, no dependency).
//!
//! The one rewrite: `Where(IsNaN(s), c, s)` → `Identity(s)`. PyTorch's SDPA export wraps every
//! attention softmax in this NaN scrub for fully masked rows. akidb never sends one (every text
//! has at least one token, and exported BERT masks pad keys with a finite minimum, so a softmax
//! row cannot be NaN unless the weights are), yet on all-MiniLM-L6-v2 the scrub costs 12-15 % of
//! the run: two passes over a [batch, heads, seq, seq] tensor per layer
//! (benches/peers/ingest_levers.py). ONNX Runtime then folds the Identity away.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

// ModelProto.graph, GraphProto.{node, initializer, output}, NodeProto.{input, output, name,
// op_type, attribute}, TensorProto.data_location, ValueInfoProto.name.
const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_INITIALIZER: u64 = 5;
const GRAPH_OUTPUT: u64 = 12;
const NODE_INPUT: u64 = 1;
const NODE_OUTPUT: u64 = 2;
const NODE_NAME: u64 = 3;
const NODE_OP_TYPE: u64 = 4;
const NODE_DOMAIN: u64 = 7;
const TENSOR_DATA_LOCATION: u64 = 14;
const TENSOR_LOCATION_EXTERNAL: u64 = 1;
const VALUE_INFO_NAME: u64 = 1;
const LENGTH_DELIMITED: u8 = 2;

/// What the rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub model: Vec<u8>,
    pub nan_scrubs_removed: usize,
}

/// Returns the rewritten model, or `None` when there is nothing to rewrite or the model is one
/// this module does not touch (external weights, control flow, anything it cannot parse).
pub fn remove_nan_scrubs(model: &[u8]) -> Option<Rewritten> {
    let model_fields = fields(model)?;
    let graph_field = model_fields.iter().find(|f| f.number == MODEL_GRAPH && f.wire_type == LENGTH_DELIMITED)?;
    let graph = &model[graph_field.payload.clone()];
    let graph_fields = fields(graph)?;

    let mut nodes = Vec::new();
    let mut graph_outputs = HashSet::new();
    for field in &graph_fields {
        let payload = &graph[field.payload.clone()];
        match (field.number, field.wire_type) {
            (GRAPH_NODE, LENGTH_DELIMITED) => nodes.push(Node::parse(payload)?),
            // Weights in a side file are resolved relative to the model's path, which a model
            // loaded from memory does not have.
            (GRAPH_INITIALIZER, LENGTH_DELIMITED) if is_external(payload)? => return None,
            (GRAPH_OUTPUT, LENGTH_DELIMITED) => {
                graph_outputs.extend(strings(payload, VALUE_INFO_NAME)?);
            }
            _ => {}
        }
    }
    // Subgraphs may read outer names implicitly; leave such models alone.
    if nodes.iter().any(|n| n.domain.is_empty() && matches!(n.op_type.as_str(), "If" | "Loop" | "Scan")) {
        return None;
    }

    let mut consumers: HashMap<&str, usize> = HashMap::new();
    for node in &nodes {
        for input in &node.inputs {
            *consumers.entry(input.as_str()).or_default() += 1;
        }
    }
    let producer: HashMap<&str, usize> =
        nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i))).collect();

    let mut drop = HashSet::new();
    let mut to_identity = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if !(node.is_default_op("Where") && node.inputs.len() == 3 && node.outputs.len() == 1) {
            continue;
        }
        let (condition, scrubbed) = (&node.inputs[0], &node.inputs[2]);
        let Some(&check) = producer.get(condition.as_str()) else { continue };
        let check_node = &nodes[check];
        let only_feeds_this_where = consumers.get(condition.as_str()) == Some(&1) && !graph_outputs.contains(condition);
        if check_node.is_default_op("IsNaN") && check_node.inputs.len() == 1 && &check_node.inputs[0] == scrubbed && only_feeds_this_where {
            drop.insert(check);
            to_identity.insert(i, scrubbed.clone());
        }
    }
    if to_identity.is_empty() {
        return None;
    }

    let mut new_graph = Vec::with_capacity(graph.len());
    let mut node_index = 0;
    for field in &graph_fields {
        if field.number == GRAPH_NODE && field.wire_type == LENGTH_DELIMITED {
            let i = node_index;
            node_index += 1;
            if drop.contains(&i) {
                continue;
            }
            if let Some(input) = to_identity.get(&i) {
                let node = &nodes[i];
                let mut identity = Vec::new();
                put_string(&mut identity, NODE_INPUT, input);
                put_string(&mut identity, NODE_OUTPUT, &node.outputs[0]);
                put_string(&mut identity, NODE_NAME, &node.name);
                put_string(&mut identity, NODE_OP_TYPE, "Identity");
                put_bytes(&mut new_graph, GRAPH_NODE, &identity);
                continue;
            }
        }
        new_graph.extend_from_slice(&graph[field.whole.clone()]);
    }

    let mut new_model = Vec::with_capacity(model.len());
    for field in &model_fields {
        if field.number == MODEL_GRAPH && field.wire_type == LENGTH_DELIMITED {
            put_bytes(&mut new_model, MODEL_GRAPH, &new_graph);
        } else {
            new_model.extend_from_slice(&model[field.whole.clone()]);
        }
    }
    Some(Rewritten { model: new_model, nan_scrubs_removed: to_identity.len() })
}

struct Node {
    inputs: Vec<String>,
    outputs: Vec<String>,
    name: String,
    op_type: String,
    domain: String,
}

impl Node {
    fn parse(bytes: &[u8]) -> Option<Node> {
        let mut node = Node { inputs: Vec::new(), outputs: Vec::new(), name: String::new(), op_type: String::new(), domain: String::new() };
        for field in fields(bytes)? {
            if field.wire_type != LENGTH_DELIMITED {
                continue;
            }
            let text = || String::from_utf8(bytes[field.payload.clone()].to_vec()).ok();
            match field.number {
                NODE_INPUT => node.inputs.push(text()?),
                NODE_OUTPUT => node.outputs.push(text()?),
                NODE_NAME => node.name = text()?,
                NODE_OP_TYPE => node.op_type = text()?,
                NODE_DOMAIN => node.domain = text()?,
                _ => {}
            }
        }
        Some(node)
    }

    fn is_default_op(&self, op: &str) -> bool {
        self.op_type == op && (self.domain.is_empty() || self.domain == "ai.onnx")
    }
}

fn is_external(tensor: &[u8]) -> Option<bool> {
    Some(fields(tensor)?.iter().any(|f| f.number == TENSOR_DATA_LOCATION && f.wire_type == 0 && f.value == TENSOR_LOCATION_EXTERNAL))
}

fn strings(message: &[u8], number: u64) -> Option<Vec<String>> {
    fields(message)?
        .into_iter()
        .filter(|f| f.number == number && f.wire_type == LENGTH_DELIMITED)
        .map(|f| String::from_utf8(message[f.payload].to_vec()).ok())
        .collect()
}

/// One top-level field of a protobuf message.
struct Field {
    number: u64,
    wire_type: u8,
    /// Key through end of value.
    whole: Range<usize>,
    /// The bytes of a length-delimited value.
    payload: Range<usize>,
    /// The value of a varint.
    value: u64,
}

/// Splits a message into its top-level fields; `None` on anything malformed or on groups.
fn fields(bytes: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at)?;
        let (number, wire_type) = (key >> 3, (key & 7) as u8);
        let (payload, value) = match wire_type {
            0 => {
                let v = varint(bytes, &mut at)?;
                (at..at, v)
            }
            1 => (at..at.checked_add(8)?, 0),
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                (at..at.checked_add(len)?, 0)
            }
            5 => (at..at.checked_add(4)?, 0),
            _ => return None,
        };
        if payload.end > bytes.len() {
            return None;
        }
        at = payload.end;
        out.push(Field { number, wire_type, whole: start..at, payload, value });
    }
    Some(out)
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, (number << 3) | u64::from(LENGTH_DELIMITED));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_string(out: &mut Vec<u8>, number: u64, text: &str) {
    put_bytes(out, number, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], outputs: &[&str], name: &str) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            put_string(&mut n, NODE_INPUT, i);
        }
        for o in outputs {
            put_string(&mut n, NODE_OUTPUT, o);
        }
        put_string(&mut n, NODE_NAME, name);
        put_string(&mut n, NODE_OP_TYPE, op);
        n
    }

    fn model(nodes: &[Vec<u8>], extra_graph: &[u8]) -> Vec<u8> {
        let mut graph = Vec::new();
        for n in nodes {
            put_bytes(&mut graph, GRAPH_NODE, n);
        }
        graph.extend_from_slice(extra_graph);
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3); // ir_version = 8, a field the rewrite must carry over
        put_varint(&mut m, 8);
        put_bytes(&mut m, MODEL_GRAPH, &graph);
        m
    }

    #[test]
    fn where_isnan_becomes_identity_and_the_rest_is_kept() {
        let m = model(
            &[
                node("Softmax", &["x"], &["s"], "softmax"),
                node("IsNaN", &["s"], &["nan"], "isnan"),
                node("Where", &["nan", "zero", "s"], &["y"], "where"),
                node("MatMul", &["y", "v"], &["out"], "matmul"),
            ],
            &[],
        );
        let done = remove_nan_scrubs(&m).expect("rewritten");
        assert_eq!(done.nan_scrubs_removed, 1);
        let expected = model(
            &[
                node("Softmax", &["x"], &["s"], "softmax"),
                node("Identity", &["s"], &["y"], "where"),
                node("MatMul", &["y", "v"], &["out"], "matmul"),
            ],
            &[],
        );
        assert_eq!(done.model, expected);
    }

    #[test]
    fn other_wheres_and_shared_checks_are_left_alone() {
        let m = model(
            &[
                node("IsNaN", &["s"], &["nan"], "isnan"),
                node("Where", &["nan", "zero", "other"], &["y"], "where on another tensor"),
                node("Where", &["mask", "zero", "s"], &["z"], "plain where"),
            ],
            &[],
        );
        assert_eq!(remove_nan_scrubs(&m), None);
        let shared = model(
            &[
                node("IsNaN", &["s"], &["nan"], "isnan"),
                node("Where", &["nan", "zero", "s"], &["y"], "where"),
                node("Not", &["nan"], &["ok"], "reads the check too"),
            ],
            &[],
        );
        assert_eq!(remove_nan_scrubs(&shared), None);
    }

    #[test]
    fn external_weights_and_garbage_are_not_touched() {
        let mut tensor = Vec::new();
        put_string(&mut tensor, 8, "w");
        put_varint(&mut tensor, TENSOR_DATA_LOCATION << 3);
        put_varint(&mut tensor, TENSOR_LOCATION_EXTERNAL);
        let mut extra = Vec::new();
        put_bytes(&mut extra, GRAPH_INITIALIZER, &tensor);
        let m = model(
            &[node("IsNaN", &["s"], &["nan"], "isnan"), node("Where", &["nan", "zero", "s"], &["y"], "where")],
            &extra,
        );
        assert_eq!(remove_nan_scrubs(&m), None);
        assert_eq!(remove_nan_scrubs(&[0xff, 0xff, 0xff]), None);
        assert_eq!(remove_nan_scrubs(b""), None);
    }
}
