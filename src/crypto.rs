//! Secrets: provider credentials sealed with AES-256-GCM under the master key, API keys kept
//! only as SHA-256 hashes, passwords as argon2id hashes.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A string that never shows itself in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("a sealed secret could not be opened (wrong master key or damaged data)")]
    Open,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The 32-byte key that seals provider credentials.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(*****)")
    }
}

const SEALED_PREFIX: &str = "v1:";

impl MasterKey {
    /// From base64 or hex text (`MODELROUTER_MASTER_KEY`).
    pub fn parse(text: &str) -> Result<MasterKey, CryptoError> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| STANDARD.decode(text).ok())
            .ok_or_else(|| CryptoError::MasterKey("neither hex nor base64".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::MasterKey("must be 32 bytes".into()))?;
        Ok(MasterKey(key))
    }

    /// Reads `master.key` in the data directory, creating it (mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<MasterKey, CryptoError> {
        let path = data_dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => MasterKey::parse(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                create_private_dir(data_dir).map_err(|e| CryptoError::MasterKey(e.to_string()))?;
                write_private(&path, &hex::encode(key))
                    .map_err(|e| CryptoError::MasterKey(e.to_string()))?;
                Ok(MasterKey(key))
            }
            Err(error) => Err(CryptoError::MasterKey(error.to_string())),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Secret, CryptoError> {
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .ok_or(CryptoError::Open)?;
        if bytes.len() < 12 {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let cipher = Aes256Gcm::new((&self.0).into());
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain)
            .map(Secret)
            .map_err(|_| CryptoError::Open)
    }

    /// A keyed hash of a secret: tells "same credential" without storing it.
    pub fn fingerprint(&self, secret: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(b"credential-fingerprint:");
        mac.update(secret.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// HMAC-SHA256 of `message` under a key derived from the master key for one `purpose`
    /// (e.g. `"receipt-verification-v1"`), so a MAC made for one use never checks out for another
    /// and never equals a `fingerprint`.
    pub fn mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        // The derived key is HMAC(master, "mac-key:" + purpose). `fingerprint` feeds the master
        // key "credential-fingerprint:…", so the two never share an input.
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        derive.update(b"mac-key:");
        derive.update(purpose.as_bytes());
        let derived = derive.finalize().into_bytes();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&derived)
            .expect("HMAC accepts keys of any length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

/// Writes a new file that only its owner may read (0600, whatever the umask).
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())
}

/// Creates `dir` and its missing parents, the new ones open to their owner only (0700).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Lower-case hex SHA-256 of an API key: the only form in which keys are stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new platform API key: `sk-mr-` and 32 random bytes, base64url.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("sk-mr-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The part of a key shown in lists after creation.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

/// A random password for one-time use (`admin create`).
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_with_the_same_key() {
        let key = MasterKey([7; 32]);
        let sealed = key.seal("sk-upstream-secret");
        assert!(!sealed.contains("sk-upstream-secret"));
        assert_eq!(
            key.open(&sealed).expect("opens").expose(),
            "sk-upstream-secret"
        );
        assert!(MasterKey([8; 32]).open(&sealed).is_err());
        assert_eq!(format!("{:?}", Secret::new("x")), "*****");
    }

    #[test]
    fn macs_are_separated_by_purpose_and_key() {
        let key = MasterKey([7; 32]);
        let receipt = key.mac("receipt", b"R-1");
        assert_eq!(receipt, key.mac("receipt", b"R-1"));
        assert_ne!(receipt, key.mac("other", b"R-1"));
        assert_ne!(receipt, key.mac("receipt", b"R-2"));
        assert_ne!(receipt, MasterKey([8; 32]).mac("receipt", b"R-1"));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
    }
}
