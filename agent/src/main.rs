//! `bellwether-agent` binary: parse arguments, resolve the identity, bind, run.

use std::io::IsTerminal;
use std::process::ExitCode;

use bellwether_agent::cli::Cli;
use bellwether_agent::identity::{self, EnvMap, IdentityInputs};
use bellwether_agent::Listeners;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The one place the process environment is read (clap reads its BELLWETHER_* flags).
    let env: EnvMap = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    init_logging(&env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(start(cli, env)) {
        Ok(code) => code,
        Err(e) => {
            // Errors carry their causes in their own message: print just that one line.
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    };
    // A read of standard input cannot be cancelled; after a signal it may still be
    // blocked, and waiting for it would keep the process alive.
    runtime.shutdown_background();
    code
}

async fn start(cli: Cli, env: EnvMap) -> anyhow::Result<ExitCode> {
    let release_file = cli
        .release_file
        .as_deref()
        .map(identity::load_release_file)
        .transpose()?;
    let k8s_labels = cli
        .k8s_labels_file
        .as_deref()
        .map(identity::load_labels_file)
        .transpose()?;
    let etc_hostname = std::fs::read_to_string("/etc/hostname").ok();
    let identity = identity::resolve(
        IdentityInputs {
            flags: &cli.identity_flags(),
            env: &env,
            release_file: release_file.as_ref(),
            k8s_labels: k8s_labels.as_ref(),
            etc_hostname: etc_hostname.as_deref(),
        },
        identity::random_hex_id,
    )?;
    let mut config = cli.config(identity)?;
    config.credentials = cli.credentials()?;
    let listeners = Listeners::bind(&cli.listen_addrs()).await?;
    let stdin: Option<bellwether_agent::Input> = cli
        .stdin
        .then(|| Box::new(tokio::io::stdin()) as bellwether_agent::Input);
    let report = bellwether_agent::run(config, listeners, stdin, shutdown_signal()).await?;
    if let Some(code) = report.exit_code {
        // `bellwether-agent run`: exit as the child did.
        return Ok(ExitCode::from(code));
    }
    Ok(if report.lost > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn init_logging(env: &EnvMap) {
    let directive = env.get("BELLWETHER_LOG").map_or("info", String::as_str);
    let (filter, bad) = match EnvFilter::try_new(directive) {
        Ok(filter) => (filter, false),
        Err(_) => (EnvFilter::new("info"), true),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if bad {
        tracing::warn!(value = %directive, "invalid BELLWETHER_LOG, using info");
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
