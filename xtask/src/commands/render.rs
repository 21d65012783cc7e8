//! `cargo xtask render`: what deploy would send, written to target/smartvault/<env>/.

use super::EnvArgs;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write the template, parameters and tags deploy would send to target/smartvault/<env>/.
#[derive(Debug, clap::Args)]
pub struct Render {
    #[command(flatten)]
    env: EnvArgs,
    /// A packaged zip to take the artifact hash from (default: the last build's, if any).
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// The artifact bucket name (deploy reads it from the bootstrap stack).
    #[arg(long)]
    artifact_bucket: Option<String>,
}

impl Render {
    pub fn run(self) -> Result<ExitCode> {
        let env = self.env.load()?;
        let zip = self.artifact.or_else(|| {
            let built = crate::build::zip_path(env.architecture);
            built.exists().then_some(built)
        });
        let location = crate::stack::template::offline_location(
            zip.as_deref(),
            self.artifact_bucket.as_deref(),
        )?;
        let rendered = crate::stack::template::render(&env, &location)?;
        // The preview goes to stderr: stdout stays the folder's path, for scripts.
        eprint!("{}", env.schedule_preview(time::OffsetDateTime::now_utc()));
        println!(
            "{}",
            crate::stack::template::write_rendered(&env, &rendered)?.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
