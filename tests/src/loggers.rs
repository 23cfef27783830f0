//! Real JSON loggers for the end-to-end tests: pino and winston (Node, from the npm
//! registry) and structlog and python-json-logger (Python, from PyPI), run by the small
//! programs under `tests/loggers/` to write real error records into a file.
//!
//! `.ci/run` installs them (`npm ci --prefix tests/loggers/node`, and a virtualenv at
//! `tests/loggers/python/.venv`). When they are missing the tests that need them are
//! skipped with a loud message, unless `BELLWETHER_REQUIRE_TOOLS=1` makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::browser::{find_tool, tools_required};

/// How long one logger program may take.
const EMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/loggers/` in the source tree.
pub fn loggers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("loggers")
}

/// A program that writes a logger's lines: `program args… LOGGER FILE`.
#[derive(Clone, Debug)]
pub struct Emitter {
    program: PathBuf,
    args: Vec<PathBuf>,
}

/// `Ok(None)` after a loud notice when `what` is missing and may be skipped, an error
/// saying how to install it when it is required.
fn missing<T>(what: &str, install: &str) -> Result<Option<T>> {
    if tools_required() {
        bail!(
            "{what} is required (BELLWETHER_REQUIRE_TOOLS=1) but missing; install with `{install}`"
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} not found; install it with `{install}` to run this test !!!!!!!!\n"
    );
    Ok(None)
}

impl Emitter {
    /// `node tests/loggers/node/emit.js`, when Node and the locked pino and winston are
    /// installed.
    pub fn node() -> Result<Option<Self>> {
        let dir = loggers_dir().join("node");
        let install = "npm ci --prefix tests/loggers/node";
        let Some(node) = find_tool(&["node", "nodejs"]) else {
            return missing("Node.js (`node` on PATH)", "apt-get install nodejs npm");
        };
        for package in ["pino", "winston"] {
            if !dir
                .join("node_modules")
                .join(package)
                .join("package.json")
                .is_file()
            {
                return missing(&format!("the npm package {package}"), install);
            }
        }
        Ok(Some(Self {
            program: node,
            args: vec![dir.join("emit.js")],
        }))
    }

    /// `tests/loggers/python/.venv/bin/python tests/loggers/python/emit.py`, when the
    /// virtualenv has structlog and python-json-logger.
    pub fn python() -> Result<Option<Self>> {
        let dir = loggers_dir().join("python");
        let install = "python3 -m venv tests/loggers/python/.venv && \
                       tests/loggers/python/.venv/bin/pip install -r tests/loggers/python/requirements.txt";
        let python = dir.join(".venv").join("bin").join("python");
        if !python.is_file() {
            return missing("the Python virtualenv tests/loggers/python/.venv", install);
        }
        let imports = Command::new(&python)
            .args(["-c", "import structlog, pythonjsonlogger"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("running {}", python.display()))?;
        if !imports.success() {
            return missing(
                "structlog and python-json-logger in the virtualenv",
                install,
            );
        }
        Ok(Some(Self {
            program: python,
            args: vec![dir.join("emit.py")],
        }))
    }

    /// Runs the program for `logger`, writing into `file`, and waits for it to succeed.
    pub fn emit(&self, logger: &str, file: &Path) -> Result<()> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(logger)
            .arg(file)
            .current_dir(loggers_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let deadline = Instant::now() + EMIT_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("{logger} did not finish within {EMIT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "{logger} failed with {}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}
