//! The JSONata subset the simulator evaluates in `{% ... %}` expressions (states with
//! `"QueryLanguage": "JSONata"`): `$states.input`, `$states.result`, `$states.context`,
//! `$states.errorOutput` and workflow variables (`$name`), field paths with `[n]` indexes
//! and `[predicate]` filters (mapping over arrays as JSONata does), string, number,
//! boolean and null literals, `+ - * / %`, `&` (string concatenation), `= != < <= > >=`,
//! `and`, `or`, `cond ? a : b`, array and object constructors, and the functions
//! `$count $exists $string $number $sum $max $min $average $length $uppercase $lowercase
//! $join $contains $not $boolean $keys $abs $floor $ceil $parse $uuid`. Anything else is
//! refused when the definition loads.

use serde_json::{Map, Number, Value};

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Value),
    /// `$name` (`$` alone is the context value).
    Var(String),
    /// A field of the context value.
    Name(String),
    /// `a.b`: `b` evaluated on each value of `a`.
    Dot(Box<Expr>, Box<Expr>),
    /// `a[x]`: an index (number) or a filter (anything else).
    Pred(Box<Expr>, Box<Expr>),
    /// A binary operator.
    Bin(String, Box<Expr>, Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
    /// A function call.
    Call(String, Vec<Expr>),
    /// `[a, b]`.
    Arr(Vec<Expr>),
    /// `{"k": v}`.
    Obj(Vec<(Expr, Expr)>),
}

/// The functions implemented.
pub const FUNCTIONS: &[&str] = &[
    "count",
    "exists",
    "string",
    "number",
    "sum",
    "max",
    "min",
    "average",
    "length",
    "uppercase",
    "lowercase",
    "join",
    "contains",
    "not",
    "boolean",
    "keys",
    "abs",
    "floor",
    "ceil",
    "parse",
    "uuid",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Name(String),
    Var(String),
    Op(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    const OPS: &[&str] = &[
        "!=", "<=", ">=", "..", ":=", "+", "-", "*", "/", "%", "&", "=", "<", ">", ".", "[", "]",
        "(", ")", "{", "}", ",", ":", "?",
    ];
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let end = (i + 2..c.len().saturating_sub(1))
                .find(|&j| c[j] == '*' && c[j + 1] == '/')
                .ok_or("unclosed comment")?;
            i = end + 2;
        } else if ch.is_ascii_digit() {
            let start = i;
            while i < c.len()
                && (c[i].is_ascii_digit()
                    || c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
            {
                i += 1;
            }
            if i < c.len() && (c[i] == 'e' || c[i] == 'E') {
                i += 1;
                if i < c.len() && (c[i] == '+' || c[i] == '-') {
                    i += 1;
                }
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let t: String = c[start..i].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| format!("bad number {t}"))?));
        } else if ch == '"' || ch == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err("unclosed string".into()),
                    Some('\\') => {
                        let e = c.get(i + 1).ok_or("bad escape")?;
                        v.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => *other,
                        });
                        i += 2;
                    }
                    Some(q) if *q == ch => {
                        i += 1;
                        break;
                    }
                    Some(x) => {
                        v.push(*x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if ch == '`' {
            let end = (i + 1..c.len())
                .find(|&j| c[j] == '`')
                .ok_or("unclosed `")?;
            out.push(Tok::Name(c[i + 1..end].iter().collect()));
            i = end + 1;
        } else if ch == '$' {
            let start = i + 1;
            i += 1;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Var(c[start..i].iter().collect()));
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Name(c[start..i].iter().collect()));
        } else {
            let rest: String = c[i..c.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|o| rest.starts_with(*o))
                .ok_or_else(|| format!("unexpected {ch:?}"))?;
            if matches!(*op, ".." | ":=") {
                return Err(format!(
                    "{op} is not supported by the simulator's JSONata subset"
                ));
            }
            out.push(Tok::Op(op));
            i += op.chars().count();
        }
    }
    Ok(out)
}

