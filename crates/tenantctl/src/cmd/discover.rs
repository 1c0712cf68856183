//! `tenantctl discover`: places outside the catalog that hold a tenant.

use super::Ctx;
use crate::world::connect_existing;
use anyhow::{Result, bail};
use lifecycle::TenantId;

/// Arguments of `tenantctl discover`.
#[derive(clap::Args)]
pub struct Args {
    /// Tenant id.
    #[arg(long)]
    tenant: String,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `tenantctl discover`; exits non-zero when the tenant is found outside the catalog.
pub async fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let deps = connect_existing(&ctx.data_dir, ctx.catalog()).await?;
    let tid = TenantId::parse(&args.tenant)?;
    let found = stores::discovery::discover(&deps, &tid).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        for f in &found {
            println!("{:<70} {:>8}", f.place, f.records);
        }
    }
    if !found.is_empty() {
        bail!(
            "tenant {tid} is in {} place(s) the catalog does not list; add them to the catalog or erase them, then verify again",
            found.len()
        );
    }
    if !args.json {
        println!("tenant {tid}: nothing outside the catalog");
    }
    Ok(())
}
