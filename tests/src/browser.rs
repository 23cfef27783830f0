//! Headless Chromium for the UI tests: load a page, let its scripts run, and read back the
//! DOM, the console and a screenshot. No WebDriver: `chromium --headless --dump-dom`.
//!
//! When no Chromium is installed the tests that need it are skipped with a loud message,
//! unless `BELLWETHER_REQUIRE_TOOLS=1` (set by `.ci/run`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long one page load may take, scripts included.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether tools such as Chromium and promtool must be present (CI) rather than skipped.
pub fn tools_required() -> bool {
    std::env::var_os("BELLWETHER_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// The first of `names` found on `PATH`.
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|candidate| candidate.is_file())
}

/// `Some(path)` of a tool, `None` (after saying so loudly) when it is missing and may be
/// skipped, an error when it is missing and required.
pub fn tool_or_skip(names: &[&str], what: &str) -> Result<Option<PathBuf>> {
    if let Some(path) = find_tool(names) {
        return Ok(Some(path));
    }
    if tools_required() {
        bail!("{what} is required (BELLWETHER_REQUIRE_TOOLS=1) but none of {names:?} is on PATH");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} not found (looked for {names:?} on PATH); install it to run this test !!!!!!!!\n"
    );
    Ok(None)
}

/// A headless Chromium with its own throw-away profile.
pub struct Browser {
    binary: PathBuf,
    profile: tempfile::TempDir,
}

/// What loading a page gave.
pub struct Page {
    /// The DOM after scripts ran (virtual time budget).
    pub dom: String,
    /// Chromium's log, console messages included.
    pub log: String,
}

impl Page {
    /// Console messages that report errors: uncaught exceptions, failed loads, CSP refusals.
    pub fn console_errors(&self) -> Vec<String> {
        self.log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
            .filter(|l| {
                let lower = l.to_lowercase();
                lower.contains("error") || lower.contains("uncaught") || lower.contains("refused")
            })
            .map(str::to_owned)
            .collect()
    }
}

impl Browser {
    /// `None` when Chromium is missing and the test may be skipped.
    pub fn find() -> Result<Option<Self>> {
        let Some(binary) = tool_or_skip(
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
            "Chromium (Debian package `chromium`)",
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            binary,
            profile: tempfile::tempdir()?,
        }))
    }

    async fn run(&self, url: &str, extra: &[String]) -> Result<(String, String)> {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1280,1500",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let output = tokio::time::timeout(PAGE_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!("chromium did not finish loading {url} in {PAGE_TIMEOUT:?}")
            })??;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            bail!("chromium failed on {url} ({}): {stderr}", output.status);
        }
        Ok((stdout, stderr))
    }

    /// Loads `url` and returns the DOM once its scripts ran.
    pub async fn load(&self, url: &str) -> Result<Page> {
        let (dom, log) = self.run(url, &["--dump-dom".to_owned()]).await?;
        Ok(Page { dom, log })
    }

    /// Saves a PNG of `url` at `path` (its folder is created).
    pub async fn screenshot(&self, url: &str, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        self.run(url, &[format!("--screenshot={}", path.display())])
            .await?;
        if !path.is_file() {
            bail!("chromium wrote no screenshot at {}", path.display());
        }
        Ok(())
    }
}

/// Where UI tests keep their artifacts: `target/ui-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("ui-artifacts")
}
