//! Kubernetes manifests: every container that runs a Bellwether binary is checked against
//! that binary's help (flags, variables, listening ports, probes, the data directory on a
//! volume, the config file and the labels file where a volume provides them), every
//! Service against the pods it selects, and every in-cluster URL against the Services.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_yaml::Value;

use super::docker::Image;
use super::help::{Helps, BINARIES};
use super::invocation::{Invocation, Resolved};

/// One YAML document of a file.
#[derive(Clone, Debug)]
pub struct Doc {
    pub file: String,
    pub value: Value,
}

/// Every document of a (multi-document) YAML file; a syntax error names the file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).with_context(|| format!("{file}: document {i}"))?;
        if !value.is_null() {
            docs.push(Doc {
                file: file.to_owned(),
                value,
            });
        }
    }
    Ok(docs)
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

fn words(value: &Value, key: &str) -> Option<Vec<String>> {
    let seq = value.get(key)?.as_sequence()?;
    Some(seq.iter().filter_map(|v| text(v, &[])).collect())
}

fn kind(doc: &Doc) -> String {
    text(&doc.value, &["kind"]).unwrap_or_default()
}

fn name_ns(doc: &Doc) -> (String, String) {
    (
        text(&doc.value, &["metadata", "name"]).unwrap_or_default(),
        text(&doc.value, &["metadata", "namespace"]).unwrap_or_else(|| "default".into()),
    )
}

/// A pod template and where it came from.
struct Pod<'a> {
    doc: &'a Doc,
    spec: &'a Value,
    labels: BTreeMap<String, String>,
    claims: Vec<String>,
}

fn pods<'a>(docs: &'a [Doc], problems: &mut Vec<String>) -> Vec<Pod<'a>> {
    let mut out = Vec::new();
    for doc in docs {
        let template = match kind(doc).as_str() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                at(&doc.value, &["spec", "template"])
            }
            "CronJob" => at(&doc.value, &["spec", "jobTemplate", "spec", "template"]),
            "Pod" => Some(&doc.value),
            _ => None,
        };
        let Some(template) = template else { continue };
        let Some(spec) = template.get("spec") else {
            continue;
        };
        let mut labels = BTreeMap::new();
        if let Some(map) = at(template, &["metadata", "labels"]).and_then(Value::as_mapping) {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default().to_owned();
                match v.as_str() {
                    Some(v) => {
                        labels.insert(key, v.to_owned());
                    }
                    None => problems.push(format!(
                        "{}: label {key} is not a string (quote it)",
                        doc.file
                    )),
                }
            }
        }
        let claims = list(&doc.value, &["spec", "volumeClaimTemplates"])
            .iter()
            .filter_map(|c| text(c, &["metadata", "name"]))
            .collect();
        out.push(Pod {
            doc,
            spec,
            labels,
            claims,
        });
    }
    out
}

/// A `bellwether serve` config file as a pod would get it, for `--check-config`.
pub struct ServeConfig {
    pub context: String,
    pub toml: String,
    pub env: BTreeMap<String, Option<String>>,
}

/// Checks every document; returns the collector config files found in ConfigMaps.
pub fn check(
    docs: &[Doc],
    image: &Image,
    helps: &mut Helps,
    problems: &mut Vec<String>,
) -> Vec<ServeConfig> {
    let mut configs = Vec::new();
    let all_pods = pods(docs, problems);
    for pod in &all_pods {
        let containers = list(pod.spec, &["containers"])
            .iter()
            .chain(list(pod.spec, &["initContainers"]));
        for container in containers {
            let name = text(container, &["name"]).unwrap_or_default();
            let (wl, _) = name_ns(pod.doc);
            let context = format!("{}: {} {wl}, container {name}", pod.doc.file, kind(pod.doc));
            let mut found = Vec::new();
            if let Some(config) = check_container(docs, pod, container, image, helps, &mut found) {
                configs.push(ServeConfig {
                    context: context.clone(),
                    ..config
                });
            }
            problems.extend(found.into_iter().map(|p| format!("{context}: {p}")));
        }
    }
    check_services(docs, &all_pods, problems);
    check_urls(docs, problems);
    configs
}

fn is_bellwether(container: &Value) -> bool {
    let image = text(container, &["image"]).unwrap_or_default();
    let repo = image.split(['@', ':']).next().unwrap_or_default();
    let command = words(container, "command").unwrap_or_default();
    repo.rsplit('/').next() == Some("bellwether")
        || command
            .first()
            .is_some_and(|c| BINARIES.contains(&c.rsplit('/').next().unwrap_or(c)))
}

