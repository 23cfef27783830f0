//! What the agent presents to the collector: a bearer token sent as `authorization`
//! metadata on every export, and TLS settings (a custom CA, a client certificate for
//! mTLS). The token never appears in logs or `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A bearer token. `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The `authorization` metadata value: `Bearer <token>`.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;

    /// Keeps the text without surrounding whitespace (a token file's trailing newline);
    /// [`Token::check`] validates it, so that a parse error never echoes the token.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.trim().to_owned()))
    }
}

impl Token {
    /// A token must be non-empty printable ASCII without spaces, as HTTP/2 metadata
    /// requires. The reason given never contains the token.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.0.is_empty() {
            return Err("the token is empty");
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be printable ASCII without spaces");
        }
        Ok(())
    }
}

/// PEM bytes for TLS towards the collector. `Debug` shows only what is set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trusted CA certificates; without it, the Mozilla roots built into the binary.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and private key (mTLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Whether any TLS setting was given.
    pub fn is_set(&self) -> bool {
        self.ca_pem.is_some() || self.identity.is_some()
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.identity.is_some())
            .finish()
    }
}

/// Token and TLS settings for the exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub token: Option<Token>,
    pub tls: ClientTls,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {}: no PEM {expected} found", path.display())]
    NotPem {
        flag: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("invalid {origin}: {reason}")]
    BadToken {
        origin: String,
        reason: &'static str,
    },
}

/// Where the credentials come from (paths are read by [`Credentials::load`]).
#[derive(Debug, Clone, Default)]
pub struct CredentialSources<'a> {
    pub token: Option<&'a Token>,
    pub token_file: Option<&'a Path>,
    pub ca_file: Option<&'a Path>,
    /// Certificate and key, both or neither (the command line enforces it).
    pub client_cert: Option<(&'a Path, &'a Path)>,
}

impl Credentials {
    /// Reads the token file and PEM files.
    pub fn load(sources: &CredentialSources<'_>) -> Result<Self, CredentialsError> {
        let token = match (sources.token, sources.token_file) {
            (Some(token), _) => {
                token.check().map_err(|reason| CredentialsError::BadToken {
                    origin: "--token / BELLWETHER_TOKEN".to_owned(),
                    reason,
                })?;
                Some(token.clone())
            }
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
                        flag: "--token-file",
                        path: path.to_owned(),
                        source,
                    })?;
                let Ok(token) = text.parse::<Token>();
                token.check().map_err(|reason| CredentialsError::BadToken {
                    origin: format!("--token-file {}", path.display()),
                    reason,
                })?;
                Some(token)
            }
            (None, None) => None,
        };
        let ca_pem = sources
            .ca_file
            .map(|path| read_pem("--ca-file", path, "CERTIFICATE-----"))
            .transpose()?;
        let identity = sources
            .client_cert
            .map(|(cert, key)| {
                Ok((
                    read_pem("--client-cert", cert, "CERTIFICATE-----")?,
                    read_pem("--client-key", key, "PRIVATE KEY-----")?,
                ))
            })
            .transpose()?;
        Ok(Self {
            token,
            tls: ClientTls { ca_pem, identity },
        })
    }
}

/// Reads a PEM file that must hold at least one `-----BEGIN …<label>` block (TLS would
/// otherwise start with no certificate and fail every handshake).
fn read_pem(
    flag: &'static str,
    path: &Path,
    label: &'static str,
) -> Result<Vec<u8>, CredentialsError> {
    let pem = std::fs::read(path).map_err(|source| CredentialsError::Read {
        flag,
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&pem);
    let found = text.match_indices("-----BEGIN ").any(|(at, _)| {
        text[at..]
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(label))
    });
    if !found {
        return Err(CredentialsError::NotPem {
            flag,
            path: path.to_owned(),
            expected: label.trim_end_matches('-'),
        });
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_trimmed_validated_and_redacted() {
        let parse = |s: &str| s.parse::<Token>().unwrap_or_else(|e| match e {});
        let token = parse("  s3cret-token-value\n");
        assert_eq!(token.check(), Ok(()));
        assert_eq!(token.header_value(), "Bearer s3cret-token-value");
        assert!(!format!("{token:?}").contains("s3cret"));
        for bad in ["", " \n", "two words", "caf\u{e9}"] {
            assert!(parse(bad).check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loads_token_file_and_pem_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, "file-token-1234567\n").expect("write");
        let ca_path = dir.path().join("ca.pem");
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(&ca_path, ca).expect("write");
        let loaded = Credentials::load(&CredentialSources {
            token_file: Some(&token_path),
            ca_file: Some(&ca_path),
            ..CredentialSources::default()
        })
        .expect("loads");
        assert_eq!(
            loaded.token.map(|t| t.header_value()).as_deref(),
            Some("Bearer file-token-1234567")
        );
        assert_eq!(loaded.tls.ca_pem.as_deref(), Some(ca.as_bytes()));
        assert!(loaded.tls.identity.is_none());
        assert!(!format!("{:?}", loaded.tls).contains("BEGIN"));

        let key_path = dir.path().join("key.pem");
        std::fs::write(&key_path, "-----BEGIN EC PRIVATE KEY-----\nx\n").expect("write");
        let loaded = Credentials::load(&CredentialSources {
            client_cert: Some((&ca_path, &key_path)),
            ..CredentialSources::default()
        })
        .expect("loads");
        assert!(loaded.tls.identity.is_some());
        let err = Credentials::load(&CredentialSources {
            ca_file: Some(&key_path),
            ..CredentialSources::default()
        })
        .expect_err("a key is no CA certificate");
        assert!(err.to_string().contains("--ca-file"), "{err}");
        assert!(err.to_string().contains("no PEM CERTIFICATE"), "{err}");

        let missing = dir.path().join("missing.pem");
        let err = Credentials::load(&CredentialSources {
            client_cert: Some((&ca_path, &missing)),
            ..CredentialSources::default()
        })
        .expect_err("missing key");
        assert!(err.to_string().contains("--client-key"), "{err}");

        std::fs::write(&token_path, "\n").expect("write");
        let err = Credentials::load(&CredentialSources {
            token_file: Some(&token_path),
            ..CredentialSources::default()
        })
        .expect_err("empty token");
        assert!(err.to_string().contains("--token-file"), "{err}");
    }
}
