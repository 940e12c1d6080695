//! The node's own request-response protocols.
//!
//! `/endra/walytis/sync/1` ([`PROTOCOL`]): sync messages between two peers. A request is
//! `u32 length (big-endian) ‖ chain ID (36 bytes) ‖ sync message`; the response is an empty
//! acknowledgement. Answers travel as requests the other way, so the sans-IO core's
//! `Send(peer, message)` maps one-to-one onto requests.
//!
//! `/endra/rendezvous/peered/1` ([`PEERED_PROTOCOL`]): rendezvous registrations shared
//! between peered relays.
//!
//! `/endra/content/1` ([`CONTENT_PROTOCOL`]): offchain content, a tree or a segment at a time
//! (see [`crate::offchain::transfer`]). A request or response is `u32 length (big-endian) ‖
//! its canonical CBOR`, each under its own limit.

use std::io;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::core::{PeerRecord, SignedEnvelope};
use libp2p::rendezvous::Namespace;
use libp2p::StreamProtocol;

use crate::cbor::{Reader, Writer};
use crate::offchain::transfer::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use crate::offchain::{ContentRequest, ContentResponse, InlineContent, SEGMENT_LEN, TAG_LEN};
use crate::walytis::sync::{Message, WireError, MAX_MESSAGE_BYTES};
use crate::walytis::MAX_BLOCK_BYTES;
use crate::walytis::{BlockId, BLOCK_ID_LEN};

/// What travels on a chain's gossip topic (the topic is the chain ID).
///
/// A sync [`Message`] in its own encoding, or an *inline push*: a new block with the one
/// sealed segment of the content it commits to and that content's erase check,
/// `[4, block, sealed segment, erase check]`, so content of up to
/// [`crate::offchain::MAX_INLINE_LEN`] reaches readers in the block's own hop. The segment is
/// opaque here: a receiver names it by its hashes ([`InlineContent::named`]) and keeps it only
/// beside a block the chain admits; the reader checks it against the commitment inside the
/// sealed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipFrame {
    /// A sync message ([`Message::Push`]: a block alone).
    Sync(Message),
    /// A block and its content.
    Inline {
        /// The block's canonical bytes.
        block: Vec<u8>,
        /// The content.
        content: InlineContent,
    },
}

const INLINE_PUSH: u64 = 4;

impl GossipFrame {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            GossipFrame::Sync(message) => message.encode(),
            GossipFrame::Inline { block, content } => {
                let mut w = Writer::with_capacity(block.len() + content.sealed.len() + 64);
                w.array(4);
                w.uint(INLINE_PUSH);
                w.bytes(block);
                w.bytes(&content.sealed);
                w.bytes(&content.erase_check);
                w.out
            }
        }
    }

    /// Parses a gossip message: an inline push of a block of at most
    /// [`MAX_BLOCK_BYTES`] and a segment of at most one sealed segment, or a sync message.
    pub fn decode(bytes: &[u8]) -> Result<GossipFrame, WireError> {
        let mut r = Reader::new(bytes);
        let inline = r.array().ok() == Some(4) && r.uint().ok() == Some(INLINE_PUSH);
        if !inline {
            return Message::decode(bytes).map(GossipFrame::Sync);
        }
        let block = r.bytes()?;
        let sealed = r.bytes()?;
        let check = r.bytes()?;
        r.finish()?;
        if block.len() > MAX_BLOCK_BYTES || sealed.len() > SEGMENT_LEN + TAG_LEN {
            return Err(WireError::TooLarge { size: bytes.len() });
        }
        let erase_check = <[u8; 32]>::try_from(check).map_err(|_| {
            WireError::Malformed(crate::cbor::CborError::UnexpectedType {
                at: 0,
                expected: "an erase check of 32 bytes",
            })
        })?;
        Ok(GossipFrame::Inline {
            block: block.to_vec(),
            content: InlineContent {
                sealed: sealed.to_vec(),
                erase_check,
            },
        })
    }
}

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/endra/walytis/sync/1");

/// A sync message about one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The chain the message is about.
    pub chain: BlockId,
    /// The message.
    pub message: Message,
}

