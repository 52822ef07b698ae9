//! The flags naming one Stripe account of a publication (`--publication P --account K`), for the
//! commands that work on one account.

use anyhow::Context;
use shared::domain::ids::{AccountKey, PublicationId};

#[derive(clap::Args)]
pub struct AccountArgs {
    #[arg(long)]
    publication: String,
    /// The Stripe account's key in the publication's settings.
    #[arg(long)]
    account: String,
}

impl AccountArgs {
    pub fn parse(&self) -> anyhow::Result<(PublicationId, AccountKey)> {
        let publication = PublicationId::parse(&self.publication).context("--publication is not a publication id")?;
        let account = AccountKey::parse(&self.account).context("--account is not an account key")?;
        Ok((publication, account))
    }
}
