//! The CloudWatch Logs erasure port. A tenant's own log groups and streams are deleted
//! whole; in streams shared by tenants, the events naming the tenant are found with
//! FilterLogEvents and the stream is rewritten without them (the others copied to a new
//! stream, then the old one deleted), once the stream is quiet and only where every kept
//! event is young enough to be written again. Erasure reaches the tenant's groups and
//! streams at home and at every migration location.

use super::config::{Config, OWN_STREAM};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use lifecycle::catalog::locate;
use lifecycle::{Capabilities, EraseMethod, SystemKind, TenantId};
use ports::retry::with_backoff;
use ports::{ErasePass, StoreError, TenantStore};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// PutLogEvents refuses events older than 14 days; a margin keeps a rewrite inside it.
const MAX_REWRITE_AGE_MS: i64 = 13 * 24 * 3600 * 1000;
/// Events per PutLogEvents call (the service takes 10,000).
const PUT_BATCH: usize = 1000;
/// Bytes per PutLogEvents call, under the service's 1 MiB.
const MAX_PUT_BYTES: usize = 1_000_000;
/// The time span one PutLogEvents call may cover.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One catalog system stored in CloudWatch Logs.
#[derive(Debug, Clone)]
pub struct CloudWatchTenantStore {
    client: Client,
    name: String,
    kind: SystemKind,
    config: Config,
}

/// Where one of the tenant's events lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
    /// The log group.
    pub(crate) group: String,
    /// The stream in it.
    pub(crate) stream: String,
}