struct P {
    t: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn is_op(&self, o: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(x)) if *x == o)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(x)) if x == w)
    }
    fn expect(&mut self, o: &str) -> Result<(), String> {
        if self.is_op(o) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {o}, found {:?}", self.peek()))
        }
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let c = self.or()?;
        if self.is_op("?") {
            self.i += 1;
            let a = self.expr()?;
            let b = if self.is_op(":") {
                self.i += 1;
                Some(Box::new(self.expr()?))
            } else {
                None
            };
            return Ok(Expr::Cond(Box::new(c), Box::new(a), b));
        }
        Ok(c)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.is_word("or") {
            self.i += 1;
            l = Expr::Bin("or".into(), Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.cmp()?;
        while self.is_word("and") {
            self.i += 1;
            l = Expr::Bin("and".into(), Box::new(l), Box::new(self.cmp()?));
        }
        Ok(l)
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let mut l = self.concat()?;
        while let Some(Tok::Op(o @ ("=" | "!=" | "<" | "<=" | ">" | ">="))) = self.peek() {
            let o = (*o).to_owned();
            self.i += 1;
            l = Expr::Bin(o, Box::new(l), Box::new(self.concat()?));
        }
        Ok(l)
    }
    fn concat(&mut self) -> Result<Expr, String> {
        let mut l = self.add()?;
        while self.is_op("&") {
            self.i += 1;
            l = Expr::Bin("&".into(), Box::new(l), Box::new(self.add()?));
        }
        Ok(l)
    }
    fn add(&mut self) -> Result<Expr, String> {
        let mut l = self.mul()?;
        while let Some(Tok::Op(o @ ("+" | "-"))) = self.peek() {
            let o = (*o).to_owned();
            self.i += 1;
            l = Expr::Bin(o, Box::new(l), Box::new(self.mul()?));
        }
        Ok(l)
    }
    fn mul(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while let Some(Tok::Op(o @ ("*" | "/" | "%"))) = self.peek() {
            let o = (*o).to_owned();
            self.i += 1;
            l = Expr::Bin(o, Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.is_op("-") {
            self.i += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.path()
    }
    fn path(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.is_op(".") {
                self.i += 1;
                let r = self.primary()?;
                e = Expr::Dot(Box::new(e), Box::new(r));
            } else if self.is_op("[") {
                self.i += 1;
                let p = self.expr()?;
                self.expect("]")?;
                e = Expr::Pred(Box::new(e), Box::new(p));
            } else {
                return Ok(e);
            }
        }
    }
    fn list(&mut self, close: &str) -> Result<Vec<Expr>, String> {
        let mut v = Vec::new();
        if self.is_op(close) {
            self.i += 1;
            return Ok(v);
        }
        loop {
            v.push(self.expr()?);
            if self.is_op(",") {
                self.i += 1;
                continue;
            }
            self.expect(close)?;
            return Ok(v);
        }
    }
    fn primary(&mut self) -> Result<Expr, String> {
        let t = self.peek().cloned().ok_or("unexpected end of expression")?;
        self.i += 1;
        Ok(match t {
            Tok::Num(n) => Expr::Lit(num(n)),
            Tok::Str(s) => Expr::Lit(Value::String(s)),
            Tok::Name(n) => match n.as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                "function" => {
                    return Err(
                        "lambdas are not supported by the simulator's JSONata subset".into(),
                    );
                }
                _ => Expr::Name(n),
            },
            Tok::Var(v) => {
                if self.is_op("(") {
                    self.i += 1;
                    if !FUNCTIONS.contains(&v.as_str()) {
                        return Err(format!(
                            "function ${v} is not in the simulator's JSONata subset (${})",
                            FUNCTIONS.join(", $")
                        ));
                    }
                    Expr::Call(v, self.list(")")?)
                } else {
                    Expr::Var(v)
                }
            }
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                e
            }
            Tok::Op("[") => Expr::Arr(self.list("]")?),
            Tok::Op("{") => {
                let mut fields = Vec::new();
                if self.is_op("}") {
                    self.i += 1;
                } else {
                    loop {
                        let k = self.expr()?;
                        self.expect(":")?;
                        let v = self.expr()?;
                        fields.push((k, v));
                        if self.is_op(",") {
                            self.i += 1;
                            continue;
                        }
                        self.expect("}")?;
                        break;
                    }
                }
                Expr::Obj(fields)
            }
            Tok::Op("*") => {
                return Err("wildcards are not supported by the simulator's JSONata subset".into());
            }
            other => return Err(format!("unexpected {other:?}")),
        })
    }
}

