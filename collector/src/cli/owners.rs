//! `bellwether owners`: who would be paged for a service (or a file in it), by which
//! rule, through which receivers. Reads the config file; needs no secrets.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config;
use crate::config::alerting_from_file;
use bellwether_alerting::routing::config::AlertingConfig;
use bellwether_model::alert::CodeLocation;

#[derive(Debug, Args)]
pub struct OwnersArgs {
    #[arg(long)]
    pub service: String,
    #[arg(long, default_value = "production")]
    pub environment: String,
    /// A file path (as in a stack frame) to route like a new error from that code.
    #[arg(long)]
    pub path: Option<String>,
    /// A module / namespace (`billing::invoice`, `com.acme.billing`).
    #[arg(long)]
    pub module: Option<String>,
    /// The `bellwether.team` the release reports, if any.
    #[arg(long)]
    pub team: Option<String>,
    /// Collector config file.
    #[arg(long, env = "BELLWETHER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: OwnersArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.config) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let loaded = config::parse_file(&args.config, &text)
        .map_err(|e| e.to_string())
        .and_then(|file| {
            alerting_from_file(&file, Some(&text), Some(&args.config)).map_err(|e| e.to_string())
        });
    match loaded {
        Ok(alerting) => {
            print!("{}", explain(&alerting, &args));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The report `bellwether owners` prints.
pub fn explain(alerting: &AlertingConfig, args: &OwnersArgs) -> String {
    let ownership = &alerting.ownership;
    let service_owner =
        ownership.service_owner(&args.service, &args.environment, args.team.as_deref());
    let mut out = String::new();
    let mut describe = |label: &str, owner: &bellwether_alerting::routing::Owner| {
        out.push_str(&format!(
            "{label}: team {} (by {})\n",
            owner.team, owner.matched_by
        ));
        let receivers = alerting.team_receivers(&owner.team);
        if receivers.is_empty() {
            out.push_str("  receivers: none (nothing is sent)\n");
        }
        for name in receivers {
            let kind = alerting
                .receivers
                .get(name)
                .map_or("?", |r| r.kind.as_str());
            let deploys = alerting.receivers.get(name).is_some_and(|r| r.deploys);
            out.push_str(&format!(
                "  receiver {name} ({kind}{})\n",
                if deploys { ", deploys" } else { "" }
            ));
        }
    };
    describe(
        &format!(
            "release alerts for {} in {}",
            args.service, args.environment
        ),
        &service_owner,
    );
    if args.path.is_some() || args.module.is_some() {
        let location = CodeLocation {
            path: args.path.clone(),
            module: args.module.clone(),
        };
        let owner = ownership.issue_owner(
            &location,
            &args.service,
            &args.environment,
            args.team.as_deref(),
        );
        let what = args
            .path
            .as_deref()
            .or(args.module.as_deref())
            .unwrap_or_default();
        describe(&format!("new errors in {what}"), &owner);
    }
    out
}
