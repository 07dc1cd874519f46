//! Real TLS handshakes against the certificate store and resolver.
use super::*;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::CertPair;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("botora-tls-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A generated certificate: its files, its DER and a name to verify it as.
struct Fixture {
    pair: CertPair,
    der: CertificateDer<'static>,
    verify_as: String,
}

/// Writes `dir/stem.pem` and `dir/stem.key` covering `names`.
fn fixture(dir: &Path, stem: &str, names: &[&str]) -> Fixture {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names.clone()).unwrap();
    let pair = CertPair {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    fs::write(&pair.cert, generated.cert.pem()).unwrap();
    fs::write(&pair.key, generated.signing_key.serialize_pem()).unwrap();
    Fixture {
        pair,
        der: generated.cert.der().clone(),
        verify_as: names[0].replace('*', "any"),
    }
}

fn tls_config(default: &Fixture, certs: &[&Fixture], cert_dir: Option<&Path>) -> TlsConfig {
    TlsConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        default_cert: default.pair.cert.clone(),
        default_key: default.pair.key.clone(),
        certs: certs.iter().map(|fixture| fixture.pair.clone()).collect(),
        cert_dir: cert_dir.map(Path::to_path_buf),
        handshake_timeout: Duration::from_secs(10),
    }
}

/// Checks the chain against the trusted roots as valid for a fixed name,
/// whatever SNI the client sent, so a default certificate can be checked.
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sent: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client that trusts only `expect` and offers ALPN `h2`, `http/1.1`.
fn client_for(expect: &Fixture, versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(expect.der.clone()).unwrap();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let verifier = VerifyAs {
        inner,
        name: ServerName::try_from(expect.verify_as.clone()).unwrap(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A TLS server on 127.0.0.1 port 0. Each connection is first told the
/// SNI the server saw (`-` for none), one line, then echoed.
async fn spawn_server(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(acceptor.clone(), tcp));
        }
    });
    addr
}

async fn serve(acceptor: TlsAcceptor, tcp: TcpStream) {
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    let sni = sni_of(&tls).unwrap_or_else(|| "-".to_owned());
    let _ = tls.write_all(format!("{sni}\n").as_bytes()).await;
    let mut buf = [0; 256];
    while let Ok(n @ 1..) = tls.read(&mut buf).await {
        if tls.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// What the client saw of one handshake, and the connection.
struct Seen {
    leaf: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
    sni: String,
    stream: BufReader<TlsStream<TcpStream>>,
}

/// Handshakes with the server at `addr`, sending `sni` (none when
/// `None`) and accepting only `expect`'s certificate.
async fn connect(addr: SocketAddr, sni: Option<&str>, expect: &Fixture) -> Seen {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    connect_with(addr, client_for(expect, &versions), sni, expect).await
}

async fn connect_with(
    addr: SocketAddr,
    mut client: ClientConfig,
    sni: Option<&str>,
    expect: &Fixture,
) -> Seen {
    client.enable_sni = sni.is_some();
    let name = sni.unwrap_or(&expect.verify_as).to_owned();
    let connector = TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let handshake = connector.connect(ServerName::try_from(name).unwrap(), tcp);
    let tls = tokio::time::timeout(Duration::from_secs(5), handshake)
        .await
        .unwrap()
        .unwrap();

    let (_, conn) = tls.get_ref();
    let leaf = conn.peer_certificates().unwrap()[0].clone().into_owned();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let mut stream = BufReader::new(tls);
    let mut sni = String::new();
    stream.read_line(&mut sni).await.unwrap();
    let sni = sni.trim_end().to_owned();
    Seen {
        leaf,
        alpn,
        sni,
        stream,
    }
}

/// A server on `config`'s certificates.
async fn server_for(config: &TlsConfig) -> (Arc<Resolver>, SocketAddr) {
    let resolver = Arc::new(Resolver::new(CertStore::load(config).unwrap()));
    let addr = spawn_server(server_config(resolver.clone()).unwrap()).await;
    (resolver, addr)
}

/// A default certificate and two named ones.
struct Trio {
    dir: TempDir,
    default: Fixture,
    exact: Fixture,
    wild: Fixture,
}

fn trio() -> Trio {
    let dir = TempDir::new();
    Trio {
        default: fixture(&dir.0, "default", &["default.test", "127.0.0.1"]),
        exact: fixture(&dir.0, "exact", &["exact.test", "api.wild.test"]),
        wild: fixture(&dir.0, "wild", &["*.wild.test"]),
        dir,
    }
}

impl Trio {
    fn config(&self) -> TlsConfig {
        tls_config(&self.default, &[&self.exact, &self.wild], None)
    }
}

#[tokio::test]
async fn exact_name_picks_its_certificate() {
    let trio = trio();
    let (_, addr) = server_for(&trio.config()).await;

    let seen = connect(addr, Some("Exact.Test"), &trio.exact).await;
    assert_eq!(seen.leaf, trio.exact.der);
    assert_eq!(seen.sni, "exact.test");
}

#[tokio::test]
async fn wildcard_picks_its_certificate() {
    let trio = trio();
    let (_, addr) = server_for(&trio.config()).await;

    let seen = connect(addr, Some("www.wild.test"), &trio.wild).await;
    assert_eq!(seen.leaf, trio.wild.der);
    let seen = connect(addr, Some("api.wild.test"), &trio.exact).await;
    assert_eq!(seen.leaf, trio.exact.der, "an exact name beats a wildcard");
}

#[tokio::test]
async fn unknown_name_and_no_sni_get_the_default() {
    let trio = trio();
    let (_, addr) = server_for(&trio.config()).await;

    let seen = connect(addr, Some("nobody.test"), &trio.default).await;
    assert_eq!(seen.leaf, trio.default.der);
    let seen = connect(addr, None, &trio.default).await;
    assert_eq!(seen.leaf, trio.default.der);
    assert_eq!(seen.sni, "-");
}

#[test]
fn wildcard_covers_exactly_one_label() {
    let trio = trio();
    let store = CertStore::load(&trio.config()).unwrap();
    let picked = |sni| store.pick(Some(sni)).cert[0].clone();

    assert_eq!(picked("a.wild.test"), trio.wild.der);
    assert_eq!(picked("A.WILD.TEST."), trio.wild.der);
    assert_eq!(picked("a.b.wild.test"), trio.default.der);
    assert_eq!(picked("wild.test"), trio.default.der);
    assert_eq!(picked(".wild.test"), trio.default.der);
    assert_eq!(picked("exact.test."), trio.exact.der);
    assert_eq!(store.pick(None).cert[0], trio.default.der);
}

#[test]
fn a_certificate_not_matching_its_key_is_refused() {
    let trio = trio();
    let crossed = Fixture {
        pair: CertPair {
            cert: trio.exact.pair.cert.clone(),
            key: trio.wild.pair.key.clone(),
        },
        der: trio.exact.der.clone(),
        verify_as: String::new(),
    };

    let err = CertStore::load(&tls_config(&trio.default, &[&crossed], None)).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&*trio.exact.pair.cert.to_string_lossy()),
        "{message}"
    );
    assert!(
        message.contains(&*trio.wild.pair.key.to_string_lossy()),
        "{message}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let trio = trio();
    let mut config = trio.config();
    config.default_key = trio.dir.0.join("absent.key");

    let err = CertStore::load(&config).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("absent.key"), "{err}");
}

