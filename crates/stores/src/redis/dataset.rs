//! A Redis system's migration dataset and change feed.
//!
//! Beside the tenant's keys, each location keeps three bookkeeping keys in the tenant's
//! hash slot: a hash of key to revision (a revision without a key is a tombstone), a
//! sorted set of key names (SCAN has no order; migration pages in key order) and a
//! stream whose entry `n-1` says which key the n-th primary write touched, with a counter
//! beside it. One Lua script does a write and its bookkeeping, so they are atomic.
//!
//! A record's body is the value itself for a string without expiry. Anything else (a
//! hash, set, sorted set or list, a string with an expiry, a string that happens to
//! start with the envelope's magic) is an envelope: magic, type, absolute expiry in Unix
//! milliseconds, then the members in a canonical order (hash fields and set members
//! sorted), so two locations holding the same data give the same fingerprint whatever
//! their internal encodings. Types with no canonical form here (streams, modules) travel
//! as DUMP payloads and are restored with RESTORE ... ABSTTL.

use super::{Layout, redis_err};
use async_trait::async_trait;
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Rec};
use ports::retry::with_backoff;
use redis::Value;
use redis::aio::ConnectionManager;

/// Marks an envelope body; a plain string value starting with it is itself enveloped.
const MAGIC: &[u8] = b"\x00tenant-lifecycle:redis\x01";

/// Reads a key's revision, type, expiry and members in one atomic step.
const READ: &str = r#"
local held = redis.call('HGET', KEYS[2], ARGV[1])
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  if held then return {held, 'none'} end
  return {}
end
local rev = held or '0'
local exp = tostring(redis.call('PEXPIRETIME', KEYS[1]))
if t == 'string' then
  local v = redis.call('GET', KEYS[1])
  if exp == '-1' and string.sub(v, 1, string.len(ARGV[2])) ~= ARGV[2] then
    return {rev, 'raw', v}
  end
  return {rev, 'string', exp, {v}}
elseif t == 'hash' then
  return {rev, t, exp, redis.call('HGETALL', KEYS[1])}
elseif t == 'set' then
  return {rev, t, exp, redis.call('SMEMBERS', KEYS[1])}
