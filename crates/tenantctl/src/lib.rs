//! The library behind `tenantctl`: the in-process function registry the simulator
//! dispatches to, the local world, ledger/certificate verification, the commands (one
//! module each) and the fixtures the benchmarks and the end-to-end tests share.

pub mod aws;
pub mod cmd;
pub mod fixtures;
pub mod input;
pub mod migrate;
pub mod objects;
pub mod progress;
pub mod registry;
pub mod verify;
pub mod world;

/// The erasure state machine, embedded so `tenantctl erase` works from any directory.
pub const GDPR_ERASURE_ASL: &str = include_str!("../../../statemachines/gdpr-erasure.asl.json");
/// The migration state machine, as shipped.
pub const TENANT_MIGRATION_ASL: &str =
    include_str!("../../../statemachines/tenant-migration.asl.json");
/// The backup state machine, as shipped.
pub const TENANT_BACKUP_ASL: &str = include_str!("../../../statemachines/tenant-backup.asl.json");
/// The clone state machine, as shipped.
pub const TENANT_CLONE_ASL: &str = include_str!("../../../statemachines/tenant-clone.asl.json");
/// The restore state machine, as shipped.
pub const TENANT_RESTORE_ASL: &str = include_str!("../../../statemachines/tenant-restore.asl.json");
/// The local catalog, embedded as the default.
pub const LOCAL_CATALOG: &str = include_str!("../../../fixtures/catalog.local.toml");
/// The demo scenarios, embedded as the default.
pub const SCENARIOS: &str = include_str!("../../../fixtures/scenarios.json");
