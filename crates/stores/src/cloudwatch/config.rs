//! A CloudWatch Logs system's catalog settings: where a tenant's events live.

use crate::config::{
    check_concurrency, check_locations, check_template, default_concurrency, settings,
};
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER, locate};
use lifecycle::{StepError, TenantId};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The stream the tool writes a tenant's records to, in a group or under a stream prefix
/// of the tenant's own.
pub const OWN_STREAM: &str = "tenant-lifecycle";

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
    /// Where the tenant's records live at each migration location (location name to a
    /// group of the tenant's own, or a stream prefix of its own in a group); erasure
    /// reaches every one.
    #[serde(default)]
    pub locations: BTreeMap<String, Location>,
}

/// The tenant's own place at one location: a group of its own
/// (`"/app-green/tenants/{tenant_id}"`) or streams of its own in a group
/// (`{ group = "/app-green/api", stream_prefix = "tenant-{tenant_id}/" }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Location {
    /// A log group of the tenant's own (a template holding `{tenant_id}`).
    Group(String),
    /// Streams of the tenant's own in a group.
    Streams(StreamGroup),
}

impl Location {
    /// The group and stream the tenant's records are written to here.
    pub fn place(&self, t: &TenantId) -> (String, String) {
        match self {
            Self::Group(g) => (locate(g, t), OWN_STREAM.to_owned()),
            Self::Streams(s) => (
                s.group.clone(),
                format!("{}{OWN_STREAM}", locate(&s.stream_prefix, t)),
            ),
        }
    }

    /// The location as one string, to tell two apart.
    fn spelled(&self) -> String {
        match self {
            Self::Group(g) => g.clone(),
            Self::Streams(s) => format!("{} {}", s.group, s.stream_prefix),
        }
    }
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
        if !c.locations.is_empty() {
            let Some(home) = c.home() else {
                return Err(StepError::Configuration(format!(
                    "system {}: migration locations need the tenant's own place at home too: list a group under groups or a stream prefix under stream_groups (shared streams are not migrated)",
                    spec.name
                )));
            };
            for l in c.locations.values() {
                match l {
                    Location::Group(g) => {
                        check_group(&spec.name, g)?;
                        check_template(&spec.name, "location group", g)?;
                    }
                    Location::Streams(s) => {
                        check_group(&spec.name, &s.group)?;
                        crate::config::check_prefix_separator(
                            &spec.name,
                            "stream_prefix",
                            &s.stream_prefix,
                        )?;
                    }
                }
            }
            let spelled: BTreeMap<String, String> = c
                .locations
                .iter()
                .map(|(k, l)| (k.clone(), l.spelled()))
                .collect();
            check_locations(&spec.name, &home.spelled(), &spelled, "log group")?;
            let at_home: Vec<String> = c
                .groups
                .iter()
                .map(|g| Location::Group(g.clone()).spelled())
                .chain(
                    c.stream_groups
                        .iter()
                        .map(|s| Location::Streams(s.clone()).spelled()),
                )
                .collect();
            for (loc, l) in &c.locations {
                let shared = matches!(l, Location::Streams(s) if c.shared_groups.iter().any(|g| g.group == s.group));
                if at_home.contains(&l.spelled()) || shared {
                    return Err(StepError::Configuration(format!(
                        "system {}: location {loc} uses log group {}, which holds the tenant's events at home already; give each location its own log group",
                        spec.name,
                        l.spelled()
                    )));
                }
            }
        }
        Ok(c)
    }

    /// The tenant's own place at home, where its records are written: the first group of
    /// its own, else the first stream prefix of its own; none with shared groups only.
    pub fn home(&self) -> Option<Location> {
        if let Some(g) = self.groups.first() {
            return Some(Location::Group(g.clone()));
        }
        self.stream_groups
            .first()
            .map(|s| Location::Streams(s.clone()))
    }

    /// Every group template of the tenant's own, at home and at each location.
    pub fn all_groups(&self) -> Vec<String> {
        let at = self.locations.values().filter_map(|l| match l {
            Location::Group(g) => Some(g.clone()),
            Location::Streams(_) => None,
        });
        self.groups.iter().cloned().chain(at).collect()
    }

    /// Every group holding streams of the tenant's own, at home and at each location.
    pub fn all_stream_groups(&self) -> Vec<StreamGroup> {
        let at = self.locations.values().filter_map(|l| match l {
            Location::Streams(s) => Some(s.clone()),
            Location::Group(_) => None,
        });
        self.stream_groups.iter().cloned().chain(at).collect()
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
    fn locations_are_groups_or_streams_of_the_tenants_own() {
        let c = parse("groups = [\"/t/{tenant_id}\"]\nlocations = { green = \"/g/{tenant_id}\", eu = { group = \"/eu/api\", stream_prefix = \"t-{tenant_id}/\" } }").expect("valid");
        let t = lifecycle::TenantId::parse("t1").expect("t");
        assert_eq!(
            c.locations["green"].place(&t),
            ("/g/t1".to_owned(), "tenant-lifecycle".to_owned())
        );
        assert_eq!(
            c.locations["eu"].place(&t),
            ("/eu/api".to_owned(), "t-t1/tenant-lifecycle".to_owned())
        );
        assert_eq!(c.all_groups(), ["/t/{tenant_id}", "/g/{tenant_id}"]);
        assert_eq!(c.all_stream_groups()[0].group, "/eu/api");
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
            (
                "shared_groups = [{ group = \"/s\" }]\nlocations = { green = \"/g/{tenant_id}\" }",
                "own place at home",
            ),
            (
                "groups = [\"/t/{tenant_id}\"]\nlocations = { green = \"/g/all\" }",
                "must contain {tenant_id}",
            ),
            (
                "groups = [\"/t/{tenant_id}\"]\nlocations = { green = \"/t/{tenant_id}\" }",
                "give each location its own",
            ),
            (
                "groups = [\"/t/{tenant_id}\", \"/u/{tenant_id}\"]\nlocations = { green = \"/u/{tenant_id}\" }",
                "holds the tenant's events at home already",
            ),
            (
                "groups = [\"/t/{tenant_id}\"]\nlocations = { home = \"/h/{tenant_id}\" }",
                "reserved",
            ),
            (
                "groups = [\"/t/{tenant_id}\"]\nlocations = { green = { group = \"/g\", stream_prefix = \"x{tenant_id}\" } }",
                "with a separator",
            ),
        ] {
            let e = parse(extra).expect_err(extra);
            assert_eq!(e.error_type(), "ConfigurationError", "{extra}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
