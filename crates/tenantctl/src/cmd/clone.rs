//! `tenantctl clone`: an anonymised clone of one tenant into another location (staging,
//! dev), through the local simulator by default or as a Step Functions execution.

use super::Ctx;
use super::backup::{run_local, start_on_aws};
use anyhow::Result;
use serde_json::json;

/// Arguments of `tenantctl clone`.
#[derive(clap::Args)]
pub struct Args {
    /// Tenant to clone.
    tenant: String,
    /// Location written in each system (another environment's bucket, database, schema).
    #[arg(long, default_value = "staging")]
    to: String,
    /// The clone's tenant id (default `<tenant>__<to>`).
    #[arg(long = "as")]
    as_tenant: Option<String>,
    /// Classes of data to copy (the catalog's [clone.classes], e.g. configs).
    #[arg(long, value_delimiter = ',')]
    sync: Vec<String>,
    /// Systems to copy whole.
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// The clone key's name: the same name gives the same clone, another an unlinkable one.
    #[arg(long, default_value = "default")]
    key: String,
    /// Approval (ticket id) for embeddings the catalog keeps only with one.
    #[arg(long)]
    approve_vectors: Option<String>,
    /// At most this many records per system (cuts references; see --subset).
    #[arg(long)]
    limit: Option<u64>,
    /// Only these roots (`system:prefix`) and everything they reference through the
    /// catalog's [[clone.references]]; with --first or --since-days.
    #[arg(long)]
    subset: Option<String>,
    /// The first N roots in key order (with --subset).
    #[arg(long, requires = "subset")]
    first: Option<u64>,
    /// Roots dated within the last N days (with --subset and --date-field).
    #[arg(long, requires = "subset")]
    since_days: Option<u32>,
    /// The roots' date field, a JSON pointer such as /created_at.
    #[arg(long, requires = "since_days")]
    date_field: Option<String>,
    /// Also every record whose references all land in the subset (a customer's orders).
    #[arg(long, requires = "subset")]
    dependants: bool,
    /// Start a Step Functions execution instead.
    #[arg(long)]
    aws: bool,
    /// The deployed clone state machine (with --aws).
    #[arg(long, env = "TENANT_CLONE_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

/// Runs `tenantctl clone`.
pub async fn run(a: Args, ctx: &Ctx) -> Result<()> {
    let mut input = json!({"tenant_id": a.tenant, "to": a.to, "key": a.key});
    if let Some(t) = &a.as_tenant {
        input["as"] = json!(t);
    }
    if !a.sync.is_empty() {
        input["sync"] = json!(a.sync);
    }
    if !a.systems.is_empty() {
        input["systems"] = json!(a.systems);
    }
    if let Some(v) = &a.approve_vectors {
        input["vector_approval"] = json!(v);
    }
    if let Some(l) = a.limit {
        input["limit"] = json!(l);
    }
    if let Some(from) = &a.subset {
        let mut sub = json!({"from": from});
        if let Some(n) = a.first {
            sub["first"] = json!(n);
        }
        if let Some(d) = a.since_days {
            sub["since_days"] = json!(d);
        }
        if let Some(f) = &a.date_field {
            sub["date_field"] = json!(f);
        }
        if a.dependants {
            sub["dependants"] = json!(true);
        }
        input["subset"] = sub;
    }
    let req = lifecycle::clone::CloneRequest::parse(&input)
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.error_type()))?;
    let name = req.id().map_err(|e| anyhow::anyhow!("{e}"))?.to_string();
    if a.aws {
        return start_on_aws(
            a.state_machine_arn.as_deref(),
            "TENANT_CLONE_STATE_MACHINE_ARN",
            &name,
            &input,
        )
        .await;
    }
    let out = run_local(
        ctx,
        crate::TENANT_CLONE_ASL,
        "statemachines/tenant-clone.asl.json",
        &name,
        input,
    )
    .await?;
    println!(
        "clone {} of {} -> {} at {}: {} records, scan clean, certified at seq {} on tenant-clone",
        out["clone_id"].as_str().unwrap_or_default(),
        a.tenant,
        req.target().map(|t| t.to_string()).unwrap_or_default(),
        a.to,
        out["records"],
        out["certificate_seq"]
    );
    Ok(())
}
