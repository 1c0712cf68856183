//! `tenantctl count`: a tenant's records in every catalog system.

use super::Ctx;
use crate::world::connect_existing;
use anyhow::Result;
use lifecycle::TenantId;

/// Arguments of `tenantctl count`.
#[derive(clap::Args)]
pub struct Args {
    /// Tenant id.
    #[arg(long)]
    tenant: String,
}

/// Runs `tenantctl count`.
pub async fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let deps = connect_existing(&ctx.data_dir, ctx.catalog()).await?;
    let tid = TenantId::parse(&args.tenant)?;
    for s in deps.catalog.system_names() {
        println!("{s:<12} {}", deps.store(&s)?.count(&tid).await?);
    }
    Ok(())
}
