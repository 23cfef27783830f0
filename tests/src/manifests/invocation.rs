//! One run of a Bellwether binary as a manifest or image describes it: the binary, its
//! arguments, the environment it is given and the config file it reads. From them and
//! the binary's `--help`: which flags are unknown, and what each setting resolves to the
//! way the binaries resolve it (flag, else variable, else config key, else default).

use std::collections::BTreeMap;

use super::help::{flags, Help, Helps, BINARIES};

#[derive(Clone, Debug, Default)]
pub struct Invocation {
    pub bin: String,
    pub args: Vec<String>,
    /// Variables given to it: the literal value, `None` when taken from a Secret or a
    /// field (known only at run time).
    pub env: BTreeMap<String, Option<String>>,
    /// The config file (`--config`), parsed, when it is shipped with the manifests.
    pub config: Option<toml::Table>,
}

/// An invocation checked against its binary's help.
pub struct Resolved {
    pub bin: String,
    pub sub: Option<String>,
    pub help: Help,
    pub flags: Vec<(String, Option<String>)>,
    pub env: BTreeMap<String, Option<String>>,
    pub config: Option<toml::Table>,
}

impl Invocation {
    /// Checks the binary, subcommand and flags; `problems` gets one line for each
    /// thing the binary does not accept.
    pub fn resolve(&self, helps: &mut Helps, problems: &mut Vec<String>) -> Option<Resolved> {
        if !BINARIES.contains(&self.bin.as_str()) {
            problems.push(format!("`{}` is not a Bellwether binary", self.bin));
            return None;
        }
        let (sub, help) = match helps.for_invocation(&self.bin, &self.args) {
            Ok((sub, help)) => (sub, help.clone()),
            Err(e) => {
                problems.push(e.to_string());
                return None;
            }
        };
        let rest = if sub.is_some() {
            &self.args[1..]
        } else {
            &self.args[..]
        };
        let named = flags(rest, &help);
        let shown = format!("{} {}", self.bin, sub.as_deref().unwrap_or_default());
        for (flag, value) in &named {
            match help.options.get(flag) {
                None => problems.push(format!("`{}` has no flag --{flag}", shown.trim())),
                Some(opt) if opt.takes_value && value.is_none() => {
                    problems.push(format!("--{flag} needs a value"))
                }
                Some(_) => {}
            }
        }
        Some(Resolved {
            bin: self.bin.clone(),
            sub,
            help,
            flags: named,
            env: self.env.clone(),
            config: self.config.clone(),
        })
    }
}

impl Resolved {
    /// What `--flag` comes to: the flag, else its variable (a literal value), else the
    /// config key of the same name (`http_addr`), else the help's default.
    pub fn setting(&self, flag: &str) -> Option<String> {
        if let Some((_, value)) = self.flags.iter().rev().find(|(f, _)| f == flag) {
            return value.clone();
        }
        let opt = self.help.options.get(flag)?;
        if let Some(var) = &opt.env {
            if let Some(value) = self.env.get(var) {
                return value.clone();
            }
        }
        let key = flag.replace('-', "_");
        if let Some(value) = self.config.as_ref().and_then(|c| c.get(&key)) {
            return value.as_str().map(str::to_owned);
        }
        opt.default.clone()
    }

    /// The ports it listens on, by flag (`http-addr` → 8480); `off` listens on none.
    pub fn ports(&self) -> BTreeMap<String, u16> {
        self.help
            .options
            .keys()
            .filter(|flag| flag.ends_with("-addr"))
            .filter_map(|flag| {
                let value = self.setting(flag)?;
                let port = value.rsplit_once(':')?.1.parse().ok()?;
                Some((flag.clone(), port))
            })
            .collect()
    }

    /// The port its HTTP health endpoints are on: the collector's API, the agent's admin.
    pub fn health_port(&self) -> Option<u16> {
        let ports = self.ports();
        ports
            .get("http-addr")
            .or_else(|| ports.get("admin-addr"))
            .copied()
    }

    /// Variables read from the config file's `*_env` keys (`token_env`, `url_env`, ...).
    pub fn config_env_names(&self) -> Vec<String> {
        fn walk(value: &toml::Value, out: &mut Vec<String>) {
            match value {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        match v {
                            toml::Value::String(s) if k.ends_with("_env") => out.push(s.clone()),
                            _ => walk(v, out),
                        }
                    }
                }
                toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(config) = &self.config {
            walk(&toml::Value::Table(config.clone()), &mut out);
        }
        out
    }

    /// Every variable it is given must be one it reads: a flag's `[env: …]`, a name its
    /// help gives (`POD_NAME`), or a `*_env` key of its config file.
    pub fn check_env(&self, problems: &mut Vec<String>) {
        let from_config = self.config_env_names();
        for var in self.env.keys() {
            let read = self.help.flag_of_env(var).is_some()
                || (!var.starts_with("BELLWETHER_") && self.help.mentions(var))
                || from_config.contains(var);
            if !read {
                problems.push(format!("{} reads no variable {var}", self.shown()));
            }
        }
    }

    /// `bellwether serve`, `bellwether-agent`.
    pub fn shown(&self) -> String {
        match &self.sub {
            Some(sub) => format!("{} {sub}", self.bin),
            None => self.bin.clone(),
        }
    }
}
