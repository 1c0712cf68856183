//! A record body as the clone sees it: a JSON document the rules address by pointer,
//! whatever the product stored. JSON bodies are themselves; a vector envelope is
//! `{"values": [...], "metadata": {...}}`; a Redis hash envelope is an object of its
//! fields; a Redis string with an expiry is its value; other UTF-8 text is one string
//! (the pointer `""`); anything else is opaque bytes, which only a whole-body rule can
//! let through.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// Marks a vector envelope (the pgvector and S3 Vectors products' body format).
pub const VECTOR_MAGIC: &[u8] = b"\x00tenant-lifecycle:vector\x01";
/// Marks a Redis envelope (a hash, set, list, or a string with an expiry).
pub const REDIS_MAGIC: &[u8] = b"\x00tenant-lifecycle:redis\x01";

/// How the document goes back into bytes of the product's own format.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A JSON value.
    Json,
    /// Plain UTF-8 text that is not JSON.
    Text,
    /// A vector envelope.
    Vector,
    /// A Redis envelope: its type tag and expiry; hashes become objects, a string its
    /// value, sets and lists an array of strings.
    Redis {
        /// The envelope's type tag.
        tag: u8,
        /// Absolute expiry in Unix milliseconds (-1 for none).
        expiry_ms: i64,
        /// How the inner string value was shaped (for `s`).
        inner: Option<Box<Shape>>,
    },
    /// Bytes the clone cannot read.
    Opaque,
}

/// A decoded body.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// How it was stored.
    pub shape: Shape,
    /// The document (`Null` for opaque bytes).
    pub value: Value,
}

fn text_or_json(bytes: &[u8]) -> Option<(Shape, Value)> {
    let text = std::str::from_utf8(bytes).ok()?;
    match crate::json::parse_strict_bytes(bytes) {
        Ok(v) => Some((Shape::Json, v)),
        Err(_) => Some((Shape::Text, Value::String(text.to_owned()))),
    }
}

/// Decodes a body; `Opaque` when none of the forms fit.
pub fn decode(bytes: &[u8]) -> Doc {
    let opaque = || Doc {
        shape: Shape::Opaque,
        value: Value::Null,
    };
    if let Some(rest) = bytes.strip_prefix(VECTOR_MAGIC) {
        return decode_vector(rest).unwrap_or_else(opaque);
    }
    if let Some(rest) = bytes.strip_prefix(REDIS_MAGIC) {
        return decode_redis(rest).unwrap_or_else(opaque);
    }
    match text_or_json(bytes) {
        Some((shape, value)) => Doc { shape, value },
        None => opaque(),
    }
}

fn decode_vector(rest: &[u8]) -> Option<Doc> {
    let (dim, rest) = rest.split_at_checked(4)?;
    let dim = u32::from_be_bytes(dim.try_into().ok()?) as usize;
    let (vals, meta) = rest.split_at_checked(dim.checked_mul(4)?)?;
    let values: Vec<Value> = vals
        .chunks_exact(4)
        .map(|c| {
            let f = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            serde_json::Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number)
        })
        .collect();
    let metadata = if meta.is_empty() {
        Value::Null
    } else {
        crate::json::parse_strict_bytes(meta).ok()?
    };
    let mut m = Map::new();
    m.insert("values".into(), Value::Array(values));
    m.insert("metadata".into(), metadata);
    Some(Doc {
        shape: Shape::Vector,
        value: Value::Object(m),
    })
}

fn decode_redis(rest: &[u8]) -> Option<Doc> {
    let (&tag, rest) = rest.split_first()?;
    let (exp, mut rest) = rest.split_at_checked(8)?;
    let expiry_ms = i64::from_be_bytes(exp.try_into().ok()?);
    let mut members = Vec::new();
    while !rest.is_empty() {
        let (len, r) = rest.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (m, r) = r.split_at_checked(len)?;
        members.push(m);
        rest = r;
    }
    let (value, inner) = match tag {
        b'h' => {
            if members.len() % 2 == 1 {
                return None;
            }
            let mut m = Map::new();
            for p in members.chunks_exact(2) {
                m.insert(
                    std::str::from_utf8(p[0]).ok()?.to_owned(),
                    Value::String(std::str::from_utf8(p[1]).ok()?.to_owned()),
                );
            }
            (Value::Object(m), None)
        }
        b's' => {
            let (shape, v) = text_or_json(members.first()?)?;
            (v, Some(Box::new(shape)))
        }
        b'S' | b'l' | b'z' => (
            Value::Array(
                members
                    .iter()
                    .map(|m| {
                        std::str::from_utf8(m)
                            .ok()
                            .map(|s| Value::String(s.to_owned()))
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            None,
        ),
        _ => return None,
    };
    Some(Doc {
        shape: Shape::Redis {
            tag,
            expiry_ms,
            inner,
        },
        value,
    })
}

/// Encodes a document back into its shape's bytes; `None` for opaque bodies (the
/// caller keeps the original bytes, which only a whole-body rule allows).
pub fn encode(doc: &Doc) -> Option<Vec<u8>> {
    match &doc.shape {
        Shape::Json => serde_json::to_vec(&doc.value).ok(),
        Shape::Text => Some(doc.value.as_str().unwrap_or_default().as_bytes().to_vec()),
        Shape::Opaque => None,
        Shape::Vector => {
            let values: Vec<f32> = doc.value["values"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect())
                .unwrap_or_default();
            let mut out = VECTOR_MAGIC.to_vec();
            out.extend_from_slice(&(values.len() as u32).to_be_bytes());
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
            match &doc.value["metadata"] {
                Value::Null => {}
                m => out.extend_from_slice(serde_json_canonicalizer::to_string(m).ok()?.as_bytes()),
            }
            Some(out)
        }
        Shape::Redis {
            tag,
            expiry_ms,
            inner,
        } => {
            let members: Vec<Vec<u8>> = match (tag, &doc.value) {
                (b'h', Value::Object(m)) => {
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = m
                        .iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), leaf_text(v).into_bytes()))
                        .collect();
                    pairs.sort();
                    pairs.into_iter().flat_map(|(a, b)| [a, b]).collect()
                }
                (b's', v) => vec![encode(&Doc {
                    shape: inner.as_deref().cloned().unwrap_or(Shape::Text),
                    value: v.clone(),
                })?],
                (_, Value::Array(a)) => a.iter().map(|v| leaf_text(v).into_bytes()).collect(),
                _ => return None,
            };
            let mut out = REDIS_MAGIC.to_vec();
            out.push(*tag);
            out.extend_from_slice(&expiry_ms.to_be_bytes());
            for m in members {
                out.extend_from_slice(&(m.len() as u32).to_be_bytes());
                out.extend_from_slice(&m);
            }
            Some(out)
        }
    }
}

