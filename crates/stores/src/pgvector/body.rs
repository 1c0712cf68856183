//! A vector record's body as migration and erasure carry it, and pgvector's binary wire
//! format for the `vector` type.
//!
//! An envelope is `MAGIC`, the dimension (u32, big-endian), each value as an f32
//! little-endian (bit for bit: NaN payloads and -0.0 are refused or kept, never
//! reformatted through text), then the metadata as RFC 8785 canonical JSON (empty when
//! there is none). Canonical metadata is what PostgreSQL's `jsonb` gives back in a
//! stable form, so a body read at any location is byte-equal to the one written and the
//! fingerprints of source and target agree. A body that is not an envelope is a
//! document: bytes kept as they are, without an embedding.

use bytes::{Buf, BufMut, BytesMut};
use ports::StoreError;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// Marks a vector envelope.
pub const MAGIC: &[u8] = b"\x00tenant-lifecycle:vector\x01";

/// One embedding and its metadata, as a record body carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorBody {
    /// The embedding.
    pub values: Vec<f32>,
    /// Its metadata (a JSON object), if any.
    pub metadata: Option<serde_json::Value>,
}

/// What a record body holds once decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stored {
    /// An embedding with its canonical metadata text.
    Vector {
        values: Vec<f32>,
        metadata: Option<String>,
    },
    /// Bytes without an embedding.
    Document(Vec<u8>),
}

impl VectorBody {
    /// The body bytes of this vector (metadata in canonical form).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let meta = match &self.metadata {
            None => Vec::new(),
            Some(m) => serde_json_canonicalizer::to_vec(m)
                .map_err(|e| StoreError::Corrupt(format!("vector metadata: {e}")))?,
        };
        Ok(envelope(&self.values, &meta))
    }

    /// The inverse of [`VectorBody::encode`]; `None` when the body is not an envelope.
    pub fn decode(body: &[u8]) -> Result<Option<Self>, StoreError> {
        match Stored::decode(body)? {
            Stored::Document(_) => Ok(None),
            Stored::Vector { values, metadata } => {
                let metadata = metadata
                    .map(|m| serde_json::from_str(&m))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("vector metadata: {e}")))?;
                Ok(Some(Self { values, metadata }))
            }
        }
    }
}

pub(crate) fn envelope(values: &[f32], metadata: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + values.len() * 4 + metadata.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(values.len() as u32).to_be_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(metadata);
    out
}

impl Stored {
    /// Splits a body into what the table's columns hold, refusing malformed envelopes,
    /// values pgvector cannot store and metadata that would not read back byte-equal.
    pub(crate) fn decode(body: &[u8]) -> Result<Self, StoreError> {
        let Some(mut rest) = body.strip_prefix(MAGIC) else {
            return Ok(Self::Document(body.to_vec()));
        };
        let bad = |m: &str| StoreError::Corrupt(format!("vector envelope: {m}"));
        if rest.len() < 4 {
            return Err(bad("truncated before its dimension"));
        }
        let dim = rest.get_u32() as usize;
        let need = dim
            .checked_mul(4)
            .filter(|n| *n <= rest.len())
            .ok_or_else(|| bad("shorter than its dimension says"))?;
        let mut values = Vec::with_capacity(dim);
        for chunk in rest[..need].chunks_exact(4) {
            let v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if !v.is_finite() {
                return Err(StoreError::Config(
                    "a vector holds NaN or an infinity, which pgvector refuses; fix the embedding"
                        .into(),
                ));
            }
            values.push(v);
        }
        let meta = &rest[need..];
        if meta.is_empty() {
            return Ok(Self::Vector {
                values,
                metadata: None,
            });
        }
        let parsed: serde_json::Value = serde_json::from_slice(meta)
            .map_err(|e| StoreError::Config(format!("vector metadata is not JSON: {e}")))?;
        if !parsed.is_object() {
            return Err(StoreError::Config(
                "vector metadata must be a JSON object".into(),
            ));
        }
        let canonical = serde_json_canonicalizer::to_vec(&parsed)
            .map_err(|e| StoreError::Config(format!("vector metadata: {e}")))?;
        if canonical != meta {
            return Err(StoreError::Config(
                "vector metadata must be RFC 8785 canonical JSON (sorted keys, no spaces), or it would not read back byte for byte; build bodies with VectorBody::encode".into(),
            ));
        }
        let text = String::from_utf8(canonical)
            .map_err(|_| StoreError::Config("vector metadata is not UTF-8".into()))?;
        Ok(Self::Vector {
            values,
            metadata: Some(text),
        })
    }

