//! JSONPath as ASL uses it (Jayway's dialect): `$`, `$.a.b`, `$['a']`, `$.a[0]`, wildcards
//! `.*` and `[*]`, slices `[a:b:c]`, unions `[0,1]` and `['a','b']`, recursive descent
//! `..`, and filters `[?(@.x == 1 && @.y)]`; `$$.` for the context object and `$name` for
//! a workflow variable. A path with any of the operators that can select several nodes is
//! *indefinite* and always yields an array of its matches (empty when none match), as
//! Jayway does. Reference paths (ResultPath, a Choice rule's Variable) must be definite:
//! [`Path::reference`] refuses the rest at load.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `$`: the state's data.
    Data,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Var(String),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    /// An object field.
    Field(String),
    /// An array index.
    Index(usize),
    /// Every child (`.*`, `[*]`).
    Wildcard,
    /// An array slice `[start:end:step]`, negative bounds counting from the end.
    Slice(Option<i64>, Option<i64>, i64),
    /// Several indexes or names (`[0,2]`, `['a','b']`).
    Union(Vec<Key>),
    /// The children that pass a filter (`[?(...)]`).
    Filter(Box<Filter>),
    /// This node and every descendant, then the inner step (`..name`, `..*`, `..[0]`).
    Descend(Box<Seg>),
}

/// A member of a union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A field name.
    Name(String),
    /// An array index (negative counts from the end).
    Index(i64),
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both hold.
    And(Filter2),
    /// One holds.
    Or(Filter2),
    /// Does not hold.
    Not(Box<Filter>),
    /// Two operands compared (`==`, `!=`, `<`, `<=`, `>`, `>=`).
    Cmp(String, Operand, Operand),
    /// The operand exists (and is not `false` or `null`).
    Exists(Operand),
}

/// Two filters.
pub type Filter2 = Box<(Filter, Filter)>;

/// A filter operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `@...`: relative to the node being filtered.
    Current(Vec<Seg>),
    /// `$...`: from the root of the data.
    Root(Vec<Seg>),
    /// A literal.
    Lit(Value),
}

/// What a path reads besides the data: the context object and the variables in scope.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The context object (`$$`).
    pub ctx: &'a Value,
    /// The variables in scope (`$name`), an object.
    pub vars: &'a Value,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// Where it starts.
    pub root: Root,
    /// The steps after the root.
    pub segs: Vec<Seg>,
    definite: bool,
    text: String,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A variable name as AWS takes it: a letter or `_`, then letters, digits or `_`.
