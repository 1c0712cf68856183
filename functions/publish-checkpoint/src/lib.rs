//! publish-checkpoint: run on a schedule. For every ledger chain (or the ones named), proves
//! the last published checkpoint consistent with the stored tree, signs a new checkpoint
//! (C2SP signed note) and publishes it to the checkpoint store outside the ledger. A ledger
//! rewritten since the last checkpoint is refused (`LedgerCorrupt`), never signed over.

use lifecycle::StepError;
use lifecycle::error::from_input;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use tenant_runtime::Budget;

/// What the step takes: nothing (every chain), or the chains to checkpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    chains: Option<Vec<String>>,
}

/// One chain's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    /// The chain.
    pub chain: String,
    /// Tree size checkpointed.
    pub size: u64,
    /// Where it was published (empty when the newest one already covered the chain).
    pub location: String,
    /// False when nothing was appended since the newest published checkpoint.
    pub new: bool,
}

/// What the step returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// One entry per chain.
    pub published: Vec<Published>,
}

/// Checkpoints every chain (or those named).
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    // A scheduled rule sends its own event shape: only a `chains` list is read from it.
    let input: Input = match input {
        Value::Object(ref o) if o.contains_key("chains") => {
            from_input(input, "publish-checkpoint")?
        }
        _ => Input::default(),
    };
    let signer = deps.signer().await?;
    // Checkpoints published before are trusted only when this ledger's key signed them.
    let mut trusted = lifecycle::certificate::KeyRing::default();
    trusted
        .trust(*signer.public_key())
        .map_err(|e| StepError::Configuration(e.to_string()))?;
    let done = steps::checkpoint::publish_chains(
        &*deps.ledger,
        &*signer,
        &**deps.checkpoints()?,
        &*deps.clock,
        &deps.catalog.environment,
        input.chains,
        &trusted,
    )
    .await?;
    let published = done
        .into_iter()
        .map(|p| {
            tracing::info!(chain = %p.chain, size = p.size, new = p.new, "checkpoint");
            Published {
                chain: p.chain,
                size: p.size,
                location: p.location,
                new: p.new,
            }
        })
        .collect();
    Ok(Output { published })
}

#[cfg(test)]
mod tests {
    use super::*;
    use steps::certify::{Draft, certify};

    #[tokio::test]
    async fn a_scheduled_event_checkpoints_every_chain_once() {
        let dir = tempfile::tempdir().expect("dir");
        let catalog = lifecycle::Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"s3\"\nkind = \"objects\"\nbackend = \"embedded\"\n",
        )
        .expect("catalog");
        let deps = Deps::connect(
            catalog,
            stores::wiring::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                aws: None,
                read_only: false,
            },
        )
        .await
        .expect("deps");
        let signer = deps.signer().await.expect("signer");
        for chain in ["gdpr-erasure", "tenant-migration"] {
            let d = Draft {
                kind: chain.into(),
                outcome: "erased".into(),
                request_id: "r1".into(),
                tenant_id: "t1".into(),
                details: serde_json::json!({}),
                unique: false,
            };
            certify(&*deps.ledger, &*signer, &*deps.clock, &d)
                .await
                .expect("append");
        }
        // What EventBridge Scheduler sends: not our shape, so every chain.
        let event = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let budget = Budget::of(std::time::Duration::from_secs(60));
        let out = handler(event.clone(), &deps, budget)
            .await
            .expect("publish");
        assert_eq!(out.published.len(), 2);
        assert!(out.published.iter().all(|p| p.new && p.size == 1));
        let again = handler(event, &deps, budget).await.expect("again");
        assert!(again.published.iter().all(|p| !p.new));
        let bad = handler(serde_json::json!({"chains": ["../x"]}), &deps, budget).await;
        assert_eq!(
            bad.expect_err("bad chain").error_type(),
            "ConfigurationError"
        );
    }
}