elseif t == 'zset' then
  return {rev, t, exp, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
elseif t == 'list' then
  return {rev, t, exp, redis.call('LRANGE', KEYS[1], 0, -1)}
end
return {rev, 'dump', exp, {redis.call('DUMP', KEYS[1])}}
"#;

/// Stores a body (shared by WRITE and APPLY). ARGV from 3 on: type, expiry, members.
const STORE_BODY: &str = r#"
local function store_body(first)
  local t = ARGV[first]
  local exp = ARGV[first + 1]
  redis.call('UNLINK', KEYS[1])
  if t == 'del' then return end
  if t == 'raw' then
    redis.call('SET', KEYS[1], ARGV[first + 2])
    return
  end
  if t == 'dump' then
    if exp == '-1' then
      redis.call('RESTORE', KEYS[1], 0, ARGV[first + 2], 'REPLACE')
    else
      redis.call('RESTORE', KEYS[1], exp, ARGV[first + 2], 'REPLACE', 'ABSTTL')
    end
    return
  end
  local cmd = ({string = 'SET', hash = 'HSET', set = 'SADD', zset = 'ZADD', list = 'RPUSH'})[t]
  local i = first + 2
  while i <= #ARGV do
    local j = math.min(i + 999, #ARGV)
    redis.call(cmd, KEYS[1], unpack(ARGV, i, j))
    i = j + 1
  end
  if exp ~= '-1' then redis.call('PEXPIREAT', KEYS[1], exp) end
end
"#;

/// A primary write. KEYS: data, rev, index, feed, seq. ARGV: key, (unused), body.
const WRITE: &str = r#"
local rev = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') + 1
store_body(3)
redis.call('HSET', KEYS[2], ARGV[1], rev)
redis.call('ZADD', KEYS[3], 0, ARGV[1])
local n = redis.call('INCR', KEYS[5])
redis.call('XADD', KEYS[4], n .. '-1', 'k', ARGV[1])
return rev
"#;

/// A replica write, only if newer. KEYS: data, rev, index. ARGV: key, rev, replace
/// equal ('1'), body.
const APPLY: &str = r#"
local held = redis.call('HGET', KEYS[2], ARGV[1])
local cur = -1
if held then cur = tonumber(held) elseif redis.call('EXISTS', KEYS[1]) == 1 then cur = 0 end
local rev = tonumber(ARGV[2])
if rev < cur or (rev == cur and ARGV[3] ~= '1') then return 0 end
store_body(4)
redis.call('HSET', KEYS[2], ARGV[1], rev)
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1
"#;

/// A key's body as the scripts move it: its type, expiry and members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    kind: Kind,
    /// Absolute expiry in Unix milliseconds, -1 for none.
    expiry_ms: i64,
    members: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    String,
    Hash,
    Set,
    Zset,
    List,
    Dump,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::String => "string",
            Self::Hash => "hash",
            Self::Set => "set",
            Self::Zset => "zset",
            Self::List => "list",
            Self::Dump => "dump",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Self::Raw => b'r',
            Self::String => b's',
            Self::Hash => b'h',
            Self::Set => b'S',
            Self::Zset => b'z',
            Self::List => b'l',
            Self::Dump => b'd',
        }
    }

    fn from_tag(b: u8) -> Option<Self> {
        [
            Self::String,
            Self::Hash,
            Self::Set,
            Self::Zset,
            Self::List,
            Self::Dump,
        ]
        .into_iter()
        .find(|k| k.tag() == b)
    }

    fn from_name(s: &str) -> Option<Self> {
        [
            Self::Raw,
            Self::String,
            Self::Hash,
            Self::Set,
            Self::Zset,
            Self::List,
            Self::Dump,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

impl Body {
    /// The body bytes a [`Rec`] carries.
    fn encode(&self) -> Vec<u8> {
        if self.kind == Kind::Raw {
            return self.members.first().cloned().unwrap_or_default();
        }
        let mut out = MAGIC.to_vec();
        out.push(self.kind.tag());
        out.extend_from_slice(&self.expiry_ms.to_be_bytes());
        for m in &self.members {
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    /// The inverse of [`Body::encode`]; a value that is not an envelope is a plain string.
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Ok(Self {
                kind: Kind::Raw,
                expiry_ms: -1,
                members: vec![bytes.to_vec()],
            });
        };
        let bad = || StoreError::Corrupt("redis record envelope is truncated".into());
        let (&tag, rest) = rest.split_first().ok_or_else(bad)?;
        let kind = Kind::from_tag(tag).ok_or_else(bad)?;
        let (exp, mut rest) = rest.split_at_checked(8).ok_or_else(bad)?;
        let expiry_ms = i64::from_be_bytes(exp.try_into().map_err(|_| bad())?);
        let mut members = Vec::new();
        while !rest.is_empty() {
            let (len, r) = rest.split_at_checked(4).ok_or_else(bad)?;
            let len = u32::from_be_bytes(len.try_into().map_err(|_| bad())?) as usize;
            let (m, r) = r.split_at_checked(len).ok_or_else(bad)?;
            members.push(m.to_vec());
            rest = r;
        }
        if matches!(kind, Kind::Hash | Kind::Zset) && members.len() % 2 == 1 {
            return Err(bad());
        }
        Ok(Self {
            kind,
            expiry_ms,
            members,
        })
    }

    /// Members in the canonical order: hash and sorted-set pairs by field or member,
    /// set members sorted, lists and strings as they are.
    fn canonical(mut self) -> Self {
        match self.kind {
            Kind::Set => self.members.sort(),
            Kind::Hash | Kind::Zset => {
                let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = self
                    .members
                    .chunks_exact(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect();
                pairs.sort();
                self.members = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
            }
            _ => {}
        }
        self
    }

    /// The script arguments that store it: type, expiry, then members in command order
    /// (ZADD wants the score first).
    fn args(&self) -> Vec<Vec<u8>> {
        let mut a = vec![
            self.kind.name().as_bytes().to_vec(),
            self.expiry_ms.to_string().into_bytes(),
        ];
        if self.kind == Kind::Zset {
            for p in self.members.chunks_exact(2) {
                a.push(p[1].clone());
                a.push(p[0].clone());
            }
        } else {
            a.extend(self.members.iter().cloned());
        }
        a
    }
}

/// Runs a pipeline of `script`'s invocations (EVALSHA), loading the script first when
/// the server does not know it (a new server, a restart, SCRIPT FLUSH).
async fn run_scripts<T: redis::FromRedisValue>(
    conn: &mut ConnectionManager,
    pipe: &redis::Pipeline,
    script: &redis::Script,
) -> redis::RedisResult<T> {
    match pipe.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
            script.prepare_invoke().load_async(conn).await?;
            pipe.query_async(conn).await
        }
        other => other,
    }
}

fn bulk(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bulk(v).and_then(|b| String::from_utf8(b).ok())
}

/// Parses the READ script's answer into a record.
fn parse_read(key: &str, v: &Value) -> Result<Option<Rec>, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("redis read of {key:?}: {what}"));
    let Value::Array(parts) = v else {
        return Err(bad("not an array"));
    };
    let Some(rev) = parts.first() else {
        return Ok(None);
    };
    let rev: u64 = text(rev)
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| bad("revision is not a number"))?;
    let kind = parts.get(1).and_then(text).ok_or_else(|| bad("no type"))?;
    if kind == "none" {
        return Ok(Some(Rec {
            key: key.to_owned(),
            rev,
            body: None,
        }));
    }
    let kind = Kind::from_name(&kind).ok_or_else(|| bad("unknown type"))?;
    let body = if kind == Kind::Raw {
        Body {
            kind,
            expiry_ms: -1,
            members: vec![parts.get(2).and_then(bulk).ok_or_else(|| bad("no value"))?],
        }
    } else {
        let expiry_ms = parts
            .get(2)
            .and_then(text)
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| bad("expiry is not a number"))?;
        let Some(Value::Array(ms)) = parts.get(3) else {
            return Err(bad("no members"));
        };
        let members = ms
            .iter()
            .map(|m| bulk(m).ok_or_else(|| bad("a member is not a string")))
            .collect::<Result<_, _>>()?;
        Body {
            kind,
            expiry_ms,
            members,
        }
        .canonical()
    };
    Ok(Some(Rec {
        key: key.to_owned(),
        rev,
        body: Some(body.encode()),
    }))
}

