//! The composite GitHub Action: its inputs, and the `bellwether` commands its steps run,
//! checked against the CLI's help; and a runner that executes its steps with bash the
//! way the Actions runner does (inputs expanded into each step's environment).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::help::Helps;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Action {
    pub name: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, Input>,
    pub runs: Runs,
}

#[derive(Debug, Deserialize)]
pub struct Input {
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Runs {
    pub using: String,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub name: Option<String>,
    pub id: Option<String>,
    #[serde(rename = "if")]
    pub condition: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub run: Option<String>,
    pub shell: Option<String>,
}

pub fn parse(text: &str) -> Result<Action> {
    serde_yaml::from_str(text).context("action.yml")
}

/// The `inputs.NAME` an expression or condition names.
fn input_refs(text: &str) -> Vec<String> {
    text.split("inputs.")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
        .collect()
}

/// The `--flags` of a shell script (words starting with two dashes).
fn script_flags(script: &str) -> Vec<String> {
    script
        .split(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '\'')
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            w.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The `bellwether SUB` commands a script runs.
fn script_commands(script: &str) -> Vec<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "bellwether")
        .map(|w| w[1].to_owned())
        .collect()
}

pub fn check(text: &str, action: &Action, helps: &mut Helps, problems: &mut Vec<String>) {
    if action.runs.using != "composite" {
        problems.push(format!(
            "runs.using is {}, not composite",
            action.runs.using
        ));
    }
    for name in input_refs(text) {
        if !action.inputs.contains_key(&name) {
            problems.push(format!("inputs.{name} is used but not declared"));
        }
    }
    for (i, step) in action.runs.steps.iter().enumerate() {
        let context = format!(
            "step {}",
            step.name.clone().unwrap_or_else(|| i.to_string())
        );
        let Some(run) = &step.run else { continue };
        if step.shell.is_none() {
            problems.push(format!(
                "{context}: a composite step with run needs a shell"
            ));
        }
        let commands = script_commands(run);
        let mut helps_of_step = Vec::new();
        for sub in &commands {
            match helps.for_invocation("bellwether", std::slice::from_ref(sub)) {
                Ok((_, help)) => helps_of_step.push((sub.clone(), help.clone())),
                Err(e) => problems.push(format!("{context}: {e}")),
            }
        }
        if helps_of_step.is_empty() {
            continue;
        }
        for flag in script_flags(run) {
            if !helps_of_step.iter().any(|(_, h)| h.has_flag(&flag)) {
                problems.push(format!(
                    "{context}: `bellwether {commands:?}` has no flag --{flag}"
                ));
            }
        }
        for var in step.env.keys().filter(|v| v.starts_with("BELLWETHER_")) {
            for (sub, help) in &helps_of_step {
                if help.flag_of_env(var).is_none() {
                    problems.push(format!(
                        "{context}: `bellwether {sub}` reads no variable {var}"
                    ));
                }
            }
        }
    }
}

/// Expands `${{ EXPR }}` with `lookup` (`inputs.url`, `github.sha`); an unknown
/// expression is an error.
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("}}").context("unclosed ${{")?;
        let expr = after[..end].trim();
        match lookup(expr) {
            Some(v) => out.push_str(&v),
            None => bail!("cannot expand ${{{{ {expr} }}}}"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs the action's steps as the runner would, with `given` inputs over the defaults
/// (which may name `github.*` values from `github`); stops at the first failing step.
/// Returns each run step's output (skipped steps leave none).
pub fn run(
    action: &Action,
    given: &BTreeMap<&str, &str>,
    github: &BTreeMap<&str, &str>,
    env: &[(String, String)],
    dir: &Path,
) -> Result<Vec<(String, Output)>> {
    let from_github = |expr: &str| {
        let key = expr.strip_prefix("github.")?;
        github.get(key).map(|v| (*v).to_owned())
    };
    let mut inputs = BTreeMap::new();
    for (name, input) in &action.inputs {
        let value = match given.get(name.as_str()) {
            Some(v) => (*v).to_owned(),
            None if input.required => bail!("input {name} is required"),
            None => expand(input.default.as_deref().unwrap_or(""), &from_github)?,
        };
        inputs.insert(name.clone(), value);
    }
    let lookup = |expr: &str| {
        let name = expr.strip_prefix("inputs.")?;
        inputs.get(name).cloned()
    };
    let mut outputs = Vec::new();
    for step in &action.runs.steps {
        let name = step.name.clone().unwrap_or_default();
        if let Some(condition) = &step.condition {
            // The conditions this action uses: `inputs.NAME == 'value'`.
            let (left, right) = condition
                .split_once("==")
                .with_context(|| format!("condition {condition}"))?;
            let value = lookup(left.trim()).with_context(|| format!("condition {condition}"))?;
            if value != right.trim().trim_matches('\'') {
                continue;
            }
        }
        let Some(script) = &step.run else { continue };
        let mut cmd = Command::new("bash");
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg("-e")
            .arg("-o")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
        for (key, value) in &step.env {
            cmd.env(key, expand(value, &lookup)?);
        }
        let output = cmd
            .output()
            .with_context(|| format!("running step {name}"))?;
        let failed = !output.status.success();
        outputs.push((name, output));
        if failed {
            break;
        }
    }
    Ok(outputs)
}
