//! `mixtrain fetch`: a dataset downloaded or copied from a mirror, checksums verified.

use anyhow::{Context, Result};
use clap::Args;
use mixtrain_data::{Manifest, Source};

use crate::DataArgs;

#[derive(Args)]
pub(crate) struct FetchArgs {
    /// Dataset name (see `mixtrain list`).
    name: String,
    #[command(flatten)]
    data: DataArgs,
}

pub(crate) fn fetch(args: FetchArgs) -> Result<()> {
    let manifest = Manifest::builtin(&args.name)?;
    let dir = args.data.dir();
    let source = match args.data.mirror() {
        Some(m) => Source::Mirror(m),
        None => Source::Download,
    };
    let report = mixtrain_data::fetch(&manifest, &dir, &source)
        .with_context(|| format!("fetching {}", args.name))?;
    println!(
        "{}: {} fetched, {} already present, in {}",
        args.name,
        report.fetched.len(),
        report.present.len(),
        dir.dataset(&args.name).display()
    );
    Ok(())
}