fn leaf_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    }
}

/// Every leaf of a document with its pointer (array indexes as numbers).
pub fn leaves(v: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(v: &'a Value, path: &mut String, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let len = path.len();
                    path.push('/');
                    if k.contains(['~', '/']) {
                        path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    } else {
                        path.push_str(k);
                    }
                    walk(x, path, out);
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    walk(x, path, out);
                    path.truncate(len);
                }
            }
            leaf => out.push((path.clone(), leaf)),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

/// True when `path` is `pattern` or lies under it (`*` matches one segment).
pub fn covers(pattern: &str, path: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    if !pattern.contains('*') {
        return path
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    }
    let mut p = pattern.split('/').skip(1);
    let mut q = path.split('/').skip(1);
    loop {
        match (p.next(), q.next()) {
            (None, _) => return true,
            (Some(_), None) => return false,
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

/// Calls `f` on every value `pattern` names in `v` (`*` matches every member).
pub fn for_each_match(v: &mut Value, pattern: &str, f: &mut dyn FnMut(&mut Value)) {
    fn walk(v: &mut Value, segs: &[Cow<'_, str>], f: &mut dyn FnMut(&mut Value)) {
        let Some((first, rest)) = segs.split_first() else {
            f(v);
            return;
        };
        match v {
            Value::Object(m) if *first == "*" => m.values_mut().for_each(|x| walk(x, rest, f)),
            Value::Object(m) => {
                if let Some(x) = m.get_mut(first.as_ref()) {
                    walk(x, rest, f);
                }
            }
            Value::Array(a) if *first == "*" => a.iter_mut().for_each(|x| walk(x, rest, f)),
            Value::Array(a) => {
                if let Some(x) = first.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    walk(x, rest, f);
                }
            }
            _ => {}
        }
    }
    let segs: Vec<Cow<'_, str>> = pattern
        .split('/')
        .skip(1)
        .map(|s| {
            if s.contains('~') {
                Cow::Owned(s.replace("~1", "/").replace("~0", "~"))
            } else {
                Cow::Borrowed(s)
            }
        })
        .collect();
    walk(v, &segs, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_round_trips() {
        let mut vec_body = VECTOR_MAGIC.to_vec();
        vec_body.extend_from_slice(&2u32.to_be_bytes());
        vec_body.extend_from_slice(&0.5f32.to_le_bytes());
        vec_body.extend_from_slice(&(-1.0f32).to_le_bytes());
        vec_body.extend_from_slice(br#"{"doc":"d/1"}"#);
        let mut hash = REDIS_MAGIC.to_vec();
        hash.push(b'h');
        hash.extend_from_slice(&(-1i64).to_be_bytes());
        for m in [&b"email"[..], b"a@b.c", b"n", b"1"] {
            hash.extend_from_slice(&(m.len() as u32).to_be_bytes());
            hash.extend_from_slice(m);
        }
        for body in [
            br#"{"a":[1,"x"],"b":null}"#.to_vec(),
            b"plain text".to_vec(),
            vec_body,
            hash,
        ] {
            let d = decode(&body);
            assert_ne!(d.shape, Shape::Opaque, "{body:?}");
            assert_eq!(encode(&d).as_deref(), Some(&body[..]), "{d:?}");
        }
        assert_eq!(decode(&[0xff, 0xfe]).shape, Shape::Opaque);
        let mut cut = REDIS_MAGIC.to_vec();
        cut.extend_from_slice(b"h\0\0");
        assert_eq!(decode(&cut).shape, Shape::Opaque);
    }

    #[test]
    fn pointers_cover_and_match_with_wildcards() {
        assert!(covers("/a", "/a/b"));
        assert!(covers("/items/*/email", "/items/3/email"));
        assert!(!covers("/items/*/email", "/items/3/name"));
        assert!(covers("", "/x"));
        let mut v = serde_json::json!({"items": [{"email": "a"}, {"email": "b"}], "a/b": 1});
        let mut n = 0;
        for_each_match(&mut v, "/items/*/email", &mut |x| {
            *x = Value::Null;
            n += 1;
        });
        assert_eq!(n, 2);
        for_each_match(&mut v, "/a~1b", &mut |x| *x = Value::Bool(true));
        assert_eq!(v["a/b"], Value::Bool(true));
        let l = leaves(&v);
        assert!(l.iter().any(|(p, _)| p == "/items/1/email"));
        assert!(l.iter().any(|(p, _)| p == "/a~1b"));
    }
}
