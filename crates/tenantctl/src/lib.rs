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
/// The per-tier backup run, as shipped.
pub const TENANT_BACKUP_TIER_ASL: &str =
    include_str!("../../../statemachines/tenant-backup-tier.asl.json");
/// The daily prune, as shipped.
pub const TENANT_PRUNE_ASL: &str = include_str!("../../../statemachines/tenant-prune.asl.json");
/// The Distributed Map S3 erasure, as shipped.
pub const GDPR_ERASURE_S3_DISTRIBUTED_ASL: &str =
    include_str!("../../../statemachines/gdpr-erasure-s3-distributed.asl.json");
/// Every shipped state machine by file name (statemachines/<name>.asl.json): what a
/// `states:startExecution` task of another may start in the simulator.
pub const SHIPPED_MACHINES: &[(&str, &str)] = &[
    ("gdpr-erasure", GDPR_ERASURE_ASL),
    (
        "gdpr-erasure-s3-distributed",
        GDPR_ERASURE_S3_DISTRIBUTED_ASL,
    ),
    ("tenant-migration", TENANT_MIGRATION_ASL),
    ("tenant-backup", TENANT_BACKUP_ASL),
    ("tenant-backup-tier", TENANT_BACKUP_TIER_ASL),
    ("tenant-prune", TENANT_PRUNE_ASL),
    ("tenant-clone", TENANT_CLONE_ASL),
    ("tenant-restore", TENANT_RESTORE_ASL),
];
/// The local catalog, embedded as the default.
pub const LOCAL_CATALOG: &str = include_str!("../../../fixtures/catalog.local.toml");
/// The demo scenarios, embedded as the default.
pub const SCENARIOS: &str = include_str!("../../../fixtures/scenarios.json");
