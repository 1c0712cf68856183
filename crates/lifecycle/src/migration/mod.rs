//! Zero-downtime tenant migration, the pure part: the phase machine with its legal
//! transitions, the routing record and deterministic per-key routing, the health gate, and
//! the order-independent fingerprint that verification compares.
//!
//! Also the migration request, the migration record the steps share (with per-system
//! checkpoints, so any step can be re-run, and the phase checks and catch-up deadline the
//! steps decide on), the schema transform, and the latency histogram the router reports.
//! Nothing here moves data: the steps in functions/ do.

mod deadline;
mod fingerprint;
mod health;
mod pace;
mod phase;
mod record;
mod request;
mod routing;
mod steps;
#[cfg(test)]
mod testing;
mod transform;

pub use fingerprint::Fingerprint;
pub use health::{GateBreach, Health, MIN_BASELINE_US, Window, gate};
pub use pace::Pace;
pub use phase::Phase;
pub use record::{Checkpoint, MigrationRecord};
pub use request::{MigrationKind, MigrationOptions, MigrationRequest, VerifyMode};
pub use routing::{Env, Routing, WriteMode};
pub use transform::Transform;

/// The ledger chain migration certificates go on.
pub const MIGRATION_CHAIN: &str = "tenant-migration";

/// The location a tenant's data has before it was ever migrated.
pub const HOME: &str = "home";

/// The cutover steps, in percent of reads sent to the target.
pub const CUTOVER_STEPS: [u8; 4] = [10, 25, 50, 100];
