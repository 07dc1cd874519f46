//! TLS for the HTTPS listener: certificates loaded by name from [`TlsConfig`],
//! one picked per handshake from the client's SNI, and swapped whole on reload.
//!
//! [`CertStore::load`] reads every configured pair; a [`Resolver`] holds the
//! store in force and answers rustls; [`server_config`] builds the listener's
//! rustls configuration around it.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{debug, info, warn};

use crate::config::TlsConfig;

/// The certificate file [`write_self_signed`] writes into its directory.
const SELF_SIGNED_CERT: &str = "self-signed.pem";
/// The key file [`write_self_signed`] writes beside it.
const SELF_SIGNED_KEY: &str = "self-signed.key";

/// Why certificates could not be loaded or written. Each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: io::Error },
    /// A file is not well-formed PEM.
    #[error("{path}: malformed PEM: {reason}")]
    Pem { path: PathBuf, reason: pem::Error },
    /// A certificate file holds no `CERTIFICATE` section.
    #[error("{path}: no certificate found")]
    NoCertificate { path: PathBuf },
    /// A key file holds no private key section.
    #[error("{path}: no private key found")]
    NoKey { path: PathBuf },
    /// The private key is of a kind rustls cannot sign with.
    #[error("{path}: unusable private key: {reason}")]
    BadKey {
        path: PathBuf,
        reason: rustls::Error,
    },
    /// The leaf certificate is not a valid X.509 v3 certificate.
    #[error("{path}: unreadable certificate: {reason}")]
    BadCertificate {
        path: PathBuf,
        reason: webpki::Error,
    },
    /// The certificate was not issued for this private key.
    #[error("{cert} does not match its key {key}: {reason}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: rustls::Error,
    },
    /// A named certificate has no DNS name to be served for.
    #[error("{path}: no DNS name in the certificate's SubjectAltName")]
    NoNames { path: PathBuf },
    /// rcgen could not make the self-signed certificate.
    #[error("cannot generate a certificate for {names:?}: {reason}")]
    Generate {
        names: Vec<String>,
        reason: rcgen::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: io::Error },
    /// rustls refused the server configuration.
    #[error("TLS server configuration refused: {reason}")]
    Config { reason: rustls::Error },
}

