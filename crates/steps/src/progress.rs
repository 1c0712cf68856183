//! Progress of long steps as tracing events under one target: a Lambda's JSON logs show
//! them at debug level, and `tenantctl` turns them into progress bars.

/// The tracing target of progress events.
pub const TARGET: &str = "tenant_progress";

/// `records` of `system` done so far by the act `act` (a clone's copy or scan, a
/// backup's export, a restore's import).
pub fn records(act: &'static str, system: &str, records: u64) {
    tracing::debug!(target: "tenant_progress", act, system, records);
}
