//! Validated identifiers. They end up in S3 prefixes, DynamoDB keys and execution names,
//! so they are restricted to a charset that cannot escape a prefix (`/`, `..`).

use crate::StepError;
use serde::{Deserialize, Serialize};
use std::fmt;

fn check_ident(what: &str, s: &str, max: usize) -> Result<(), StepError> {
    if s.is_empty() {
        return Err(StepError::invalid(format!("{what} is empty")));
    }
    if s.len() > max {
        return Err(StepError::invalid(format!(
            "{what} is {} characters long; the limit is {max}",
            s.len()
        )));
    }
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !first_ok || !rest_ok {
        return Err(StepError::invalid(format!(
            "{what} {s:?} may hold only ASCII letters, digits, '_' and '-', starting with a letter or digit (no '/', '.', spaces)"
        )));
    }
    Ok(())
}

macro_rules! ident {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an identifier.
            pub fn parse(s: &str) -> Result<Self, StepError> {
                check_ident($what, s, $max)?;
                Ok(Self(s.to_owned()))
            }
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = StepError;
            fn try_from(s: String) -> Result<Self, StepError> {
                check_ident($what, &s, $max)?;
                Ok(Self(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ident!(
    /// A tenant identifier, e.g. `tenant_004_departed_customer`.
    TenantId, "tenant_id", 128
);
ident!(
    /// A request identifier; also the Step Functions execution name, hence 80 characters.
    RequestId, "request_id", 80
);
ident!(
    /// A legal hold's identifier (a case number such as `LIT-2025-0042`). It goes on the
    /// permanent ledger, so it is an id, never free text.
    HoldId, "hold_id", 64
);
ident!(
    /// The name of a system in the catalog, e.g. `s3`.
    SystemName, "system", 64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_scenario_ids() {
        assert!(TenantId::parse("tenant_004_departed_customer").is_ok());
        assert!(RequestId::parse("gdpr_req_20250118_001").is_ok());
    }

    #[test]
    fn refuses_path_tricks_and_empties() {
        for bad in [
            "", "../x", "a/b", "..", ".hidden", "a b", "t\u{e9}", "-lead", "a.b",
        ] {
            let err = TenantId::parse(bad).expect_err(bad);
            assert_eq!(err.error_type(), "InvalidRequest");
        }
        assert!(TenantId::parse(&"a".repeat(129)).is_err());
        assert!(RequestId::parse(&"a".repeat(81)).is_err());
    }

    #[test]
    fn deserialisation_validates() {
        let r: Result<TenantId, _> = serde_json::from_str("\"a/b\"");
        assert!(r.is_err());
        let ok: TenantId = serde_json::from_str("\"abc\"").expect("valid");
        assert_eq!(ok.as_str(), "abc");
    }
}
