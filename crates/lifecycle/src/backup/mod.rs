//! Backup and restore of one tenant: what a backup is (its [`manifest::Manifest`]), what
//! may be asked ([`request`]), and the rules of tiers, retention, point-in-time selection
//! and schema paths ([`policy`]). Nothing here reads or writes a store; `steps::backup`
//! moves the bytes through the ports.

pub mod manifest;
pub mod policy;
pub mod request;

pub use manifest::{BackupKind, ChunkRef, Manifest, SystemPart};
pub use policy::{BackupSpec, Tier};
pub use request::{BackupRequest, RestoreRequest};

/// The ledger chain backups are certified on.
pub const BACKUP_CHAIN: &str = "tenant-backup";
/// The ledger chain restores are certified on.
pub const RESTORE_CHAIN: &str = "tenant-restore";
/// The ledger chain prunes are certified on.
pub const PRUNE_CHAIN: &str = "tenant-backup-prune";
