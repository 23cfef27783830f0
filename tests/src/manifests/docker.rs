//! The Dockerfile: its final stage's binaries, user, volume, exposed ports, entrypoint
//! and command, checked against the built binaries.

use std::collections::BTreeSet;

use super::help::{Helps, BINARIES};
use super::invocation::Invocation;

/// A Dockerfile's instructions (continuation lines joined, comments dropped), as
/// (keyword in upper case, the rest).
pub fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
                out.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
                pending.clear();
            }
        }
    }
    out
}

/// An exec-form (`["a", "b"]`) or shell-form argument list.
fn words(rest: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(rest)
        .unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect())
}

/// What the image runs when a manifest gives no command or arguments.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// Checks a Dockerfile; returns the image's defaults and adds a line to `problems` for
/// each thing that does not hold.
pub fn check(text: &str, helps: &mut Helps, problems: &mut Vec<String>) -> Image {
    let all = instructions(text);
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").unwrap_or(0);
    let stage = &all[last_from..];
    let mut image = Image::default();
    let (mut user, mut volumes, mut exposed) = (None, BTreeSet::new(), BTreeSet::new());
    let mut installed = BTreeSet::new();
    for (keyword, rest) in stage {
        match keyword.as_str() {
            "USER" => user = Some(rest.clone()),
            "VOLUME" => volumes.extend(words(rest)),
            "EXPOSE" => {
                for port in rest.split_whitespace() {
                    match port.split('/').next().and_then(|p| p.parse::<u16>().ok()) {
                        Some(port) => {
                            exposed.insert(port);
                        }
                        None => problems.push(format!("EXPOSE {port} is no port")),
                    }
                }
            }
            "ENTRYPOINT" => image.entrypoint = words(rest),
            "CMD" => image.cmd = words(rest),
            "COPY" => {
                let parts = words(rest);
                if let Some(dest) = parts.last().filter(|d| d.starts_with("/usr/local/bin/")) {
                    installed.insert(dest.trim_start_matches("/usr/local/bin/").to_owned());
                }
            }
            _ => {}
        }
    }
    // What the builder copies out of the cargo target directory is a built binary too.
    for (keyword, rest) in &all[..last_from] {
        if keyword == "RUN" {
            for word in rest.split_whitespace() {
                if let Some(name) = word.strip_prefix("target/release/") {
                    check_binary(name, "the builder copies", problems);
                }
            }
        }
    }
    for name in &installed {
        check_binary(name, "COPY installs", problems);
    }
    for name in BINARIES {
        if !installed.contains(*name) {
            problems.push(format!("the image does not install {name}"));
        }
    }
    match user.as_deref().map(|u| u.split(':').next().unwrap_or(u)) {
        None => problems.push("the image runs as root (no USER)".to_owned()),
        Some("root" | "0") => problems.push("the image runs as root (USER root)".to_owned()),
        Some(_) => {}
    }

    let mut run: Vec<String> = image.entrypoint.clone();
    run.extend(image.cmd.iter().cloned());
    let Some((bin, args)) = run.split_first() else {
        problems.push("the image has neither ENTRYPOINT nor CMD".to_owned());
        return image;
    };
    let invocation = Invocation {
        bin: bin.rsplit('/').next().unwrap_or(bin).to_owned(),
        args: args.to_vec(),
        ..Invocation::default()
    };
    let Some(resolved) = invocation.resolve(helps, problems) else {
        return image;
    };
    let ports: BTreeSet<u16> = resolved.ports().into_values().collect();
    if ports != exposed {
        problems.push(format!(
            "EXPOSE {exposed:?} is not what `{}` listens on: {ports:?}",
            resolved.shown()
        ));
    }
    match resolved.setting("data-dir") {
        Some(dir) if volumes.contains(&dir) => {}
        dir => problems.push(format!(
            "the data directory {dir:?} is not a VOLUME ({volumes:?})"
        )),
    }
    image
}

fn check_binary(name: &str, what: &str, problems: &mut Vec<String>) {
    let built = crate::bin_path(name).is_ok();
    if !BINARIES.contains(&name) || !built {
        problems.push(format!("{what} `{name}`, which is not a built binary"));
    }
}
