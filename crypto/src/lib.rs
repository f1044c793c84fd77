//! `peros-crypto` owns keys and sealing, nothing else.
//!
//! - One age X25519 identity per store ([`Keyring`]). On disk it is either wrapped with a
//!   passphrase (age's scrypt recipient) or kept as a plain age identity file with mode 0600.
//! - [`Keyring::seal`] / [`Keyring::open`] encrypt and decrypt one chunk with age.
//! - [`Keyring::object_name`] gives a chunk's keyed name: BLAKE3 in keyed mode (a MAC, used
//!   where the design says HMAC; it is faster than HMAC-SHA256 and has the same PRF guarantee)
//!   under a key derived from the identity. Equal content dedups within one store, never
//!   across stores, and names reveal nothing about content.
//!
//! It must not know about files, paths or object stores: callers hand it bytes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub use age::secrecy;

/// At least the length of an age file holding `plaintext_len` bytes for one X25519 recipient:
/// a header under 512 bytes, a 16-byte nonce, and a 16-byte tag per 64 KiB STREAM chunk
/// (one more for the last, possibly empty, chunk).
pub fn sealed_len_bound(plaintext_len: usize) -> usize {
    512 + 16 + (plaintext_len / (64 << 10) + 1) * 16 + plaintext_len
}

/// Length of a keyed object name in bytes.
pub const NAME_LEN: usize = 32;

/// scrypt work factor (N = 2^17) for the passphrase-wrapped identity: about a quarter of a
/// second here. age's own default targets one second; every CLI command that opens the store
/// without a daemon pays this, so we trade a little brute-force cost for responsiveness.
const SCRYPT_LOG_N: u8 = 17;

const NAME_KEY_CONTEXT: &str = "peros 2026-11 object names v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong passphrase for the key file {path}: nothing was changed; try again (or set PEROS_PASSPHRASE)")]
    WrongPassphrase { path: String },
    #[error("the key file {path} is protected by a passphrase: set PEROS_PASSPHRASE or run on a terminal")]
    PassphraseRequired { path: String },
    #[error("the key file {path} is not a valid age identity: {reason}")]
    BadKeyFile { path: String, reason: String },
    #[error("cannot read the key file {path}: {source}; run `peros init` to create a store")]
    KeyFileIo {
        path: String,
        source: std::io::Error,
    },
    #[error("chunk failed to decrypt (corrupt or tampered object): {0}")]
    Corrupt(String),
    #[error(
        "chunk decrypted but its content does not match its name (object swapped or tampered)"
    )]
    NameMismatch,
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// A chunk's keyed name: a MAC of its plaintext under the store's name key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjectName(pub [u8; NAME_LEN]);

impl ObjectName {
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(NAME_LEN * 2);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        // Only hex digits: `from_str_radix` alone also takes a sign ("+b" parsed as 0x0b, found
        // by fuzzing), which would give two spellings of one name.
        if s.len() != NAME_LEN * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; NAME_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

/// The secrets of one store: its age identity and the keys derived from it.
pub struct Keyring {
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
    name_key: Zeroizing<[u8; 32]>,
}

impl Keyring {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self::from_identity(age::x25519::Identity::generate())
    }

    fn from_identity(identity: age::x25519::Identity) -> Self {
        let secret = identity.to_string();
        let name_key = Zeroizing::new(blake3::derive_key(
            NAME_KEY_CONTEXT,
            secret.expose_secret().as_bytes(),
        ));
        let recipient = identity.to_public();
        Self {
            identity,
            recipient,
            name_key,
        }
    }

    /// The public half, `age1…`: safe to show.
    pub fn public_key(&self) -> String {
        self.recipient.to_string()
    }

    /// A 32-byte key for another purpose, derived from the identity (domain-separated by `context`).
    pub fn derive_key(&self, context: &str) -> Zeroizing<[u8; 32]> {
        let secret = self.identity.to_string();
        Zeroizing::new(blake3::derive_key(
            context,
            secret.expose_secret().as_bytes(),
        ))
    }

