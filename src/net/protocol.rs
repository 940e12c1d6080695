//! `/endra/walytis/sync/1`: sync messages between two peers over a request-response stream.
//!
//! A request is `u32 length (big-endian) ‖ chain ID (36 bytes) ‖ sync message`; the response
//! is an empty acknowledgement. Answers travel as requests the other way, so the sans-IO
//! core's `Send(peer, message)` maps one-to-one onto requests.

use std::io;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::walytis::sync::{Message, MAX_MESSAGE_BYTES};
use crate::walytis::{BlockId, BLOCK_ID_LEN};

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
        // Checked before allocating: an oversized frame is refused, not buffered.
        if !(BLOCK_ID_LEN..=BLOCK_ID_LEN + MAX_MESSAGE_BYTES).contains(&len) {
            return Err(invalid(format_args!("sync frame of {len} bytes")));
        }
        let mut frame = vec![0u8; len];
        io.read_exact(&mut frame).await?;
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
