//! What a binary accepts, read from its `--help`: options (whether they take a value,
//! their `[env: …]` variable and `[default: …]`), subcommands, and the text itself (for
//! variables a description names, such as `POD_NAME`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{ensure, Result};

/// One option of a `--help`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opt {
    pub takes_value: bool,
    pub env: Option<String>,
    pub default: Option<String>,
}

/// A parsed `--help`.
#[derive(Clone, Debug, Default)]
pub struct Help {
    /// By long name without the dashes.
    pub options: BTreeMap<String, Opt>,
    pub commands: BTreeSet<String>,
    pub text: String,
}

impl Help {
    pub fn parse(text: &str) -> Help {
        let mut help = Help {
            text: text.to_owned(),
            ..Help::default()
        };
        let mut section = "";
        // The option whose block (its line and the description under it) is being read.
        let mut current: Vec<String> = Vec::new();
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim();
            if indent == 0 && trimmed.ends_with(':') {
                section = if trimmed == "Commands:" {
                    "commands"
                } else if trimmed == "Options:" {
                    "options"
                } else {
                    ""
                };
                current.clear();
                continue;
            }
            match section {
                "commands" if indent == 2 => {
                    if let Some(name) = trimmed.split_whitespace().next() {
                        help.commands.insert(name.to_owned());
                    }
                }
                "options" if trimmed.starts_with('-') && indent < 8 => {
                    // The flags end where the description starts (two spaces).
                    let head = trimmed.split("  ").next().unwrap_or_default();
                    current = head
                        .split([' ', ','])
                        .filter_map(|t| t.strip_prefix("--"))
                        .map(|t| t.split('=').next().unwrap_or(t).to_owned())
                        .collect();
                    for name in &current {
                        help.options.insert(
                            name.clone(),
                            Opt {
                                takes_value: head.contains('<'),
                                ..Opt::default()
                            },
                        );
                    }
                    help.note(&current, trimmed);
                }
                "options" => help.note(&current, trimmed),
                _ => {}
            }
        }
        help
    }

    /// Reads `[env: X]` and `[default: Y]` from a line of an option's block.
    fn note(&mut self, names: &[String], line: &str) {
        let env = bracketed(line, "[env: ")
            .map(|v| v.split('=').next().unwrap_or(v).trim().to_owned())
            .filter(|v| !v.is_empty());
        let default = bracketed(line, "[default: ").map(str::to_owned);
        for name in names {
            if let Some(opt) = self.options.get_mut(name) {
                if env.is_some() {
                    opt.env.clone_from(&env);
                }
                if default.is_some() {
                    opt.default.clone_from(&default);
                }
            }
        }
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }

    /// The option that reads this variable.
    pub fn flag_of_env(&self, var: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(_, o)| o.env.as_deref() == Some(var))
            .map(|(n, _)| n.as_str())
    }

    /// Whether the help names this word anywhere (`POD_NAME` in a description).
    pub fn mentions(&self, word: &str) -> bool {
        self.text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == word)
    }
}

fn bracketed<'a>(line: &'a str, open: &str) -> Option<&'a str> {
    let start = line.find(open)? + open.len();
    let end = line[start..].find(']')? + start;
    Some(&line[start..end])
}

/// `--help` of the real binaries, each asked once.
#[derive(Default)]
pub struct Helps {
    cache: HashMap<(String, Option<String>), Help>,
}

impl Helps {
    /// `bin [sub] --help`, run from the built binaries (`crate::bin_path`).
    pub fn get(&mut self, bin: &str, sub: Option<&str>) -> Result<&Help> {
        let key = (bin.to_owned(), sub.map(str::to_owned));
        if !self.cache.contains_key(&key) {
            let mut cmd = crate::clean_command(bin)?;
            cmd.args(sub).arg("--help");
            let output = cmd.output()?;
            ensure!(
                output.status.success(),
                "{bin} {} --help exited {}: {}",
                sub.unwrap_or_default(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            let help = Help::parse(&String::from_utf8_lossy(&output.stdout));
            self.cache.insert(key.clone(), help);
        }
        Ok(&self.cache[&key])
    }

    /// The help that covers an invocation's arguments: `bellwether SUB` for the
    /// collector's CLI, the agent's own (or `run`'s) for the agent. Returns the
    /// subcommand too; an unknown binary or subcommand is an error naming it.
    pub fn for_invocation(
        &mut self,
        bin: &str,
        args: &[String],
    ) -> Result<(Option<String>, &Help)> {
        let first = args.first().filter(|a| !a.starts_with('-')).cloned();
        let top = self.get(bin, None)?;
        let sub = match (&first, bin) {
            (Some(sub), _) if top.commands.contains(sub) => Some(sub.clone()),
            (Some(sub), "bellwether") => anyhow::bail!("`bellwether {sub}` is no subcommand"),
            (None, "bellwether") => anyhow::bail!("`bellwether` without a subcommand"),
            _ => None,
        };
        let help = self.get(bin, sub.as_deref())?;
        Ok((sub, help))
    }
}

/// The binaries a container or script may name.
pub const BINARIES: &[&str] = &["bellwether", "bellwether-agent"];

/// Splits `--flag=value` / `--flag value` arguments against a help: the flags named
/// (without dashes) and their values; arguments after `--` are not the binary's.
pub fn flags(args: &[String], help: &Help) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(name) = arg.strip_prefix("--") else {
            continue;
        };
        match name.split_once('=') {
            Some((name, value)) => out.push((name.to_owned(), Some(value.to_owned()))),
            None => {
                let takes = help.options.get(name).is_some_and(|o| o.takes_value);
                let value = takes.then(|| args.get(i).cloned()).flatten();
                if value.is_some() {
                    i += 1;
                }
                out.push((name.to_owned(), value));
            }
        }
    }
    out
}
