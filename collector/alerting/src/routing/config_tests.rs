use std::path::Path;

use super::*;

/// The three routing sections of a config file, as `bellwether serve` reads them.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sections {
    routing: Option<RawRouting>,
    #[serde(default)]
    teams: Vec<Spanned<RawTeam>>,
    #[serde(default)]
    receivers: Vec<Spanned<RawReceiver>>,
}

fn from_text(text: &str, config_path: &Path) -> Result<AlertingConfig, String> {
    let file: Sections = toml::from_str(text).map_err(|e| e.to_string())?;
    let dir = config_path.parent().unwrap_or_else(|| Path::new("."));
    let source = Source {
        text: Some(text),
        dir,
    };
    validate(file.routing.as_ref(), &file.teams, &file.receivers, &source)
        .map_err(|e| e.to_string())
}

const GOOD: &str = r#"
[routing]
default_team = "platform"
group_window = "10s"

[[routing.services]]
match = "checkout*"
team = "payments"

[[routing.code]]
path = "src/billing/**"
team = "billing"

[[teams]]
name = "payments"
receivers = ["payments-hook", "payments-pd"]

[[teams]]
name = "billing"
receivers = ["billing-hook"]

[[teams]]
name = "platform"
receivers = ["billing-hook"]

[[receivers]]
name = "payments-hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "PAYMENTS_HOOK_SECRET"

[[receivers]]
name = "payments-pd"
type = "pagerduty"
url = "http://127.0.0.1:9"
routing_key_env = "PD_KEY"

[[receivers]]
name = "billing-hook"
type = "webhook"
url = "http://127.0.0.1:9/billing"
"#;

fn load(text: &str) -> Result<AlertingConfig, String> {
    from_text(text, Path::new("c.toml"))
}

#[test]
fn good_config_validates_and_secrets_resolve_from_the_given_environment() -> Result<(), String> {
    let config = load(GOOD)?;
    assert_eq!(config.timing.group_window, Duration::from_secs(10));
    assert_eq!(config.timing.repeat_interval, DEFAULT_REPEAT_INTERVAL);
    assert_eq!(config.team_receivers("payments").len(), 2);
    assert_eq!(
        config
            .ownership
            .service_owner("checkout-api", "prod", None)
            .team,
        "payments"
    );
    let env = |name: &str| match name {
        "PAYMENTS_HOOK_SECRET" => Some("s3cret".to_owned()),
        "PD_KEY" => Some("pdkey".to_owned()),
        _ => None,
    };
    let receivers = config.resolve_receivers(&env).map_err(|e| e.to_string())?;
    let hook = receivers.get("payments-hook").ok_or("missing hook")?;
    assert_eq!(hook.secret.as_ref().map(|s| s.expose()), Some("s3cret"));
    // Secrets never show in Debug output.
    assert!(!format!("{receivers:?}").contains("s3cret"));
    assert!(!format!("{receivers:?}").contains("pdkey"));

    let missing = config
        .resolve_receivers(&|_| None)
        .err()
        .map(|e| e.to_string());
    let missing = missing.unwrap_or_default();
    assert!(
        missing.contains("PAYMENTS_HOOK_SECRET") && missing.contains("receivers[0].secret_env"),
        "{missing}"
    );
    assert!(missing.contains("(line "), "{missing}");
    Ok(())
}

fn error_of(text: &str) -> String {
    load(text).err().unwrap_or_default()
}

#[test]
fn problems_name_the_key_and_line() {
    let unknown = error_of(&GOOD.replace("group_window", "group_windw"));
    assert!(unknown.contains("group_windw"), "{unknown}");

    let bad_glob = error_of(&GOOD.replace("src/billing/**", "src/[billing"));
    assert!(
        bad_glob.starts_with("routing.code[0].path (line 10): bad glob"),
        "{bad_glob}"
    );

    let no_receivers = error_of(&GOOD.replace(
        "receivers = [\"billing-hook\"]\n\n[[teams]]\nname = \"platform\"",
        "receivers = []\n\n[[teams]]\nname = \"platform\"",
    ));
    assert!(
        no_receivers.contains("teams[1].receivers") && no_receivers.contains("has no receivers"),
        "{no_receivers}"
    );

    let unknown_team = error_of(&GOOD.replace("team = \"payments\"", "team = \"paymnts\""));
    assert!(
        unknown_team.starts_with("routing.services[0].team (line 6): unknown team \"paymnts\""),
        "{unknown_team}"
    );

    let bad_type = error_of(&GOOD.replace(
        "type = \"webhook\"\nurl = \"http://127.0.0.1:9/billing\"",
        "type = \"email\"\nurl = \"http://127.0.0.1:9/billing\"",
    ));
    assert!(bad_type.contains("receivers[2].type"), "{bad_type}");

    let no_default = error_of(&GOOD.replace("default_team = \"platform\"\n", ""));
    assert!(no_default.contains("routing.default_team"), "{no_default}");

    let bad_url = error_of(&GOOD.replace("http://127.0.0.1:9/hook", "ftp://secret-host/x"));
    assert!(
        bad_url.contains("receivers[0].url") && !bad_url.contains("secret-host"),
        "{bad_url}"
    );
}

#[test]
fn codeowners_file_maps_org_teams() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("CODEOWNERS"),
        "*.go @acme/platform\n/src/billing/ @acme/billing\n/src/pay/ @acme/pay-team\n",
    )
    .map_err(|e| e.to_string())?;
    let text = GOOD.replace("group_window = \"10s\"", "codeowners_file = \"CODEOWNERS\"") + "\n";
    let text = text.replace(
        "name = \"payments\"\n",
        "name = \"payments\"\ncodeowners = [\"@acme/pay-team\"]\n",
    );
    let config = from_text(&text, &dir.path().join("c.toml"))?;
    let owner = |path: &str| {
        config
            .ownership
            .code_owner(&bellwether_model::alert::CodeLocation {
                path: Some(path.into()),
                module: None,
            })
            .map(|o| o.team)
    };
    assert_eq!(owner("src/pay/a.go").as_deref(), Some("payments"));
    assert_eq!(owner("cmd/main.go").as_deref(), Some("platform"));
    // routing.code comes after the file, so it wins for src/billing.
    assert_eq!(owner("src/billing/x.go").as_deref(), Some("billing"));
    Ok(())
}