fn check_container(
    docs: &[Doc],
    pod: &Pod<'_>,
    container: &Value,
    image: &Image,
    helps: &mut Helps,
    problems: &mut Vec<String>,
) -> Option<ServeConfig> {
    if !is_bellwether(container) {
        return None;
    }
    // Kubernetes' rule: `command` replaces the ENTRYPOINT (and drops CMD), `args` the CMD.
    let command = words(container, "command");
    let args = words(container, "args");
    let mut run = command.clone().unwrap_or_else(|| image.entrypoint.clone());
    match (&command, args) {
        (_, Some(args)) => run.extend(args),
        (None, None) => run.extend(image.cmd.iter().cloned()),
        (Some(_), None) => {}
    }
    let Some((bin, args)) = run.split_first() else {
        problems.push("runs nothing (no command, and the image has none)".into());
        return None;
    };
    let mut env = BTreeMap::new();
    for var in list(container, &["env"]) {
        let name = text(var, &["name"]).unwrap_or_default();
        env.insert(name, text(var, &["value"]));
    }
    let mounts = list(container, &["volumeMounts"]);
    let mut invocation = Invocation {
        bin: bin.rsplit('/').next().unwrap_or(bin).to_owned(),
        args: args.to_vec(),
        env,
        config: None,
    };
    // Resolved once without the config file to find it; problems are told the second time.
    let mut quiet = Vec::new();
    let Some(first) = invocation.resolve(helps, &mut quiet) else {
        problems.extend(quiet);
        return None;
    };
    let mut config_text = None;
    if let Some(path) = first.setting("config") {
        match config_map_file(docs, pod, mounts, &path) {
            Some(text) => match text.parse::<toml::Table>() {
                Ok(table) => {
                    invocation.config = Some(table);
                    config_text = Some(text);
                }
                Err(e) => problems.push(format!("config {path} is not TOML: {e}")),
            },
            None => problems.push(format!("config {path} is on no shipped ConfigMap volume")),
        }
    }
    let resolved = invocation.resolve(helps, problems)?;
    resolved.check_env(problems);
    check_ports(container, &resolved, problems);
    let data_dir = resolved.setting("data-dir");
    match data_dir.as_deref().and_then(|dir| mount_of(mounts, dir)) {
        Some((volume, _)) if pod.claims.contains(&volume) => {}
        Some((volume, _)) if volume_named(pod, &volume).is_some() => {}
        Some((volume, _)) => problems.push(format!(
            "the data directory's volume {volume} is not defined"
        )),
        None => problems.push(format!("the data directory {data_dir:?} is on no volume")),
    }
    if let Some(path) = resolved.setting("k8s-labels-file") {
        check_labels_file(pod, mounts, &path, problems);
    }
    let serve = resolved.sub.as_deref() == Some("serve");
    config_text.filter(|_| serve).map(|toml| ServeConfig {
        context: String::new(),
        toml,
        env: resolved.env.clone(),
    })
}

fn check_ports(container: &Value, resolved: &Resolved, problems: &mut Vec<String>) {
    let ports = resolved.ports();
    let listening: Vec<u16> = ports.values().copied().collect();
    let mut named = BTreeMap::new();
    for port in list(container, &["ports"]) {
        let number = text(port, &["containerPort"]).and_then(|p| p.parse::<u16>().ok());
        match number {
            Some(n) if listening.contains(&n) => {}
            n => problems.push(format!(
                "containerPort {n:?} is not a port `{}` listens on ({ports:?})",
                resolved.shown()
            )),
        }
        if let (Some(name), Some(n)) = (text(port, &["name"]), number) {
            named.insert(name, n);
        }
    }
    let health = resolved.health_port();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let Some(get) = at(container, &[probe, "httpGet"]) else {
            if container.get(probe).is_some() {
                problems.push(format!("{probe} is not an httpGet of /healthz or /readyz"));
            }
            continue;
        };
        let path = text(get, &["path"]).unwrap_or_default();
        if path != "/healthz" && path != "/readyz" {
            problems.push(format!("{probe} asks {path}, not /healthz or /readyz"));
        }
        let port = text(get, &["port"]).unwrap_or_default();
        let number = port
            .parse::<u16>()
            .ok()
            .or_else(|| named.get(&port).copied());
        if number.is_none() || number != health {
            problems.push(format!(
                "{probe} port {port} is not the health endpoint's port {health:?}"
            ));
        }
    }
}

/// The mount holding `path`: (volume name, path inside the volume).
fn mount_of(mounts: &[Value], path: &str) -> Option<(String, String)> {
    mounts.iter().find_map(|m| {
        let dir = text(m, &["mountPath"])?;
        let volume = text(m, &["name"])?;
        if path == dir {
            return Some((volume, text(m, &["subPath"]).unwrap_or_default()));
        }
        let rest = path
            .strip_prefix(dir.trim_end_matches('/'))?
            .strip_prefix('/')?;
        let sub = text(m, &["subPath"]).map_or(rest.to_owned(), |s| format!("{s}/{rest}"));
        Some((volume, sub))
    })
}

fn volume_named<'a>(pod: &Pod<'a>, name: &str) -> Option<&'a Value> {
    list(pod.spec, &["volumes"])
        .iter()
        .find(|v| text(v, &["name"]).as_deref() == Some(name))
}

