//! The logic the step functions share, written against the ports only (never a product):
//! sealing and appending signed certificates ([`certify`]), publishing and proving ledger
//! checkpoints ([`checkpoint`]), moving a tenant's records between locations
//! ([`mover`]), the migration steps' common moves ([`migrating`]), and the conformance
//! suites every backend passes ([`testkit`]), the backup pipe ([`backup`]) and the clone pipe ([`clone`]).

pub mod backup;
pub mod certify;
pub mod checkpoint;
pub mod clone;
pub mod migrating;
pub mod mover;
pub mod progress;
pub mod testkit;
