//! The backup archive's catalog entry: `backend = "archive"` takes no settings of its
//! own; where backups and keys live is the catalog's `[backup]` section.

use crate::config::settings;
use lifecycle::catalog::SystemSpec;
use lifecycle::{StepError, SystemKind};
use serde::Deserialize;

/// `backend = "archive"`: this tool's own backups of each tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Config {
    /// Parses a catalog entry; the system must be of kind `backups`.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        if spec.kind != SystemKind::Backups {
            return Err(StepError::Configuration(format!(
                "system {}: backend \"archive\" holds backups; set kind = \"backups\"",
                spec.name
            )));
        }
        settings(spec)
    }
}