/// One tenant's keys of one Redis system in one location.
#[derive(Clone)]
pub struct RedisDataset {
    conn: ConnectionManager,
    system: String,
    location: String,
    layout: Layout,
    scan_count: usize,
    read: redis::Script,
    write: redis::Script,
    apply: redis::Script,
}

impl std::fmt::Debug for RedisDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDataset")
            .field("system", &self.system)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl RedisDataset {
    /// The dataset of `system` at `location`, reached through `conn`.
    pub(crate) fn new(
        conn: ConnectionManager,
        system: &str,
        location: &str,
        layout: Layout,
        scan_count: usize,
    ) -> Self {
        Self {
            conn,
            system: system.to_owned(),
            location: location.to_owned(),
            layout,
            scan_count,
            read: redis::Script::new(READ),
            write: redis::Script::new(&format!("{STORE_BODY}\n{WRITE}")),
            apply: redis::Script::new(&format!("{STORE_BODY}\n{APPLY}")),
        }
    }

    /// The same dataset on a server URL (tests and benchmarks open one without a catalog).
    pub async fn connect(
        url: &str,
        system: &str,
        location: &str,
        prefix: &str,
    ) -> Result<Self, lifecycle::StepError> {
        let layout = Layout {
            prefix: prefix.to_owned(),
            hash_tag: false,
        };
        Ok(Self::new(
            super::connect(url).await?,
            system,
            location,
            layout,
            1000,
        ))
    }

    fn meta(&self, t: &TenantId, what: &str) -> String {
        self.layout.meta(t, what)
    }

    async fn read_many(
        &self,
        t: &TenantId,
        keys: &[String],
    ) -> Result<Vec<Option<Rec>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rev = self.meta(t, "rev");
        let values: Vec<Value> = with_backoff(|| {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            for k in keys {
                pipe.invoke_script(
                    self.read
                        .key(self.layout.data(t, k))
                        .key(&rev)
                        .arg(k)
                        .arg(MAGIC),
                );
            }
            async move {
                run_scripts::<Vec<Value>>(&mut conn, &pipe, &self.read)
                    .await
                    .map_err(|e| redis_err("read", e))
            }
        })
        .await?;
        keys.iter()
            .zip(values.iter())
            .map(|(k, v)| parse_read(k, v))
            .collect()
    }

    /// Adds every key under the tenant's prefix to the index: keys written before the
    /// migration began (or by anything but the dataset) are in no index yet.
    async fn index_all(&self, t: &TenantId) -> Result<(), StoreError> {
        let pattern = self.layout.pattern(t);
        let prefix = self.layout.prefix(t);
        let index = self.meta(t, "keys");
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = super::query(
                &self.conn,
                "SCAN",
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(self.scan_count),
            )
            .await?;
            let mut members = Vec::with_capacity(keys.len() * 2);
            for k in keys {
                let Some(short) = k.strip_prefix(prefix.as_bytes()) else {
                    continue;
                };
                if std::str::from_utf8(short).is_err() {
                    return Err(StoreError::Corrupt(format!(
                        "system {}: a key of the tenant is not UTF-8; migration moves UTF-8 key names only",
                        self.system
                    )));
                }
                members.push(b"0".to_vec());
                members.push(short.to_vec());
            }
            if !members.is_empty() {
                super::query::<()>(
                    &self.conn,
                    "ZADD",
                    redis::cmd("ZADD").arg(&index).arg(members),
                )
                .await?;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    fn apply_call(
        &self,
        t: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<redis::ScriptInvocation<'_>, StoreError> {
        let body = match &rec.body {
            Some(b) => Body::decode(b)?.args(),
            None => vec![b"del".to_vec(), b"-1".to_vec()],
        };
        let mut call = self.apply.key(self.layout.data(t, &rec.key));
        call.key(self.meta(t, "rev"))
            .key(self.meta(t, "keys"))
            .arg(&rec.key)
            .arg(rec.rev)
            .arg(u8::from(replace_equal));
        for a in body {
            call.arg(a);
        }
        Ok(call)
    }
}

#[async_trait]
impl Dataset for RedisDataset {
    fn system(&self) -> &str {
        &self.system
    }

    fn location(&self) -> &str {
        &self.location
    }

    /// Nothing to create: keys appear with their first write. Checks the server answers.
    async fn provision(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        super::query::<()>(&self.conn, "PING", &redis::cmd("PING")).await?;
        Ok(false)
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        Ok(self
            .read_many(tenant, &[key.to_owned()])
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        let args = match body {
            Some(b) => {
                let body = Body::decode(b)?;
                // An application's write never restores a raw DUMP payload (RESTORE trusts
                // it); only a copy of what this dataset read from another location may.
                if body.kind == Kind::Dump {
                    return Err(StoreError::Config(format!(
                        "system {}: a write may not carry a DUMP payload",
                        self.system
                    )));
                }
                body.args()
            }
            None => vec![b"del".to_vec(), b"-1".to_vec()],
        };
        with_backoff(|| {
            let mut conn = self.conn.clone();
            let mut call = self.write.key(self.layout.data(tenant, key));
            call.key(self.meta(tenant, "rev"))
                .key(self.meta(tenant, "keys"))
                .key(self.meta(tenant, "feed"))
                .key(self.meta(tenant, "seq"))
                .arg(key)
                .arg(0);
            for a in &args {
                call.arg(a);
            }
            async move {
                call.invoke_async::<u64>(&mut conn)
                    .await
                    .map_err(|e| redis_err("write", e))
            }
        })
        .await
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        with_backoff(|| {
            let mut conn = self.conn.clone();
            let call = self.apply_call(tenant, rec, replace_equal);
            async move {
                call?
                    .invoke_async::<u64>(&mut conn)
                    .await
                    .map(|n| n == 1)
                    .map_err(|e| redis_err("apply", e))
            }
        })
        .await
    }

    /// One pipeline of conditional applies: one round trip per page.
    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        if recs.is_empty() {
            return Ok(0);
        }
        let applied: Vec<u64> = with_backoff(|| {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            let mut err = None;
            for r in recs {
                match self.apply_call(tenant, r, false) {
                    Ok(call) => {
                        pipe.invoke_script(&call);
                    }
                    Err(e) => err = Some(e),
                }
            }
            async move {
                if let Some(e) = err {
                    return Err(e);
                }
                run_scripts::<Vec<u64>>(&mut conn, &pipe, &self.apply)
                    .await
                    .map_err(|e| redis_err("apply", e))
            }
        })
        .await?;
        Ok(applied.iter().sum())
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        if after.is_none() {
            self.index_all(tenant).await?;
        }
        let index = self.meta(tenant, "keys");
        let mut out = Vec::with_capacity(limit);
        let mut from = after.map(str::to_owned);
        // An index entry whose key and revision are both gone (erased, or deleted
        // around the dataset) yields nothing; keep reading so a short page still means
        // the end.
        while out.len() < limit {
            let want = limit - out.len();
            let start = from
                .as_deref()
                .map_or_else(|| "-".to_owned(), |a| format!("({a}"));
            let keys: Vec<String> = super::query(
                &self.conn,
                "ZRANGE",
                redis::cmd("ZRANGE")
                    .arg(&index)
                    .arg(start)
                    .arg("+")
                    .arg("BYLEX")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(want),
            )
            .await?;
            let end = keys.len() < want;
            from = keys.last().cloned();
            out.extend(self.read_many(tenant, &keys).await?.into_iter().flatten());
            if end {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ChangeFeed for RedisDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let seq = self.meta(tenant, "seq");
        super::query::<Option<u64>>(&self.conn, "GET", redis::cmd("GET").arg(seq))
            .await
            .map(Option::unwrap_or_default)
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let feed = self.meta(tenant, "feed");
        let entries: Vec<(String, Vec<(String, String)>)> = super::query(
            &self.conn,
            "XRANGE",
            redis::cmd("XRANGE")
                .arg(feed)
                .arg(format!("({after}-1"))
                .arg("+")
                .arg("COUNT")
                .arg(limit),
        )
        .await?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let seq = id
                    .split_once('-')
                    .and_then(|(n, _)| n.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("feed entry id {id:?}")))?;
                let key = fields
                    .into_iter()
                    .find(|(f, _)| f == "k")
                    .map(|(_, k)| k)
                    .ok_or_else(|| StoreError::Corrupt(format!("feed entry {id} has no key")))?;
                Ok(Change { seq, key })
            })
            .collect()
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        let feed = self.meta(tenant, "feed");
        super::query::<u64>(
            &self.conn,
            "XTRIM",
            redis::cmd("XTRIM")
                .arg(feed)
                .arg("MINID")
                .arg(format!("{upto}-1")),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::{Body, Kind, MAGIC};

    #[test]
    fn bodies_round_trip_and_plain_values_stay_plain() {
        let plain = Body::decode(b"hello").expect("plain");
        assert_eq!(plain.kind, Kind::Raw);
        assert_eq!(plain.encode(), b"hello");
        let h = Body {
            kind: Kind::Hash,
            expiry_ms: 1_900_000_000_000,
            members: vec![b"b".to_vec(), b"2".to_vec(), b"a".to_vec(), b"1".to_vec()],
        }
        .canonical();
        assert_eq!(h.members[0], b"a");
        assert_eq!(Body::decode(&h.encode()).expect("hash"), h);
        let tricky = [MAGIC, b"not really"].concat();
        let s = Body {
            kind: Kind::String,
            expiry_ms: -1,
            members: vec![tricky.clone()],
        };
        assert_eq!(Body::decode(&s.encode()).expect("s").members, vec![tricky]);
    }

    #[test]
    fn a_truncated_envelope_is_corrupt_not_a_panic() {
        let h = Body {
            kind: Kind::Zset,
            expiry_ms: -1,
            members: vec![b"m".to_vec(), b"1.5".to_vec()],
        }
        .encode();
        for cut in MAGIC.len()..h.len() {
            let r = Body::decode(&h[..cut]);
            assert!(r.is_err() || cut == MAGIC.len() + 9, "cut at {cut}: {r:?}");
        }
    }

    #[test]
    fn zset_arguments_put_the_score_first() {
        let z = Body {
            kind: Kind::Zset,
            expiry_ms: -1,
            members: vec![b"m".to_vec(), b"1.5".to_vec()],
        };
        assert_eq!(z.args()[2..], [b"1.5".to_vec(), b"m".to_vec()]);
    }
}