/// The request-response codec of [`PROTOCOL`].
#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// Reads a sync frame of `len` bytes (claimed by the peer) after checking it against the
/// limit. The buffer grows with the bytes that actually arrive: a peer that claims 4 MiB and
/// sends ten bytes costs ten bytes, not a 4 MiB allocation per open stream.
async fn read_frame<T>(io: &mut T, len: usize) -> io::Result<Vec<u8>>
where
    T: futures::AsyncRead + Unpin + Send,
{
    if !(BLOCK_ID_LEN..=BLOCK_ID_LEN + MAX_MESSAGE_BYTES).contains(&len) {
        return Err(invalid(format_args!("sync frame of {len} bytes")));
    }
    let mut frame = Vec::with_capacity(len.min(FRAME_PREALLOCATION));
    io.take(len as u64).read_to_end(&mut frame).await?;
    if frame.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("sync frame ended after {} of {len} bytes", frame.len()),
        ));
    }
    Ok(frame)
}

/// Bytes reserved up front for a sync frame (a typical push); larger frames grow as they
/// arrive.
const FRAME_PREALLOCATION: usize = 16 * 1024;

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Envelope;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Envelope>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        let frame = read_frame(io, len).await?;
        let (chain, message) = frame.split_at(BLOCK_ID_LEN);
        Ok(Envelope {
            chain: BlockId::from_bytes(chain).map_err(invalid)?,
            message: Message::decode(message).map_err(invalid)?,
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut byte = [0u8; 1];
        match io.read(&mut byte).await? {
            0 => Ok(()),
            _ => Err(invalid("sync acknowledgement must be empty")),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Envelope,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        let message = request.message.encode();
        let len = u32::try_from(BLOCK_ID_LEN + message.len()).map_err(invalid)?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(request.chain.as_bytes()).await?;
        io.write_all(&message).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.close().await
    }
}

/// `/endra/rendezvous/peered/1`: the rendezvous registrations peered relays share.
///
/// A client asks its relay (`forward: true`) for the peers registered under a namespace
/// (a chain ID) at the relays it peers with; the relay asks each of them (`forward: false`:
/// their own registrations only, so a question never travels more than one hop) and answers
/// with what they hold. Records are the peers' own signed peer records, checked on reading:
/// a relay can withhold a registration but cannot forge one.
///
/// A request is `u8 forward (0 or 1) ‖ u8 length ‖ namespace`; a response is
/// `u16 count ‖ count × (u32 ttl in seconds ‖ u16 length ‖ signed envelope)`, big-endian.
pub const PEERED_PROTOCOL: StreamProtocol = StreamProtocol::new("/endra/rendezvous/peered/1");

/// Records in one answer; more are left out.
pub const MAX_FOUND: usize = 64;

/// Bytes of one signed peer record (a handful of addresses takes a few hundred).
pub const MAX_RECORD_BYTES: usize = 4096;

/// A question about a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The namespace (a chain ID).
    pub namespace: Namespace,
    /// Ask the relays this relay peers with (from a client), or answer from this relay's own
    /// registrations only (from a peer relay).
    pub forward: bool,
}

/// A peer registered under the asked namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its signed peer record: its peer ID and the addresses it is reachable at.
    pub record: PeerRecord,
    /// For how many more seconds the registration holds.
    pub ttl: u64,
}

/// The request-response codec of [`PEERED_PROTOCOL`].
#[derive(Debug, Clone, Default)]
pub struct PeeredCodec;

