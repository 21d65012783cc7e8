//! `cargo xtask`: SmartVault's developer and deployment commands, one module per subcommand.

mod aws;
mod bench;
mod build;
#[cfg(test)]
mod chain_tests;
mod config;
mod demo;
mod deploy;
mod destroy;
mod emulator_cmd;
mod fleet_bench;
mod inbox;
mod invoke;
mod lint;
mod local_runtime;
mod output;
mod package;
#[cfg(test)]
mod policy_checks;
mod promote;
mod schedule;
mod stack;
mod status;
mod template;
#[cfg(test)]
mod template_checks;
mod test;
mod tools;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use config::Architecture;
use output::Output;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "SmartVault: build, test and deploy the EC2 backup function"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which environment, from which config file.
#[derive(Args)]
struct EnvArgs {
    /// The environment in the config file (local, dev, staging, prod, ...).
    #[arg(long = "env", short = 'e')]
    name: String,
    /// The config file (default: smartvault.yaml at the workspace root).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl EnvArgs {
    fn load(&self) -> Result<config::Environment> {
        config::load(self.config.as_deref(), &self.name)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Install the project's Python tools (the AWS emulator, linters, zig) into target/tools/venv.
    Tools,
    /// Run every check: rustfmt, clippy, template lint and all tests against the local emulator.
    Test,
    /// Start the local AWS emulator in the foreground and print the environment to reach it.
    Emulator,
    /// Measure SmartVault against the seed's Python Lambda on the emulator; writes docs/benchmarks.md.
    Bench(bench::Options),
    /// Compile the function for Lambda (glibc 2.34) into target/lambda/<arch>/bootstrap.
    Build {
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: Architecture,
    },
    /// Zip the built function into a reproducible bootstrap.zip and print its sha256.
    Package {
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: Architecture,
    },
    /// Write the template, parameters and tags deploy would send to target/smartvault/<env>/.
    Render {
        #[command(flatten)]
        env: EnvArgs,
        /// A packaged zip to take the artifact hash from (default: the last build's, if any).
        #[arg(long)]
        artifact: Option<PathBuf>,
        /// The artifact bucket name (deploy reads it from the bootstrap stack).
        #[arg(long)]
        artifact_bucket: Option<String>,
    },
    /// Create or update an environment's stack through a change set.
    Deploy {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        connection: aws::Connection,
        /// Deploy this zip instead of building one.
        #[arg(long)]
        artifact: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// The whole lifecycle on a local AWS emulator: deploy, back up a fleet, clean up, destroy.
    Demo {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Invoke the deployed function once (or, with --local, run the real bootstrap here).
    Invoke {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        connection: aws::Connection,
        /// A JSON event file (default: {"action": "manual-trigger"}).
        #[arg(long)]
        event: Option<PathBuf>,
        /// Ask the function for a dry run.
        #[arg(long)]
        dry_run: bool,
        /// Run the real bootstrap binary on this machine under a local Lambda Runtime API,
        /// against the deployed environment's resources.
        #[arg(long)]
        local: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Deploy the artifact a healthy source environment runs to a target environment; no build.
    Promote {
        /// The source environment.
        #[arg(long)]
        from: String,
        /// The target environment.
        #[arg(long)]
        to: String,
        /// The config file (default: smartvault.yaml at the workspace root).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        connection: aws::Connection,
        /// A profile for the source's account, when it differs from the target's.
        #[arg(long)]
        from_profile: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Remove an environment: stack, snapshots, leftover log group, artifacts.
    Destroy {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        connection: aws::Connection,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Keep the snapshots this deployment made.
        #[arg(long)]
        keep_snapshots: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show an environment's stack state, artifact, schedule and snapshots.
    Status {
        #[command(flatten)]
        env: EnvArgs,
        #[command(flatten)]
        connection: aws::Connection,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

/// The one line `build` and `package` print: where the zip is, its size and its sha256.
fn print_artifact(artifact: &package::Artifact) {
    println!(
        "{} {} bytes sha256 {}",
        artifact.path.display(),
        artifact.size,
        artifact.sha256
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            // Exit 2 for a configuration mistake, as for bad usage; 1 for everything else.
            if error.chain().any(|e| e.is::<config::ConfigError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// Runs `work` with AWS clients for `region` (or `--region`) on a fresh async runtime.
fn with_aws<T>(
    connection: &aws::Connection,
    region: &str,
    work: impl AsyncFnOnce(&aws::Aws) -> Result<T>,
) -> Result<T> {
    runtime()?.block_on(async {
        let aws = aws::Aws::connect(connection, region).await?;
        work(&aws).await
    })
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Tools => tools::run(),
        Command::Test => test::run(),
        Command::Emulator => emulator_cmd::run(),
        Command::Bench(options) => {
            bench::run(&options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { arch } => {
            let binary = build::build(arch)?;
            print_artifact(&package::package(&binary)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Package { arch } => {
            print_artifact(&package::package(&build::output_path(arch))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            env,
            artifact,
            artifact_bucket,
        } => {
            let env = env.load()?;
            let zip = artifact.or_else(|| {
                let built = build::output_path(env.architecture).with_file_name("bootstrap.zip");
                built.exists().then_some(built)
            });
            let location = template::offline_location(zip.as_deref(), artifact_bucket.as_deref())?;
            let rendered = template::render(&env, &location)?;
            let dir = template::write_rendered(&env, &rendered)?;
            println!("{}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            env,
            connection,
            artifact,
            yes,
            output,
        } => {
            let env = env.load()?;
            let artifact = match artifact {
                Some(path) => package::open(&path)?,
                None => package::package(&build::build(env.architecture)?)?,
            };
            let result = with_aws(&connection, &env.region, async |aws| {
                deploy::deploy(aws, &env, &artifact, yes, output).await
            })?;
            output.result(&result, |r| deploy::print_summary(r, &env))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { output } => {
            let summary = demo::run(output)?;
            output.result(&summary, |_| {})?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke {
            env,
            connection,
            event,
            dry_run,
            local,
            output,
        } => {
            let env = env.load()?;
            let event = invoke::event(event.as_deref(), dry_run)?;
            if local {
                let binary = invoke::host_bootstrap()?;
                let vars = invoke::aws_passthrough(connection.endpoint_url.as_deref());
                let result = with_aws(&connection, &env.region, async |aws| {
                    invoke::local(aws, &env, &binary, &event, vars).await
                })?;
                output.result(&result, |r| {
                    let body = match &r.ending {
                        local_runtime::Ending::Response(b)
                        | local_runtime::Ending::Error(b)
                        | local_runtime::Ending::InitError(b)
                        | local_runtime::Ending::Exited(b) => {
                            serde_json::to_string_pretty(b).unwrap_or_default()
                        }
                        local_runtime::Ending::Timeout => "timed out".to_owned(),
                    };
                    println!("{body}");
                })?;
                eprintln!("{}", result.report_line());
                if let Err(error) = local_runtime::ensure_success(&result) {
                    eprintln!("error: {error:#}");
                    return Ok(ExitCode::FAILURE);
                }
                Ok(ExitCode::SUCCESS)
            } else {
                let result = with_aws(&connection, &env.region, async |aws| {
                    invoke::invoke(aws, &env, &event).await
                })?;
                output.result(&result, |r| {
                    eprintln!("{}", r.log_tail);
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&r.payload).unwrap_or_default()
                    );
                })?;
                if let Some(error) = &result.function_error {
                    eprintln!("error: the function failed ({error})");
                    return Ok(ExitCode::FAILURE);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Promote {
            from,
            to,
            config: path,
            connection,
            from_profile,
            yes,
            output,
        } => {
            let source = config::load(path.as_deref(), &from)?;
            let target = config::load(path.as_deref(), &to)?;
            let source_connection = aws::Connection {
                profile: from_profile.or_else(|| connection.profile.clone()),
                region: None,
                endpoint_url: connection.endpoint_url.clone(),
            };
            let result = runtime()?.block_on(async {
                let source_aws = aws::Aws::connect(&source_connection, &source.region).await?;
                let target_aws = aws::Aws::connect(&connection, &target.region).await?;
                promote::promote(&source_aws, &target_aws, &source, &target, yes, output).await
            })?;
            output.result(&result, |r| deploy::print_summary(&r.deploy, &target))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Destroy {
            env,
            connection,
            yes,
            keep_snapshots,
            output,
        } => {
            let env = env.load()?;
            let snapshots = if keep_snapshots {
                destroy::Snapshots::Keep
            } else {
                destroy::Snapshots::Delete
            };
            let result = with_aws(&connection, &env.region, async |aws| {
                destroy::destroy(aws, &env, yes, snapshots, output).await
            })?;
            output.result(&result, |r| {
                println!(
                    "destroyed {}: {} snapshots deleted, {} kept, artifacts removed: {}",
                    r.stack,
                    r.snapshots_deleted.len(),
                    r.snapshots_kept.len(),
                    r.artifacts_deleted.len()
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            env,
            connection,
            output,
        } => {
            let env = env.load()?;
            let result = with_aws(&connection, &env.region, async |aws| {
                status::status(aws, &env).await
            })?;
            output.result(&result, status::print)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
