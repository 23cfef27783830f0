//! `bellwether gate`: waits for a release's verdict by long-polling the health API.
//!
//! Exit codes: 0 pass (healthy — or degraded with `--allow-degraded` — and at least
//! `--min-duration` since the deploy), 1 fail (unhealthy, or degraded), 2 usage or
//! connection error, 3 still pending at `--timeout`. On a terminal one progress line is
//! rewritten in place; otherwise a line is printed only when something changes.
//!
//! With several `--url`s, a long poll cut off by its node's death moves on to the next
//! URL at once (the client's failover), which is asked for its current verdict (the
//! revision the long poll named was the dead node's), and the gate keeps waiting there. A
//! connection error ends the gate (exit 2) only before any node has answered; after
//! that, the gate keeps trying every URL until `--timeout`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::json::HealthResponse;

use super::{encode_component, ApiClient, ClientError, GateArgs};

/// Longest single long-poll; below the client's request timeout.
const POLL: Duration = Duration::from_secs(20);
/// Pause before asking again after an unknown release or a lost connection.
const RETRY: Duration = Duration::from_secs(1);

/// What the gate decided about one health answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    Fail,
    /// Not yet: wait at most this long before asking again (the rest of the minimum
    /// duration, when that is all that is missing).
    Wait(Option<Duration>),
}

/// The gate's rule.
pub fn decide(health: &HealthResponse, min_duration: Duration, allow_degraded: bool) -> Decision {
    let age = Duration::from_millis(
        u64::try_from(health.evaluated_at_unix_ms - health.started_at_unix_ms).unwrap_or(0),
    );
    let acceptable = match health.verdict.as_str() {
        "unhealthy" => return Decision::Fail,
        "degraded" if !allow_degraded => return Decision::Fail,
        "degraded" | "healthy" => true,
        _ => false,
    };
    if !acceptable {
        return Decision::Wait(None);
    }
    if age >= min_duration {
        Decision::Pass
    } else {
        Decision::Wait(Some(min_duration - age))
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("n/a".to_owned(), |r| format!("{:.3}%", r * 100.0))
}

/// One line: verdict, exposure so far vs needed, rates.
pub fn progress_line(health: &HealthResponse) -> String {
    let a = &health.analysis;
    let needed = a
        .exposure_needed
        .map(|more| a.new.exposure.saturating_add(more))
        .or(a.decidable_exposure);
    let exposure = match needed {
        Some(n) if health.verdict == "pending" => {
            format!("exposure {}/{} {}", a.new.exposure, n, a.exposure_kind)
        }
        _ => format!("exposure {} {}", a.new.exposure, a.exposure_kind),
    };
    let baseline = match (&a.baseline_version, &a.baseline) {
        (Some(v), Some(b)) => format!(" vs {} {} ({})", percent(b.rate), v, a.method),
        _ => " (no baseline)".to_owned(),
    };
    let time = a
        .time_needed_ms
        .filter(|_| health.verdict == "pending")
        .map(|ms| format!(", ~{}s to go", ms.div_ceil(1000)))
        .unwrap_or_default();
    format!(
        "{}: {exposure}, error rate {}{baseline}{time}",
        health.verdict,
        percent(a.new.rate)
    )
}

fn evidence_lines(health: &HealthResponse) -> String {
    let mut out = String::new();
    for e in &health.evidence {
        out.push_str(&format!("  - {}: {}\n", e.kind, e.summary));
    }
    out
}

struct Display {
    tty: bool,
    last: Option<String>,
}

impl Display {
    fn show(&mut self, line: &str) {
        let mut out = std::io::stdout();
        if self.tty {
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
        } else if self.last.as_deref() != Some(line) {
            let _ = writeln!(out, "{line}");
        }
        self.last = Some(line.to_owned());
    }

    /// Ends the in-place line before printing below it.
    fn finish(&mut self) {
        if self.tty && self.last.is_some() {
            println!();
        }
        self.last = None;
    }
}

pub async fn run(args: GateArgs) -> ExitCode {
    let client = ApiClient::from_urls(&args.url).and_then(|c| c.with_token(args.token.as_deref()));
    let client = match client {
        Ok(client) => client,
        Err(e) => return usage(&e),
    };
    let name = format!("{} {} in {}", args.service, args.version, args.environment);
    let base = format!(
        "/api/v1/releases/{}/{}/health?environment={}",
        encode_component(&args.service),
        encode_component(&args.version),
        encode_component(&args.environment)
    );
    let mut display = Display {
        tty: std::io::stdout().is_terminal(),
        last: None,
    };
    let deadline = Instant::now() + args.timeout;
    // The last revision seen and the URL that gave it (a revision is one node's own).
    let mut since: Option<(String, u64)> = None;
    let mut latest: Option<HealthResponse> = None;
    let mut answered = false;
    let mut cap: Option<Duration> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let wait = [Some(remaining), Some(POLL), cap]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(POLL);
        // The first request answers at once with the current verdict; later ones
        // long-poll the same node for a revision newer than the last one seen. Another
        // node (the first one gone) is asked for its current verdict at once.
        let path_for = |url: &str| match &since {
            Some((from, revision)) if from == url => {
                format!("{base}&wait={}ms&since={revision}", wait.as_millis().max(1))
            }
            _ => base.clone(),
        };
        let health = match client.get_per_url::<HealthResponse>(path_for).await {
            Ok((health, from)) => {
                since = Some((from.to_owned(), health.revision));
                health
            }
            Err(ClientError::Api { status: 404, .. }) => {
                display.show(&format!("waiting for {name} to report telemetry"));
                tokio::time::sleep(RETRY.min(remaining)).await;
                continue;
            }
            Err(e @ ClientError::Connection { .. }) if answered => {
                display.show(&format!("collector unreachable, retrying: {e}"));
                tokio::time::sleep(RETRY.min(remaining)).await;
                continue;
            }
            Err(e) => {
                display.finish();
                eprintln!("error: {e}");
                return ExitCode::from(e.exit_code().max(2));
            }
        };
        answered = true;
        display.show(&progress_line(&health));
        let decision = decide(&health, args.min_duration, args.allow_degraded);
        latest = Some(health);
        match decision {
            Decision::Pass => {
                display.finish();
                let headline = format!(
                    "PASS: {name} is {}",
                    latest.as_ref().map_or("", |h| h.verdict.as_str())
                );
                println!("{headline}");
                step_summary(&headline, latest.as_ref());
                return ExitCode::SUCCESS;
            }
            Decision::Fail => {
                display.finish();
                if let Some(h) = &latest {
                    let headline = format!("FAIL: {name} is {}", h.verdict);
                    println!("{headline}");
                    print!("{}", evidence_lines(h));
                    step_summary(&headline, Some(h));
                }
                return ExitCode::from(1);
            }
            Decision::Wait(until_min) => cap = until_min,
        }
    }
    display.finish();
    let headline = match &latest {
        Some(h) => format!(
            "TIMEOUT: {name} still {} after {}s",
            h.verdict,
            args.timeout.as_secs()
        ),
        None => format!(
            "TIMEOUT: {name} reported no telemetry within {}s",
            args.timeout.as_secs()
        ),
    };
    println!("{headline}");
    if let Some(h) = &latest {
        print!("{}", evidence_lines(h));
    }
    step_summary(&headline, latest.as_ref());
    ExitCode::from(3)
}