impl libp2p::request_response::Codec for PeeredCodec {
    type Protocol = StreamProtocol;
    type Request = Lookup;
    type Response = Vec<Found>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Lookup>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut head = [0u8; 2];
        io.read_exact(&mut head).await?;
        let forward = match head[0] {
            0 => false,
            1 => true,
            other => return Err(invalid(format_args!("lookup flag {other}"))),
        };
        let mut namespace = vec![0u8; usize::from(head[1])];
        io.read_exact(&mut namespace).await?;
        let namespace = String::from_utf8(namespace).map_err(invalid)?;
        Ok(Lookup {
            namespace: Namespace::new(namespace).map_err(invalid)?,
            forward,
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<Found>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut count = [0u8; 2];
        io.read_exact(&mut count).await?;
        let count = usize::from(u16::from_be_bytes(count));
        if count > MAX_FOUND {
            return Err(invalid(format_args!("{count} records in one answer")));
        }
        let mut found = Vec::with_capacity(count);
        for _ in 0..count {
            let mut head = [0u8; 6];
            io.read_exact(&mut head).await?;
            let ttl = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
            let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            // Checked before allocating: an oversized record is refused, not buffered.
            if len > MAX_RECORD_BYTES {
                return Err(invalid(format_args!("peer record of {len} bytes")));
            }
            let mut envelope = vec![0u8; len];
            io.read_exact(&mut envelope).await?;
            let envelope = SignedEnvelope::from_protobuf_encoding(&envelope).map_err(invalid)?;
            let record = PeerRecord::from_signed_envelope(envelope).map_err(invalid)?;
            found.push(Found { record, ttl });
        }
        Ok(found)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Lookup,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        let namespace = request.namespace.to_string();
        let len = u8::try_from(namespace.len()).map_err(invalid)?;
        io.write_all(&[u8::from(request.forward), len]).await?;
        io.write_all(namespace.as_bytes()).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        found: Vec<Found>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        let mut frame = Vec::new();
        let mut count = 0u16;
        for found in found.iter().take(MAX_FOUND) {
            let envelope = found.record.to_signed_envelope().into_protobuf_encoding();
            let Ok(len) = u16::try_from(envelope.len()) else {
                continue;
            };
            if envelope.len() > MAX_RECORD_BYTES {
                continue;
            }
            let ttl = u32::try_from(found.ttl).unwrap_or(u32::MAX);
            frame.extend_from_slice(&ttl.to_be_bytes());
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(&envelope);
            count += 1;
        }
        io.write_all(&count.to_be_bytes()).await?;
        io.write_all(&frame).await?;
        io.close().await
    }
}

/// `/endra/content/1`: offchain content fetched from a peer.
pub const CONTENT_PROTOCOL: StreamProtocol = StreamProtocol::new("/endra/content/1");

/// The request-response codec of [`CONTENT_PROTOCOL`].
#[derive(Debug, Clone, Default)]
pub struct ContentCodec;

/// Reads `u32 length ‖ bytes` of at most `max` bytes, growing the buffer as bytes arrive.
async fn read_sized<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: futures::AsyncRead + Unpin + Send,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(invalid(format_args!("content frame of {len} bytes")));
    }
    let mut frame = Vec::with_capacity(len.min(FRAME_PREALLOCATION));
    io.take(len as u64).read_to_end(&mut frame).await?;
    if frame.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("content frame ended after {} of {len} bytes", frame.len()),
        ));
    }
    Ok(frame)
}

async fn write_sized<T>(io: &mut T, bytes: &[u8]) -> io::Result<()>
where
    T: futures::AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(bytes.len()).map_err(invalid)?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for ContentCodec {
    type Protocol = StreamProtocol;
    type Request = ContentRequest;
    type Response = ContentResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ContentRequest>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let frame = read_sized(io, MAX_REQUEST_BYTES).await?;
        ContentRequest::decode(&frame).map_err(invalid)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ContentResponse>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let frame = read_sized(io, MAX_RESPONSE_BYTES).await?;
        ContentResponse::decode(&frame).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: ContentRequest,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_sized(io, &request.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: ContentResponse,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_sized(io, &response.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_read_as_it_arrives_and_a_short_one_is_an_error() {
        futures::executor::block_on(async {
            let body: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
            let mut whole = futures::io::Cursor::new(body.clone());
            assert_eq!(
                read_frame(&mut whole, body.len()).await.expect("frame"),
                body
            );
            // Claims the largest frame allowed, sends ten bytes and closes.
            let mut short = futures::io::Cursor::new(vec![7u8; 10]);
            let claimed = BLOCK_ID_LEN + MAX_MESSAGE_BYTES;
            let error = read_frame(&mut short, claimed).await.expect_err("short");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            let mut huge = futures::io::Cursor::new(vec![]);
            let error = read_frame(&mut huge, claimed + 1)
                .await
                .expect_err("too big");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        });
    }
}
