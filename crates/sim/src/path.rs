//! The JSONPath subset ASL uses in practice: `$`, `$.a.b`, `$['a']`, `$.a[0]`, and `$$.`
//! for the context object. Wildcards, filters, slices and unions are refused at load.

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// An object field.
    Field(String),
    /// An array index.
    Index(usize),
}

/// A parsed path, on the state's data (`$`) or on the context object (`$$`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// True for `$$` paths.
    pub context: bool,
    /// The steps after the root.
    pub segs: Vec<Seg>,
    text: String,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Parses a path; the error names the unsupported construct.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (context, rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(format!("path {text:?} must start with $"));
        };
        let b = rest.as_bytes();
        let mut segs = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    if b.get(i + 1) == Some(&b'.') {
                        return Err(format!(
                            "path {text:?}: recursive descent (..) is not supported"
                        ));
                    }
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                        j += 1;
                    }
                    let name = &rest[start..j];
                    if name.is_empty() {
                        return Err(format!("path {text:?} has an empty field name"));
                    }
                    if name == "*" {
                        return Err(format!("path {text:?}: wildcards are not supported"));
                    }
                    segs.push(Seg::Field(name.to_owned()));
                    i = j;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|k| i + k)
                        .ok_or_else(|| format!("path {text:?}: unclosed ["))?;
                    let inner = rest[i + 1..close].trim();
                    if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                        segs.push(Seg::Field(q.to_owned()));
                    } else if let Ok(n) = inner.parse::<usize>() {
                        segs.push(Seg::Index(n));
                    } else {
                        return Err(format!(
                            "path {text:?}: [{inner}] is not supported (only [n] and ['name']; no wildcards, filters, slices or unions)"
                        ));
                    }
                    i = close + 1;
                }
                _ => return Err(format!("path {text:?}: unexpected {:?}", b[i] as char)),
            }
        }
        Ok(Self {
            context,
            segs,
            text: text.to_owned(),
        })
    }

    /// True for `$` itself.
    pub fn is_root(&self) -> bool {
        self.segs.is_empty()
    }

    /// Reads the value at this path.
    pub fn get<'a>(&self, data: &'a Value, ctx: &'a Value) -> Option<&'a Value> {
        let mut cur = if self.context { ctx } else { data };
        for s in &self.segs {
            cur = match (s, cur) {
                (Seg::Field(f), Value::Object(o)) => o.get(f)?,
                (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Writes `value` at this path inside `data`, creating objects on the way (ResultPath).
    pub fn set(&self, data: Value, value: Value) -> Result<Value, String> {
        if self.context {
            return Err(format!(
                "ResultPath {} cannot write to the context object",
                self.text
            ));
        }
        if self.segs.is_empty() {
            return Ok(value);
        }
        let mut root = if data.is_object() {
            data
        } else {
            Value::Object(Map::new())
        };
        let mut cur = &mut root;
        for (n, s) in self.segs.iter().enumerate() {
            let last = n + 1 == self.segs.len();
            let Seg::Field(f) = s else {
                return Err(format!("ResultPath {} may only name fields", self.text));
            };
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Value::Object(o) = cur else {
                return Err("unreachable".into());
            };
            if last {
                o.insert(f.clone(), value);
                break;
            }
            cur = o
                .entry(f.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_indexes_and_quoted_names() {
        let d = json!({"a": {"b": [10, {"c d": 5}]}});
        let ctx = json!({"Map": {"Item": {"Value": "x"}}});
        let p = |s: &str| Path::parse(s).expect(s);
        assert_eq!(p("$.a.b[0]").get(&d, &ctx), Some(&json!(10)));
        assert_eq!(p("$.a.b[1]['c d']").get(&d, &ctx), Some(&json!(5)));
        assert_eq!(p("$$.Map.Item.Value").get(&d, &ctx), Some(&json!("x")));
        assert_eq!(p("$.nope").get(&d, &ctx), None);
        assert_eq!(p("$").get(&d, &ctx), Some(&d));
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for bad in [
            "a.b",
            "$..a",
            "$.a[*]",
            "$.a[?(@.x)]",
            "$.a[1:2]",
            "$.*",
            "$.a[0,1]",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn result_path_writes_nested() {
        let p = Path::parse("$.x.y").expect("p");
        assert_eq!(
            p.set(json!({"k": 1}), json!(2)).expect("set"),
            json!({"k": 1, "x": {"y": 2}})
        );
        assert_eq!(
            Path::parse("$")
                .expect("p")
                .set(json!({"k": 1}), json!(3))
                .expect("set"),
            json!(3)
        );
    }
}
