//! An S3 system's catalog settings.

use crate::config::{check_concurrency, check_locations, default_concurrency, settings};
use lifecycle::StepError;
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `backend = "s3"`: a tenant's objects live under `prefix` of a (versioned) bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix template, e.g. `tenants/{tenant_id}/`.
    pub prefix: String,
    /// Concurrent DeleteObjects calls.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Buckets of the migration locations (location name to bucket), same prefix.
    #[serde(default)]
    pub locations: BTreeMap<String, String>,
}

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        for b in std::iter::once(&c.bucket).chain(c.locations.values()) {
            if b.len() < 3 {
                return Err(StepError::Configuration(format!(
                    "system {}: bucket name {b:?} is shorter than 3 characters",
                    spec.name
                )));
            }
        }
        if !c.prefix.contains(TENANT_PLACEHOLDER) || !c.prefix.ends_with('/') {
            return Err(StepError::Configuration(format!(
                "system {}: prefix {:?} must contain {TENANT_PLACEHOLDER} and end with '/', so one tenant's prefix can never match another's",
                spec.name, c.prefix
            )));
        }
        crate::config::check_prefix_separator(&spec.name, "prefix", &c.prefix)?;
        check_concurrency(&spec.name, c.max_concurrency)?;
        check_locations(&spec.name, &c.bucket, &c.locations, "bucket")?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use lifecycle::Catalog;

    fn spec(extra: &str) -> Result<Config, lifecycle::StepError> {
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"docs\"\nkind = \"objects\"\nbackend = \"s3\"\n{extra}"
        );
        let c = Catalog::from_toml(&text)?;
        Config::parse(&c.systems[0])
    }

    #[test]
    fn parses_with_defaults() {
        let c = spec("bucket = \"docs\"\nprefix = \"tenants/{tenant_id}/\"\n").expect("valid");
        assert_eq!(c.max_concurrency, 8);
        assert!(c.locations.is_empty());
    }

    #[test]
    fn refuses_an_unsafe_prefix_a_typo_and_a_short_bucket() {
        for (extra, says) in [
            (
                "bucket = \"docs\"\nprefix = \"tenants/{tenant_id}\"\n",
                "end with '/'",
            ),
            (
                "bucket = \"docs\"\nprefix = \"tenants/\"\n",
                "must contain {tenant_id}",
            ),
            (
                "bucket = \"docs\"\nprefx = \"tenants/{tenant_id}/\"\n",
                "unknown field `prefx`",
            ),
            (
                "bucket = \"d\"\nprefix = \"t/{tenant_id}/\"\n",
                "shorter than 3",
            ),
            (
                "bucket = \"docs\"\nprefix = \"t/{tenant_id}/\"\nmax_concurrency = 0\n",
                "between 1 and 64",
            ),
        ] {
            let e = spec(extra).expect_err(extra);
            assert_eq!(e.error_type(), "ConfigurationError");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn refuses_a_location_that_is_home_or_shared() {
        let with = |locs: &str| {
            spec(&format!(
                "bucket = \"docs\"\nprefix = \"t/{{tenant_id}}/\"\nlocations = {{ {locs} }}\n"
            ))
        };
        assert!(with("green = \"docs-green\", \"eu-west-1\" = \"docs-eu\"").is_ok());
        for (locs, says) in [
            ("green = \"docs\"", "already the home bucket"),
            (
                "green = \"d-g\", blue = \"d-g\"",
                "already the home bucket or another",
            ),
            ("home = \"docs-home\"", "reserved"),
        ] {
            let e = with(locs).expect_err(locs);
            assert!(e.to_string().contains(says), "{locs}: {e}");
        }
    }
}