/// A number as JSON: integral values as integers.
fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

impl Expr {
    /// Parses the text between `{%` and `%}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = P {
            t: lex(text)?,
            i: 0,
        };
        let e = p.expr()?;
        if p.i != p.t.len() {
            return Err(format!("unexpected {:?} after the expression", p.t[p.i]));
        }
        Ok(e)
    }

    /// Evaluates with `vars` (which hold `states`) and `ctx` as the context value;
    /// `None` is JSONata's undefined.
    pub fn eval(
        &self,
        ctx: Option<&Value>,
        vars: &dyn Fn(&str) -> Option<Value>,
    ) -> Result<Option<Value>, String> {
        Ok(match self {
            Self::Lit(v) => Some(v.clone()),
            Self::Var(v) if v.is_empty() => ctx.cloned(),
            Self::Var(v) => vars(v),
            Self::Name(n) => match ctx {
                Some(Value::Object(o)) => o.get(n).cloned(),
                Some(Value::Array(a)) => seq(a.iter().filter_map(|x| x.get(n).cloned()).collect()),
                _ => None,
            },
            Self::Dot(l, r) => {
                let Some(lv) = l.eval(ctx, vars)? else {
                    return Ok(None);
                };
                match lv {
                    Value::Array(items) => {
                        let mut out = Vec::new();
                        for it in &items {
                            match r.eval(Some(it), vars)? {
                                Some(Value::Array(a)) => out.extend(a),
                                Some(v) => out.push(v),
                                None => {}
                            }
                        }
                        seq(out)
                    }
                    v => r.eval(Some(&v), vars)?,
                }
            }
            Self::Pred(l, p) => {
                let Some(lv) = l.eval(ctx, vars)? else {
                    return Ok(None);
                };
                let items = match lv {
                    Value::Array(a) => a,
                    v => vec![v],
                };
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    match p.eval(Some(it), vars)? {
                        Some(Value::Number(n)) => {
                            let n = n.as_f64().unwrap_or(0.0).floor() as i64;
                            let idx = if n < 0 { items.len() as i64 + n } else { n };
                            if idx == i as i64 {
                                out.push(it.clone());
                            }
                        }
                        v => {
                            if truthy(v.as_ref()) {
                                out.push(it.clone());
                            }
                        }
                    }
                }
                seq(out)
            }
            Self::Neg(e) => match e.eval(ctx, vars)? {
                None => None,
                Some(v) => Some(num(-number(&v, "-")?)),
            },
            Self::Cond(c, a, b) => {
                if truthy(c.eval(ctx, vars)?.as_ref()) {
                    a.eval(ctx, vars)?
                } else {
                    match b {
                        Some(b) => b.eval(ctx, vars)?,
                        None => None,
                    }
                }
            }
            Self::Arr(items) => {
                let mut out = Vec::new();
                for it in items {
                    match (it, it.eval(ctx, vars)?) {
                        // JSONata flattens a sequence into the constructor, not a nested array.
                        (Self::Arr(_), Some(v)) => out.push(v),
                        (_, Some(Value::Array(a))) if !matches!(it, Self::Lit(_)) => out.extend(a),
                        (_, Some(v)) => out.push(v),
                        (_, None) => {}
                    }
                }
                Some(Value::Array(out))
            }
            Self::Obj(fields) => {
                let mut m = Map::new();
                for (k, v) in fields {
                    let key = match k.eval(ctx, vars)? {
                        Some(Value::String(s)) => s,
                        other => {
                            return Err(format!("an object key must be a string, got {other:?}"));
                        }
                    };
                    if let Some(v) = v.eval(ctx, vars)? {
                        m.insert(key, v);
                    }
                }
                Some(Value::Object(m))
            }
            Self::Bin(op, l, r) => binary(op, l, r, ctx, vars)?,
            Self::Call(f, args) => {
                let mut a = Vec::with_capacity(args.len());
                for x in args {
                    a.push(x.eval(ctx, vars)?);
                }
                call(f, a)?
            }
        })
    }
}

