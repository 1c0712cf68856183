//! Payload templates (`Parameters`, `ItemSelector`, `ResultSelector`): keys ending in `.$`
//! take a path or an intrinsic function, compiled once when the definition is loaded.

use crate::path::{Env, Path};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A compiled template node.
#[derive(Debug, Clone)]
pub enum Template {
    /// A literal value.
    Lit(Value),
    /// An object whose fields are templates.
    Obj(Vec<(String, Template)>),
    /// An array of templates.
    Arr(Vec<Template>),
    /// A path's value.
    Path(Path),
    /// An intrinsic function call.
    Call(Call),
}

/// One intrinsic call.
#[derive(Debug, Clone)]
pub struct Call {
    name: String,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Lit(Value),
    Path(Path),
    Call(Call),
}

/// The intrinsic functions the simulator implements.
pub const INTRINSICS: &[&str] = &[
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

impl Template {
    /// Compiles a template value.
    pub fn compile(v: &Value) -> Result<Self, String> {
        Ok(match v {
            Value::Object(o) => {
                let mut fields = Vec::new();
                for (k, x) in o {
                    if let Some(name) = k.strip_suffix(".$") {
                        let s = x.as_str().ok_or_else(|| {
                            format!("field {k} must hold a path or an intrinsic string")
                        })?;
                        fields.push((name.to_owned(), Self::dynamic(s)?));
                    } else {
                        fields.push((k.clone(), Self::compile(x)?));
                    }
                }
                Self::Obj(fields)
            }
            Value::Array(a) => Self::Arr(a.iter().map(Self::compile).collect::<Result<_, _>>()?),
            other => Self::Lit(other.clone()),
        })
    }

    /// Compiles the string of a `.$` field: a path or an intrinsic call.
    pub fn dynamic(s: &str) -> Result<Self, String> {
        if s.starts_with('$') {
            Ok(Self::Path(Path::parse(s)?))
        } else if s.starts_with("States.") {
            let mut p = Parser {
                s: s.as_bytes(),
                i: 0,
                text: s,
            };
            let call = p.call()?;
            p.ws();
            if p.i != p.s.len() {
                return Err(format!("trailing text after intrinsic in {s:?}"));
            }
            Ok(Self::Call(call))
        } else {
            Err(format!(
                "{s:?} is neither a path ($...) nor an intrinsic function (States.*)"
            ))
        }
    }

    /// Evaluates against the state's input and the context object.
    pub fn eval(&self, data: &Value, ctx: Env<'_>) -> Result<Value, String> {
        match self {
            Self::Lit(v) => Ok(v.clone()),
            Self::Obj(fields) => {
                let mut m = Map::new();
                for (k, t) in fields {
                    m.insert(k.clone(), t.eval(data, ctx)?);
                }
                Ok(Value::Object(m))
            }
            Self::Arr(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(data, ctx))
                    .collect::<Result<_, _>>()?,
            )),
            Self::Path(p) => p
                .value(data, ctx)
                .ok_or_else(|| format!("path {p} matched nothing in the input")),
            Self::Call(c) => c.eval(data, ctx),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("intrinsic {:?}: {what} at character {}", self.text, self.i)
    }

    fn call(&mut self) -> Result<Call, String> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.i])
            .map_err(|_| self.err("bad name"))?
            .to_owned();
        if !INTRINSICS.contains(&name.as_str()) {
            return Err(format!(
                "intrinsic function {name} is not supported (supported: {})",
                INTRINSICS.join(", ")
            ));
        }
        self.ws();
        if self.s.get(self.i) != Some(&b'(') {
            return Err(self.err("expected ("));
        }
        self.i += 1;
        let mut args = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b')') {
                self.i += 1;
                break;
            }
            args.push(self.arg()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected , or )")),
            }
        }
        Ok(Call { name, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        match self.s.get(self.i) {
            Some(b'\'') => {
                self.i += 1;
                let mut out = String::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'\\') => {
                            let c = *self
                                .s
                                .get(self.i + 1)
                                .ok_or_else(|| self.err("bad escape"))?;
                            // AWS takes only these four escapes in a string literal.
                            if !matches!(c, b'\'' | b'{' | b'}' | b'\\') {
                                return Err(self.err(&format!(
                                    "illegal escape \\{} in a string literal (only \\' \\{{ \\}} \\\\ are allowed)",
                                    c as char
                                )));
                            }
                            out.push(c as char);
                            self.i += 2;
                        }
                        Some(b'\'') => {
                            self.i += 1;
                            break;
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
                Ok(Arg::Lit(Value::String(out)))
            }
            Some(b'$') => {
                let start = self.i;
                let mut depth = 0;
                while let Some(&c) = self.s.get(self.i) {
                    match c {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b',' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err("bad path"))?
                    .trim();
                Ok(Arg::Path(Path::parse(text)?))
            }
            Some(b'S') => Ok(Arg::Call(self.call()?)),
            _ => {
                let start = self.i;
                while let Some(&c) = self.s.get(self.i) {
                    if c == b',' || c == b')' {
                        break;
                    }
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err("bad literal"))?
                    .trim();
                let v: Value = serde_json::from_str(text)
                    .map_err(|_| self.err(&format!("bad literal {text:?}")))?;
                Ok(Arg::Lit(v))
            }
        }
    }
}

/// A random (version 4) UUID.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn int(v: &Value, f: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{f}: expected an integer, got {v}"))
}

