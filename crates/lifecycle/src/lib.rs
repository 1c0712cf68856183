//! The tenant-lifecycle domain: pure types and rules, no I/O and no AWS SDK.
//!
//! Everything that decides *whether* something may happen lives here (request validation,
//! legal-hold and verification rules, certificate and ledger formats, chain verification);
//! the `stores` crate only moves bytes.

pub mod backup;
pub mod catalog;
pub mod certificate;
pub mod clone;
pub mod erasure;
pub mod error;
pub mod ids;
pub mod json;
pub mod ledger;
pub mod migration;
pub mod note;
pub mod tree;

pub use catalog::{
    Capabilities, Catalog, CheckpointBackend, DiscoverySpec, EraseMethod, SystemKind, SystemSpec,
};
pub use certificate::{Certificate, SignatureBlock, SignedCertificate};
pub use error::StepError;
pub use ids::{HoldId, RequestId, SystemName, TenantId};
