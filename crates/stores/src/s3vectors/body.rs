//! How a record body becomes one S3 Vectors vector and back.
//!
//! Bodies speak the vector envelope of the pgvector product (the same `MAGIC`, the
//! dimension as a big-endian u32, each value as an f32 little-endian, then RFC 8785
//! canonical JSON metadata, empty when none), so a body moves between the two vector
//! products unchanged. An envelope's values are the vector's data, bit for bit (S3
//! Vectors stores float32), and its metadata the vector's metadata. Any other body (a
//! document) is kept whole, base64, under the reserved non-filterable metadata key
//! [`BODY_KEY`] of a constant placeholder vector of ones (zero-free, so a cosine index
//! accepts it), marked by the filterable key [`DOCUMENT_KEY`] so queries can leave such
//! records out with `{"tenant-lifecycle:document": {"$exists": false}}`.

use aws_sdk_s3vectors::types::{PutInputVector, VectorData};
use aws_smithy_types::{Document, Number};
use base64::Engine as _;
use ports::StoreError;
use std::collections::HashMap;

/// Marks a vector envelope (the pgvector product's marker).
pub const MAGIC: &[u8] = b"\x00tenant-lifecycle:vector\x01";
/// Metadata keys starting with this are the product's own; an envelope may not use them.
pub const RESERVED: &str = "tenant-lifecycle:";
/// The metadata key holding a document body, base64 (non-filterable: up to 40 KB).
pub const BODY_KEY: &str = "tenant-lifecycle:body";
/// The metadata key marking a document's placeholder vector.
pub const DOCUMENT_KEY: &str = "tenant-lifecycle:document";
/// The metadata key of a record's revision (kept by migration's writes).
pub const REV_KEY: &str = "tenant-lifecycle:rev";
/// The metadata key marking a tombstone (a deletion migration keeps).
pub const TOMBSTONE_KEY: &str = "tenant-lifecycle:tombstone";

fn config(m: impl Into<String>) -> StoreError {
    StoreError::Config(m.into())
}

/// The vector stored for `body` under `key`, for an index of `dimension` values.
pub(crate) fn to_vector(
    key: &str,
    body: &[u8],
    dimension: u32,
) -> Result<PutInputVector, StoreError> {
    let (values, metadata) = match body.strip_prefix(MAGIC) {
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(body);
            let meta = HashMap::from([
                (BODY_KEY.to_owned(), Document::String(b64)),
                (DOCUMENT_KEY.to_owned(), Document::Bool(true)),
            ]);
            (vec![1.0; dimension as usize], Document::Object(meta))
        }
        Some(rest) => decode_envelope(rest, dimension)?,
    };
    PutInputVector::builder()
        .key(key)
        .data(VectorData::Float32(values))
        .metadata(metadata)
        .build()
        .map_err(|e| StoreError::Config(format!("PutInputVector: {e}")))
}

fn decode_envelope(rest: &[u8], dimension: u32) -> Result<(Vec<f32>, Document), StoreError> {
    let bad = |m: &str| StoreError::Corrupt(format!("vector envelope: {m}"));
    let (dim, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("truncated before its dimension"))?;
    let dim = u32::from_be_bytes(*dim);
    if dim != dimension {
        return Err(config(format!(
            "a vector of {dim} dimensions cannot go into an index of {dimension}; fix the embedding or the catalog's dimension"
        )));
    }
    let need = (dim as usize)
        .checked_mul(4)
        .filter(|n| *n <= rest.len())
        .ok_or_else(|| bad("shorter than its dimension says"))?;
    let mut values = Vec::with_capacity(dim as usize);
    for c in rest[..need].chunks_exact(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if !v.is_finite() {
            return Err(config(
                "a vector holds NaN or an infinity, which S3 Vectors refuses; fix the embedding",
            ));
        }
        values.push(v);
    }
    let meta = &rest[need..];
    if meta.is_empty() {
        return Ok((values, Document::Object(HashMap::new())));
    }
    let parsed: serde_json::Value = serde_json::from_slice(meta)
        .map_err(|e| config(format!("vector metadata is not JSON: {e}")))?;
    let Some(obj) = parsed.as_object() else {
        return Err(config("vector metadata must be a JSON object"));
    };
    if obj.is_empty() {
        return Err(config(
            "vector metadata {} reads back as no metadata; encode the vector without metadata",
        ));
    }
    if let Some(k) = obj.keys().find(|k| k.starts_with(RESERVED)) {
        return Err(config(format!(
            "vector metadata key {k:?} is reserved (keys starting with {RESERVED:?} are the product's own)"
        )));
    }
    let canonical = serde_json_canonicalizer::to_vec(&parsed)
        .map_err(|e| config(format!("vector metadata: {e}")))?;
    if canonical != meta {
        return Err(config(
            "vector metadata must be RFC 8785 canonical JSON (sorted keys, no spaces), or it would not read back byte for byte",
        ));
    }
    Ok((values, to_document(&parsed)))
}

/// A placeholder vector of ones carrying only reserved metadata (tombstones, the feed).
pub(crate) fn placeholder(
    key: &str,
    dimension: u32,
    meta: &[(&str, Document)],
) -> Result<PutInputVector, StoreError> {
    let meta = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    PutInputVector::builder()
        .key(key)
        .data(VectorData::Float32(vec![1.0; dimension as usize]))
        .metadata(Document::Object(meta))
        .build()
        .map_err(|e| StoreError::Config(format!("PutInputVector: {e}")))
}

