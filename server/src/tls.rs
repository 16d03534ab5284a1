//! HTTPS served by the server itself. Browsers run a service worker, and so
//! the technicians' app offline, only on a secure origin: an estate without
//! a reverse proxy configures a certificate and key (PEM), or, for a trial
//! on the office LAN, lets `serve --self-signed-tls` make a small local
//! certificate authority and a certificate for this machine's names. The
//! authority's certificate (`tls/ca.pem` in the data directory) is what a
//! phone installs once; it is kept, so a restart does not ask for that again.

use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why HTTPS could not be set up; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("making the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Where a certificate chain and its key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server's TLS configuration from PEM files: HTTP/1.1 only, as the
/// server speaks.
pub fn server_config(files: &CertificateFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |path: &Path, what: &'static str, reason: String| TlsError::Pem {
        path: path.to_owned(),
        what,
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| pem(&files.cert, "certificate", error.to_string()))?;
    if chain.is_empty() {
        return Err(pem(
            &files.cert,
            "certificate",
            "no certificate in it".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|error| pem(&files.key, "private key", error.to_string()))?;
    // ring rather than aws-lc-rs, which would need a C toolchain's cmake
    // build on every machine; ring lacks only the post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The names a LAN trial's certificate covers: localhost, the loopback
/// addresses, this machine's LAN address, and any `extra` (a host name, a
/// fixed address).
pub fn trial_names(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(address) = lan_address() {
        names.push(address.to_string());
    }
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// A certificate for `names`, signed by this data directory's own local
/// authority (made once, kept in `tls/`). The certificate is made again when
/// the names change; the authority stays, so a phone that installed it
/// keeps trusting the server.
pub fn self_signed(data_dir: &Path, names: &[String]) -> Result<CertificateFiles, TlsError> {
    let directory = data_dir.join("tls");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(&directory).map_err(io(&directory))?;
    let files = CertificateFiles {
        cert: directory.join("cert.pem"),
        key: directory.join("key.pem"),
    };
    let (ca_pem, ca_key_pem) = (directory.join("ca.pem"), directory.join("ca-key.pem"));
    let names_file = directory.join("names.txt");
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    if current == wanted && files.cert.exists() && files.key.exists() && ca_pem.exists() {
        return Ok(files);
    }

    let ca_key = match std::fs::read_to_string(&ca_key_pem) {
        Ok(pem) => KeyPair::from_pem(&pem)?,
        Err(_) => KeyPair::generate()?,
    };
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "estate-sync local authority");
    // The same key and name give an equivalent authority when only the
    // server's names changed.
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "estate-sync");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;

    let write = |path: &Path, text: String| std::fs::write(path, text).map_err(io(path));
    if !ca_key_pem.exists() || !ca_pem.exists() {
        write(&ca_key_pem, ca_key.serialize_pem())?;
        write(&ca_pem, ca_cert.pem())?;
    }
    write(&files.key, key.serialize_pem())?;
    write(&files.cert, cert.pem() + &ca_cert.pem())?;
    write(&names_file, wanted)?;
    Ok(files)
}

/// The address this machine reaches the LAN from: the one a UDP socket is
/// given when it is pointed at a private address (nothing is sent).
fn lan_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:9").ok()?;
    let address = socket.local_addr().ok()?.ip();
    (!address.is_unspecified() && !address.is_loopback()).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_certificate_is_kept_across_restarts_and_makes_a_tls_configuration() {
        let data = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let files = self_signed(data.path(), &names).unwrap();
        server_config(&files).unwrap();
        let first = std::fs::read_to_string(&files.cert).unwrap();
        let authority = std::fs::read_to_string(data.path().join("tls/ca.pem")).unwrap();

        assert_eq!(self_signed(data.path(), &names).unwrap(), files);
        assert_eq!(std::fs::read_to_string(&files.cert).unwrap(), first, "kept");

        // Another name: a new certificate, the same authority to trust.
        let more = [names.clone(), vec!["estate.lan".to_owned()]].concat();
        self_signed(data.path(), &more).unwrap();
        assert_ne!(std::fs::read_to_string(&files.cert).unwrap(), first);
        let kept = std::fs::read_to_string(data.path().join("tls/ca.pem")).unwrap();
        assert_eq!(kept, authority);
    }

    #[test]
    fn a_file_that_is_not_pem_is_named_in_the_error() {
        let data = tempfile::tempdir().unwrap();
        let cert = data.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let files = CertificateFiles {
            cert: cert.clone(),
            key: data.path().join("key.pem"),
        };
        let error = server_config(&files).unwrap_err().to_string();
        assert!(error.contains("cert.pem"), "{error}");
    }
}