pub fn is_var_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && s.len() <= 80
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl P<'_> {
    fn err(&self, what: &str) -> String {
        format!("path {:?}: {what}", self.text)
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ') {
            self.i += 1;
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    /// Steps until the end, or (inside a filter) until a character that ends an operand.
    fn segs(&mut self, in_filter: bool) -> Result<Vec<Seg>, String> {
        let mut segs = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b'.' if self.s.get(self.i + 1) == Some(&b'.') => {
                    self.i += 2;
                    let inner = if self.peek() == Some(b'[') {
                        self.bracket()?
                    } else {
                        self.name()?
                    };
                    segs.push(Seg::Descend(Box::new(inner)));
                }
                b'.' => {
                    self.i += 1;
                    segs.push(self.name()?);
                }
                b'[' => segs.push(self.bracket()?),
                _ if in_filter => break,
                other => return Err(self.err(&format!("unexpected {:?}", other as char))),
            }
        }
        Ok(segs)
    }

    fn name(&mut self) -> Result<Seg, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b'.' | b'[' | b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|'
            ) {
                break;
            }
            self.i += 1;
        }
        let name =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad utf-8"))?;
        match name {
            "" => Err(self.err("empty field name")),
            "*" => Ok(Seg::Wildcard),
            n if n.contains('(') => {
                Err(self.err(&format!("functions such as {n} are not supported")))
            }
            n => Ok(Seg::Field(n.to_owned())),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or_else(|| self.err("unclosed quote"))?;
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unclosed quote")),
                Some(b'\\') => {
                    let c = self
                        .s
                        .get(self.i + 1)
                        .ok_or_else(|| self.err("bad escape"))?;
                    out.push(*c as char);
                    self.i += 2;
                }
                Some(c) if c == q => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    let rest = std::str::from_utf8(&self.s[self.i..])
                        .map_err(|_| self.err("bad utf-8"))?;
                    let ch = rest.chars().next().ok_or_else(|| self.err("eof"))?;
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    fn int(&mut self) -> Option<i64> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let v = std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok();
        if v.is_none() {
            self.i = start;
        }
        v
    }

    fn bracket(&mut self) -> Result<Seg, String> {
        self.i += 1; // [
        self.ws();
        let seg = if self.eat("?(") {
            let f = self.or()?;
            self.ws();
            if !self.eat(")") {
                return Err(self.err("filter needs a closing )"));
            }
            Seg::Filter(Box::new(f))
        } else if self.eat("*") {
            Seg::Wildcard
        } else {
            // a slice, or indexes and names (a union when several)
            let rest = &self.s[self.i..];
            let inner = rest
                .iter()
                .position(|&c| c == b']')
                .map(|c| &rest[..c])
                .filter(|t| t.contains(&b':') && !t.contains(&b'\'') && !t.contains(&b'"'));
            if let Some(inner) = inner {
                let t = std::str::from_utf8(inner).map_err(|_| self.err("bad utf-8"))?;
                let parts: Vec<&str> = t.split(':').collect();
                if parts.len() > 3 {
                    return Err(self.err("a slice is [start:end] or [start:end:step]"));
                }
                let num = |p: Option<&&str>| -> Result<Option<i64>, String> {
                    match p.map(|p| p.trim()) {
                        None | Some("") => Ok(None),
                        Some(p) => p
                            .parse()
                            .map(Some)
                            .map_err(|_| self.err(&format!("slice bound {p:?} is not an integer"))),
                    }
                };
                let (a, b, st) = (num(parts.first())?, num(parts.get(1))?, num(parts.get(2))?);
                let step = st.unwrap_or(1);
                if step == 0 {
                    return Err(self.err("a slice step cannot be 0"));
                }
                self.i += inner.len();
                Seg::Slice(a, b, step)
            } else {
                let mut keys = Vec::new();
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b'\'') | Some(b'"') => keys.push(Key::Name(self.quoted()?)),
                        _ => match self.int() {
                            Some(n) => keys.push(Key::Index(n)),
                            None => {
                                return Err(self.err(
                                    "a bracket holds an index, a 'name', *, a slice a:b, a union or a filter ?(...)",
                                ));
                            }
                        },
                    }
                    self.ws();
                    if !self.eat(",") {
                        break;
                    }
                }
                if keys.len() == 1 {
                    match keys.pop() {
                        Some(Key::Name(n)) => Seg::Field(n),
                        Some(Key::Index(i)) if i >= 0 => Seg::Index(i as usize),
                        Some(k) => Seg::Union(vec![k]),
                        None => return Err(self.err("empty brackets")),
                    }
                } else {
                    Seg::Union(keys)
                }
            }
        };
        self.ws();
        if !self.eat("]") {
            return Err(self.err("unclosed ["));
        }
        Ok(seg)
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut l = self.and()?;
        loop {
            self.ws();
            if !self.eat("||") {
                return Ok(l);
            }
            let r = self.and()?;
            l = Filter::Or(Box::new((l, r)));
        }
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut l = self.cmp()?;
        loop {
            self.ws();
            if !self.eat("&&") {
                return Ok(l);
            }
            let r = self.cmp()?;
            l = Filter::And(Box::new((l, r)));
        }
    }
    fn cmp(&mut self) -> Result<Filter, String> {
        self.ws();
        if self.eat("!") {
            return Ok(Filter::Not(Box::new(self.cmp()?)));
        }
        if self.eat("(") {
            let f = self.or()?;
            self.ws();
            if !self.eat(")") {
                return Err(self.err("unbalanced ( in a filter"));
            }
            return Ok(f);
        }
        let l = self.operand()?;
        self.ws();
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                let r = self.operand()?;
                return Ok(Filter::Cmp(op.to_owned(), l, r));
            }
        }
        if self.eat("=~") || self.eat(" in ") || self.eat(" nin ") {
            return Err(
                self.err("only ==, !=, <, <=, >, >=, &&, || and ! are supported in filters")
            );
        }
        Ok(Filter::Exists(l))
    }
    fn operand(&mut self) -> Result<Operand, String> {
        self.ws();
        match self.peek() {
            Some(b'@') => {
                self.i += 1;
                Ok(Operand::Current(self.segs(true)?))
            }
            Some(b'$') => {
                self.i += 1;
                Ok(Operand::Root(self.segs(true)?))
            }
            Some(b'\'') | Some(b'"') => Ok(Operand::Lit(Value::String(self.quoted()?))),
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+'))
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err("bad utf-8"))?;
                serde_json::from_str(t)
                    .map(Operand::Lit)
                    .map_err(|_| self.err(&format!("bad filter operand {t:?}")))
            }
        }
    }
}