/// A JSONata sequence: nothing is undefined, one value is itself.
fn seq(mut v: Vec<Value>) -> Option<Value> {
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => Some(Value::Array(v)),
    }
}

/// JSONata's `$boolean`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => a.iter().any(|x| truthy(Some(x))),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn number(v: &Value, op: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("T2001: the operands of {op} must be numbers, got {v}"))
}

/// `$string`: strings as they are, everything else as JSON.
fn stringify(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn binary(
    op: &str,
    l: &Expr,
    r: &Expr,
    ctx: Option<&Value>,
    vars: &dyn Fn(&str) -> Option<Value>,
) -> Result<Option<Value>, String> {
    if op == "and" {
        return Ok(Some(Value::Bool(
            truthy(l.eval(ctx, vars)?.as_ref()) && truthy(r.eval(ctx, vars)?.as_ref()),
        )));
    }
    if op == "or" {
        return Ok(Some(Value::Bool(
            truthy(l.eval(ctx, vars)?.as_ref()) || truthy(r.eval(ctx, vars)?.as_ref()),
        )));
    }
    let (a, b) = (l.eval(ctx, vars)?, r.eval(ctx, vars)?);
    if op == "&" {
        let s = |v: &Option<Value>| v.as_ref().map(stringify).unwrap_or_default();
        return Ok(Some(Value::String(s(&a) + &s(&b))));
    }
    let (Some(a), Some(b)) = (a, b) else {
        // Comparisons with undefined are false; arithmetic is undefined.
        return Ok(matches!(op, "=" | "!=" | "<" | "<=" | ">" | ">=").then_some(Value::Bool(false)));
    };
    Ok(Some(match op {
        "+" | "-" | "*" | "/" | "%" => {
            let (x, y) = (number(&a, op)?, number(&b, op)?);
            num(match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                _ => x % y,
            })
        }
        "=" => Value::Bool(eq(&a, &b)),
        "!=" => Value::Bool(!eq(&a, &b)),
        _ => {
            let ord = match (&a, &b) {
                (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => {
                    return Err(format!(
                        "T2010: {op} compares two numbers or two strings, got {a} and {b}"
                    ));
                }
            };
            use std::cmp::Ordering::*;
            Value::Bool(match op {
                "<" => ord == Some(Less),
                "<=" => matches!(ord, Some(Less | Equal)),
                ">" => ord == Some(Greater),
                _ => matches!(ord, Some(Greater | Equal)),
            })
        }
    }))
}

fn eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn numbers(v: Option<&Value>, f: &str) -> Result<Vec<f64>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(|x| number(x, f)).collect(),
        Some(x) => Ok(vec![number(x, f)?]),
    }
}