/// The text of a config file a ConfigMap volume puts at `path`.
fn config_map_file(docs: &[Doc], pod: &Pod<'_>, mounts: &[Value], path: &str) -> Option<String> {
    let (volume, inside) = mount_of(mounts, path)?;
    let source = volume_named(pod, &volume)?.get("configMap")?;
    let map_name = text(source, &["name"])?;
    let items = list(source, &["items"]);
    let key = if items.is_empty() {
        inside
    } else {
        items
            .iter()
            .find(|i| text(i, &["path"]).as_deref() == Some(inside.as_str()))
            .and_then(|i| text(i, &["key"]))?
    };
    let (_, ns) = name_ns(pod.doc);
    docs.iter()
        .filter(|d| kind(d) == "ConfigMap" && name_ns(d) == (map_name.clone(), ns.clone()))
        .find_map(|d| text(&d.value, &["data", &key]))
}

fn check_labels_file(pod: &Pod<'_>, mounts: &[Value], path: &str, problems: &mut Vec<String>) {
    let from_labels = mount_of(mounts, path).and_then(|(volume, inside)| {
        let items = list(volume_named(pod, &volume)?, &["downwardAPI", "items"]);
        items.iter().find(|i| {
            text(i, &["path"]).as_deref() == Some(inside.as_str())
                && text(i, &["fieldRef", "fieldPath"]).as_deref() == Some("metadata.labels")
        })
    });
    if from_labels.is_none() {
        problems.push(format!(
            "--k8s-labels-file {path} is no downwardAPI file of metadata.labels"
        ));
    }
    for label in ["app.kubernetes.io/name", "app.kubernetes.io/version"] {
        if !pod.labels.contains_key(label) {
            problems.push(format!(
                "the pod has no label {label} for the agent to read"
            ));
        }
    }
}

fn check_services(docs: &[Doc], pods: &[Pod<'_>], problems: &mut Vec<String>) {
    for service in docs.iter().filter(|d| kind(d) == "Service") {
        let (name, ns) = name_ns(service);
        let context = format!("{}: Service {name}", service.file);
        let selector: BTreeMap<String, String> = at(&service.value, &["spec", "selector"])
            .and_then(|s| serde_yaml::from_value(s.clone()).ok())
            .unwrap_or_default();
        let selected: Vec<&Pod<'_>> = pods
            .iter()
            .filter(|p| name_ns(p.doc).1 == ns)
            .filter(|p| selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect();
        if selector.is_empty() || selected.is_empty() {
            problems.push(format!("{context}: selects no pod of the manifests"));
            continue;
        }
        let container_ports: Vec<(Option<String>, Option<String>)> = selected
            .iter()
            .flat_map(|p| {
                list(p.spec, &["containers"])
                    .iter()
                    .chain(list(p.spec, &["initContainers"]))
            })
            .flat_map(|c| list(c, &["ports"]))
            .map(|p| (text(p, &["name"]), text(p, &["containerPort"])))
            .collect();
        for port in list(&service.value, &["spec", "ports"]) {
            let target = text(port, &["targetPort"]).or_else(|| text(port, &["port"]));
            let target = target.unwrap_or_default();
            let known = container_ports
                .iter()
                .any(|(n, p)| n.as_deref() == Some(&target) || p.as_deref() == Some(&target));
            if !known {
                problems.push(format!(
                    "{context}: targetPort {target} is no containerPort of the pods it selects"
                ));
            }
        }
    }
}

/// `http://NAME.NAMESPACE.svc:PORT` in any string must be a Service of the manifests
/// with that port.
fn check_urls(docs: &[Doc], problems: &mut Vec<String>) {
    fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::String(s) => out.push(s),
            Value::Sequence(seq) => seq.iter().for_each(|v| strings(v, out)),
            Value::Mapping(map) => map.values().for_each(|v| strings(v, out)),
            Value::Tagged(t) => strings(&t.value, out),
            _ => {}
        }
    }
    for doc in docs {
        let mut found = Vec::new();
        strings(&doc.value, &mut found);
        for s in found {
            for part in s.split("://").skip(1) {
                let authority = part.split(['/', '?', '"', ' ', '\n']).next().unwrap_or("");
                let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
                let host = host.trim_end_matches(".cluster.local");
                let Some(host) = host.strip_suffix(".svc") else {
                    continue;
                };
                let Some((svc, ns)) = host.split_once('.') else {
                    continue;
                };
                let has_port = docs.iter().any(|d| {
                    kind(d) == "Service"
                        && name_ns(d) == (svc.to_owned(), ns.to_owned())
                        && list(&d.value, &["spec", "ports"])
                            .iter()
                            .any(|p| text(p, &["port"]).as_deref() == Some(port))
                });
                if !has_port {
                    problems.push(format!(
                        "{}: {authority} is no port of a Service {svc} in namespace {ns}",
                        doc.file
                    ));
                }
            }
        }
    }
}