fn definite(segs: &[Seg]) -> bool {
    segs.iter()
        .all(|s| matches!(s, Seg::Field(_) | Seg::Index(_)))
}

impl Path {
    /// Parses a path (any JSONPath the simulator implements); the error names what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (root, rest) = if let Some(r) = text.strip_prefix("$$") {
            (Root::Context, r)
        } else if let Some(r) = text.strip_prefix('$') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                let name = &r[..end];
                if !is_var_name(name) {
                    return Err(format!(
                        "path {text:?}: ${name} is not a variable name (a letter or _, then letters, digits or _)"
                    ));
                }
                (Root::Var(name.to_owned()), &r[end..])
            } else {
                (Root::Data, r)
            }
        } else {
            return Err(format!("path {text:?} must start with $"));
        };
        let mut p = P {
            s: rest.as_bytes(),
            i: 0,
            text,
        };
        let segs = p.segs(false)?;
        Ok(Self {
            root,
            definite: definite(&segs),
            segs,
            text: text.to_owned(),
        })
    }

    /// Parses a reference path: one that can name only a single node (no `@ .. , : ? *`).
    pub fn reference(text: &str) -> Result<Self, String> {
        let p = Self::parse(text)?;
        if !p.definite {
            return Err(format!(
                "{text:?} is not a reference path: wildcards, slices, unions, filters and .. cannot be used here"
            ));
        }
        Ok(p)
    }

    /// True for `$` itself.
    pub fn is_root(&self) -> bool {
        self.segs.is_empty() && self.root == Root::Data
    }

    /// True when the path names one node (no wildcard, slice, union, filter or `..`).
    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// Reads the value at this path; an indefinite path yields the array of its matches.
    pub fn get<'a>(&self, data: &'a Value, env: Env<'a>) -> Option<Cow<'a, Value>> {
        let start = match &self.root {
            Root::Data => data,
            Root::Context => env.ctx,
            Root::Var(n) => env.vars.get(n)?,
        };
        if self.definite {
            return walk_definite(start, &self.segs).map(Cow::Borrowed);
        }
        let mut cur: Vec<&'a Value> = vec![start];
        for s in &self.segs {
            let mut next = Vec::new();
            for v in cur {
                step(s, v, data, &mut next);
            }
            cur = next;
        }
        Some(Cow::Owned(Value::Array(cur.into_iter().cloned().collect())))
    }

    /// Reads the value at this path, owned.
    pub fn value(&self, data: &Value, env: Env<'_>) -> Option<Value> {
        self.get(data, env).map(Cow::into_owned)
    }

    /// Writes `value` at this path inside `data`, creating objects on the way (ResultPath).
    pub fn set(&self, data: Value, value: Value) -> Result<Value, String> {
        if self.root != Root::Data {
            return Err(format!(
                "ResultPath {} can only write into the state's data ($)",
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

fn walk_definite<'a>(mut cur: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    for s in segs {
        cur = match (s, cur) {
            (Seg::Field(f), Value::Object(o)) => o.get(f)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    }
}

fn resolve(i: i64, len: usize) -> Option<usize> {
    let n = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&n).then_some(n as usize)
}

fn step<'a>(s: &Seg, v: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    match s {
        Seg::Field(f) => out.extend(v.as_object().and_then(|o| o.get(f))),
        Seg::Index(i) => out.extend(v.as_array().and_then(|a| a.get(*i))),
        Seg::Wildcard => out.extend(children(v)),
        Seg::Union(keys) => {
            for k in keys {
                match (k, v) {
                    (Key::Name(n), Value::Object(o)) => out.extend(o.get(n)),
                    (Key::Index(i), Value::Array(a)) => {
                        out.extend(resolve(*i, a.len()).and_then(|i| a.get(i)))
                    }
                    _ => {}
                }
            }
        }
        Seg::Slice(a, b, st) => {
            let Some(arr) = v.as_array() else { return };
            let len = arr.len() as i64;
            let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
            if *st > 0 {
                let (mut i, end) = (norm(a.unwrap_or(0)), norm(b.unwrap_or(len)));
                while i < end {
                    out.push(&arr[i as usize]);
                    i += st;
                }
            } else {
                let mut i = a.map_or(len - 1, |x| if x < 0 { len + x } else { x.min(len - 1) });
                let end = b.map_or(-1, |x| if x < 0 { (len + x).max(-1) } else { x });
                while i > end && i >= 0 {
                    out.push(&arr[i as usize]);
                    i += st;
                }
            }
        }
        Seg::Filter(f) => {
            for c in children(v) {
                if test(f, c, root) {
                    out.push(c);
                }
            }
        }
        Seg::Descend(inner) => {
            let mut all = Vec::new();
            fn collect<'b>(v: &'b Value, all: &mut Vec<&'b Value>) {
                all.push(v);
                for c in children(v) {
                    collect(c, all);
                }
            }
            collect(v, &mut all);
            for n in all {
                step(inner, n, root, out);
            }
        }
    }
}

