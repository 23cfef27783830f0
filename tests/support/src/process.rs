//! Child processes under test: spawned with piped stderr, which a thread collects and
//! scans for the `listening kind=K addr=A` lines Bellwether's binaries log for every
//! listener they bound, so tests learn the free ports a child chose.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a child gets to announce its listeners or to exit.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Parses `listening kind=K addr=A` out of a log line.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let line = strip_ansi(line);
    if !line.contains("listening") {
        return None;
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .map(|value| value.trim_matches('"').to_string())
    };
    let kind = field("kind=")?;
    let addr = field("addr=")?.parse().ok()?;
    Some((kind, addr))
}

/// A child process whose stderr is collected in the background and scanned for listeners.
pub struct Supervised {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    listeners: Arc<Mutex<HashMap<String, SocketAddr>>>,
}

impl Supervised {
    /// Spawns `cmd` with piped stderr (and stdin/stdout as given by the caller).
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawning child process")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let listeners = Arc::new(Mutex::new(HashMap::new()));
        let pipe = child.stderr.take().context("child has no stderr")?;
        let (lines, found) = (stderr.clone(), listeners.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some((kind, addr)) = parse_listening(&line) {
                    lock(&found).insert(kind, addr);
                }
                lock(&lines).push(line);
            }
        });
        Ok(Self {
            child,
            stderr,
            listeners,
        })
    }

    /// Waits until the child has announced a listener of each kind.
    pub fn wait_for_listeners(&mut self, kinds: &[&str]) -> Result<HashMap<String, SocketAddr>> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            {
                let found = lock(&self.listeners);
                if kinds.iter().all(|k| found.contains_key(*k)) {
                    return Ok(found.clone());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "child exited with {status} before listening:\n{}",
                    self.stderr_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "child did not announce {kinds:?} in time:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the child to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the stderr reader catch up with the final lines.
                std::thread::sleep(Duration::from_millis(50));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "child still running after {timeout:?}:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        self.wait_exit(STARTUP_TIMEOUT)
    }

    /// The child's process id, for signals the harness does not send itself.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        lock(&self.stderr).join("\n")
    }

    /// The child's stdin, if it was piped.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.child.stdin.as_mut()
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_parsed_with_and_without_colours() {
        let plain =
            "2026-11-26T19:00:00Z  INFO bellwether: listening kind=otlp-grpc addr=127.0.0.1:4317";
        assert_eq!(
            parse_listening(plain),
            Some(("otlp-grpc".into(), "127.0.0.1:4317".parse().unwrap()))
        );
        let coloured = "\u{1b}[32m INFO\u{1b}[0m listening \u{1b}[3mkind\u{1b}[0m\u{1b}[2m=\u{1b}[0mhttp \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:9";
        assert_eq!(
            parse_listening(coloured),
            Some(("http".into(), "127.0.0.1:9".parse().unwrap()))
        );
        assert_eq!(parse_listening("listening soon"), None);
    }
}