/// Certificates by the names they cover: exact names, `*.` wildcards and a
/// default for every other name and for clients that send no SNI.
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by what follows `*.`, so `*.example.com` is `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

/// One certificate chain with its key and the DNS names its leaf covers.
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
}

impl CertStore {
    /// Reads the default pair, each `certs` pair, then each `name.pem` +
    /// `name.key` of `cert_dir` (by file name). A later file serving a name
    /// already served wins. Any unreadable or mismatched pair fails it all.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        // The default also serves its own names, ahead of others' wildcards.
        let default = load_pair(&config.default_cert, &config.default_key)?;
        let mut store = CertStore {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: default.key.clone(),
        };
        store.add(&config.default_cert, default);

        // Listed pairs, then the directory's.
        for pair in &config.certs {
            store.add_named(&pair.cert, &pair.key)?;
        }
        if let Some(dir) = &config.cert_dir {
            for (cert, key) in dir_pairs(dir)? {
                store.add_named(&cert, &key)?;
            }
        }
        Ok(store)
    }

    /// The certificate for a client that sent `sni`: an exact name first
    /// (case-insensitive, one trailing dot ignored), then a wildcard covering
    /// exactly one more label, then the default.
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.map(normalize) else {
            return self.default.clone();
        };
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        let parent = match name.split_once('.') {
            Some((label, parent)) if !label.is_empty() => Some(parent),
            _ => None,
        };
        parent
            .and_then(|parent| self.wildcard.get(parent))
            .unwrap_or(&self.default)
            .clone()
    }

    /// How many names (exact and wildcard) have a certificate of their own.
    pub fn name_count(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Loads a pair that must cover at least one name, and indexes it.
    fn add_named(&mut self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let loaded = load_pair(cert, key)?;
        if loaded.names.is_empty() {
            return Err(TlsError::NoNames { path: cert.into() });
        }
        self.add(cert, loaded);
        Ok(())
    }

    /// Indexes `loaded` under each of its names, replacing earlier holders.
    fn add(&mut self, path: &Path, loaded: Loaded) {
        for name in loaded.names {
            let earlier = match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.insert(parent.to_owned(), loaded.key.clone()),
                None => self.exact.insert(name.clone(), loaded.key.clone()),
            };
            if earlier.is_some() {
                warn!(tls.name = %name, tls.cert = %path.display(),
                    "name also served by an earlier certificate; this one wins");
            }
        }
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("exact", &self.exact.keys())
            .field("wildcard", &self.wildcard.keys())
            .finish_non_exhaustive()
    }
}

/// The certificates in force, replaceable while the listener runs: each new
/// handshake reads the current store, open connections keep what they got.
#[derive(Debug)]
pub struct Resolver(ArcSwap<CertStore>);

impl Resolver {
    /// A resolver serving `store` until the next [`Resolver::replace`].
    pub fn new(store: CertStore) -> Self {
        Self(ArcSwap::from_pointee(store))
    }

    /// Serves `store` to every handshake from now on.
    pub fn replace(&self, store: CertStore) {
        info!(tls.names = store.name_count(), "TLS certificates replaced");
        self.0.store(Arc::new(store));
    }

    /// The store in force.
    pub fn current(&self) -> Arc<CertStore> {
        self.0.load_full()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().pick(client_hello.server_name()))
    }
}

/// The HTTPS listener's rustls configuration: the ring provider, TLS 1.2 and
/// 1.3 only, ALPN `h2` then `http/1.1`, no client certificates.
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|reason| TlsError::Config { reason })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name the client asked for in SNI, lower-case without a trailing dot,
/// or `None` when it sent none.
pub fn sni_of<T>(stream: &tokio_rustls::server::TlsStream<T>) -> Option<String> {
    stream.get_ref().1.server_name().map(normalize)
}

/// Writes one self-signed certificate covering `names` into `dir` (created
/// if missing) as `self-signed.pem` and `self-signed.key`, the key readable
/// by its owner only. Returns the certificate's path, then the key's.
pub fn write_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    // Make the certificate and its key.
    let generated = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|reason| {
        TlsError::Generate {
            names: names.to_vec(),
            reason,
        }
    })?;

    // Write the key first, so a certificate on disk always has its key.
    fs::create_dir_all(dir).map_err(|reason| write_error(dir, reason))?;
    let cert_path = dir.join(SELF_SIGNED_CERT);
    let key_path = dir.join(SELF_SIGNED_KEY);
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(&cert_path, generated.cert.pem())
        .map_err(|reason| write_error(&cert_path, reason))?;

    debug!(tls.cert = %cert_path.display(), tls.names = ?names, "self-signed certificate written");
    Ok((cert_path, key_path))
}

/// Reads a chain and its key, checks they belong together, and lists the
/// DNS names (lower-case, wildcards kept as `*.`) the leaf covers.
fn load_pair(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    // The chain and the names of its leaf (`read_chain` never returns none).
    let chain = read_chain(cert_path)?;
    let names = dns_names(cert_path, &chain[0])?;

    // The key, as something rustls can sign with.
    let key = read_key(key_path)?;
    let signer = ring::sign::any_supported_type(&key).map_err(|reason| TlsError::BadKey {
        path: key_path.into(),
        reason,
    })?;

    // Refuse a key whose public half is not the leaf's.
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|reason| TlsError::KeyMismatch {
            cert: cert_path.into(),
            key: key_path.into(),
            reason,
        })?;

    debug!(tls.cert = %cert_path.display(), tls.names = ?names, "certificate loaded");
    Ok(Loaded {
        key: Arc::new(certified),
        names,
    })
}

/// Every certificate of a PEM file, leaf first; at least one.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| TlsError::Pem {
            path: path.into(),
            reason,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(chain)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|reason| match reason {
        pem::Error::NoItemsFound => TlsError::NoKey { path: path.into() },
        reason => TlsError::Pem {
            path: path.into(),
            reason,
        },
    })
}

/// The SubjectAltName DNS names of `leaf`, normalized.
fn dns_names(path: &Path, leaf: &CertificateDer<'_>) -> Result<Vec<String>, TlsError> {
    let cert =
        webpki::EndEntityCert::try_from(leaf).map_err(|reason| TlsError::BadCertificate {
            path: path.into(),
            reason,
        })?;
    Ok(cert.valid_dns_names().map(normalize).collect())
}

/// The `name.pem` + `name.key` pairs of `dir`, sorted by file name. A `.pem`
/// without its `.key` shows up when the key fails to read.
fn dir_pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, TlsError> {
    let read_dir_error = |reason| TlsError::Read {
        path: dir.into(),
        reason,
    };
    let mut certs = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        if path.extension().is_some_and(|ext| ext == "pem") {
            certs.push(path);
        }
    }
    certs.sort();
    let pairs = certs.into_iter().map(|cert| {
        let key = cert.with_extension("key");
        (cert, key)
    });
    Ok(pairs.collect())
}

/// A name as it is compared: lower-case, one trailing dot removed.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|reason| TlsError::Read {
        path: path.into(),
        reason,
    })
}

fn write_error(path: &Path, reason: io::Error) -> TlsError {
    TlsError::Write {
        path: path.into(),
        reason,
    }
}

/// Writes `contents` to `path` with mode 0600, narrowing an existing file.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|reason| write_error(path, reason))?;

    // `mode` applies only to a new file; an older one is narrowed here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|reason| write_error(path, reason))?;
    }
    file.write_all(contents)
        .map_err(|reason| write_error(path, reason))
}

#[cfg(test)]
mod tests;
