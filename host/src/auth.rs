//! AUTH's user store: a listener's users and their passwords' Argon2 hashes (PHC strings,
//! as `argon2 SALT -id -e` or any Argon2 library writes them). Passwords are never kept.
//! Checking a password is slow on purpose; it runs off the runtime's threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use serde::Deserialize;
use wasmtpd_protocol::sasl::Credentials;

/// A listener's `[listener.auth]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name → Argon2 hash of the password (`$argon2id$v=19$m=...`). Plugins with
    /// the auth hook are asked first; this table answers for the users they leave.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// MAIL needs AUTH first (a submission port): `530 5.7.0` until then.
    #[serde(default)]
    pub required: bool,
}

pub struct Authenticator {
    users: Arc<BTreeMap<String, String>>,
    /// Checked for unknown users, so that they take as long as known ones.
    decoy: Arc<String>,
    pub required: bool,
}

impl Authenticator {
    /// Checks every hash; fails naming the user whose hash is not an Argon2 PHC string.
    pub fn new(config: &AuthConfig) -> anyhow::Result<Authenticator> {
        let mut params = None;
        for (user, hash) in &config.users {
            let parsed = PasswordHash::new(hash)
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("auth.users.{user} is not an Argon2 hash ($argon2id$...)"))?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                anyhow::bail!("auth.users.{user} is a {} hash; Argon2 is wanted", parsed.algorithm);
            }
            params.get_or_insert(Params::try_from(&parsed).map_err(|e| anyhow!("auth.users.{user}: {e}"))?);
        }
        // Hashed with the users' own parameters; with no users there is nothing to hide.
        let decoy = match params {
            Some(params) => {
                let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                let salt = SaltString::from_b64("ZGVjb3lzYWx0ZGVjb3k").expect("a valid salt");
                hasher
                    .hash_password(b"not anyone's password", &salt)
                    .map_err(|e| anyhow!("{e}"))?
                    .to_string()
            }
            None => String::new(),
        };
        Ok(Authenticator {
            users: Arc::new(config.users.clone()),
            decoy: Arc::new(decoy),
            required: config.required,
        })
    }

    /// Whether the password is the user's.
    pub async fn verify(&self, credentials: &Credentials) -> bool {
        if self.users.is_empty() {
            return false;
        }
        let (users, decoy) = (Arc::clone(&self.users), Arc::clone(&self.decoy));
        let credentials = credentials.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let known = users.get(&credentials.identity);
            let hash = known.unwrap_or(&decoy);
            let matches = PasswordHash::new(hash).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(credentials.password.as_bytes(), &hash)
                    .is_ok()
            });
            known.is_some() && matches
        });
        checked.await.unwrap_or(false)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A hash with small parameters: quick in unoptimized test builds.
    pub fn quick_hash(password: &str) -> String {
        let params = Params::new(64, 1, 1, None).unwrap();
        let salt = SaltString::from_b64("dGVzdHNhbHR0ZXN0c2FsdA").unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn credentials(identity: &str, password: &str) -> Credentials {
        Credentials {
            identity: identity.into(),
            password: password.into(),
        }
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes() {
        let config = AuthConfig {
            users: [("alice".to_owned(), quick_hash("s3cret"))].into(),
            required: false,
        };
        let auth = Authenticator::new(&config).unwrap();
        assert!(auth.verify(&credentials("alice", "s3cret")).await);
        assert!(!auth.verify(&credentials("alice", "wrong")).await);
        assert!(!auth.verify(&credentials("bob", "s3cret")).await);
        // The decoy's own password opens nothing.
        assert!(!auth.verify(&credentials("bob", "not anyone's password")).await);
    }

    #[test]
    fn a_hash_that_is_not_argon2_is_refused_with_the_user_named() {
        for bad in ["s3cret", "$2b$12$abcdefghijklmnopqrstuv"] {
            let config = AuthConfig {
                users: [("alice".to_owned(), bad.to_owned())].into(),
                required: true,
            };
            let error = format!("{:#}", Authenticator::new(&config).err().expect("refused"));
            assert!(error.contains("auth.users.alice"), "{error}");
        }
    }
}
