//! TLS with rustls (TLS 1.2 and 1.3 only, aws-lc-rs provider). The server certificate is served
//! through [`CertStore`], which swaps in new PEM files when their modification time changes, so
//! certificate renewals need no restart. Outbound, [`client_config`] builds the opportunistic
//! (unverified, RFC 7435) or verified client configuration.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found in PEM file".into());
    }
    Ok(certs)
}

pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key in PEM file: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load_certified(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let cert = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    certified(&cert, &key)
}

fn certified(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(parse_certs(cert_pem)?, parse_key(key_pem)?, &provider()).map_err(|e| format!("certificate and key do not match: {e}"))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The server certificate, reloaded from its files when they change.
#[derive(Debug)]
pub struct CertStore {
    paths: Mutex<(PathBuf, PathBuf, Option<SystemTime>, Option<SystemTime>)>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Arc<Self>, String> {
        let ck = load_certified(&cert, &key)?;
        let (mc, mk) = (mtime(&cert), mtime(&key));
        Ok(Arc::new(Self { paths: Mutex::new((cert, key, mc, mk)), current: RwLock::new(Arc::new(ck)) }))
    }

    /// Points the store at (possibly new) files and reloads when they or their contents changed.
    /// Returns `Ok(true)` when a new certificate was installed; on error the old one stays.
    pub fn refresh(&self, cert: PathBuf, key: PathBuf) -> Result<bool, String> {
        let mut p = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let (mc, mk) = (mtime(&cert), mtime(&key));
        if p.0 == cert && p.1 == key && p.2 == mc && p.3 == mk {
            return Ok(false);
        }
        let ck = load_certified(&cert, &key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ck);
        *p = (cert, key, mc, mk);
        Ok(true)
    }

    /// Installs a certificate and key given as PEM (from a watched Secret) when they differ from
    /// the one served. Returns `Ok(true)` when a new certificate was installed.
    pub fn install(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<bool, String> {
        let ck = certified(cert_pem, key_pem)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.cert == ck.cert {
            return Ok(false);
        }
        *current = Arc::new(ck);
        Ok(true)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

pub fn server_config(certs: Arc<CertStore>) -> Arc<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("TLS 1.2 and 1.3 are supported by aws-lc-rs")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    // The server's cipher suite order (strongest first) wins over the client's.
    cfg.ignore_client_order = true;
    Arc::new(cfg)
}

/// The HTTPS listener's configuration: the SMTP policy (TLS 1.2+, server cipher order), with
/// HTTP/2 and HTTP/1.1 offered by ALPN.
pub fn https_server_config(certs: Arc<CertStore>) -> Arc<rustls::ServerConfig> {
    let mut cfg = Arc::unwrap_or_clone(server_config(certs));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Accepts any certificate: opportunistic TLS encrypts against passive observers without
/// authenticating the peer (RFC 7435); MX hosts rarely have certificates for their names.
#[derive(Debug)]
struct Opportunistic(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Opportunistic {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Outbound TLS: `verify` with the given roots (or the web PKI), otherwise opportunistic.
pub fn client_config(verify: bool, ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider()).with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12]).map_err(|e| e.to_string())?;
    let cfg = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for c in parse_certs(pem)? {
                    roots.add(c).map_err(|e| e.to_string())?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(Opportunistic(provider()))).with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// Verified outbound TLS against the web PKI and, besides it, the certificates in `extra_pem`.
pub fn verifying_client_config(extra_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra_pem.map(parse_certs).transpose()?.unwrap_or_default() {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider()).with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12]).map_err(|e| e.to_string())?;
    Ok(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
}

/// The admin channel: mutual TLS inside the pool's own authority. The listener asks every
/// client for a certificate and verifies what it gets against the authority; which endpoints
/// need one is decided per request ([`AdminChannel::is_pool`], [`AdminChannel::is_relay`]).
#[derive(Clone)]
pub struct AdminChannel {
    pub server: Arc<rustls::ServerConfig>,
    /// For handovers to peers: this relay's certificate, peers verified under `relay_name`.
    pub client: cascade_core::http_client::Tls,
    relay_name: ServerName<'static>,
    pub metrics_need_certificate: bool,
}

/// Builds the admin channel from PEM: this relay's certificate and key, the authority, and the
/// name every relay certificate of the pool carries.
pub fn admin_channel(cert_pem: &[u8], key_pem: &[u8], ca_pem: &[u8], relay_name: &str, metrics_need_certificate: bool) -> Result<AdminChannel, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in parse_certs(ca_pem)? {
        roots.add(ca).map_err(|e| format!("the CA certificate: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).allow_unauthenticated().build().map_err(|e| format!("client verifier: {e}"))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(cert_pem)?, parse_key(key_pem)?)
        .map_err(|e| format!("certificate and key: {e}"))?;
    server.ignore_client_order = true;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = cascade_core::http_client::Tls::mutual(ca_pem, cert_pem, key_pem, relay_name).map_err(|e| e.to_string())?;
    let relay_name = client.server_name.clone();
    Ok(AdminChannel { server: Arc::new(server), client, relay_name, metrics_need_certificate })
}

impl AdminChannel {
    /// Whether the connection presented a certificate of the authority (rustls verified the
    /// chain during the handshake; a connection without one has none here).
    pub fn is_pool(&self, peer: Option<&CertificateDer<'_>>) -> bool {
        peer.is_some()
    }

    /// Whether the connection's certificate is a relay's of this pool (it carries the name).
    pub fn is_relay(&self, peer: Option<&CertificateDer<'_>>) -> bool {
        peer.and_then(|c| rustls::server::ParsedCertificate::try_from(c).ok()).is_some_and(|p| rustls::client::verify_server_name(&p, &self.relay_name).is_ok())
    }
}
