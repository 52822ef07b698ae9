//! The AWS endpoints the measured processes get: a loopback relay per service in front of the one
//! emulator, so DynamoDB, SQS and Secrets Manager are three hosts as in AWS (a connection the store
//! warms during init cannot serve the first SendMessage, nor the admin functions' read of the operator
//! token). With `CRM_BENCH_TLS_DIR` (cert.pem and key.pem, issued by
//! ca.pem; bundle.pem: the system roots plus ca.pem; written by bench/coldstart) the relays speak HTTPS, so
//! the processes pay real TLS handshakes, as against AWS; the emulator itself is plain HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub struct Endpoints {
    pub sqs: String,
    /// The variables pointing the AWS SDKs (Rust and JavaScript) at the relays and trusting them.
    pub env: Vec<(String, String)>,
    /// Connections each relay accepted (DynamoDB, SQS, Secrets Manager), to show the processes used them.
    connections: [Arc<AtomicUsize>; 3],
}

impl Endpoints {
    /// Relays to the emulator at `emulator` (`http://127.0.0.1:port`).
    pub async fn start(emulator: &str) -> Endpoints {
        let target: SocketAddr =
            emulator.trim_start_matches("http://").trim_end_matches('/').parse().expect("emulator at http://ip:port");
        let tls = std::env::var("CRM_BENCH_TLS_DIR").ok().filter(|d| !d.is_empty()).map(PathBuf::from);
        let acceptor = tls.as_ref().map(|dir| acceptor(dir));
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let connections = [(); 3].map(|_| Arc::new(AtomicUsize::new(0)));
        let dynamodb = format!("{scheme}://{}", relay(target, acceptor.clone(), connections[0].clone()).await);
        let sqs = format!("{scheme}://{}", relay(target, acceptor.clone(), connections[1].clone()).await);
        let secrets = format!("{scheme}://{}", relay(target, acceptor, connections[2].clone()).await);
        let mut env = vec![
            ("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), dynamodb),
            ("AWS_ENDPOINT_URL_SQS".to_owned(), sqs.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(), secrets),
        ];
        if let Some(dir) = tls {
            env.push(("SSL_CERT_FILE".to_owned(), dir.join("bundle.pem").display().to_string()));
            env.push(("NODE_EXTRA_CA_CERTS".to_owned(), dir.join("ca.pem").display().to_string()));
        }
        Endpoints { sqs, env, connections }
    }

    /// Connections so far through the DynamoDB, SQS and Secrets Manager relays.
    pub fn connections(&self) -> [usize; 3] {
        self.connections.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    pub fn is_tls(&self) -> bool {
        self.sqs.starts_with("https:")
    }
}

fn acceptor(dir: &std::path::Path) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<_, _>>()
        .expect("cert.pem holds certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key.pem");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the certificate and its key");
    TlsAcceptor::from(Arc::new(config))
}

/// Listens on a loopback port of its own and pipes every connection to `target`.
async fn relay(target: SocketAddr, tls: Option<TlsAcceptor>, accepted: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::Relaxed);
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(mut upstream) = TcpStream::connect(target).await else { return };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                match tls {
                    Some(acceptor) => {
                        if let Ok(mut client) = acceptor.accept(client).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    }
                    None => {
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                }
            });
        }
    });
    addr
}
