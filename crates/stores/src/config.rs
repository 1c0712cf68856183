//! What the products' catalog settings share: parsing a system's settings into the
//! product's own type (unknown keys refused), and the checks several products make.

use lifecycle::catalog::SystemSpec;
use lifecycle::{StepError, SystemName};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// Parses `spec`'s settings as the product's `T`, saying which system is wrong and how.
pub fn settings<T: DeserializeOwned>(spec: &SystemSpec) -> Result<T, StepError> {
    toml::Value::Table(spec.settings.clone())
        .try_into()
        .map_err(|e: toml::de::Error| {
            StepError::Configuration(format!(
                "system {} (backend {}): {}",
                spec.name,
                spec.backend,
                e.message()
            ))
        })
}

/// Concurrent calls a product makes unless its catalog entry says otherwise.
pub fn default_concurrency() -> usize {
    8
}

/// `max_concurrency` must be 1 to 64.
pub fn check_concurrency(name: &SystemName, n: usize) -> Result<(), StepError> {
    if n == 0 || n > 64 {
        return Err(StepError::Configuration(format!(
            "system {name}: max_concurrency must be between 1 and 64, got {n}"
        )));
    }
    Ok(())
}

/// A migration location must be another place than home and than every other location,
/// or a copy would write over the records it reads.
pub fn check_locations(
    name: &SystemName,
    home: &str,
    locations: &BTreeMap<String, String>,
    what: &str,
) -> Result<(), StepError> {
    let mut seen = BTreeSet::from([home]);
    for (loc, place) in locations {
        if loc.is_empty() || loc == lifecycle::migration::HOME {
            return Err(StepError::Configuration(format!(
                "system {name}: location {loc:?} is reserved; name locations like green or eu-west-1"
            )));
        }
        if !seen.insert(place.as_str()) {
            return Err(StepError::Configuration(format!(
                "system {name}: location {loc} uses {what} {place}, already the home {what} or another location's; give each location its own {what}"
            )));
        }
    }
    Ok(())
}

/// A template must hold `{tenant_id}`, so one tenant's records can never be another's.
pub fn check_template(name: &SystemName, key: &str, template: &str) -> Result<(), StepError> {
    if !template.contains(lifecycle::catalog::TENANT_PLACEHOLDER) {
        return Err(StepError::Configuration(format!(
            "system {name}: {key} {template:?} must contain {}",
            lifecycle::catalog::TENANT_PLACEHOLDER
        )));
    }
    Ok(())
}

/// A prefix template must hold `{tenant_id}` followed by a character no tenant id can
/// hold (ids are letters, digits, `_` and `-`), or tenant `acme`'s prefix would also
/// match tenant `acme-eu`'s keys.
pub fn check_prefix_separator(
    name: &SystemName,
    key: &str,
    template: &str,
) -> Result<(), StepError> {
    check_template(name, key, template)?;
    let placeholder = lifecycle::catalog::TENANT_PLACEHOLDER;
    for (i, _) in template.match_indices(placeholder) {
        let next = template[i + placeholder.len()..].chars().next();
        if next.is_none_or(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(StepError::Configuration(format!(
                "system {name}: {key} {template:?} must follow {placeholder} with a separator no tenant id holds (such as ':' or '/'), or tenant t1's {key} would match t1-eu's"
            )));
        }
    }
    Ok(())
}
