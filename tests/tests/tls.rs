//! HTTPS served by the server itself: `serve --self-signed-tls` makes a
//! local authority and a certificate for this machine, and a client that
//! trusts only that authority (as a phone that installed `tls/ca.pem`)
//! gets the technicians' app over TLS. Plain HTTP to the same port gets
//! no page.

mod common;

use std::sync::Arc;

use common::{Options, TestServer};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const PAGE_REQUEST: &[u8] = b"GET /app HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn the_app_is_served_over_https_to_a_phone_that_trusts_the_trial_authority() {
    let options = Options {
        args: vec![
            "--self-signed-tls".to_owned(),
            "--tls-name".to_owned(),
            "estate.lan".to_owned(),
        ],
        ..Options::default()
    };
    let server = TestServer::start_with(tempfile::tempdir().expect("a directory"), options);
    assert!(
        server.url("/app").starts_with("https://"),
        "{}",
        server.url("/app")
    );

    let authority = server.data_dir().join("tls/ca.pem");
    for name in ["localhost", "estate.lan"] {
        let answer = fetch_over_tls(&server, &authority, name).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        assert!(answer.contains("维修工单"), "the app's page");
        assert!(answer.to_lowercase().contains("content-security-policy"));
    }

    // Plain HTTP on the HTTPS port: no page comes back.
    let mut plain = TcpStream::connect(server.address())
        .await
        .expect("a connection");
    plain
        .write_all(PAGE_REQUEST)
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

async fn fetch_over_tls(server: &TestServer, authority: &std::path::Path, name: &str) -> String {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(authority).expect("the authority's certificate"))
        .expect("a trust anchor");
    let config = ClientConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.address())
        .await
        .expect("a connection");
    let server_name = ServerName::try_from(name.to_owned()).expect("a server name");
    let mut tls = connector
        .connect(server_name, tcp)
        .await
        .unwrap_or_else(|error| panic!("the certificate is good for {name}: {error}"));
    tls.write_all(PAGE_REQUEST)
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.expect("the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[allow(deprecated)] // The server's provider too (server/src/tls.rs).
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
