//! `/endra/session/1`: identity sessions ([`crate::identity::session`]) over raw libp2p
//! streams.
//!
//! One stream per session, opened with [`open_session`] and answered by [`accept_session`]
//! for each stream [`accept_sessions`] yields. Every message, handshake or data, is a frame
//! `u32 length (big-endian) ‖ bytes` of at most [`MAX_FRAME_BYTES`]; a longer length is
//! refused before anything is buffered ([`SessionStreamError::FrameTooLarge`]). The handshake
//! must finish within [`HANDSHAKE_TIMEOUT`]. A refused handshake or frame closes the stream:
//! the refusing side gets the typed reason, the other side sees the stream end.

use std::time::Duration;

use futures::future::Either;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use rand_core::OsRng;

use crate::identity::session::{
    Directory, Initiator, Local, PeerIdentity, ReplayGuard, Responder, Session, SessionError,
    MAX_FRAME_LEN,
};

/// The protocol name.
pub const SESSION_PROTOCOL: StreamProtocol = StreamProtocol::new("/endra/session/1");

/// Most bytes of one frame after its length prefix.
pub const MAX_FRAME_BYTES: usize = MAX_FRAME_LEN;

/// Longest a handshake may take, either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a session over a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionStreamError {
    /// No stream could be opened to the peer (not reachable, or it does not speak
    /// `/endra/session/1`).
    #[error("cannot open a session stream: {0}")]
    Open(String),
    /// This node already accepts `/endra/session/1` (one acceptor per node).
    #[error("sessions are already being accepted on this node")]
    AlreadyAccepting,
    /// A frame longer than [`MAX_FRAME_BYTES`] was announced or about to be sent.
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer closed the stream (or refused the handshake and closed it).
    #[error("the peer closed the session stream")]
    Closed,
    /// Reading or writing the stream failed.
    #[error("session stream I/O failed: {0}")]
    Io(String),
    /// The handshake did not finish in time.
    #[error("the handshake took longer than {0:?}")]
    Timeout(Duration),
    /// The handshake or a frame was refused.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<std::io::Error> for SessionStreamError {
    fn from(e: std::io::Error) -> Self {
        SessionStreamError::Io(e.to_string())
    }
}