/// The outcome as GitHub-flavoured Markdown.
pub fn summary_markdown(headline: &str, health: Option<&HealthResponse>) -> String {
    let mut out = format!("### Bellwether gate: {headline}\n\n");
    if let Some(h) = health {
        out.push_str(&format!("`{}`\n\n", progress_line(h)));
        if !h.evidence.is_empty() {
            out.push_str("| evidence | |\n|---|---|\n");
            for e in &h.evidence {
                let summary = e.summary.replace('|', "\\|").replace('\n', " ");
                out.push_str(&format!("| {} | {summary} |\n", e.kind));
            }
            out.push('\n');
        }
    }
    out
}

/// Appends the outcome to the file `GITHUB_STEP_SUMMARY` names, when it is set (a
/// GitHub Actions job step); a failure to write is reported and changes nothing else.
fn step_summary(headline: &str, health: Option<&HealthResponse>) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(summary_markdown(headline, health).as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "warning: cannot write the step summary to {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

fn usage(e: &ClientError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_model::health::{Figures, SideFigures};
    use bellwether_model::release::{Counts, ReleaseKey};

    fn health(verdict: &str, age_ms: i64) -> HealthResponse {
        HealthResponse {
            release: ReleaseKey::new("api", "prod", "2"),
            verdict: verdict.into(),
            evidence: Vec::new(),
            totals: Counts::default(),
            evaluated_at_unix_ms: 1_000_000 + age_ms,
            started_at_unix_ms: 1_000_000,
            revision: 1,
            analysis: Figures {
                method: "cutover".into(),
                exposure_kind: "log_records".into(),
                baseline_version: Some("1".into()),
                new: SideFigures {
                    exposure: 120,
                    errors: 1,
                    rate: Some(1.0 / 120.0),
                },
                baseline: Some(SideFigures {
                    exposure: 1000,
                    errors: 10,
                    rate: Some(0.01),
                }),
                exposure_needed: Some(880),
                time_needed_ms: Some(61_500),
                ..Figures::default()
            },
        }
    }

    #[test]
    fn exit_rules() {
        let min = Duration::from_secs(60);
        assert_eq!(decide(&health("unhealthy", 0), min, true), Decision::Fail);
        assert_eq!(
            decide(&health("degraded", 90_000), min, false),
            Decision::Fail
        );
        assert_eq!(
            decide(&health("degraded", 90_000), min, true),
            Decision::Pass
        );
        assert_eq!(
            decide(&health("healthy", 90_000), min, false),
            Decision::Pass
        );
        assert_eq!(
            decide(&health("healthy", 45_000), min, false),
            Decision::Wait(Some(Duration::from_secs(15)))
        );
        assert_eq!(
            decide(&health("pending", 90_000), min, false),
            Decision::Wait(None)
        );
    }

    #[test]
    fn progress_shows_exposure_needed_and_rates() {
        let line = progress_line(&health("pending", 0));
        assert_eq!(
            line,
            "pending: exposure 120/1000 log_records, error rate 0.833% vs 1.000% 1 (cutover), ~62s to go"
        );
        let line = progress_line(&health("healthy", 0));
        assert!(
            line.starts_with("healthy: exposure 120 log_records"),
            "{line}"
        );
    }
}