/// The same vector with reserved metadata `extra` added.
pub(crate) fn with_reserved(
    v: PutInputVector,
    extra: &[(&str, Document)],
) -> Result<PutInputVector, StoreError> {
    let mut meta = match v.metadata() {
        Document::Object(o) => o.clone(),
        _ => HashMap::new(),
    };
    for (k, d) in extra {
        meta.insert((*k).to_owned(), d.clone());
    }
    PutInputVector::builder()
        .key(v.key())
        .set_data(v.data().cloned())
        .metadata(Document::Object(meta))
        .build()
        .map_err(|e| StoreError::Config(format!("PutInputVector: {e}")))
}

/// A reserved numeric metadata value (revisions, feed positions); 0 when absent.
pub(crate) fn number(metadata: Option<&Document>, key: &str) -> u64 {
    match metadata
        .and_then(|m| m.as_object())
        .and_then(|o| o.get(key))
    {
        Some(Document::Number(Number::PosInt(u))) => *u,
        Some(Document::Number(Number::Float(f))) if *f >= 0.0 => *f as u64,
        _ => 0,
    }
}

/// A reserved string metadata value (a feed entry's key).
pub(crate) fn string(metadata: Option<&Document>, key: &str) -> Option<String> {
    match metadata
        .and_then(|m| m.as_object())
        .and_then(|o| o.get(key))
    {
        Some(Document::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The body of a stored vector: the document it holds, its envelope, or `None` for a
/// tombstone.
pub(crate) fn from_vector(
    data: Option<&VectorData>,
    metadata: Option<&Document>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let corrupt = |m: &str| StoreError::Corrupt(format!("stored vector: {m}"));
    let obj = match metadata {
        None | Some(Document::Null) => HashMap::new(),
        Some(Document::Object(o)) => o.clone(),
        Some(_) => return Err(corrupt("metadata is not an object")),
    };
    if obj.contains_key(TOMBSTONE_KEY) {
        return Ok(None);
    }
    if let Some(b) = obj.get(BODY_KEY) {
        let Document::String(s) = b else {
            return Err(corrupt("the document body is not a string"));
        };
        return base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("stored document body: {e}")));
    }
    let values = match data {
        Some(VectorData::Float32(v)) => v,
        _ => return Err(corrupt("no float32 data")),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + values.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(values.len() as u32).to_be_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let user: serde_json::Map<String, serde_json::Value> = obj
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED))
        .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
        .collect::<Result<_, StoreError>>()?;
    if !user.is_empty() {
        let meta = serde_json_canonicalizer::to_vec(&serde_json::Value::Object(user))
            .map_err(|e| StoreError::Corrupt(format!("stored metadata: {e}")))?;
        out.extend_from_slice(&meta);
    }
    Ok(Some(out))
}

/// A JSON value as the SDK's document.
pub(crate) fn to_document(v: &serde_json::Value) -> Document {
    use serde_json::Value;
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect())
        }
    }
}

/// The SDK's document as a JSON value.
pub(crate) fn to_json(d: &Document) -> Result<serde_json::Value, StoreError> {
    use serde_json::Value;
    Ok(match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| StoreError::Corrupt(format!("stored metadata holds {f}")))?
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::{BODY_KEY, MAGIC, from_vector, to_vector};

    fn envelope(values: &[f32], meta: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(values.len() as u32).to_be_bytes());
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(meta);
        out
    }

    fn round_trip(body: &[u8], dim: u32) -> Vec<u8> {
        let v = to_vector("k", body, dim).expect("to vector");
        from_vector(v.data(), Some(v.metadata()))
            .expect("from vector")
            .expect("not a tombstone")
    }

    #[test]
    fn vectors_and_documents_read_back_byte_for_byte() {
        let vec = envelope(
            &[0.1, -0.0, f32::MIN_POSITIVE, 3.5e-42],
            br#"{"a":{"y":[1.5,"x"]},"z":1}"#,
        );
        assert_eq!(round_trip(&vec, 4), vec);
        let bare = envelope(&[1.0, 2.0], b"");
        assert_eq!(round_trip(&bare, 2), bare);
        for doc in [&b"hello"[..], b"", b"\x00tenant-lifecycle:", b"\xff\xfe"] {
            assert_eq!(round_trip(doc, 3), doc);
            let v = to_vector("k", doc, 3).expect("doc");
            assert!(
                v.metadata()
                    .as_object()
                    .is_some_and(|o| o.contains_key(BODY_KEY))
            );
        }
    }

    #[cfg(feature = "pgvector")]
    #[test]
    fn the_envelope_is_pgvectors() {
        let b = crate::pgvector::VectorBody {
            values: vec![0.5, -1.25],
            metadata: Some(serde_json::json!({"doc": "d1", "n": 2})),
        }
        .encode()
        .expect("encode");
        assert_eq!(round_trip(&b, 2), b);
    }

    #[test]
    fn what_would_not_read_back_is_refused() {
        assert!(
            to_vector("k", &envelope(&[1.0], b""), 2).is_err(),
            "dimension"
        );
        assert!(to_vector("k", &envelope(&[f32::NAN], b""), 1).is_err());
        assert!(to_vector("k", &envelope(&[1.0], br#"{"b":1, "a":2}"#), 1).is_err());
        assert!(to_vector("k", &envelope(&[1.0], b"{}"), 1).is_err());
        assert!(to_vector("k", &envelope(&[1.0], b"[1]"), 1).is_err());
        assert!(
            to_vector(
                "k",
                &envelope(&[1.0], br#"{"tenant-lifecycle:body":"x"}"#),
                1
            )
            .is_err()
        );
        let good = envelope(&[1.0, 2.0], b"");
        for cut in MAGIC.len()..good.len() {
            assert!(to_vector("k", &good[..cut], 2).is_err(), "cut at {cut}");
        }
    }
}
