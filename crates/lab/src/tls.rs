//! The lab's credentials: its own certificate authority, a leaf server certificate for
//! `127.0.0.1`/`localhost` signed by it, and a random bearer token — created at first start
//! in the state directory and reused on every later start, so a kubeconfig written once
//! keeps working. Also builds the rustls server configuration from them.
//!
//! Why a CA plus a separate leaf: rustls (in kube-rs) refuses a CA certificate used as an
//! end-entity certificate, while kubectl accepts either; the two-certificate layout works
//! for both. Called by `server.rs` only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// File names inside the state directory.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
const TOKEN: &str = "token";

/// Why the credentials could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A credential file could not be read or written.
    #[error("cannot access {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Generating a key or certificate failed.
    #[error("cannot generate the lab's certificates")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key is not usable PEM.
    #[error(
        "{path} is not a usable PEM certificate/key ({reason}); delete ca.*, server.* and token \
         in the state directory to create new ones (then fetch the kubeconfig again)"
    )]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The token file holds nothing: every client would be let in, or none.
    #[error(
        "the lab's token file {path} is empty; delete it and start the lab again to have a \
         new token made (then fetch the kubeconfig again)"
    )]
    EmptyToken {
        /// The token file.
        path: PathBuf,
    },
    /// rustls rejected the certificate/key pair.
    #[error("the TLS configuration was rejected")]
    Rustls(#[from] rustls::Error),
}

/// The CA, server certificate/key and bearer token of one lab.
#[derive(Clone)]
pub struct Credentials {
    /// The CA certificate (PEM), what clients trust.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server private key (PEM).
    server_key_pem: String,
    /// The bearer token every request must carry.
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key or the token.
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// Loads the credentials from `dir`, creating any that are missing. A partial set (e.g.
    /// a CA without a server certificate) is completed; a missing CA key forces a new CA
    /// and server certificate, because nothing could be signed with the old one.
    pub fn load_or_create(dir: &Path) -> Result<Credentials, TlsError> {
        fs::create_dir_all(dir).map_err(|source| TlsError::File {
            path: dir.to_path_buf(),
            source,
        })?;
        let all_certs = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY]
            .iter()
            .all(|name| dir.join(name).exists());
        if !all_certs {
            generate_certificates(dir)?;
        }
        let token_path = dir.join(TOKEN);
        if !token_path.exists() {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            write_secret(&token_path, token.as_bytes(), 0o600)?;
        }
        let token = read(&token_path)?.trim().to_string();
        if token.is_empty() {
            return Err(TlsError::EmptyToken { path: token_path });
        }
        Ok(Credentials {
            ca_pem: read(&dir.join(CA_CERT))?,
            server_cert_pem: read(&dir.join(SERVER_CERT))?,
            server_key_pem: read(&dir.join(SERVER_KEY))?,
            token,
        })
    }

    /// The rustls server configuration: HTTP/1.1 only (kube's connector speaks HTTP/1).
    pub fn server_config(&self, dir: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        resil_common::crypto::ensure_crypto_provider();
        let certs: Vec<_> = rustls_pemfile::certs(&mut self.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadPem {
                path: dir.join(SERVER_CERT),
                reason: e.to_string(),
            })?;
        let key = rustls_pemfile::private_key(&mut self.server_key_pem.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|k| k.ok_or_else(|| "no private key found".to_string()))
            .map_err(|reason| TlsError::BadPem {
                path: dir.join(SERVER_KEY),
                reason,
            })?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn generate_certificates(dir: &Path) -> Result<(), TlsError> {
    // A CA key that exists but whose certificate is missing (or vice versa) cannot be
    // trusted to match; start a new CA.
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "resil-lab CA");
    ca_params.distinguished_name = ca_name;
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "resil-lab");
    params.distinguished_name = name;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    write_secret(&dir.join(CA_KEY), ca_key_pem.as_bytes(), 0o600)?;
    write_secret(&dir.join(CA_CERT), ca.pem().as_bytes(), 0o644)?;
    write_secret(&dir.join(SERVER_KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write_secret(&dir.join(SERVER_CERT), cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_secret(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    resil_common::atomic::write_with_mode(path, bytes, Some(mode)).map_err(|source| {
        TlsError::File {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::File {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Credentials::load_or_create(dir.path()).unwrap();
        let second = Credentials::load_or_create(dir.path()).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.token, second.token);
        assert_eq!(first.token.len(), 64);
        assert_ne!(first.ca_pem, first.server_cert_pem);
        first.server_config(dir.path()).unwrap();
    }

    #[test]
    fn a_state_dir_that_is_a_file_names_it_and_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("state");
        fs::write(&blocked, "not a directory").unwrap();
        let err = Credentials::load_or_create(&blocked).unwrap_err();
        let cause = fs::create_dir_all(&blocked).unwrap_err().to_string();
        assert_eq!(
            err.to_string(),
            format!("cannot access {}", blocked.display())
        );
        let chain = crate::kubelet::probe::error_chain(&err);
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
    }

    #[test]
    fn an_empty_token_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        Credentials::load_or_create(dir.path()).unwrap();
        for blank in ["", "  \n\t\n"] {
            fs::write(dir.path().join(TOKEN), blank).unwrap();
            let err = Credentials::load_or_create(dir.path()).unwrap_err();
            assert!(matches!(err, TlsError::EmptyToken { .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.contains("token") && message.contains("delete it"),
                "{message}"
            );
        }
        fs::remove_file(dir.path().join(TOKEN)).unwrap();
        let fresh = Credentials::load_or_create(dir.path()).unwrap();
        assert_eq!(fresh.token.len(), 64, "a deleted token file is made anew");
    }

    #[cfg(unix)]
    #[test]
    fn keys_and_token_are_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Credentials::load_or_create(dir.path()).unwrap();
        for name in [CA_KEY, SERVER_KEY, TOKEN] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
}
