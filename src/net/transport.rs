//! Swarm builders: native (TCP, WebSocket, optionally WebRTC-Direct for browsers to dial) and
//! browser (WebRTC-Direct and WebSocket to relays), each with the node's [`Behaviour`].

use std::time::Duration;

use libp2p::{identity, Swarm};

#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
use super::WebRtcCertificate;
use super::{Behaviour, NetError, NodeConfig};

/// How long a browser's WebRTC-Direct dial may take before it counts as failed.
#[cfg(target_arch = "wasm32")]
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a native swarm over TCP and WebSocket (Noise, Yamux) with identity `key`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn native_swarm(
    key: identity::Keypair,
    config: &NodeConfig,
) -> Result<Swarm<Behaviour>, NetError> {
    build_native(key, config, None).await
}

/// A new WebRTC-Direct certificate.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub fn new_webrtc_certificate() -> Result<WebRtcCertificate, NetError> {
    WebRtcCertificate::generate(&mut rand_webrtc::rng()).map_err(|e| NetError::Setup(e.to_string()))
}

/// Builds a native swarm over TCP, WebSocket and WebRTC-Direct (UDP, for browsers), with
/// identity `key` and the WebRTC `certificate`.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub async fn native_swarm_with_webrtc(
    key: identity::Keypair,
    config: &NodeConfig,
    certificate: WebRtcCertificate,
) -> Result<Swarm<Behaviour>, NetError> {
    build_native(key, config, Some(certificate)).await
}

#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
type NativeCertificate = WebRtcCertificate;
#[cfg(all(not(feature = "webrtc"), not(target_arch = "wasm32")))]
type NativeCertificate = std::convert::Infallible;

#[cfg(not(target_arch = "wasm32"))]
async fn build_native(
    key: identity::Keypair,
    config: &NodeConfig,
    webrtc: Option<NativeCertificate>,
) -> Result<Swarm<Behaviour>, NetError> {
    use libp2p::{noise, tcp, yamux};
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let builder = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?;
    #[cfg(feature = "webrtc")]
    let builder = builder
        .with_other_transport(|key| {
            use libp2p::core::muxing::StreamMuxerBox;
            use libp2p::core::transport::OptionalTransport;
            use libp2p::core::Transport;
            match webrtc {
                Some(certificate) => OptionalTransport::some(
                    libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
                        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection))),
                ),
                None => OptionalTransport::none(),
            }
        })
        .map_err(|e| setup(&e))?;
    #[cfg(not(feature = "webrtc"))]
    let _ = webrtc;
    // The builder's phases are ordered: other transports (WebRTC) come before DNS and WebSocket.
    Ok(builder
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, config, Some(relay_client)).map_err(|e| e.to_string().into())
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(swarm_config)
        .build())
}

/// The swarm settings of every node: connections idle for ten minutes close. Streams are
/// negotiated with multistream-select V1, waiting for the protocol's echo. Lazy negotiation
/// (V1Lazy) saved that round trip, but a stream whose lazy negotiation failed panics in
/// multistream-select 0.14 when it is closed or written afterwards (`Negotiated: Invalid
/// state`): a session opened to a peer that does not speak it did so
/// (`a_session_to_a_node_that_takes_none_is_refused_with_a_typed_error`).
fn swarm_config(config: libp2p::swarm::Config) -> libp2p::swarm::Config {
    config.with_idle_connection_timeout(Duration::from_secs(600))
}

/// Builds a browser swarm: WebRTC-Direct and WebSocket to relays (Noise, Yamux).
#[cfg(target_arch = "wasm32")]
pub fn browser_swarm(
    key: identity::Keypair,
    config: &NodeConfig,
) -> Result<Swarm<Behaviour>, NetError> {
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::upgrade::Version;
    use libp2p::core::Transport;
    use libp2p::{noise, webrtc_websys, websocket_websys, yamux};
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            // A WebRTC-Direct dial to a dead address hangs instead of failing; the timeout
            // makes it fail, so that the relay is dialled again when it is back.
            libp2p::core::transport::timeout::TransportTimeout::with_outgoing_timeout(
                webrtc_websys::Transport::new(webrtc_websys::Config::new(key))
                    .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection))),
                DIAL_TIMEOUT,
            )
        })
        .map_err(|e| setup(&e))?
        .with_other_transport(|key| {
            let noise = noise::Config::new(key).map_err(
                |e| -> Box<dyn std::error::Error + Send + std::marker::Sync> { Box::new(e) },
            )?;
            Ok(websocket_websys::Transport::default()
                .map(|socket, _| BrowserSocket::new(socket))
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, config, Some(relay_client)).map_err(|e| e.to_string().into())
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(swarm_config)
        .build())
}

/// A browser WebSocket as the libp2p shell writes to it, without two waits
/// `websocket_websys` adds. There, a flush waits until the browser has sent every byte,
/// checked by a 100 ms interval: each request or response written (and flushed) held its
/// stream up to 100 ms, so a transfer of 16 segments in flight ran at 10 MB/s whatever the
/// link. Here a flush is done once the bytes are handed to the browser (all a WebSocket
/// offers), and a write held back by the transport's 1 MiB send buffer is tried again after
/// a millisecond instead of at the next interval.
#[cfg(target_arch = "wasm32")]
struct BrowserSocket<C> {
    inner: C,
    retry: Option<futures_timer::Delay>,
}

#[cfg(target_arch = "wasm32")]
impl<C> BrowserSocket<C> {
    fn new(inner: C) -> Self {
        BrowserSocket { inner, retry: None }
    }
}

#[cfg(target_arch = "wasm32")]
impl<C: futures::AsyncRead + Unpin> futures::AsyncRead for BrowserSocket<C> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(target_arch = "wasm32")]
impl<C: futures::AsyncWrite + Unpin> futures::AsyncWrite for BrowserSocket<C> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => {
                let retry = self
                    .retry
                    .get_or_insert_with(|| futures_timer::Delay::new(Duration::from_millis(1)));
                if std::pin::Pin::new(retry).poll(cx).is_ready() {
                    self.retry = None;
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            written => {
                self.retry = None;
                written
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}
