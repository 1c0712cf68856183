//! An embedded system's catalog settings: none, the world holds everything.

use crate::config::settings;
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use serde::Deserialize;

/// `backend = "embedded"`: records live in the embedded world's one SQLite file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Config {
    /// Parses a catalog entry (any setting is a mistake: it would be ignored).
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        settings(spec)
    }
}