fn call(f: &str, a: Vec<Option<Value>>) -> Result<Option<Value>, String> {
    let arg = |i: usize| a.get(i).cloned().flatten();
    let name = format!("${f}");
    let s = |i: usize| -> Result<Option<String>, String> {
        match arg(i) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("{name} takes a string, got {v}")),
        }
    };
    Ok(match f {
        "count" => Some(num(match arg(0) {
            None => 0.0,
            Some(Value::Array(x)) => x.len() as f64,
            Some(_) => 1.0,
        })),
        "exists" => Some(Value::Bool(arg(0).is_some())),
        "string" => arg(0).map(|v| Value::String(stringify(&v))),
        "number" => match arg(0) {
            None => None,
            Some(Value::Number(n)) => Some(Value::Number(n)),
            Some(Value::Bool(b)) => Some(num(if b { 1.0 } else { 0.0 })),
            Some(Value::String(t)) => Some(num(t
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("D3030: $number cannot cast {t:?} to a number"))?)),
            Some(v) => return Err(format!("$number cannot cast {v}")),
        },
        "sum" => Some(num(numbers(arg(0).as_ref(), &name)?.iter().sum())),
        "max" | "min" | "average" => {
            let n = numbers(arg(0).as_ref(), &name)?;
            if n.is_empty() {
                None
            } else {
                Some(num(match f {
                    "max" => n.iter().cloned().fold(f64::MIN, f64::max),
                    "min" => n.iter().cloned().fold(f64::MAX, f64::min),
                    _ => n.iter().sum::<f64>() / n.len() as f64,
                }))
            }
        }
        "length" => s(0)?.map(|t| num(t.chars().count() as f64)),
        "uppercase" => s(0)?.map(|t| Value::String(t.to_uppercase())),
        "lowercase" => s(0)?.map(|t| Value::String(t.to_lowercase())),
        "join" => {
            let sep = s(1)?.unwrap_or_default();
            match arg(0) {
                None => None,
                Some(Value::Array(x)) => Some(Value::String(
                    x.iter()
                        .map(|v| v.as_str().map(str::to_owned).ok_or("$join takes strings"))
                        .collect::<Result<Vec<_>, _>>()?
                        .join(&sep),
                )),
                Some(Value::String(t)) => Some(Value::String(t)),
                Some(v) => return Err(format!("$join takes an array of strings, got {v}")),
            }
        }
        "contains" => match (s(0)?, s(1)?) {
            (Some(t), Some(p)) => Some(Value::Bool(t.contains(&p))),
            _ => None,
        },
        "not" => arg(0).map(|v| Value::Bool(!truthy(Some(&v)))),
        "boolean" => arg(0).map(|v| Value::Bool(truthy(Some(&v)))),
        "keys" => match arg(0) {
            Some(Value::Object(o)) => seq(o.keys().cloned().map(Value::String).collect()),
            _ => None,
        },
        "abs" | "floor" | "ceil" => match arg(0) {
            None => None,
            Some(v) => {
                let x = number(&v, &name)?;
                Some(num(match f {
                    "abs" => x.abs(),
                    "floor" => x.floor(),
                    _ => x.ceil(),
                }))
            }
        },
        "parse" => match s(0)? {
            None => None,
            Some(t) => Some(serde_json::from_str(&t).map_err(|e| format!("$parse: {e}"))?),
        },
        "uuid" => Some(Value::String(crate::template::uuid())),
        other => return Err(format!("function ${other} is not supported")),
    })
}

/// A JSON value whose strings of the form `{% expr %}` are JSONata expressions
/// (Arguments, Output, Assign, ItemSelector, Items).
#[derive(Debug, Clone)]
pub enum JTemplate {
    /// A literal.
    Lit(Value),
    /// An expression.
    Expr(Expr),
    /// An object of templates.
    Obj(Vec<(String, JTemplate)>),
    /// An array of templates.
    Arr(Vec<JTemplate>),
}

/// The expression inside `{% ... %}`, if `s` is one.
pub fn expression(s: &str) -> Option<&str> {
    s.strip_prefix("{%").and_then(|r| r.strip_suffix("%}"))
}

