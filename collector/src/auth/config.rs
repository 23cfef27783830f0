//! `[[auth.tokens]]` in the collector's config file:
//!
//! ```toml
//! [[auth.tokens]]
//! name = "ci"                 # shown in logs instead of the token
//! scopes = ["deploy"]         # ingest, deploy, read, admin
//! sha256 = "9f86d08…"         # hex SHA-256 of the token (`printf %s TOKEN | sha256sum`)
//! # or: token_env = "BELLWETHER_CI_TOKEN"   (the token itself, from the environment)
//! # or: token_file = "secrets/ci.token"     (relative to the config file; trimmed)
//! ```
//!
//! Exactly one of `sha256`, `token_env`, `token_file` per token. Errors name the key and
//! never show a token.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Scope, Token, Tokens};
use bellwether_model::config::ConfigError;

/// Tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_BYTES: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub scopes: Vec<String>,
    pub sha256: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

fn invalid(key: String, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Validates `[auth]`; `base` is the config file's directory (for `token_file`), `env`
/// looks up an environment variable.
pub fn load(
    raw: Option<&RawAuth>,
    base: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Tokens, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Tokens::default());
    };
    let mut tokens = Vec::with_capacity(raw.tokens.len());
    for (i, t) in raw.tokens.iter().enumerate() {
        let key = |field: &str| format!("auth.tokens[{i}].{field}");
        let name = t.name.trim();
        if name.is_empty() {
            return Err(invalid(key("name"), &t.name, "must not be empty"));
        }
        if tokens.iter().any(|other: &Token| other.name == name) {
            return Err(invalid(key("name"), name, "is used by another token"));
        }
        if t.scopes.is_empty() {
            return Err(invalid(
                key("scopes"),
                "[]",
                "name at least one of ingest, deploy, read, admin",
            ));
        }
        let mut scopes = Vec::with_capacity(t.scopes.len());
        for scope in &t.scopes {
            let parsed = Scope::parse(scope.trim()).ok_or_else(|| {
                invalid(
                    key("scopes"),
                    scope,
                    "unknown scope: use ingest, deploy, read or admin",
                )
            })?;
            scopes.push(parsed);
        }
        let token = match (&t.sha256, &t.token_env, &t.token_file) {
            (Some(hex_digest), None, None) => {
                let digest = hex::decode(hex_digest.trim())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        invalid(
                            key("sha256"),
                            "",
                            "expected 64 hex digits (a SHA-256 digest)",
                        )
                    })?;
                Token::from_digest(name, &scopes, digest)
            }
            (None, Some(var), None) => {
                let secret = env(var).unwrap_or_default();
                let secret = secret.trim();
                check_secret(&key("token_env"), var, secret)?;
                Token::from_secret(name, &scopes, secret)
            }
            (None, None, Some(file)) => {
                let path = match base {
                    Some(base) if file.is_relative() => base.join(file),
                    _ => file.clone(),
                };
                let shown = path.display().to_string();
                let secret = std::fs::read_to_string(&path)
                    .map_err(|e| invalid(key("token_file"), &shown, e.to_string()))?;
                let secret = secret.trim();
                check_secret(&key("token_file"), &shown, secret)?;
                Token::from_secret(name, &scopes, secret)
            }
            _ => {
                return Err(invalid(
                    key("sha256"),
                    "",
                    "set exactly one of sha256, token_env, token_file",
                ))
            }
        };
        tokens.push(token);
    }
    Ok(Tokens::new(tokens))
}

fn check_secret(key: &str, source: &str, secret: &str) -> Result<(), ConfigError> {
    if secret.is_empty() {
        return Err(invalid(
            key.to_owned(),
            source,
            "the token is empty or not set",
        ));
    }
    if secret.len() < MIN_TOKEN_BYTES {
        return Err(invalid(
            key.to_owned(),
            source,
            format!("the token is shorter than {MIN_TOKEN_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Need;

    fn parse(text: &str) -> Result<RawAuth, String> {
        #[derive(Deserialize)]
        struct File {
            auth: RawAuth,
        }
        toml::from_str::<File>(text)
            .map(|f| f.auth)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn hash_env_and_file_tokens_load() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("ops.token"), "admin-token-from-file\n")
            .map_err(|e| e.to_string())?;
        // sha256("deploy-token-0123456789")
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            b"deploy-token-0123456789",
        ));
        let raw = parse(&format!(
            "[[auth.tokens]]\nname = \"ci\"\nscopes = [\"deploy\"]\nsha256 = \"{digest}\"\n\
             [[auth.tokens]]\nname = \"agents\"\nscopes = [\"ingest\"]\ntoken_env = \"AGENT_TOKEN\"\n\
             [[auth.tokens]]\nname = \"ops\"\nscopes = [\"admin\"]\ntoken_file = \"ops.token\"\n"
        ))?;
        let env =
            |name: &str| (name == "AGENT_TOKEN").then(|| "ingest-token-0123456789".to_owned());
        let tokens = load(Some(&raw), Some(dir.path()), &env).map_err(|e| e.to_string())?;
        assert_eq!(tokens.len(), 3);
        let ingest = Need::AnyOf(&[Scope::Ingest]);
        let deploy = Need::AnyOf(&[Scope::Deploy]);
        assert_eq!(
            tokens.check(Some(b"Bearer deploy-token-0123456789"), deploy),
            Ok(Some("ci"))
        );
        assert_eq!(
            tokens.check(Some(b"Bearer ingest-token-0123456789"), ingest),
            Ok(Some("agents"))
        );
        assert_eq!(
            tokens.check(Some(b"Bearer admin-token-from-file"), ingest),
            Ok(Some("ops"))
        );
        Ok(())
    }

    #[test]
    fn mistakes_name_the_key_and_hide_the_token() -> Result<(), String> {
        let none = |_: &str| None;
        let short = |_: &str| Some("tiny-secret".to_owned());
        let cases = [
            (
                "name = \"a\"\nscopes = [\"root\"]\nsha256 = \"00\"",
                "auth.tokens[0].scopes",
                &none as &dyn Fn(&str) -> Option<String>,
            ),
            (
                "name = \"a\"\nscopes = [\"read\"]\nsha256 = \"00\"",
                "auth.tokens[0].sha256",
                &none,
            ),
            (
                "name = \"a\"\nscopes = [\"read\"]",
                "auth.tokens[0].sha256",
                &none,
            ),
            (
                "name = \"a\"\nscopes = []\ntoken_env = \"X\"",
                "auth.tokens[0].scopes",
                &none,
            ),
            (
                "name = \"a\"\nscopes = [\"read\"]\ntoken_env = \"X\"",
                "auth.tokens[0].token_env",
                &none,
            ),
            (
                "name = \"a\"\nscopes = [\"read\"]\ntoken_env = \"X\"",
                "auth.tokens[0].token_env",
                &short,
            ),
        ];
        for (body, key, env) in cases {
            let raw = parse(&format!("[[auth.tokens]]\n{body}\n"))?;
            let err = load(Some(&raw), None, env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(key), "{body}: {err}");
            assert!(!err.contains("tiny-secret"), "{err}");
        }
        assert!(
            parse("[[auth.tokens]]\nname = \"a\"\nscopes = [\"read\"]\ntoken = \"x\"\n").is_err()
        );
        Ok(())
    }
}