/// Writes one length-prefixed frame and flushes.
async fn write_frame(stream: &mut Stream, frame: &[u8]) -> Result<(), SessionStreamError> {
    let len = u32::try_from(frame.len())
        .ok()
        .filter(|&len| len as usize <= MAX_FRAME_BYTES)
        .ok_or(SessionStreamError::FrameTooLarge {
            len: frame.len(),
            max: MAX_FRAME_BYTES,
        })?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(frame).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one length-prefixed frame; [`SessionStreamError::Closed`] if the stream ends
/// cleanly before it.
async fn read_frame(stream: &mut Stream) -> Result<Vec<u8>, SessionStreamError> {
    let mut len = [0u8; 4];
    let mut filled = 0;
    while filled < len.len() {
        match stream.read(&mut len[filled..]).await? {
            0 if filled == 0 => return Err(SessionStreamError::Closed),
            0 => return Err(SessionStreamError::Io("stream ended inside a frame".into())),
            n => filled += n,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    // Checked before allocating: an oversized frame is refused, not buffered.
    if len > MAX_FRAME_BYTES {
        return Err(SessionStreamError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SessionStreamError::Io("stream ended inside a frame".into())
        } else {
            e.into()
        }
    })?;
    Ok(frame)
}

/// Runs `handshake` within [`HANDSHAKE_TIMEOUT`].
async fn in_time<T>(
    handshake: impl std::future::Future<Output = Result<T, SessionStreamError>>,
) -> Result<T, SessionStreamError> {
    let handshake = std::pin::pin!(handshake);
    match futures::future::select(handshake, futures_timer::Delay::new(HANDSHAKE_TIMEOUT)).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(SessionStreamError::Timeout(HANDSHAKE_TIMEOUT)),
    }
}

/// Opens a session to `peer` (connected, or one the swarm can dial by its peer ID alone) as
/// `local`, checking the responder against `directory`. With `expected`, a responder of
/// another identity is refused ([`SessionError::UnexpectedPeer`]).
pub async fn open_session<D: Directory + ?Sized>(
    control: &mut Control,
    peer: PeerId,
    local: Local<'_>,
    directory: &D,
    expected: Option<&str>,
) -> Result<SessionStream, SessionStreamError> {
    let mut stream = control
        .open_stream(peer, SESSION_PROTOCOL)
        .await
        .map_err(|e| match e {
            OpenStreamError::UnsupportedProtocol(p) => {
                SessionStreamError::Open(format!("{peer} does not speak {p}"))
            }
            e => SessionStreamError::Open(e.to_string()),
        })?;
    let handshake = async {
        let (initiator, hello) = Initiator::new(local, &mut OsRng);
        let initiator = match expected {
            Some(did) => initiator.expect_identity(did),
            None => initiator,
        };
        write_frame(&mut stream, &hello).await?;
        let reply = read_frame(&mut stream).await?;
        let (session, finish) = initiator.on_reply(&reply, directory, &mut OsRng)?;
        write_frame(&mut stream, &finish).await?;
        Ok(session)
    };
    match in_time(handshake).await {
        Ok(session) => Ok(SessionStream {
            stream,
            session,
            peer_id: peer,
        }),
        Err(e) => {
            let _ = stream.close().await;
            Err(e)
        }
    }
}

/// Starts accepting `/endra/session/1` on this node: yields `(peer, stream)` for each
/// inbound session; answer each with [`accept_session`]. Dropping the result stops
/// accepting. Streams arrive only while it is polled.
pub fn accept_sessions(control: &mut Control) -> Result<IncomingStreams, SessionStreamError> {
    control
        .accept(SESSION_PROTOCOL)
        .map_err(|_| SessionStreamError::AlreadyAccepting)
}

/// Answers an inbound session stream from `peer` as `local`, checking the initiator against
/// `directory` and its Hello against `replay` (keep one guard per node).
pub async fn accept_session<D: Directory + ?Sized>(
    peer: PeerId,
    mut stream: Stream,
    local: Local<'_>,
    directory: &D,
    replay: &mut ReplayGuard,
) -> Result<SessionStream, SessionStreamError> {
    let handshake = async {
        let hello = read_frame(&mut stream).await?;
        let (responder, reply) = Responder::new(local, &hello, directory, replay, &mut OsRng)?;
        write_frame(&mut stream, &reply).await?;
        let finish = read_frame(&mut stream).await?;
        Ok(responder.on_finish(&finish)?)
    };
    match in_time(handshake).await {
        Ok(session) => Ok(SessionStream {
            stream,
            session,
            peer_id: peer,
        }),
        Err(e) => {
            let _ = stream.close().await;
            Err(e)
        }
    }
}

/// An established session over a stream.
pub struct SessionStream {
    stream: Stream,
    session: Session,
    peer_id: PeerId,
}

impl std::fmt::Debug for SessionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStream")
            .field("peer_id", &self.peer_id)
            .field("session", &self.session)
            .finish()
    }
}

impl SessionStream {
    /// The authenticated peer: its person DID and device DID.
    pub fn peer(&self) -> &PeerIdentity {
        self.session.peer()
    }

    /// The libp2p peer the stream runs to.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The handshake hash (the same on both sides).
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.session.handshake_hash()
    }

    /// Sends one message (at most
    /// [`MAX_PLAINTEXT_LEN`](crate::identity::session::MAX_PLAINTEXT_LEN) bytes).
    pub async fn send(&mut self, plaintext: &[u8]) -> Result<(), SessionStreamError> {
        let frame = self.session.seal(plaintext)?;
        write_frame(&mut self.stream, &frame).await
    }

    /// Receives the next message; [`SessionStreamError::Closed`] once the peer closed the
    /// stream. After any error the session is no use: drop it.
    pub async fn receive(&mut self) -> Result<Vec<u8>, SessionStreamError> {
        let frame = read_frame(&mut self.stream).await?;
        Ok(self.session.open(&frame)?)
    }

    /// Closes the stream; the peer's next [`SessionStream::receive`] ends with
    /// [`SessionStreamError::Closed`].
    pub async fn close(mut self) -> Result<(), SessionStreamError> {
        Ok(self.stream.close().await?)
    }
}