impl JTemplate {
    /// Compiles a template.
    pub fn compile(v: &Value) -> Result<Self, String> {
        Ok(match v {
            Value::String(s) => match expression(s) {
                Some(e) => Self::Expr(Expr::parse(e).map_err(|m| format!("JSONata {s:?}: {m}"))?),
                None => Self::Lit(v.clone()),
            },
            Value::Object(o) => Self::Obj(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), Self::compile(x)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Value::Array(a) => Self::Arr(a.iter().map(Self::compile).collect::<Result<_, _>>()?),
            other => Self::Lit(other.clone()),
        })
    }

    /// Evaluates; an expression that yields undefined drops its object field, and at the
    /// top is `null`.
    pub fn eval(&self, vars: &dyn Fn(&str) -> Option<Value>) -> Result<Value, String> {
        Ok(self.eval_opt(vars)?.unwrap_or(Value::Null))
    }

    fn eval_opt(&self, vars: &dyn Fn(&str) -> Option<Value>) -> Result<Option<Value>, String> {
        Ok(match self {
            Self::Lit(v) => Some(v.clone()),
            Self::Expr(e) => e.eval(None, vars)?,
            Self::Obj(fields) => {
                let mut m = Map::new();
                for (k, t) in fields {
                    if let Some(v) = t.eval_opt(vars)? {
                        m.insert(k.clone(), v);
                    }
                }
                Some(Value::Object(m))
            }
            Self::Arr(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|t| t.eval_opt(vars).map(|v| v.unwrap_or(Value::Null)))
                    .collect::<Result<_, _>>()?,
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(e: &str) -> Option<Value> {
        let states = json!({"input": {"a": 2, "b": [1, 2, 3], "name": "x",
            "items": [{"k": 1, "v": "p"}, {"k": 2, "v": "q"}, {"k": 3, "v": "r"}]},
            "context": {"Execution": {"Name": "run"}}});
        let vars = move |n: &str| match n {
            "states" => Some(states.clone()),
            "limit" => Some(json!(2)),
            _ => None,
        };
        Expr::parse(e).expect(e).eval(None, &vars).expect(e)
    }

    #[test]
    fn the_subset_evaluates_as_jsonata_does() {
        assert_eq!(ev("$states.input.a * 3 + 1"), Some(json!(7)));
        assert_eq!(ev("$states.input.a / 4"), Some(json!(0.5)));
        assert_eq!(
            ev("$states.input.name & '-' & $states.input.a"),
            Some(json!("x-2"))
        );
        assert_eq!(
            ev("$states.input.a > 1 and $states.input.a < $limit"),
            Some(json!(false))
        );
        assert_eq!(ev("$states.input.a = 2 or false"), Some(json!(true)));
        assert_eq!(ev("$count($states.input.b)"), Some(json!(3)));
        assert_eq!(ev("$sum($states.input.items.k)"), Some(json!(6)));
        assert_eq!(ev("$states.input.items[k >= 2].v"), Some(json!(["q", "r"])));
        assert_eq!(ev("$states.input.items[0].v"), Some(json!("p")));
        assert_eq!(ev("$states.input.items[-1].k"), Some(json!(3)));
        assert_eq!(ev("$exists($states.input.nope)"), Some(json!(false)));
        assert_eq!(ev("$states.input.nope"), None);
        assert_eq!(
            ev("$string(42) & $string({'a': 1})"),
            Some(json!("42{\"a\":1}"))
        );
        assert_eq!(ev("$number('2.5') + 1"), Some(json!(3.5)));
        assert_eq!(
            ev("{'n': $states.context.Execution.Name, 'l': [1, $limit], 'e': $states.nope}"),
            Some(json!({"n": "run", "l": [1, 2]}))
        );
        assert_eq!(
            ev("$states.input.a = 2 ? 'two' : 'other'"),
            Some(json!("two"))
        );
        assert!(Expr::parse("$states.input ~> $sum").is_err());
        assert!(Expr::parse("$nosuch(1)").is_err());
        assert!(
            Expr::parse("1 + 'a'")
                .expect("parses")
                .eval(None, &|_| None)
                .is_err()
        );
    }
}