    /// Writes the identity to `path` with mode 0600, wrapped with `passphrase` when given.
    /// Refuses to overwrite an existing key file.
    pub fn save(&self, path: &Path, passphrase: Option<&SecretString>) -> Result<(), CryptoError> {
        let io_err = |source| CryptoError::KeyFileIo {
            path: path.display().to_string(),
            source,
        };
        let text = Zeroizing::new(format!(
            "# PerOS store identity (age X25519)\n# public key: {}\n{}\n",
            self.public_key(),
            self.identity.to_string().expose_secret()
        ));
        let bytes: Vec<u8> = match passphrase {
            None => text.as_bytes().to_vec(),
            Some(pass) => {
                let mut recipient = age::scrypt::Recipient::new(pass.clone());
                recipient.set_work_factor(SCRYPT_LOG_N);
                age::encrypt(&recipient, text.as_bytes())
                    .map_err(|e| CryptoError::Encrypt(e.to_string()))?
            }
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        file.write_all(&bytes).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        Ok(())
    }

    /// Whether the key file at `path` needs a passphrase to open.
    pub fn needs_passphrase(path: &Path) -> Result<bool, CryptoError> {
        let bytes = fs::read(path).map_err(|source| CryptoError::KeyFileIo {
            path: path.display().to_string(),
            source,
        })?;
        Ok(bytes.starts_with(b"age-encryption.org/"))
    }

    /// Loads the identity at `path`. `passphrase` is called only if the file is wrapped.
    pub fn load(
        path: &Path,
        passphrase: impl FnOnce() -> Option<SecretString>,
    ) -> Result<Self, CryptoError> {
        let shown = path.display().to_string();
        let bytes = Zeroizing::new(fs::read(path).map_err(|source| CryptoError::KeyFileIo {
            path: shown.clone(),
            source,
        })?);
        let text: Zeroizing<Vec<u8>> = if bytes.starts_with(b"age-encryption.org/") {
            let pass = passphrase().ok_or_else(|| CryptoError::PassphraseRequired {
                path: shown.clone(),
            })?;
            let identity = age::scrypt::Identity::new(pass);
            Zeroizing::new(age::decrypt(&identity, &bytes).map_err(|e| match e {
                age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                    CryptoError::WrongPassphrase {
                        path: shown.clone(),
                    }
                }
                other => CryptoError::BadKeyFile {
                    path: shown.clone(),
                    reason: other.to_string(),
                },
            })?)
        } else {
            bytes.clone()
        };
        let text = std::str::from_utf8(&text).map_err(|_| CryptoError::BadKeyFile {
            path: shown.clone(),
            reason: "not UTF-8".into(),
        })?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| CryptoError::BadKeyFile {
                path: shown.clone(),
                reason: "no AGE-SECRET-KEY line".into(),
            })?;
        let identity: age::x25519::Identity =
            line.parse().map_err(|e: &str| CryptoError::BadKeyFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self::from_identity(identity))
    }

    /// The keyed name of a chunk with this plaintext.
    pub fn object_name(&self, plaintext: &[u8]) -> ObjectName {
        ObjectName(*blake3::keyed_hash(&self.name_key, plaintext).as_bytes())
    }

    /// Encrypts one chunk to this store's identity.
    ///
    /// As `age::encrypt`, but the output is sized for the ciphertext up front: `age::encrypt`
    /// reserves only the plaintext's length, so the header and the tags made every sealed
    /// 4 MiB chunk reallocate to 8 MiB (a 4 MiB copy and fresh pages) at its last bytes.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut sealed = Vec::with_capacity(sealed_len_bound(plaintext.len()));
        self.seal_to(plaintext, &mut sealed)?;
        Ok(sealed)
    }

    /// [`Keyring::seal`] into `out` (a buffer the caller chose, such as an aligned one for
    /// direct I/O; [`sealed_len_bound`] bytes are enough).
    pub fn seal_to(&self, plaintext: &[u8], out: &mut impl Write) -> Result<(), CryptoError> {
        let fail = |e: &dyn std::fmt::Display| CryptoError::Encrypt(e.to_string());
        let encryptor = age::Encryptor::with_recipients(std::iter::once(
            &self.recipient as &dyn age::Recipient,
        ))
        .map_err(|e| fail(&e))?;
        let mut writer = encryptor.wrap_output(out).map_err(|e| fail(&e))?;
        writer.write_all(plaintext).map_err(|e| fail(&e))?;
        writer.finish().map_err(|e| fail(&e))?;
        Ok(())
    }

    /// Decrypts one chunk and checks that it is the chunk `expected` names.
    pub fn open(&self, ciphertext: &[u8], expected: &ObjectName) -> Result<Vec<u8>, CryptoError> {
        let plaintext = age::decrypt(&self.identity, ciphertext).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => CryptoError::Corrupt(
                "the object was not sealed with this store's key (wrong key or tampered header)"
                    .into(),
            ),
            other => CryptoError::Corrupt(other.to_string()),
        })?;
        if self.object_name(&plaintext) != *expected {
            return Err(CryptoError::NameMismatch);
        }
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = Keyring::generate();
        let data = b"hello chunk".repeat(1000);
        let name = k.object_name(&data);
        let sealed = k.seal(&data).unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"hello chunk"));
        assert_eq!(k.open(&sealed, &name).unwrap(), data);
        assert!(sealed.len() <= sealed_len_bound(data.len()));
        for len in [0, 1, 64 << 10, (64 << 10) + 1, 4 << 20] {
            let sealed = k.seal(&vec![1u8; len]).unwrap();
            assert!(
                sealed.len() <= sealed_len_bound(len),
                "{len}: {}",
                sealed.len()
            );
            assert_eq!(
                sealed.capacity(),
                sealed_len_bound(len),
                "never reallocated"
            );
        }
        let mut bad = sealed.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        assert!(matches!(k.open(&bad, &name), Err(CryptoError::Corrupt(_))));
        let other = k.object_name(b"other");
        assert!(matches!(
            k.open(&sealed, &other),
            Err(CryptoError::NameMismatch)
        ));
    }

    #[test]
    fn from_hex_takes_hex_digits_only() {
        let n = ObjectName([0xab; NAME_LEN]);
        assert_eq!(ObjectName::from_hex(&n.to_hex()), Some(n));
        assert_eq!(ObjectName::from_hex(&n.to_hex().to_uppercase()), Some(n));
        let signed = format!("+b{}", &n.to_hex()[2..]);
        assert_eq!(ObjectName::from_hex(&signed), None);
        assert_eq!(ObjectName::from_hex(&"g".repeat(64)), None);
        assert_eq!(ObjectName::from_hex("ab"), None);
    }

    #[test]
    fn names_differ_across_keyrings() {
        let a = Keyring::generate();
        let b = Keyring::generate();
        assert_ne!(a.object_name(b"same"), b.object_name(b"same"));
        assert_eq!(a.object_name(b"same"), a.object_name(b"same"));
        let other = Keyring::generate();
        let sealed = a.seal(b"x").unwrap();
        assert!(other.open(&sealed, &other.object_name(b"x")).is_err());
    }

    #[test]
    fn passphrase_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let k = Keyring::generate();
        k.save(&path, Some(&SecretString::from("pw".to_string())))
            .unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(Keyring::needs_passphrase(&path).unwrap());
        let back = Keyring::load(&path, || Some(SecretString::from("pw".to_string()))).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        let wrong = Keyring::load(&path, || Some(SecretString::from("nope".to_string())));
        assert!(matches!(wrong, Err(CryptoError::WrongPassphrase { .. })));
        assert!(matches!(
            Keyring::load(&path, || None),
            Err(CryptoError::PassphraseRequired { .. })
        ));
    }

    #[test]
    fn plain_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let k = Keyring::generate();
        k.save(&path, None).unwrap();
        assert!(!Keyring::needs_passphrase(&path).unwrap());
        let back = Keyring::load(&path, || None).unwrap();
        assert_eq!(back.object_name(b"a"), k.object_name(b"a"));
        assert!(k.save(&path, None).is_err(), "must not overwrite a key");
    }
}
