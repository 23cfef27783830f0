//! Who may do what: bearer tokens with scopes, checked on every listener.
//!
//! # Layout
//!
//! - [`config`]: `[[auth.tokens]]` in the collector's TOML file (a SHA-256 hash, an
//!   environment variable or a file per token) validated into [`Tokens`].
//! - [`policy`]: the scopes each HTTP route and gRPC method accepts.
//! - [`http`]: an axum middleware for the HTTP API and OTLP/HTTP listeners;
//!   [`grpc`]: a tower layer for the gRPC listener.
//!
//! A presented token is hashed with SHA-256 and the digest compared in constant time with
//! every configured digest, so neither the comparison nor the configuration holds the
//! token itself. Tokens are never logged; only a token's name is.
//!
//! No tokens configured means no authentication; [`exposure`] then refuses to serve on
//! anything but loopback unless told `--insecure`.

pub mod config;
pub mod grpc;
pub mod http;
pub mod policy;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do. `admin` implies every other scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Send OTLP logs and traces.
    Ingest,
    /// Record deployments and read release health: what a pipeline needs.
    Deploy,
    /// The web UI and the read API.
    Read,
    /// Acknowledge alerts, manage silences; implies all other scopes.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Deploy, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Deploy => "deploy",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone (liveness and readiness probes).
    Open,
    /// A token holding one of these scopes (or `admin`).
    AnyOf(&'static [Scope]),
}

/// One configured token: its name (for logs), scopes and the SHA-256 of its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub scopes: Vec<Scope>,
    digest: [u8; 32],
}

impl Token {
    /// A token given by its value (hashed here; the value is not kept).
    pub fn from_secret(name: impl Into<String>, scopes: &[Scope], secret: &str) -> Self {
        Self::from_digest(name, scopes, Sha256::digest(secret.as_bytes()).into())
    }

    /// A token given by the SHA-256 digest of its value.
    pub fn from_digest(name: impl Into<String>, scopes: &[Scope], digest: [u8; 32]) -> Self {
        Self {
            name: name.into(),
            scopes: scopes.to_vec(),
            digest,
        }
    }

    fn allows(&self, need: &[Scope]) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == Scope::Admin || need.contains(s))
    }
}

impl fmt::Debug for Token {
    // The digest stays out of logs and debug output too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The configured tokens; empty means authentication is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens(Arc<[Token]>);

/// Why a request was turned away.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("token {token:?} lacks the {needs} scope")]
    Forbidden { token: String, needs: String },
}

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Self {
        Self(tokens.into())
    }

    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks an `Authorization` header value against what the request needs; returns the
    /// matching token's name (None when no token was needed).
    pub fn check(&self, authorization: Option<&[u8]>, need: Need) -> Result<Option<&str>, Denied> {
        let scopes = match need {
            Need::Open => return Ok(None),
            Need::AnyOf(_) if !self.is_enabled() => return Ok(None),
            Need::AnyOf(scopes) => scopes,
        };
        let presented = authorization.and_then(credential).ok_or(Denied::Missing)?;
        let token = self.find(&presented).ok_or(Denied::Invalid)?;
        if token.allows(scopes) {
            Ok(Some(&token.name))
        } else {
            let needs = scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or ");
            Err(Denied::Forbidden {
                token: token.name.clone(),
                needs,
            })
        }
    }

    /// Compares the presented token's digest with every configured one in constant time
    /// (no early exit, so timing does not tell which or whether one matched).
    fn find(&self, presented: &[u8]) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for token in self.0.iter() {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        found
    }
}

/// The token of `Bearer <token>`, or the password of `Basic base64(user:token)` (so a
/// browser's login prompt can open the UI).
fn credential(header: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest)?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        let password = decoded.get(colon + 1..)?.to_vec();
        return (!password.is_empty()).then_some(password);
    }
    None
}

/// Standard base64 with optional padding; None on anything else (or on more than 4 KiB).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if text.len() > 4096 {
        return None;
    }
    base64::Engine::decode(&STANDARD_ANY_PADDING, text).ok()
}

/// Refuses a listener on a non-loopback address while no tokens are configured, unless
/// `insecure`. The error is one line that says what to do.
pub fn exposure(
    tokens: &Tokens,
    listeners: &[(&str, SocketAddr)],
    insecure: bool,
) -> Result<(), String> {
    if tokens.is_enabled() || insecure {
        return Ok(());
    }
    match listeners.iter().find(|(_, addr)| !addr.ip().is_loopback()) {
        None => Ok(()),
        Some((kind, addr)) => Err(format!(
            "refusing to serve {kind} on non-loopback address {addr} without tokens: \
             configure [[auth.tokens]] or pass --insecure"
        )),
    }
}

impl From<Denied> for crate::error::Error {
    fn from(denied: crate::auth::Denied) -> Self {
        match denied {
            Denied::Forbidden { .. } => Self::PermissionDenied(denied.to_string()),
            _ => Self::Unauthenticated(denied.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(vec![
            Token::from_secret("agents", &[Scope::Ingest], "ingest-secret"),
            Token::from_secret("ci", &[Scope::Deploy], "deploy-secret"),
            Token::from_secret("ops", &[Scope::Admin], "admin-secret"),
        ])
    }

    const DEPLOY: Need = Need::AnyOf(&[Scope::Deploy]);

    #[test]
    fn scopes_decide() {
        let t = tokens();
        assert_eq!(
            t.check(Some(b"Bearer deploy-secret"), DEPLOY),
            Ok(Some("ci"))
        );
        assert_eq!(
            t.check(Some(b"bearer  admin-secret "), DEPLOY),
            Ok(Some("ops"))
        );
        assert_eq!(t.check(None, DEPLOY), Err(Denied::Missing));
        assert_eq!(t.check(Some(b"Bearer nope"), DEPLOY), Err(Denied::Invalid));
        assert_eq!(
            t.check(Some(b"Token deploy-secret"), DEPLOY),
            Err(Denied::Missing)
        );
        assert!(matches!(
            t.check(Some(b"Bearer ingest-secret"), DEPLOY),
            Err(Denied::Forbidden { token, .. }) if token == "agents"
        ));
        assert_eq!(t.check(None, Need::Open), Ok(None));
        assert_eq!(Tokens::default().check(None, DEPLOY), Ok(None));
    }

    #[test]
    fn basic_auth_password_is_the_token() {
        // "x:deploy-secret"
        let header = b"Basic eDpkZXBsb3ktc2VjcmV0";
        assert_eq!(tokens().check(Some(header), DEPLOY), Ok(Some("ci")));
        assert_eq!(base64_decode("YWJj"), Some(b"abc".to_vec()));
        assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("Y!=="), None);
    }

    #[test]
    fn debug_output_hides_digests() {
        let shown = format!("{:?}", tokens());
        assert!(shown.contains("agents"));
        let digest = hex::encode(Sha256::digest(b"ingest-secret"));
        assert!(!shown.contains(&digest[..8]));
    }

    #[test]
    fn non_loopback_without_tokens_is_refused() {
        let lo: SocketAddr = ([127, 0, 0, 1], 8480).into();
        let any: SocketAddr = ([0, 0, 0, 0], 8480).into();
        let none = Tokens::default();
        assert!(exposure(&none, &[("http", lo)], false).is_ok());
        let err = exposure(&none, &[("http", lo), ("otlp-grpc", any)], false).err();
        assert!(err.is_some_and(|e| e.contains("0.0.0.0:8480") && e.contains("--insecure")));
        assert!(exposure(&none, &[("http", any)], true).is_ok());
        assert!(exposure(&tokens(), &[("http", any)], false).is_ok());
    }
}
