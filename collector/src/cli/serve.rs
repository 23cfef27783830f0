//! `bellwether serve`.

use std::process::ExitCode;

use crate::config::{self, FileConfig, Overrides};
use crate::server::{self, Listeners};

use super::ServeArgs;

pub async fn run(args: ServeArgs) -> ExitCode {
    let file = match &args.config {
        Some(path) => match config::read_file(path) {
            Ok(file) => file,
            Err(e) => return fail(2, &e),
        },
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        data_dir: args.data_dir,
        otlp_grpc_addr: args.otlp_grpc_addr,
        otlp_http_addr: args.otlp_http_addr,
        http_addr: args.http_addr,
    };
    let settings = match config::resolve(overrides, file) {
        Ok(settings) => settings,
        Err(e) => return fail(2, &e),
    };
    let listeners = match Listeners::bind(&settings).await {
        Ok(listeners) => listeners,
        Err(e) => return fail(1, &e),
    };
    match server::run(settings, listeners, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

fn fail(code: u8, error: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!(error = %error, "bellwether serve failed");
    ExitCode::from(code)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