fn operand<'a>(o: &'a Operand, cur: &'a Value, root: &'a Value) -> Option<Cow<'a, Value>> {
    let (start, segs) = match o {
        Operand::Lit(v) => return Some(Cow::Borrowed(v)),
        Operand::Current(s) => (cur, s),
        Operand::Root(s) => (root, s),
    };
    if definite(segs) {
        return walk_definite(start, segs).map(Cow::Borrowed);
    }
    let mut nodes = vec![start];
    for s in segs {
        let mut next = Vec::new();
        for v in nodes {
            step(s, v, root, &mut next);
        }
        nodes = next;
    }
    Some(Cow::Owned(Value::Array(
        nodes.into_iter().cloned().collect(),
    )))
}

fn test(f: &Filter, cur: &Value, root: &Value) -> bool {
    match f {
        Filter::And(b) => test(&b.0, cur, root) && test(&b.1, cur, root),
        Filter::Or(b) => test(&b.0, cur, root) || test(&b.1, cur, root),
        Filter::Not(x) => !test(x, cur, root),
        Filter::Exists(o) => {
            operand(o, cur, root).is_some_and(|v| !matches!(*v, Value::Null | Value::Bool(false)))
        }
        Filter::Cmp(op, l, r) => {
            let (Some(a), Some(b)) = (operand(l, cur, root), operand(r, cur, root)) else {
                return false;
            };
            use std::cmp::Ordering;
            let ord = match (&*a, &*b) {
                (Value::Number(x), Value::Number(y)) => x
                    .as_f64()
                    .and_then(|x| y.as_f64().and_then(|y| x.partial_cmp(&y))),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                (x, y) if x == y => Some(Ordering::Equal),
                _ => None,
            };
            match op.as_str() {
                "==" => ord == Some(Ordering::Equal),
                "!=" => ord != Some(Ordering::Equal),
                "<" => ord == Some(Ordering::Less),
                "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                ">" => ord == Some(Ordering::Greater),
                ">=" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env<'a>(ctx: &'a Value, vars: &'a Value) -> Env<'a> {
        Env { ctx, vars }
    }

    #[test]
    fn reads_fields_indexes_and_quoted_names() {
        let d = json!({"a": {"b": [10, {"c d": 5}]}});
        let ctx = json!({"Map": {"Item": {"Value": "x"}}});
        let vars = json!({"v": {"k": 3}});
        let p = |s: &str| Path::parse(s).expect(s);
        let e = env(&ctx, &vars);
        assert_eq!(p("$.a.b[0]").value(&d, e), Some(json!(10)));
        assert_eq!(p("$.a.b[1]['c d']").value(&d, e), Some(json!(5)));
        assert_eq!(p("$$.Map.Item.Value").value(&d, e), Some(json!("x")));
        assert_eq!(p("$v.k").value(&d, e), Some(json!(3)));
        assert_eq!(p("$.nope").value(&d, e), None);
        assert_eq!(p("$").value(&d, e), Some(d.clone()));
    }

    #[test]
    fn wildcards_slices_unions_filters_and_descent_yield_arrays() {
        let d = json!({"items": [
            {"id": 1, "x": 1, "tags": ["a"]}, {"id": 2, "x": 2}, {"id": 3, "x": 1, "big": true}, {"id": 4, "x": 5}
        ], "o": {"p": 1, "q": 2}, "min": 2});
        let (c, v) = (json!({}), json!({}));
        let g = |s: &str| Path::parse(s).expect(s).value(&d, env(&c, &v)).expect(s);
        assert_eq!(g("$.items[*].id"), json!([1, 2, 3, 4]));
        assert_eq!(g("$.o.*"), json!([1, 2]));
        assert_eq!(g("$.items[1:3].id"), json!([2, 3]));
        assert_eq!(g("$.items[-2:].id"), json!([3, 4]));
        assert_eq!(g("$.items[:2].id"), json!([1, 2]));
        assert_eq!(g("$.items[::2].id"), json!([1, 3]));
        assert_eq!(g("$.items[0,3].id"), json!([1, 4]));
        assert_eq!(g("$.o['p','q']"), json!([1, 2]));
        assert_eq!(g("$.items[?(@.x == 1)].id"), json!([1, 3]));
        assert_eq!(g("$.items[?(@.x >= $.min && !@.big)].id"), json!([2, 4]));
        assert_eq!(g("$.items[?(@.big || @.id < 2)].id"), json!([1, 3]));
        assert_eq!(g("$.items[?(@.tags)].id"), json!([1]));
        assert_eq!(g("$..id"), json!([1, 2, 3, 4]));
        assert_eq!(
            g("$.items[?(@.x == 9)]"),
            json!([]),
            "no match is an empty array"
        );
        assert!(!Path::parse("$.items[*]").expect("p").is_definite());
    }

    #[test]
    fn reference_paths_refuse_what_selects_several_nodes() {
        for bad in [
            "$.a[*]",
            "$.a[?(@.x)]",
            "$.a[1:2]",
            "$.*",
            "$.a[0,1]",
            "$..a",
        ] {
            assert!(Path::parse(bad).is_ok(), "{bad} is a path");
            assert!(
                Path::reference(bad).is_err(),
                "{bad} is not a reference path"
            );
        }
        for bad in ["a.b", "$.a[", "$.a.length()", "$.a[?(@.x =~ /a/)]", "$1x"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
        assert!(Path::reference("$.a['b'][0]").is_ok());
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
