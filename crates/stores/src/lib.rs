//! The products that hold tenant data and control state, one folder each, and the wiring
//! that opens what a catalog names.
//!
//! Every data product's folder has the same files: `config.rs` (its catalog settings,
//! parsed and checked), `tenant_store.rs` (the erasure port), `dataset.rs` (migration's
//! dataset and change feed), and a `mod.rs` whose one `open(&spec, ctx)` turns a catalog
//! entry into a [`wiring::System`]. Control state (ledger, holds, routing, signer,
//! checkpoints) lives in the product that keeps it. Products other than the embedded
//! world are cargo features, so a binary compiles only what it uses. Every product passes
//! the conformance suites of `steps::testkit`.

#[cfg(feature = "aws")]
pub mod aws;
pub mod backups;
#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
pub mod config;
pub mod discovery;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;
#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "pgvector")]
pub mod pgvector;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "s3vectors")]
pub mod s3vectors;
pub mod wiring;

pub use wiring::{ConnectOptions, Deps, System};