/// Unix milliseconds, distinct and growing across every call in this process.
pub(crate) fn now_ms() -> i64 {
    // Events of one process get distinct, growing timestamps, so "the newest" is defined.
    static LAST: AtomicI64 = AtomicI64::new(0);
    let wall = ports::migrate::unix_ms() as i64;
    let mut prev = LAST.load(Ordering::SeqCst);
    loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

use crate::discovery::names_tenant;

/// True when an event of a shared stream is the tenant's: by its `field` when it is a
/// JSON object holding that field, else by naming the tenant as a whole identifier.
pub(crate) fn owned_by(message: &str, tenant: &str, field: &str) -> bool {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(message)
        && let Some(owner) = o.get(field)
    {
        return owner.as_str() == Some(tenant);
    }
    names_tenant(message, tenant)
}

impl CloudWatchTenantStore {
    /// The system `name` stored as `config` says.
    pub fn new(client: Client, name: &str, kind: SystemKind, config: Config) -> Self {
        Self {
            client,
            name: name.to_owned(),
            kind,
            config,
        }
    }

    /// The catalog settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Where `put` writes the tenant's events: its own group, else its own stream, else
    /// the first shared group.
    fn write_place(&self, t: &TenantId) -> Place {
        if let Some(home) = self.config.home() {
            let (group, stream) = home.place(t);
            return Place { group, stream };
        }
        Place {
            group: self
                .config
                .shared_groups
                .first()
                .map(|s| s.group.clone())
                .unwrap_or_default(),
            stream: OWN_STREAM.into(),
        }
    }

    /// Creates the place's group and stream unless they exist.
    pub(crate) async fn ensure(&self, p: &Place) -> Result<(), StoreError> {
        let r = self
            .client
            .create_log_group()
            .log_group_name(&p.group)
            .send()
            .await;
        if let Err(e) = r
            && e.code() != Some("ResourceAlreadyExistsException")
        {
            return Err(sdk_error("CreateLogGroup", e));
        }
        let r = self
            .client
            .create_log_stream()
            .log_group_name(&p.group)
            .log_stream_name(&p.stream)
            .send()
            .await;
        match r {
            Err(e) if e.code() != Some("ResourceAlreadyExistsException") => {
                Err(sdk_error("CreateLogStream", e))
            }
            _ => Ok(()),
        }
    }

    /// Appends events (Unix ms, message) to a stream in as few calls as the service's
    /// limits allow; an event the service refuses is an error.
    pub(crate) async fn put_events(
        &self,
        p: &Place,
        mut events: Vec<(i64, String)>,
    ) -> Result<(), StoreError> {
        // PutLogEvents takes at most 10,000 events, 1 MiB (26 bytes per event counted) and
        // 24 hours per call, in time order.
        events.sort_by_key(|(ts, _)| *ts);
        let mut chunks: Vec<&[(i64, String)]> = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, (ts, m)) in events.iter().enumerate() {
            let size = m.len() + 26;
            let full = i - start >= PUT_BATCH
                || bytes + size > MAX_PUT_BYTES
                || ts - events[start].0 >= DAY_MS;
            if i > start && full {
                chunks.push(&events[start..i]);
                (start, bytes) = (i, 0);
            }
            bytes += size;
        }
        if start < events.len() {
            chunks.push(&events[start..]);
        }
        for chunk in chunks {
            let batch = chunk
                .iter()
                .map(|(ts, m)| {
                    InputLogEvent::builder()
                        .timestamp(*ts)
                        .message(m)
                        .build()
                        .map_err(|e| StoreError::Corrupt(format!("log event: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = with_backoff(|| async {
                self.client
                    .put_log_events()
                    .log_group_name(&p.group)
                    .log_stream_name(&p.stream)
                    .set_log_events(Some(batch.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutLogEvents", e))
            })
            .await?;
            // A success may still have refused events (too old, too new): that is a loss.
            if let Some(r) = out.rejected_log_events_info() {
                return Err(StoreError::Config(format!(
                    "log group {}: PutLogEvents refused events of stream {} (too old before index {:?}, expired before {:?}, too new from {:?})",
                    p.group,
                    p.stream,
                    r.too_old_log_event_end_index(),
                    r.expired_log_event_end_index(),
                    r.too_new_log_event_start_index()
                )));
            }
        }
        Ok(())
    }

    /// Every event of a stream, oldest first.
    async fn stream_events(&self, p: &Place) -> Result<Vec<(i64, String)>, StoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = with_backoff(|| async {
                self.client
                    .get_log_events()
                    .log_group_name(&p.group)
                    .log_stream_name(&p.stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetLogEvents", e))
            })
            .await?;
            out.extend(page.events().iter().map(|e| {
                (
                    e.timestamp().unwrap_or_default(),
                    e.message().unwrap_or_default().to_owned(),
                )
            }));
            let next = page.next_forward_token().map(str::to_owned);
            // The forward token repeats once the end is reached.
            // The forward token repeats at the end; an empty page before it is not the end.
            if next.is_none() || next == token {
                return Ok(out);
            }
            token = next;
        }
    }

    /// Streams of a group whose names start with `prefix` (all with an empty prefix),
    /// with their last ingestion time; empty when the group does not exist.
    async fn streams(&self, group: &str, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = with_backoff(|| async {
                let mut req = self
                    .client
                    .describe_log_streams()
                    .log_group_name(group)
                    .set_next_token(token.clone());
                if !prefix.is_empty() {
                    req = req.log_stream_name_prefix(prefix);
                }
                match req.send().await {
                    Ok(o) => Ok(Some(o)),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                    Err(e) => Err(sdk_error("DescribeLogStreams", e)),
                }
            })
            .await?;
            let Some(page) = r else {
                return Ok(out);
            };
            out.extend(page.log_streams().iter().filter_map(|s| {
                s.log_stream_name()
                    .map(|n| (n.to_owned(), s.last_ingestion_time().unwrap_or_default()))
            }));
            match page.next_token() {
                Some(t) if Some(t) != token.as_deref() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Events of a group that name the tenant (FilterLogEvents, then a whole-identifier
    /// check), by stream; `tenant = None` counts every event.
    async fn matching(
        &self,
        group: &str,
        streams: Option<Vec<String>>,
        tenant: Option<(&TenantId, &str)>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut by_stream: std::collections::BTreeMap<String, u64> = Default::default();
        let mut token: Option<String> = None;
        loop {
            let r = with_backoff(|| async {
                let mut req = self
                    .client
                    .filter_log_events()
                    .log_group_name(group)
                    .set_log_stream_names(streams.clone())
                    .set_next_token(token.clone());
                if let Some((t, _)) = tenant {
                    req = req.filter_pattern(format!("\"{}\"", t.as_str()));
                }
                match req.send().await {
                    Ok(o) => Ok(Some(o)),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                    Err(e) => Err(sdk_error("FilterLogEvents", e)),
                }
            })
            .await?;
            let Some(page) = r else {
                break;
            };
            for e in page.events() {
                let hit = tenant.is_none_or(|(t, field)| {
                    owned_by(e.message().unwrap_or_default(), t.as_str(), field)
                });
                if hit {
                    *by_stream
                        .entry(e.log_stream_name().unwrap_or_default().to_owned())
                        .or_default() += 1;
                }
            }
            match page.next_token() {
                Some(t) if Some(t) != token.as_deref() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(by_stream.into_iter().collect())
    }

    /// Rewrites a shared stream without the tenant's events. Returns how many were
    /// removed, or `None` when the stream is not quiet yet.
    async fn rewrite(
        &self,
        group: &str,
        stream: &str,
        last_ingest: Option<i64>,
        shared: &super::SharedGroup,
        t: &TenantId,
    ) -> Result<Option<u64>, StoreError> {
        let now = ports::migrate::unix_ms() as i64;
        // A stream the listing does not show (yet) is not known to be quiet.
        let Some(last_ingest) = last_ingest else {
            return Ok(None);
        };
        if now - last_ingest < (shared.quiet_seconds as i64) * 1000 {
            return Ok(None);
        }
        let old = Place {
            group: group.to_owned(),
            stream: stream.to_owned(),
        };
        let events = self.stream_events(&old).await?;
        let (gone, kept): (Vec<_>, Vec<_>) = events
            .into_iter()
            .partition(|(_, m)| owned_by(m, t.as_str(), &shared.tenant_field));
        if let Some((ts, _)) = kept.iter().find(|(ts, _)| now - ts > MAX_REWRITE_AGE_MS) {
            return Err(StoreError::Config(format!(
                "log group {group}: stream {stream} keeps an event of {ts} (older than 13 days), which CloudWatch Logs will not take again; shorten the group's retention so the tenant's events expire, or delete the stream"
            )));
        }
        if !kept.is_empty() {
            // One suffix however often a stream is rewritten, so names never outgrow 512.
            let base = stream
                .rsplit_once(".rewritten-")
                .filter(|(_, ms)| ms.bytes().all(|b| b.is_ascii_digit()))
                .map_or(stream, |(b, _)| b);
            let new = Place {
                group: group.to_owned(),
                stream: format!("{base}.rewritten-{now}"),
            };
            self.ensure(&new).await?;
            if let Err(e) = self.put_events(&new, kept).await {
                // The old stream stays whole; the partial copy goes, so a retry starts clean.
                let _ = self.delete_stream(group, &new.stream).await;
                return Err(e);
            }
        }
        self.delete_stream(group, stream).await?;
        Ok(Some(gone.len() as u64))
    }

    async fn delete_stream(&self, group: &str, stream: &str) -> Result<(), StoreError> {
        with_backoff(|| async {
            match self
                .client
                .delete_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
                Err(e) => Err(sdk_error("DeleteLogStream", e)),
            }
        })
        .await
    }

    async fn own_streams(&self, t: &TenantId) -> Result<Vec<Place>, StoreError> {
        let mut out = Vec::new();
        for s in &self.config.all_stream_groups() {
            for (stream, _) in self.streams(&s.group, &locate(&s.stream_prefix, t)).await? {
                out.push(Place {
                    group: s.group.clone(),
                    stream,
                });
            }
        }
        Ok(out)
    }

    /// The tenant's own events per place (its groups and streams), and its events in
    /// shared groups per stream.
    async fn census(&self, t: &TenantId) -> Result<u64, StoreError> {
        let mut n = 0;
        for g in &self.config.all_groups() {
            n += self
                .matching(&locate(g, t), None, None)
                .await?
                .iter()
                .map(|(_, c)| c)
                .sum::<u64>();
        }
        for p in self.own_streams(t).await? {
            n += self
                .matching(&p.group, Some(vec![p.stream.clone()]), None)
                .await?
                .iter()
                .map(|(_, c)| c)
                .sum::<u64>();
        }
        for s in &self.config.shared_groups {
            n += self
                .matching(&s.group, None, Some((t, s.tenant_field.as_str())))
                .await?
                .iter()
                .map(|(_, c)| c)
                .sum::<u64>();
        }
        Ok(n)
    }

    async fn event(&self, t: &TenantId, key: &str, body: Option<&[u8]>) -> Result<(), StoreError> {
        let p = self.write_place(t);
        let message = match body {
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => json!({"tenant_id": t.as_str(), "key": key, "body": s}),
                Err(_) => {
                    json!({"tenant_id": t.as_str(), "key": key, "body_b64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)})
                }
            },
            None => json!({"tenant_id": t.as_str(), "key": key, "deleted": true}),
        };
        let events = vec![(now_ms(), message.to_string())];
        match self.put_events(&p, events.clone()).await {
            // The group or stream is made on first use only: one call per event otherwise.
            Err(StoreError::Config(m)) if m.contains("ResourceNotFoundException") => {
                self.ensure(&p).await?;
                self.put_events(&p, events).await
            }
            other => other,
        }
    }

    /// The tenant's events in the group `put` writes to, oldest first, whatever stream
    /// they are in now (a rewrite moves the other tenants' events to a new stream).
    async fn tenant_messages(&self, t: &TenantId) -> Result<Vec<(i64, String)>, StoreError> {
        let group = self.write_place(t).group;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = with_backoff(|| async {
                match self
                    .client
                    .filter_log_events()
                    .log_group_name(&group)
                    .filter_pattern(format!("\"{}\"", t.as_str()))
                    .set_next_token(token.clone())
                    .send()
                    .await
                {
                    Ok(o) => Ok(Some(o)),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                    Err(e) => Err(sdk_error("FilterLogEvents", e)),
                }
            })
            .await?;
            let Some(page) = r else {
                break;
            };
            out.extend(page.events().iter().map(|e| {
                (
                    e.timestamp().unwrap_or_default(),
                    e.message().unwrap_or_default().to_owned(),
                )
            }));
            match page.next_token() {
                Some(n) if Some(n) != token.as_deref() => token = Some(n.to_owned()),
                _ => break,
            }
        }
        out.sort_by_key(|(ts, _)| *ts);
        Ok(out)
    }
}

#[async_trait]
impl TenantStore for CloudWatchTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    /// Every event stays until its stream goes, so every put and delete is one more
    /// recoverable record, like a version.
    fn capabilities(&self) -> Capabilities {
        // The certificate states the method this catalog entry declares.
        let erase_method = if self.config.shared_groups.is_empty() {
            EraseMethod::DeleteLogStreams
        } else {
            EraseMethod::DeleteAndRewriteLogStreams
        };
        Capabilities {
            versioned: true,
            erase_method,
            ..self.kind.capabilities()
        }
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.event(tenant, key, Some(body)).await
    }

    /// Writes a deletion event: a log keeps what was written before it.
    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        self.event(tenant, key, None).await
    }

    /// The newest event written by `put` or `delete` for `key`.
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let events = self.tenant_messages(tenant).await?;
        let mut found = None;
        for (_, m) in events {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&m) else {
                continue;
            };
            if v["tenant_id"] != tenant.as_str() || v["key"] != key {
                continue;
            }
            found = if v["deleted"] == true {
                None
            } else if let Some(s) = v["body"].as_str() {
                Some(s.as_bytes().to_vec())
            } else {
                v["body_b64"].as_str().and_then(|b| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok()
                })
            };
        }
        Ok(found)
    }

    /// Every event in the tenant's groups and streams, and every event naming it in the
    /// shared groups: what a fresh FilterLogEvents finds.
    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.census(tenant).await
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        let mut erased = 0;
        for g in &self.config.all_groups() {
            let group = locate(g, tenant);
            let n: u64 = self
                .matching(&group, None, None)
                .await?
                .iter()
                .map(|(_, c)| c)
                .sum();
            let gone = with_backoff(|| async {
                match self
                    .client
                    .delete_log_group()
                    .log_group_name(&group)
                    .send()
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
                    Err(e) => Err(sdk_error("DeleteLogGroup", e)),
                }
            })
            .await?;
            if gone {
                erased += n;
            }
            // Past the deadline, stop only after progress, so a loop of calls ends.
            if erased > 0 && Instant::now() >= deadline {
                return Ok(ErasePass {
                    erased,
                    complete: false,
                });
            }
        }
        for p in self.own_streams(tenant).await? {
            let n: u64 = self
                .matching(&p.group, Some(vec![p.stream.clone()]), None)
                .await?
                .iter()
                .map(|(_, c)| c)
                .sum();
            self.delete_stream(&p.group, &p.stream).await?;
            erased += n;
            // Past the deadline, stop only after progress, so a loop of calls ends.
            if erased > 0 && Instant::now() >= deadline {
                return Ok(ErasePass {
                    erased,
                    complete: false,
                });
            }
        }
        let mut waiting = false;
        for s in &self.config.shared_groups {
            let hits = self
                .matching(&s.group, None, Some((tenant, s.tenant_field.as_str())))
                .await?;
            if hits.is_empty() {
                continue;
            }
            let streams = self.streams(&s.group, "").await?;
            for (stream, _) in hits {
                let last = streams
                    .iter()
                    .find(|(n, _)| *n == stream)
                    .map(|(_, at)| *at);
                match self.rewrite(&s.group, &stream, last, s, tenant).await? {
                    Some(n) => erased += n,
                    None => waiting = true,
                }
                // Past the deadline, stop only after progress, so a loop of calls ends.
                if erased > 0 && Instant::now() >= deadline {
                    return Ok(ErasePass {
                        erased,
                        complete: false,
                    });
                }
            }
        }
        // A stream still being written to is rewritten on a later call, once quiet.
        let complete = !waiting && self.census(tenant).await? == 0;
        Ok(ErasePass { erased, complete })
    }
}