/// A number rounded as AWS's MathAdd rounds its operands: half up, toward positive
/// infinity (1.5 is 2, -1.5 is -1, -0.5 is 0).
fn round_half_up(v: &Value, f: &str) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    let x = v
        .as_f64()
        .ok_or_else(|| format!("{f}: expected a number, got {v}"))?;
    let r = (x + 0.5).floor();
    if !r.is_finite() || r.abs() > 9.0e15 {
        return Err(format!("{f}: {v} is out of range"));
    }
    Ok(r as i64)
}

/// A value as States.Format writes it: strings bare, objects `{k=v, k2=v2}`, arrays
/// `[a, b]` (AWS's own form, not JSON).
fn aws_form(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(aws_form).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{k}={}", aws_form(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn arr<'a>(v: &'a Value, f: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{f}: expected an array, got {v}"))
}

fn string<'a>(v: &'a Value, f: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{f}: expected a string, got {v}"))
}

impl Call {
    fn eval(&self, data: &Value, ctx: Env<'_>) -> Result<Value, String> {
        let mut a = Vec::with_capacity(self.args.len());
        for x in &self.args {
            a.push(match x {
                Arg::Lit(v) => v.clone(),
                Arg::Path(p) => p
                    .value(data, ctx)
                    .ok_or_else(|| format!("path {p} matched nothing"))?,
                Arg::Call(c) => c.eval(data, ctx)?,
            });
        }
        let f = self.name.as_str();
        let need = |n: usize| {
            if a.len() == n {
                Ok(())
            } else {
                Err(format!("{f} takes {n} argument(s), got {}", a.len()))
            }
        };
        match f {
            "States.Format" => {
                let tpl = string(a.first().ok_or("States.Format needs a template")?, f)?;
                let mut out = String::new();
                let mut args = a[1..].iter();
                let mut chars = tpl.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '{' && chars.peek() == Some(&'}') {
                        chars.next();
                        let v = args
                            .next()
                            .ok_or("States.Format has more {} than arguments")?;
                        out.push_str(&aws_form(v));
                    } else {
                        out.push(c);
                    }
                }
                Ok(Value::String(out))
            }
            "States.StringToJson" => {
                need(1)?;
                let text = string(&a[0], f)?;
                // AWS answers null for an empty or blank string.
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(text).map_err(|e| format!("{f}: {e}"))
            }
            "States.JsonToString" => {
                need(1)?;
                Ok(Value::String(a[0].to_string()))
            }
            "States.Array" => Ok(Value::Array(a)),
            "States.ArrayPartition" => {
                need(2)?;
                let size = int(&a[1], f)?;
                if size <= 0 {
                    return Err(format!("{f}: chunk size must be positive"));
                }
                Ok(Value::Array(
                    arr(&a[0], f)?
                        .chunks(size as usize)
                        .map(|c| Value::Array(c.to_vec()))
                        .collect(),
                ))
            }
            "States.ArrayContains" => {
                need(2)?;
                Ok(Value::Bool(arr(&a[0], f)?.contains(&a[1])))
            }
            "States.ArrayRange" => {
                need(3)?;
                let (s, e, step) = (int(&a[0], f)?, int(&a[1], f)?, int(&a[2], f)?);
                if step == 0 {
                    return Err(format!("{f}: step must not be 0"));
                }
                let mut out = Vec::new();
                let mut x = s;
                while (step > 0 && x <= e) || (step < 0 && x >= e) {
                    out.push(json!(x));
                    if out.len() > 1000 {
                        return Err(format!("{f}: more than 1000 items"));
                    }
                    x += step;
                }
                Ok(Value::Array(out))
            }
            "States.ArrayGetItem" => {
                need(2)?;
                let i = int(&a[1], f)?;
                arr(&a[0], f)?
                    .get(i.max(0) as usize)
                    .cloned()
                    .ok_or_else(|| format!("{f}: index {i} out of range"))
            }
            "States.ArrayLength" => {
                need(1)?;
                Ok(json!(arr(&a[0], f)?.len()))
            }
            "States.ArrayUnique" => {
                need(1)?;
                let mut out: Vec<Value> = Vec::new();
                for v in arr(&a[0], f)? {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            "States.Base64Encode" => {
                need(1)?;
                Ok(Value::String(B64.encode(string(&a[0], f)?)))
            }
            "States.Base64Decode" => {
                need(1)?;
                let bytes = B64
                    .decode(string(&a[0], f)?)
                    .map_err(|e| format!("{f}: {e}"))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|e| format!("{f}: {e}"))
            }
            "States.Hash" => {
                need(2)?;
                let input = match &a[0] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let b = input.as_bytes();
                let digest = match string(&a[1], f)? {
                    "MD5" => hex::encode(md5::Md5::digest(b)),
                    "SHA-1" => hex::encode(sha1::Sha1::digest(b)),
                    "SHA-256" => hex::encode(Sha256::digest(b)),
                    "SHA-384" => hex::encode(sha2::Sha384::digest(b)),
                    "SHA-512" => hex::encode(sha2::Sha512::digest(b)),
                    other => {
                        return Err(format!(
                            "{f}: algorithm {other:?} is not one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
                        ));
                    }
                };
                Ok(Value::String(digest))
            }
            "States.JsonMerge" => {
                need(3)?;
                let (Value::Object(x), Value::Object(y)) = (&a[0], &a[1]) else {
                    return Err(format!("{f}: expects two objects"));
                };
                if a[2] != Value::Bool(false) {
                    return Err(format!(
                        "{f}: only shallow merge (false) is supported, as in AWS"
                    ));
                }
                let mut m = x.clone();
                m.extend(y.clone());
                Ok(Value::Object(m))
            }
            "States.MathRandom" => {
                if a.len() < 2 {
                    return Err(format!("{f} takes a start and an end"));
                }
                let (s, e) = (int(&a[0], f)?, int(&a[1], f)?);
                if e <= s {
                    return Err(format!("{f}: end must exceed start"));
                }
                Ok(json!(
                    s + (rand_core::OsRng.next_u64() % (e - s) as u64) as i64
                ))
            }
            "States.MathAdd" => {
                need(2)?;
                Ok(json!(round_half_up(&a[0], f)? + round_half_up(&a[1], f)?))
            }
            "States.StringSplit" => {
                need(2)?;
                let (s, d) = (string(&a[0], f)?, string(&a[1], f)?);
                Ok(Value::Array(
                    s.split(|c| d.contains(c))
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                ))
            }
            "States.UUID" => {
                need(0)?;
                Ok(Value::String(uuid()))
            }
            other => Err(format!("intrinsic {other} is not supported")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: &Value, data: &Value) -> Value {
        Template::compile(t)
            .expect("compile")
            .eval(
                data,
                Env {
                    ctx: &json!({"Execution": {"Name": "run-1"}}),
                    vars: &json!({}),
                },
            )
            .expect("eval")
    }

    #[test]
    fn only_the_escapes_aws_allows_are_taken_in_string_literals() {
        for bad in [
            r#"States.Format('a\"b')"#,
            r"States.Format('a\nb')",
            r"States.Format('a\x')",
        ] {
            let t = json!({"v.$": bad});
            assert!(Template::compile(&t).is_err(), "{bad} is refused at load");
        }
        let ok = ev(&json!({"v.$": r"States.Format('it\'s \\ ok')"}), &json!({}));
        assert_eq!(ok["v"], r"it's \ ok");
    }

    #[test]
    fn math_add_rounds_each_operand_half_up_as_aws_does() {
        let data = json!({"x": 1.49, "y": 1.5, "m": -1.5, "h": -0.5, "t": 2.5});
        let out = ev(
            &json!({
                "a.$": "States.MathAdd($.x, $.y)",
                "b.$": "States.MathAdd($.m, 0)",
                "c.$": "States.MathAdd($.h, 0)",
                "d.$": "States.MathAdd($.t, 0)"
            }),
            &data,
        );
        assert_eq!(out, json!({"a": 3, "b": -1, "c": 0, "d": 3}));
    }

    #[test]
    fn hash_supports_every_aws_algorithm() {
        let out = ev(
            &json!({
                "md5.$": "States.Hash('abc', 'MD5')",
                "sha1.$": "States.Hash('abc', 'SHA-1')",
                "sha384.$": "States.Hash('abc', 'SHA-384')",
                "sha512.$": "States.Hash('abc', 'SHA-512')"
            }),
            &json!({}),
        );
        assert_eq!(out["md5"], "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(out["sha1"], "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            out["sha384"],
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
        );
        assert!(
            out["sha512"]
                .as_str()
                .is_some_and(|h| h.starts_with("ddaf35a193617aba"))
        );
    }

    #[test]
    fn string_to_json_of_an_empty_or_blank_string_is_null() {
        let out = ev(
            &json!({"e.$": "States.StringToJson('')", "b.$": "States.StringToJson('  ')"}),
            &json!({}),
        );
        assert_eq!(out, json!({"e": null, "b": null}));
    }

    #[test]
    fn format_writes_objects_and_arrays_in_the_aws_form() {
        let out = ev(
            &json!({"f.$": "States.Format('v={}', $.o)", "g.$": "States.Format('{}', $.a)"}),
            &json!({"o": {"Arg1": 1, "Arg2": []}, "a": [1, "x", {"k": true}]}),
        );
        assert_eq!(
            out,
            json!({"f": "v={Arg1=1, Arg2=[]}", "g": "[1, x, {k=true}]"})
        );
    }

    #[test]
    fn templates_resolve_paths_and_intrinsics() {
        let data = json!({"a": [1, 2, 3], "s": "x,y", "n": 4, "o": {"k": 1}});
        let t = json!({
            "lit": {"keep": true},
            "p.$": "$.n",
            "ctx.$": "$$.Execution.Name",
            "fmt.$": "States.Format('n={} s={}', $.n, $.s)",
            "len.$": "States.ArrayLength($.a)",
            "add.$": "States.MathAdd($.n, -1)",
            "split.$": "States.StringSplit($.s, ',')",
            "nested.$": "States.ArrayLength(States.Array($.n, $.n))",
            "json.$": "States.JsonToString($.o)",
            "back.$": "States.StringToJson('{\"z\": 1}')",
            "parts.$": "States.ArrayPartition($.a, 2)",
            "has.$": "States.ArrayContains($.a, 2)",
            "range.$": "States.ArrayRange(1, 5, 2)",
            "hash.$": "States.Hash('abc', 'SHA-256')"
        });
        let out = ev(&t, &data);
        assert_eq!(out["lit"], json!({"keep": true}));
        assert_eq!(out["p"], json!(4));
        assert_eq!(out["ctx"], json!("run-1"));
        assert_eq!(out["fmt"], json!("n=4 s=x,y"));
        assert_eq!(out["len"], json!(3));
        assert_eq!(out["add"], json!(3));
        assert_eq!(out["split"], json!(["x", "y"]));
        assert_eq!(out["nested"], json!(2));
        assert_eq!(out["json"], json!("{\"k\":1}"));
        assert_eq!(out["back"], json!({"z": 1}));
        assert_eq!(out["parts"], json!([[1, 2], [3]]));
        assert_eq!(out["has"], json!(true));
        assert_eq!(out["range"], json!([1, 3, 5]));
        assert_eq!(
            out["hash"],
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn unknown_intrinsics_and_bad_paths_are_refused_at_compile() {
        assert!(
            Template::compile(&json!({"x.$": "States.Nope(1)"}))
                .expect_err("nope")
                .contains("not supported")
        );
        assert!(Template::compile(&json!({"x.$": "$.a[?(@.x =~ 1)]"})).is_err());
        assert!(Template::compile(&json!({"x.$": "plain"})).is_err());
    }

    #[test]
    fn missing_paths_fail_at_run() {
        let t = Template::compile(&json!({"x.$": "$.missing"})).expect("compile");
        let (c, v) = (json!({}), json!({}));
        assert!(t.eval(&json!({}), Env { ctx: &c, vars: &v }).is_err());
    }
}