    /// The body of a row read back: `None` for a tombstone.
    pub(crate) fn from_row(
        embedding: Option<Embedding>,
        metadata: Option<String>,
        document: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match (embedding, document) {
            (Some(e), _) => {
                let meta = match metadata {
                    None => Vec::new(),
                    Some(m) => {
                        let v: serde_json::Value = serde_json::from_str(&m)
                            .map_err(|e| StoreError::Corrupt(format!("stored metadata: {e}")))?;
                        serde_json_canonicalizer::to_vec(&v)
                            .map_err(|e| StoreError::Corrupt(format!("stored metadata: {e}")))?
                    }
                };
                Ok(Some(envelope(&e.0, &meta)))
            }
            (None, Some(d)) => Ok(Some(d)),
            (None, None) => Ok(None),
        }
    }
}

/// pgvector's `vector`, sent and received in its binary format (dimension as i16, an
/// unused i16, then each value as a big-endian f32), so values travel bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(pub Vec<f32>);

impl ToSql for Embedding {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let dim = i16::try_from(self.0.len()).map_err(|_| "a vector has over 32767 values")?;
        out.put_i16(dim);
        out.put_i16(0);
        for v in &self.0 {
            out.put_f32(*v);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Embedding {
    fn from_sql(
        _ty: &Type,
        mut raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if raw.len() < 4 {
            return Err("a vector value is truncated".into());
        }
        let dim = raw.get_i16();
        let _unused = raw.get_i16();
        let dim = usize::try_from(dim).map_err(|_| "a vector has a negative dimension")?;
        if raw.len() != dim * 4 {
            return Err("a vector value's length disagrees with its dimension".into());
        }
        Ok(Self((0..dim).map(|_| raw.get_f32()).collect()))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
}

#[cfg(test)]
mod tests {
    use super::{MAGIC, Stored, VectorBody, envelope};
    use serde_json::json;

    #[test]
    fn vectors_round_trip_bit_for_bit_and_documents_stay_as_they_are() {
        let b = VectorBody {
            values: vec![0.1, -0.0, f32::MIN_POSITIVE, 3.5e-42, f32::MAX],
            metadata: Some(json!({"z": 1, "a": {"y": [1.5, "x"]}})),
        };
        let bytes = b.encode().expect("encode");
        assert!(bytes.ends_with(br#"{"a":{"y":[1.5,"x"]},"z":1}"#));
        let back = VectorBody::decode(&bytes).expect("decode").expect("vector");
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.values), bits(&b.values));
        assert_eq!(back.metadata, b.metadata);
        assert_eq!(
            Stored::decode(br#"{"system":"x","i":1}"#).expect("doc"),
            Stored::Document(br#"{"system":"x","i":1}"#.to_vec())
        );
        let none = VectorBody {
            values: vec![1.0],
            metadata: None,
        };
        assert_eq!(
            VectorBody::decode(&none.encode().expect("e")).expect("d"),
            Some(none)
        );
    }

    #[test]
    fn malformed_envelopes_are_refused_not_stored() {
        let good = envelope(&[1.0, 2.0], b"");
        for cut in MAGIC.len()..good.len() {
            assert!(Stored::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Stored::decode(&envelope(&[f32::NAN], b"")).is_err());
        assert!(Stored::decode(&envelope(&[1.0], br#"{"b":1, "a":2}"#)).is_err());
        assert!(Stored::decode(&envelope(&[1.0], b"[1]")).is_err());
        assert!(Stored::decode(&envelope(&[1.0], b"{nope")).is_err());
    }
}