#[tokio::test]
async fn cert_dir_pairs_are_served() {
    let trio = trio();
    let certs = TempDir::new();
    let alpha = fixture(&certs.0, "alpha", &["alpha.test"]);
    let beta = fixture(&certs.0, "beta", &["*.beta.test"]);
    fs::write(certs.0.join("README.txt"), "not a certificate").unwrap();
    let (_, addr) = server_for(&tls_config(&trio.default, &[], Some(&certs.0))).await;

    assert_eq!(
        connect(addr, Some("alpha.test"), &alpha).await.leaf,
        alpha.der
    );
    assert_eq!(
        connect(addr, Some("x.beta.test"), &beta).await.leaf,
        beta.der
    );
}

#[test]
fn cert_dir_pem_without_its_key_is_named() {
    let trio = trio();
    let certs = TempDir::new();
    let alpha = fixture(&certs.0, "alpha", &["alpha.test"]);
    fs::remove_file(&alpha.pair.key).unwrap();

    let err = CertStore::load(&tls_config(&trio.default, &[], Some(&certs.0))).unwrap_err();
    assert!(err.to_string().contains("alpha.key"), "{err}");
}

#[tokio::test]
async fn replace_changes_the_next_handshake_only() {
    let trio = trio();
    let (resolver, addr) = server_for(&trio.config()).await;
    let mut before = connect(addr, Some("www.wild.test"), &trio.wild).await;

    // The new store serves `www.wild.test` from a certificate of its own.
    let newer = fixture(&trio.dir.0, "newer", &["www.wild.test"]);
    let config = tls_config(&trio.default, &[&trio.wild, &newer], None);
    resolver.replace(CertStore::load(&config).unwrap());
    let after = connect(addr, Some("www.wild.test"), &newer).await;
    assert_eq!(after.leaf, newer.der);

    // The connection opened before still works.
    before.stream.write_all(b"ping\n").await.unwrap();
    let mut echo = String::new();
    before.stream.read_line(&mut echo).await.unwrap();
    assert_eq!(echo, "ping\n");
}

#[tokio::test]
async fn only_tls_12_and_13_are_offered() {
    let trio = trio();
    let (resolver, addr) = server_for(&trio.config()).await;
    let config = server_config(resolver).unwrap();
    let versions = config.crypto_provider().cipher_suites.iter();
    for version in versions.map(|suite| suite.version().version) {
        assert!(matches!(
            version,
            ProtocolVersion::TLSv1_2 | ProtocolVersion::TLSv1_3
        ));
    }

    // A TLS 1.2 client gets through.
    let client = client_for(&trio.exact, &[&rustls::version::TLS12]);
    let seen = connect_with(addr, client, Some("exact.test"), &trio.exact).await;
    assert_eq!(seen.leaf, trio.exact.der);

    // A TLS 1.1 ClientHello is answered with a protocol_version alert.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = [0; 7];
    tcp.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[0], 0x15, "an alert record");
    assert_eq!(reply[6], 70, "protocol_version");
}

/// A minimal ClientHello offering TLS 1.1 only: one CBC suite, and the
/// signature_algorithms extension rustls checks before the version.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend([7; 32]); // random
    body.extend([0x00]); // no session id
    body.extend([0x00, 0x02, 0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    body.extend([0x01, 0x00]); // null compression
    body.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x01]);
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[tokio::test]
async fn alpn_negotiates_h2() {
    let trio = trio();
    let (_, addr) = server_for(&trio.config()).await;

    let seen = connect(addr, Some("exact.test"), &trio.exact).await;
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
}

#[test]
fn self_signed_pair_loads_and_its_key_is_private() {
    let dir = TempDir::new();
    let names = vec!["demo.test".to_owned(), "*.demo.test".to_owned()];

    let (cert, key) = write_self_signed(&dir.0.join("demo"), &names).unwrap();
    let loaded = load_pair(&cert, &key).unwrap();
    assert_eq!(loaded.names, names);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
