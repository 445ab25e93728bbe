//! Bearer tokens → callers. Tokens are kept only as SHA-256 digests and compared
//! in constant time; a caller sees and acts on its own owner's tasks, admins on all.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub owner: String,
    pub admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// One `[[tokens]]` entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub token: String,
    pub owner: String,
    #[serde(default = "user")]
    pub role: Role,
}

fn user() -> Role {
    Role::User
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// Bearer tokens (digests only).
    Tokens(Vec<([u8; 32], Caller)>),
    /// Every request is an admin called `anonymous` (`--insecure-no-auth`, local demos only).
    Disabled,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Tokens(t) => write!(f, "Auth::Tokens({} tokens)", t.len()),
            Auth::Disabled => f.write_str("Auth::Disabled"),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// Tokens from entries.
    pub fn from_entries(entries: Vec<TokenEntry>) -> Result<Auth, String> {
        let mut tokens = Vec::new();
        for e in entries {
            if e.token.len() < 16 {
                return Err(format!(
                    "the token of owner {:?} is shorter than 16 characters",
                    e.owner
                ));
            }
            if e.owner.is_empty() {
                return Err("a token has an empty owner".into());
            }
            tokens.push((
                digest(&e.token),
                Caller {
                    owner: e.owner,
                    admin: e.role == Role::Admin,
                },
            ));
        }
        Ok(Auth::Tokens(tokens))
    }

    /// Parses a tokens file (TOML with `[[tokens]]` entries of `token`, `owner`, `role`).
    pub fn from_toml(text: &str) -> Result<Auth, String> {
        let file: TokensFile =
            toml::from_str(text).map_err(|e| format!("invalid tokens file: {e}"))?;
        Self::from_entries(file.tokens)
    }

    pub fn from_file(path: &Path) -> Result<Auth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_toml(&text)
    }

    /// The caller behind a presented token; every entry is compared, in constant time.
    pub fn caller(&self, presented: Option<&str>) -> Option<Caller> {
        match self {
            Auth::Disabled => Some(Caller {
                owner: "anonymous".into(),
                admin: true,
            }),
            Auth::Tokens(tokens) => {
                let presented = digest(presented?);
                let mut found = None;
                for (d, caller) in tokens {
                    if bool::from(d.ct_eq(&presented)) {
                        found = Some(caller.clone());
                    }
                }
                found
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_callers() {
        let auth = Auth::from_toml(
            r#"
            [[tokens]]
            token = "alice-secret-0123456789"
            owner = "alice"
            [[tokens]]
            token = "root-secret-0123456789"
            owner = "ops"
            role = "admin"
            "#,
        )
        .unwrap();
        assert_eq!(
            auth.caller(Some("alice-secret-0123456789")),
            Some(Caller {
                owner: "alice".into(),
                admin: false
            })
        );
        assert!(auth.caller(Some("root-secret-0123456789")).unwrap().admin);
        assert_eq!(auth.caller(Some("nope")), None);
        assert_eq!(auth.caller(None), None);
        assert!(Auth::from_toml("[[tokens]]\ntoken = \"short\"\nowner = \"x\"").is_err());
        assert!(
            Auth::from_toml(
                "[[tokens]]\ntoken = \"long-enough-token-xyz\"\nowner = \"x\"\nrole = \"god\""
            )
            .is_err()
        );
    }
}
