//! An axum application served over TLS on loopback, for the tests of the simulators'
//! TLS clients. Each handshake runs on its own task, so a client that fails its
//! handshake (or stalls in it) never holds up the next one. Included with `#[path]`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A TCP listener that hands axum only connections whose TLS handshake succeeded.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => {
                    let Ok((tcp, peer)) = accepted else { continue };
                    let acceptor = self.acceptor.clone();
                    self.handshakes
                        .spawn(async move { acceptor.accept(tcp).await.ok().map(|tls| (tls, peer)) });
                }
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over TLS with `tls` on `listener`, in the background.
pub(crate) fn serve_tls(listener: TcpListener, router: Router, tls: Arc<rustls::ServerConfig>) {
    let listener = TlsListener {
        tcp: listener,
        acceptor: TlsAcceptor::from(tls),
        handshakes: JoinSet::new(),
    };
    tokio::spawn(async move { axum::serve(listener, router).await });
}
