//! Expands the configured globs into the regular files they match now.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// Checks every pattern once, at start-up.
pub fn validate(patterns: &[String]) -> Result<(), String> {
    for pattern in patterns {
        glob::Pattern::new(pattern).map_err(|e| format!("invalid --file glob {pattern:?}: {e}"))?;
    }
    Ok(())
}

/// Regular files (symbolic links followed) matching any pattern, each path once.
pub fn matching_files(patterns: &[String]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for pattern in patterns {
        let Ok(paths) = glob::glob(pattern) else {
            continue;
        };
        for path in paths.flatten() {
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                out.insert(path);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_of_several_globs_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["a.log", "b.log", "c.txt"] {
            std::fs::write(dir.path().join(name), b"x\n").expect("write");
        }
        std::fs::create_dir(dir.path().join("d.log")).expect("mkdir");
        let base = dir.path().display();
        let patterns = vec![
            format!("{base}/*.log"),
            format!("{base}/a.*"),
            format!("{base}/*.txt"),
        ];
        validate(&patterns).expect("valid");
        let found: Vec<String> = matching_files(&patterns)
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(found, ["a.log", "b.log", "c.txt"]);
        assert!(validate(&["/var/log/[".to_owned()]).is_err());
    }
}
