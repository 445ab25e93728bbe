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

/// Fewest distinct characters a token may have: `aaaa…` or `abab…` are guessable.
const MIN_DISTINCT_CHARS: usize = 8;
/// Shortest accepted token.
const MIN_TOKEN_LEN: usize = 16;

impl Auth {
    /// Tokens from entries. Refuses short, blank, whitespace-holding, low-entropy and
    /// duplicate tokens; messages name the entry (its number and owner), never the token.
    pub fn from_entries(entries: Vec<TokenEntry>) -> Result<Auth, String> {
        let mut tokens: Vec<([u8; 32], Caller)> = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            let which = format!("tokens entry {} (owner {:?})", i + 1, e.owner);
            if e.owner.is_empty() {
                return Err(format!("tokens entry {} has an empty owner", i + 1));
            }
            // A tenant's own fairness groups are `<owner>/<group>`: an owner named
            // `acme/eu` would share the group `eu` of owner `acme`.
            if e.owner.contains('/') || e.owner.len() > 256 || e.owner.chars().any(char::is_control)
            {
                return Err(format!(
                    "{which}: an owner is at most 256 bytes, without '/' or control characters"
                ));
            }
            if e.token.trim().is_empty() {
                return Err(format!("{which}: the token is blank"));
            }
            if e.token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "{which}: the token contains whitespace or control characters"
                ));
            }
            if e.token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{which}: the token is shorter than {MIN_TOKEN_LEN} characters"
                ));
            }
            let distinct: std::collections::HashSet<char> = e.token.chars().collect();
            if distinct.len() < MIN_DISTINCT_CHARS {
                return Err(format!(
                    "{which}: the token has fewer than {MIN_DISTINCT_CHARS} distinct characters \
                     (use a random one, e.g. `openssl rand -hex 32`)"
                ));
            }
            let d = digest(&e.token);
            // The same token twice would make one caller's rights depend on file order.
            if let Some(j) = tokens.iter().position(|(other, _)| *other == d) {
                return Err(format!(
                    "{which}: duplicate of the token of tokens entry {} (owner {:?}); \
                     every token must be unique",
                    j + 1,
                    tokens[j].1.owner
                ));
            }
            tokens.push((
                d,
                Caller {
                    owner: e.owner,
                    admin: e.role == Role::Admin,
                },
            ));
        }
        Ok(Auth::Tokens(tokens))
    }

    /// Parses a tokens file (TOML with `[[tokens]]` entries of `token`, `owner`, `role`).
    /// A syntax error names its line, never that line's text (it may be a token).
    pub fn from_toml(text: &str) -> Result<Auth, String> {
        let file: TokensFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
            format!("invalid tokens file{at}: {}", redact_quoted(e.message()))
        })?;
        Self::from_entries(file.tokens)
    }

    /// A warning when the file at `path` is readable or writable by group or others.
    pub fn file_mode_warning(path: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "the tokens file {} is accessible to group or others (mode {mode:o}); \
                 run chmod 600 {}",
                path.display(),
                path.display()
            )
        })
    }

    /// Reads a tokens file; warns (in the log) when others can read it.
    pub fn from_file(path: &Path) -> Result<Auth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some(warning) = Self::file_mode_warning(path) {
            tracing::warn!("{warning}");
        }
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
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

/// The parser quotes the values it rejects (`` `…` `` or `"…"`); a rejected value
/// may be a token, so quoted text is replaced.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
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
            Auth::from_toml("[[tokens]]\ntoken = \"long-enough-token-xyz\"\nowner = \"acme/eu\"")
                .is_err()
        );
        assert!(
            Auth::from_toml(
                "[[tokens]]\ntoken = \"long-enough-token-xyz\"\nowner = \"x\"\nrole = \"god\""
            )
            .is_err()
        );
    }
}
