//! Discovery in CloudWatch Logs: every log group the credentials list, its events that
//! name the tenant.

use crate::aws::sdk_error;
use crate::discovery::{Finding, capped, names_tenant, tally};
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use lifecycle::{DiscoverySpec, TenantId};
use ports::StoreError;
use ports::retry::with_backoff;

/// Groups with events naming the tenant, except the catalog's groups (`groups`) and the
/// tenant's streams in the catalog's stream groups (`streams`: group, stream prefix).
pub(crate) async fn scan(
    aws: &aws_config::SdkConfig,
    t: &TenantId,
    groups: &[String],
    streams: &[(String, String)],
    spec: &DiscoverySpec,
) -> Result<Vec<Finding>, StoreError> {
    let client = aws_sdk_cloudwatchlogs::Client::new(aws);
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = with_backoff(|| async {
            client
                .describe_log_groups()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeLogGroups", e))
        })
        .await?;
        all.extend(
            page.log_groups()
                .iter()
                .filter_map(|g| g.log_group_name().map(str::to_owned)),
        );
        match page.next_token() {
            Some(n) if Some(n) != token.as_deref() => token = Some(n.to_owned()),
            _ => break,
        }
    }
    let mut places = Vec::new();
    for group in all.iter().filter(|g| !groups.contains(g)) {
        let mut token: Option<String> = None;
        let mut seen = 0;
        loop {
            let r = with_backoff(|| async {
                match client
                    .filter_log_events()
                    .log_group_name(group)
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
            let Some(page) = r else { break };
            for e in page.events() {
                seen += 1;
                let stream = e.log_stream_name().unwrap_or_default();
                let covered = streams
                    .iter()
                    .any(|(g, prefix)| g == group && stream.starts_with(prefix.as_str()));
                if !covered && names_tenant(e.message().unwrap_or_default(), t.as_str()) {
                    places.push(format!("logs://{group}"));
                }
            }
            match page.next_token() {
                Some(_) if seen >= spec.max_per_place => {
                    return Err(capped(&format!("logs://{group}"), spec.max_per_place));
                }
                Some(n) if Some(n) != token.as_deref() => token = Some(n.to_owned()),
                _ => break,
            }
        }
    }
    Ok(tally(places))
}
