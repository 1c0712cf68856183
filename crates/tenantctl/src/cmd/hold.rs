//! `tenantctl hold`: place, release and list legal holds.

use super::Ctx;
use crate::world::{connect, connect_existing};
use anyhow::Result;
use clap::Subcommand;
use lifecycle::TenantId;
use ports::LegalHold;

/// Legal-hold subcommands.
#[derive(Subcommand)]
pub enum HoldCmd {
    /// Place a legal hold.
    Place {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Hold id (case number).
        #[arg(long)]
        hold_id: String,
        /// Reason (kept, never logged nor certified).
        #[arg(long)]
        reason: String,
    },
    /// Release a legal hold.
    Release {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Hold id.
        #[arg(long)]
        hold_id: String,
    },
    /// List active holds.
    List {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
}

/// Runs a legal-hold subcommand.
pub async fn run(cmd: HoldCmd, ctx: &Ctx) -> Result<()> {
    let deps = match &cmd {
        HoldCmd::List { .. } => connect_existing(&ctx.data_dir, ctx.catalog()).await?,
        _ => connect(&ctx.data_dir, ctx.catalog()).await?,
    };
    match cmd {
        HoldCmd::Place {
            tenant,
            hold_id,
            reason,
        } => {
            TenantId::parse(&tenant)?;
            // The id goes on the permanent ledger when a hold refuses an erasure:
            // an id, never free text (the reason stays in the erasable hold store).
            lifecycle::HoldId::parse(&hold_id)?;
            deps.holds
                .place(&LegalHold {
                    tenant_id: tenant.clone(),
                    hold_id: hold_id.clone(),
                    reason,
                    placed_at: deps.clock.now_rfc3339(),
                    released_at: None,
                })
                .await?;
            println!("legal hold {hold_id} placed on {tenant}");
        }
        HoldCmd::Release { tenant, hold_id } => {
            deps.holds
                .release(
                    &TenantId::parse(&tenant)?,
                    &hold_id,
                    &deps.clock.now_rfc3339(),
                )
                .await?;
            println!("legal hold {hold_id} on {tenant} released");
        }
        HoldCmd::List { tenant } => {
            for h in deps.holds.active(&TenantId::parse(&tenant)?).await? {
                println!("{}\tplaced {}", h.hold_id, h.placed_at);
            }
        }
    }
    Ok(())
}
