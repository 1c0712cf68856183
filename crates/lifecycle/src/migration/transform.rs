//! The schema transform between source and target bodies.

use serde::{Deserialize, Serialize};

/// How a source record's body becomes the target's (and back, for the reverse copy after
/// the flip, so a rollback loses nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Bodies are copied as they are.
    #[default]
    None,
    /// Schema v1 (a JSON value) to v2 (`{"schema_version": 2, "record": <v1>}`).
    SchemaV1ToV2,
}

impl Transform {
    /// The transform as it applies to a system of `kind`. A schema version governs the
    /// tenant's documents; an embedding's body has the shape its vector store fixes
    /// (values and metadata), so vector systems move as they are under any schema change.
    pub fn for_kind(self, kind: crate::SystemKind) -> Self {
        match kind {
            crate::SystemKind::Vectors => Self::None,
            _ => self,
        }
    }

    /// Source body to target body.
    pub fn forward(self, body: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::None => Ok(body.to_vec()),
            // The v1 text is embedded verbatim, so backward(forward(x)) == x byte for byte
            // and fingerprints of a reverse copy match the original.
            Self::SchemaV1ToV2 => {
                let v1: &serde_json::value::RawValue = serde_json::from_slice(body)
                    .map_err(|e| format!("a v1 record is not JSON: {e}"))?;
                let mut out = Vec::with_capacity(body.len() + 32);
                out.extend_from_slice(b"{\"schema_version\":2,\"record\":");
                out.extend_from_slice(v1.get().as_bytes());
                out.push(b'}');
                Ok(out)
            }
        }
    }

    /// Target body back to source body.
    pub fn backward(self, body: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::None => Ok(body.to_vec()),
            Self::SchemaV1ToV2 => {
                #[derive(Deserialize)]
                struct V2<'a> {
                    schema_version: u32,
                    #[serde(borrow)]
                    record: &'a serde_json::value::RawValue,
                }
                let v2: V2<'_> = serde_json::from_slice(body)
                    .map_err(|e| format!("a v2 record is malformed: {e}"))?;
                if v2.schema_version != 2 {
                    return Err(format!(
                        "a v2 record has schema_version {}",
                        v2.schema_version
                    ));
                }
                Ok(v2.record.get().as_bytes().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_transform_round_trips_and_refuses_garbage() {
        let t = Transform::SchemaV1ToV2;
        let v1 = br#"{"name":"x","n":1}"#;
        let v2 = t.forward(v1).expect("forward");
        assert!(String::from_utf8_lossy(&v2).contains("\"schema_version\":2"));
        assert_eq!(t.backward(&v2).expect("backward"), v1.to_vec());
        assert!(t.forward(b"not json").is_err());
        assert!(t.backward(br#"{"schema_version":3,"record":1}"#).is_err());
        assert_eq!(
            Transform::None.forward(b"raw").expect("id"),
            b"raw".to_vec()
        );
    }
}
