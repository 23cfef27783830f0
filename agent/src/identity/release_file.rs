//! The release file: `KEY=VALUE` lines written by a build or deploy step, e.g.
//!
//! ```text
//! # written by the pipeline
//! BELLWETHER_SERVICE=checkout
//! service.version="1.4.2"
//! export vcs.ref.head.revision='9f1c2e7'
//! ```
//!
//! Keys are either the `BELLWETHER_*` names or the resource attribute names; other keys
//! are ignored so the file can be a shared `.env`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Field;

/// Parsed release file: attribute name → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseFile {
    values: HashMap<String, String>,
}

impl ReleaseFile {
    /// Values already keyed by attribute name (the Kubernetes labels file's mapping).
    pub(super) fn from_attributes(values: HashMap<String, String>) -> Self {
        Self { values }
    }

    /// The value for `field`, whichever key spelling the file used.
    pub fn get(&self, field: Field) -> Option<String> {
        field.lookup_in(&self.values)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseFileError {
    #[error("cannot read release file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("release file {}: line {line}: expected KEY=VALUE", path.display())]
    Syntax { path: PathBuf, line: usize },
}

/// Reads and parses the release file at `path`.
pub fn load_release_file(path: &Path) -> Result<ReleaseFile, ReleaseFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReleaseFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_release_file(&text).map_err(|line| ReleaseFileError::Syntax {
        path: path.to_owned(),
        line,
    })
}

/// Parses release file text; the error is the 1-based number of the first bad line.
pub fn parse_release_file(text: &str) -> Result<ReleaseFile, usize> {
    let mut values = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=').ok_or(index + 1)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(index + 1);
        }
        let attribute = Field::ALL
            .iter()
            .find(|field| field.env_var() == key)
            .map_or(key, |field| field.attribute());
        values.insert(attribute.to_owned(), unquote(value.trim()).to_owned());
    }
    Ok(ReleaseFile { values })
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_key_spellings_quotes_and_comments() {
        let file = parse_release_file(
            "# comment\n\nBELLWETHER_SERVICE=checkout\nservice.version=\"1.4.2\"\n\
             export vcs.ref.head.revision='9f1c2e7'\n  BELLWETHER_TEAM = payments \nOTHER=x\n",
        )
        .expect("valid file");
        assert_eq!(file.get(Field::Service).as_deref(), Some("checkout"));
        assert_eq!(file.get(Field::Version).as_deref(), Some("1.4.2"));
        assert_eq!(file.get(Field::Commit).as_deref(), Some("9f1c2e7"));
        assert_eq!(file.get(Field::Team).as_deref(), Some("payments"));
        assert_eq!(file.get(Field::DeployId), None);
    }

    #[test]
    fn deprecated_environment_key_is_accepted() {
        let file = parse_release_file("deployment.environment=prod").expect("valid file");
        assert_eq!(file.get(Field::Environment).as_deref(), Some("prod"));
        let both =
            parse_release_file("deployment.environment=old\ndeployment.environment.name=new")
                .expect("valid file");
        assert_eq!(both.get(Field::Environment).as_deref(), Some("new"));
    }

    #[test]
    fn reports_bad_line_number() {
        assert_eq!(parse_release_file("A=1\n# ok\nnot a pair\n"), Err(3));
        assert_eq!(parse_release_file("=value"), Err(1));
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("release.env");
        let err = load_release_file(&path).expect_err("file does not exist");
        assert!(err.to_string().contains("release.env"), "{err}");
    }

    #[test]
    fn loads_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("release.env");
        std::fs::write(&path, "BELLWETHER_VERSION=2.0.0\n").expect("write");
        let file = load_release_file(&path).expect("loads");
        assert_eq!(file.get(Field::Version).as_deref(), Some("2.0.0"));
    }
}
