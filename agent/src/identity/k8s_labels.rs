//! The Kubernetes labels file: the pod's labels as the Downward API writes them into a
//! volume, one `key="value"` per line, the value quoted as Go quotes strings:
//!
//! ```text
//! app.kubernetes.io/name="checkout"
//! app.kubernetes.io/version="2.4.0"
//! bellwether.io/team="payments"
//! ```
//!
//! Labels read: `app.kubernetes.io/name` (service), `app.kubernetes.io/version`
//! (version), and `bellwether.io/environment`, `bellwether.io/team`,
//! `bellwether.io/commit`, `bellwether.io/deploy-id`. Other labels are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Field, ReleaseFile};

#[derive(Debug, thiserror::Error)]
pub enum LabelsFileError {
    #[error("cannot read Kubernetes labels file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Kubernetes labels file {}: line {line}: expected key=\"value\"", path.display())]
    Syntax { path: PathBuf, line: usize },
}

/// The identity field a label sets, if any.
fn field_of(label: &str) -> Option<Field> {
    Some(match label {
        "app.kubernetes.io/name" => Field::Service,
        "app.kubernetes.io/version" => Field::Version,
        "bellwether.io/environment" => Field::Environment,
        "bellwether.io/team" => Field::Team,
        "bellwether.io/commit" => Field::Commit,
        "bellwether.io/deploy-id" => Field::DeployId,
        _ => return None,
    })
}

/// Reads and parses the labels file at `path`.
pub fn load_labels_file(path: &Path) -> Result<ReleaseFile, LabelsFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabelsFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_labels_file(&text).map_err(|line| LabelsFileError::Syntax {
        path: path.to_owned(),
        line,
    })
}

/// Parses labels file text; the error is the 1-based number of the first bad line.
pub fn parse_labels_file(text: &str) -> Result<ReleaseFile, usize> {
    let mut values = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(index + 1)?;
        let value = unquote(value).ok_or(index + 1)?;
        if key.is_empty() {
            return Err(index + 1);
        }
        if let Some(field) = field_of(key) {
            values.insert(field.attribute().to_owned(), value);
        }
    }
    Ok(ReleaseFile::from_attributes(values))
}

/// A Go-quoted string's contents (`\"`, `\\`, `\n`, `\t`, `\r` escapes).
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            other @ ('"' | '\\' | '\'') => other,
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_downward_api_format() {
        let file = parse_labels_file(
            "app.kubernetes.io/name=\"checkout\"\napp.kubernetes.io/version=\"2.4.0\"\n\
             bellwether.io/team=\"pay\\\"ments\"\npod-template-hash=\"5d8f\"\n",
        )
        .expect("valid labels file");
        assert_eq!(file.get(Field::Service).as_deref(), Some("checkout"));
        assert_eq!(file.get(Field::Version).as_deref(), Some("2.4.0"));
        assert_eq!(file.get(Field::Team).as_deref(), Some("pay\"ments"));
        assert_eq!(file.get(Field::Environment), None);
    }

    #[test]
    fn names_the_bad_line_and_the_missing_file() {
        assert_eq!(parse_labels_file("a=\"1\"\nb=unquoted\n").err(), Some(2));
        assert_eq!(parse_labels_file("a=\"bad \\x escape\"").err(), Some(1));
        assert_eq!(parse_labels_file("no pair").err(), Some(1));
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_labels_file(&dir.path().join("labels")).expect_err("missing");
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
