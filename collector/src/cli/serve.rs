//! `bellwether serve`.

use std::process::ExitCode;

use crate::config::{self, FileConfig, Overrides};
use crate::server::{self, Listeners};

use super::ServeArgs;

pub async fn run(args: ServeArgs) -> ExitCode {
    let check = args.check_config;
    // The text again, for line numbers in routing errors.
    let text = args
        .config
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok());
    let file = match &args.config {
        Some(path) => match config::read_file(path) {
            Ok(file) => file,
            Err(e) => {
                let described = text
                    .as_deref()
                    .and_then(|t| crate::config::describe_parse_error(path, t));
                return match described {
                    Some(message) => fail_config(check, &message),
                    None => fail_config(check, &e),
                };
            }
        },
        None => FileConfig::default(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let config_path = args.config.as_deref();
    let alerting = match crate::config::load_alerting(&file, text.as_deref(), config_path, &env) {
        Ok(alerting) => alerting,
        Err(e) => return fail_config(check, &e),
    };
    let (file_auth, file_tls) = (file.auth.clone(), file.tls.clone());
    let overrides = Overrides {
        data_dir: args.data_dir,
        otlp_grpc_addr: args.otlp_grpc_addr,
        otlp_http_addr: args.otlp_http_addr,
        http_addr: args.http_addr,
        cluster: args.cluster,
        node_id: args.node_id,
    };
    let mut settings = match config::resolve(overrides, file) {
        Ok(settings) => settings,
        Err(e) => return fail_config(check, &e),
    };
    settings.alerting = alerting;
    let config_dir = config_path.and_then(std::path::Path::parent);
    settings.auth = match crate::auth::config::load(file_auth.as_ref(), config_dir, &env) {
        Ok(tokens) => tokens,
        Err(e) => return fail_config(check, &e),
    };
    settings.tls = match crate::tls::load(file_tls.as_ref(), config_dir) {
        Ok(tls) => tls,
        Err(e) => return fail_config(check, &e),
    };
    let exposed = [
        ("otlp-grpc", settings.otlp_grpc_addr),
        ("otlp-http", settings.otlp_http_addr),
        ("http", settings.http_addr),
    ];
    if let Err(message) = crate::auth::exposure(&settings.auth, &exposed, args.insecure) {
        return fail_config(check, &message);
    }
    if !settings.auth.is_enabled() && exposed.iter().any(|(_, a)| !a.ip().is_loopback()) {
        tracing::warn!("serving without authentication on a non-loopback address (--insecure)");
    }
    if check {
        let a = &settings.alerting.config;
        println!(
            "config ok: {} teams, {} receivers, {} service rules, {} code rules",
            a.teams.len(),
            a.receivers.len(),
            a.ownership.services.len(),
            a.ownership.code.len()
        );
        return ExitCode::SUCCESS;
    }
    let listeners = match Listeners::bind(&settings).await {
        Ok(listeners) => listeners,
        Err(e) => return fail(1, &e),
    };
    match server::run(settings, listeners, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

/// Exit 2 for a configuration problem; `--check-config` prints it plainly.
fn fail_config(check: bool, error: &dyn std::fmt::Display) -> ExitCode {
    if check {
        eprintln!("config error: {error}");
        return ExitCode::from(2);
    }
    fail(2, error)
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
