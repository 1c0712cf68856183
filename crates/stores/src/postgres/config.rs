//! A PostgreSQL system's catalog settings.

use crate::config::settings;
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use serde::Deserialize;

/// `backend = "postgres"`: a tenant's rows are keyed by tenant id in `schema.records`,
/// and a migration location `green` lives in schema `<schema>__green`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Connection string, e.g. `host=127.0.0.1 user=postgres dbname=app`.
    pub url: String,
    /// Schema holding the system's tables.
    pub schema: String,
}

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        check_schema(&spec.name, &c.schema)?;
        Ok(c)
    }
}

/// A schema name the product can quote safely and extend with `__<location>`.
pub(crate) fn check_schema(name: &lifecycle::SystemName, schema: &str) -> Result<(), StepError> {
    let ok = !schema.is_empty()
        && schema.len() <= 40
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.contains("__")
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(StepError::Configuration(format!(
            "system {name}: schema {schema:?} must be 1-40 of a-z, 0-9 and single '_', not starting with pg_"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use lifecycle::Catalog;

    fn parse(extra: &str) -> Result<Config, lifecycle::StepError> {
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nbackend = \"postgres\"\nurl = \"host=x\"\n{extra}"
        );
        Config::parse(&Catalog::from_toml(&text)?.systems[0])
    }

    #[test]
    fn refuses_schemas_it_cannot_own() {
        assert!(parse("schema = \"app\"").is_ok());
        for bad in ["pg_catalog", "a__b", "App", "", "x-y"] {
            let e = parse(&format!("schema = \"{bad}\"")).expect_err(bad);
            assert_eq!(e.error_type(), "ConfigurationError", "{bad}");
        }
        let e = parse("").expect_err("missing");
        assert!(e.to_string().contains("schema"), "{e}");
    }
}
