//! A CloudWatch Logs system's catalog settings: where a tenant's events live.

use crate::config::{check_concurrency, check_template, default_concurrency, settings};
use lifecycle::StepError;
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use serde::Deserialize;

/// `backend = "cloudwatch"`. One event cannot be deleted, so the catalog says where the
/// tenant's events are: log groups of its own (deleted whole), streams of its own in
/// shared groups (deleted whole), and streams shared by tenants (rewritten without the
/// tenant's events once quiet).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Log groups that belong to one tenant, e.g. `/app/tenants/{tenant_id}`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups where each tenant writes streams of its own.
    #[serde(default)]
    pub stream_groups: Vec<StreamGroup>,
    /// Groups whose streams mix tenants.
    #[serde(default)]
    pub shared_groups: Vec<SharedGroup>,
    /// Delete and rewrite calls in flight.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
}

/// A group holding streams named after the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamGroup {
    /// The log group.
    pub group: String,
    /// Stream name prefix template, e.g. `tenant-{tenant_id}/`.
    pub stream_prefix: String,
}

/// A group whose streams hold events of many tenants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedGroup {
    /// The log group.
    pub group: String,
    /// A stream is rewritten only when nothing was written to it for this long, so no
    /// other tenant's event can arrive between the copy and the delete.
    #[serde(default = "default_quiet")]
    pub quiet_seconds: u64,
    /// The field of a JSON event that names whose event it is: such an event is the
    /// tenant's only when the field says so (another tenant's event that mentions the
    /// tenant is kept); an event without it is the tenant's when it names the tenant.
    #[serde(default = "default_tenant_field")]
    pub tenant_field: String,
}

fn default_tenant_field() -> String {
    "tenant_id".into()
}

fn default_quiet() -> u64 {
    300
}

fn check_group(name: &lifecycle::SystemName, group: &str) -> Result<(), StepError> {
    let ok = !group.is_empty()
        && group.len() <= 512
        && group.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '#' | '{' | '}')
        });
    if ok {
        Ok(())
    } else {
        Err(StepError::Configuration(format!(
            "system {name}: log group {group:?} must be 1-512 of a-z, A-Z, 0-9, '_', '-', '/', '.', '#'"
        )))
    }
}

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        if c.groups.is_empty() && c.stream_groups.is_empty() && c.shared_groups.is_empty() {
            return Err(StepError::Configuration(format!(
                "system {}: say where the tenant's events live: groups = [\"/app/tenants/{TENANT_PLACEHOLDER}\"], stream_groups = [{{ group = \"...\", stream_prefix = \"tenant-{TENANT_PLACEHOLDER}/\" }}] or shared_groups = [{{ group = \"...\" }}]",
                spec.name
            )));
        }
        for g in &c.groups {
            check_group(&spec.name, g)?;
            check_template(&spec.name, "group", g)?;
        }
        for s in &c.stream_groups {
            check_group(&spec.name, &s.group)?;
            crate::config::check_prefix_separator(&spec.name, "stream_prefix", &s.stream_prefix)?;
        }
        for s in &c.shared_groups {
            check_group(&spec.name, &s.group)?;
            if s.group.contains(TENANT_PLACEHOLDER) {
                return Err(StepError::Configuration(format!(
                    "system {}: shared group {:?} names a tenant; list a group of the tenant's own under groups",
                    spec.name, s.group
                )));
            }
        }
        check_concurrency(&spec.name, c.max_concurrency)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use lifecycle::Catalog;

    fn parse(extra: &str) -> Result<Config, lifecycle::StepError> {
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"cloudwatch\"\nkind = \"logs\"\nbackend = \"cloudwatch\"\n{extra}"
        );
        Config::parse(&Catalog::from_toml(&text)?.systems[0])
    }

    #[test]
    fn parses_each_place_a_tenant_logs() {
        let c = parse("groups = [\"/t/{tenant_id}\"]\nstream_groups = [{ group = \"/api\", stream_prefix = \"tenant-{tenant_id}/\" }]\nshared_groups = [{ group = \"/shared\" }]").expect("valid");
        assert_eq!(c.shared_groups[0].quiet_seconds, 300);
    }

    #[test]
    fn refuses_malformed_entries_saying_what_to_change() {
        for (extra, says) in [
            ("", "say where the tenant's events live"),
            ("groups = [\"/app/all\"]", "must contain {tenant_id}"),
            (
                "stream_groups = [{ group = \"/api\", stream_prefix = \"t-{tenant_id}\" }]",
                "with a separator",
            ),
            (
                "stream_groups = [{ group = \"/api\", stream_prefix = \"t-{tenant_id}-\" }]",
                "with a separator",
            ),
            (
                "shared_groups = [{ group = \"/t/{tenant_id}\" }]",
                "under groups",
            ),
            ("groups = [\"/t/{tenant_id} x\"]", "log group"),
            (
                "shared_groups = [{ group = \"/s\", quiet = 1 }]",
                "unknown field `quiet`",
            ),
        ] {
            let e = parse(extra).expect_err(extra);
            assert_eq!(e.error_type(), "ConfigurationError", "{extra}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
