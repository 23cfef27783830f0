//! Checks of what `deploy/` ships against the real binaries: every YAML file parses
//! (all its documents); the Dockerfile installs the built binaries, runs as a non-root
//! user, keeps its data directory on a volume and exposes the ports its command listens
//! on; every container that runs a Bellwether binary names only flags and variables that
//! binary accepts (read from its `--help`), and its containerPorts, probe ports and the
//! Services' targetPorts are the ports its settings resolve to; the collector config in
//! a ConfigMap passes `bellwether serve --check-config`; the GitHub Action names only
//! inputs it declares and flags and variables of the commands it runs.
//!
//! - [`help`]: `--help` parsed, and asked of the built binaries once each.
//! - [`invocation`]: a binary with its arguments, environment and config file, resolved.
//! - [`docker`], [`kube`], [`action`]: one kind of file each.

pub mod action;
pub mod docker;
pub mod help;
pub mod invocation;
pub mod kube;

use std::path::Path;

use anyhow::{Context, Result};

use help::Helps;

/// What a check of `deploy/` saw and what it found wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub yaml_files: Vec<String>,
    pub documents: usize,
    pub configs_checked: usize,
    pub problems: Vec<String>,
}

/// The files to check, as (path relative to the repository, text).
#[derive(Debug, Default)]
pub struct Files {
    pub dockerfile: String,
    pub yaml: Vec<(String, String)>,
}

impl Files {
    /// `deploy/docker/Dockerfile` and every `.yaml` / `.yml` file under `deploy/`.
    pub fn read(repo: &Path) -> Result<Files> {
        let docker = repo.join("deploy/docker/Dockerfile");
        let dockerfile = std::fs::read_to_string(&docker)
            .with_context(|| format!("reading {}", docker.display()))?;
        let mut yaml = Vec::new();
        let mut dirs = vec![repo.join("deploy")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    let shown = path
                        .strip_prefix(repo)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    yaml.push((shown, std::fs::read_to_string(&path)?));
                }
            }
        }
        yaml.sort();
        Ok(Files { dockerfile, yaml })
    }
}

/// Checks the files; a file that does not parse is a problem, not an error.
pub fn check(files: &Files) -> Result<Report> {
    let mut helps = Helps::default();
    let mut report = Report::default();
    let mut problems = Vec::new();
    let image = docker::check(&files.dockerfile, &mut helps, &mut problems);
    report
        .problems
        .extend(problems.drain(..).map(|p| format!("Dockerfile: {p}")));
    let mut docs = Vec::new();
    for (file, text) in &files.yaml {
        report.yaml_files.push(file.clone());
        let is_action = Path::new(file)
            .file_name()
            .is_some_and(|n| n == "action.yml" || n == "action.yaml");
        if is_action {
            match action::parse(text) {
                Ok(parsed) => action::check(text, &parsed, &mut helps, &mut problems),
                Err(e) => problems.push(format!("{e:#}")),
            }
            report.documents += 1;
            report
                .problems
                .extend(problems.drain(..).map(|p| format!("{file}: {p}")));
            continue;
        }
        match kube::parse(file, text) {
            Ok(parsed) => docs.extend(parsed),
            Err(e) => report.problems.push(format!("{e:#}")),
        }
    }
    report.documents += docs.len();
    let configs = kube::check(&docs, &image, &mut helps, &mut report.problems);
    for config in &configs {
        check_config(config, &mut report.problems)?;
        report.configs_checked += 1;
    }
    Ok(report)
}

/// Runs the real `bellwether serve --check-config` on a config file from a ConfigMap,
/// with the container's variables (those from Secrets get a token-sized stand-in).
pub fn check_config(config: &kube::ServeConfig, problems: &mut Vec<String>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &config.toml)?;
    let mut cmd = crate::clean_command("bellwether")?;
    cmd.args(["serve", "--check-config", "--config"]).arg(&path);
    for (name, value) in &config.env {
        let value = value
            .clone()
            .unwrap_or_else(|| format!("secret-of-{name}-0123456789"));
        cmd.env(name, value);
    }
    let output = cmd.output()?;
    if !output.status.success() {
        problems.push(format!(
            "{}: `bellwether serve --check-config` refuses the ConfigMap's config: {}",
            config.context,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}
