//! WebSocket framing on the raw socket, after the upgrade: [`Socket`] writes (the session's
//! [`Transport`], and the fan-out's [`Direct`] handle) and [`Frames`] reads (its [`Inbound`]
//! stream), with actix-http's frame codec.
//!
//! Neither holds a buffer while the connection is idle: bytes are read into a buffer made when
//! the socket is readable and freed once every whole frame in it is decoded; a frame is encoded
//! into the thread's scratch buffer and written at once, and only what the kernel does not take
//! is kept, until written. All share the socket (reads and writes through `&TcpStream`); writes
//! hold its lock, so frames never interleave.

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{CloseReason, Codec, Frame, Item, Message, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;
use realtime::{Direct, Gone, Inbound, Sent, Transport};
use std::cell::RefCell;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::net::TcpStream;

/// Room made for one read.
const READ_CHUNK: usize = 4096;

/// Largest scratch buffer a thread keeps between writes (a big welcome may need more once).
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// How long a close waits for the client's close frame before the socket is dropped (RFC 6455
/// has the server close the TCP connection once the client has answered).
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Both halves of one upgraded connection. `read_buf` holds what came after the request.
pub fn split(io: TcpStream, read_buf: BytesMut, max_frame_bytes: usize) -> (Socket, Frames) {
    let codec = Codec::new().max_size(max_frame_bytes);
    let shared = Arc::new(Shared {
        io,
        out: Mutex::new(Out {
            bytes: BytesMut::new(),
            codec: codec.clone(),
        }),
    });
    let frames = Frames {
        shared: shared.clone(),
        buf: read_buf,
        codec,
        max: max_frame_bytes,
        fragments: None,
    };
    (Socket { shared }, frames)
}

/// The writing half: the session's [`Transport`].
pub struct Socket {
    shared: Arc<Shared>,
}

/// The socket, shared by both halves and the fan-out's [`Direct`] handle.
struct Shared {
    io: TcpStream,
    out: Mutex<Out>,
}

struct Out {
    /// Encoded bytes the kernel has not taken yet. They survive a cancelled write, so a close
    /// that follows still lands on a frame boundary.
    bytes: BytesMut,
    codec: Codec,
}

impl Shared {
    fn out(&self) -> MutexGuard<'_, Out> {
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Encodes `message` behind what is queued, or, with nothing queued, into the thread's
    /// scratch buffer and writes it at once: only what the kernel does not take is kept.
    fn put(&self, out: &mut Out, message: Message) -> Result<(), Gone> {
        if !out.bytes.is_empty() {
            return out.codec.encode(message, &mut out.bytes).map_err(|_| Gone);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            if scratch.capacity() > SCRATCH_KEEP {
                *scratch = BytesMut::new();
            }
            out.codec.encode(message, scratch).map_err(|_| Gone)?;
            let written = self.try_write(scratch)?;
            out.bytes.extend_from_slice(&scratch[written..]);
            Ok(())
        })
    }

    fn try_write(&self, bytes: &[u8]) -> Result<usize, Gone> {
        match self.io.try_write(bytes) {
            Ok(n) => Ok(n),
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(_) => Err(Gone),
        }
    }

    /// Writes what is queued, then frees the buffer.
    async fn flush(&self) -> Result<(), Gone> {
        loop {
            {
                let mut out = self.out();
                if out.bytes.is_empty() {
                    out.bytes = BytesMut::new();
                    return Ok(());
                }
                let written = self.try_write(&out.bytes)?;
                out.bytes.advance(written);
                if out.bytes.is_empty() {
                    continue;
                }
            }
            self.io.writable().await.map_err(|_| Gone)?;
        }
    }
}

impl Direct for Shared {
    fn try_send(&self, text: &ByteString) -> Result<Sent, Gone> {
        let mut out = self.out();
        if !out.bytes.is_empty() {
            return Ok(Sent::No);
        }
        self.put(&mut out, Message::Text(text.clone()))?;
        Ok(if out.bytes.is_empty() {
            Sent::Whole
        } else {
            Sent::Partly
        })
    }
}

impl Socket {
    async fn write(&mut self, message: Message) -> Result<(), Gone> {
        {
            let mut out = self.shared.out();
            self.shared.put(&mut out, message)?;
        }
        self.shared.flush().await
    }

    /// Reads until the client's close frame, the end of the stream or an error.
    async fn await_close(&self) {
        let io = &self.shared.io;
        let mut buf = BytesMut::new();
        let mut codec = Codec::new();
        loop {
            if io.readable().await.is_err() {
                return;
            }
            buf.reserve(READ_CHUNK);
            match io.try_read_buf(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(Frame::Close(_))) | Err(_) => return,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                }
            }
        }
    }
}

impl Transport for Socket {
    async fn send(&mut self, text: ByteString) -> Result<(), Gone> {
        self.write(Message::Text(text)).await
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        self.shared.flush().await
    }

    fn direct(&self) -> Arc<dyn Direct> {
        self.shared.clone()
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.write(Message::Ping(Bytes::new())).await
    }

    async fn pong(&mut self, payload: Bytes) -> Result<(), Gone> {
        self.write(Message::Pong(payload)).await
    }

    async fn close(mut self, code: u16, reason: &'static str) {
        let reason = CloseReason {
            code: code.into(),
            description: Some(reason.to_owned()),
        };
        if self.write(Message::Close(Some(reason))).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_LINGER, self.await_close()).await;
        }
    }
}

/// The reading half: the client's frames, fragmented messages put together.
pub struct Frames {
    shared: Arc<Shared>,
    buf: BytesMut,
    codec: Codec,
    max: usize,
    /// A fragmented message so far, and whether it is text.
    fragments: Option<(BytesMut, bool)>,
}

impl Frames {
    /// What a decoded frame means to the session; `None` while a message is still in pieces.
    fn on_frame(&mut self, frame: Frame) -> Option<Inbound> {
        let starts = self.fragments.is_none();
        let (piece, last) = match frame {
            Frame::Text(bytes) => return Some(text(bytes)),
            Frame::Binary(_) => return Some(Inbound::Binary),
            Frame::Ping(payload) => return Some(Inbound::Ping(payload)),
            Frame::Pong(_) => return Some(Inbound::Pong),
            Frame::Close(reason) => return Some(Inbound::Close(reason.map(|r| r.code.into()))),
            Frame::Continuation(Item::FirstText(piece)) if starts => {
                self.fragments = Some((BytesMut::new(), true));
                (piece, false)
            }
            Frame::Continuation(Item::FirstBinary(piece)) if starts => {
                self.fragments = Some((BytesMut::new(), false));
                (piece, false)
            }
            Frame::Continuation(Item::Continue(piece)) if !starts => (piece, false),
            Frame::Continuation(Item::Last(piece)) if !starts => (piece, true),
            Frame::Continuation(_) => return Some(Inbound::Broken),
        };
        let (so_far, _) = self.fragments.as_mut()?;
        if so_far.len() + piece.len() > self.max {
            return Some(Inbound::TooLarge);
        }
        so_far.extend_from_slice(&piece);
        if !last {
            return None;
        }
        let (whole, is_text) = self.fragments.take()?;
        Some(if is_text {
            text(whole.freeze())
        } else {
            Inbound::Binary
        })
    }
}

fn text(bytes: Bytes) -> Inbound {
    ByteString::try_from(bytes).map_or(Inbound::Broken, Inbound::Text)
}

impl Stream for Frames {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        loop {
            let decoded = this.codec.decode(&mut this.buf);
            if this.buf.is_empty() {
                this.buf = BytesMut::new();
            }
            match decoded {
                Ok(Some(frame)) => match this.on_frame(frame) {
                    Some(inbound) => return Poll::Ready(Some(inbound)),
                    None => continue,
                },
                Ok(None) => {}
                Err(ProtocolError::Overflow) => return Poll::Ready(Some(Inbound::TooLarge)),
                Err(_) => return Poll::Ready(Some(Inbound::Broken)),
            }
            let io = &this.shared.io;
            if ready!(io.poll_read_ready(cx)).is_err() {
                return Poll::Ready(Some(Inbound::Broken));
            }
            this.buf.reserve(READ_CHUNK);
            match io.try_read_buf(&mut this.buf) {
                Ok(0) => return Poll::Ready(None),
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(Some(Inbound::Broken)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server-side `Socket` and `Frames` and the client's end of the same connection.
    async fn connection(max_frame_bytes: usize) -> (TcpStream, Socket, Frames) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (socket, frames) = split(server, BytesMut::new(), max_frame_bytes);
        (client, socket, frames)
    }

    /// Sends these messages as a client does (masked).
    async fn send(client: &mut TcpStream, messages: Vec<Message>) {
        let mut codec = Codec::new().client_mode();
        let mut bytes = BytesMut::new();
        for message in messages {
            codec.encode(message, &mut bytes).expect("encode");
        }
        client.write_all(&bytes).await.expect("write");
    }

    fn piece(item: fn(Bytes) -> Item, text: &'static [u8]) -> Message {
        Message::Continuation(item(Bytes::from_static(text)))
    }

    #[tokio::test]
    async fn fragments_make_one_message_and_control_frames_may_come_between() {
        let (mut client, _socket, mut frames) = connection(16).await;
        send(
            &mut client,
            vec![
                piece(Item::FirstText, b"hel"),
                Message::Ping(Bytes::from_static(b"p")),
                piece(Item::Continue, b"lo "),
                piece(Item::Last, b"you"),
                piece(Item::FirstBinary, b"\x00"),
                piece(Item::Last, b"\x01"),
                Message::Text("plain".into()),
            ],
        )
        .await;
        assert!(matches!(frames.next().await, Some(Inbound::Ping(p)) if p == "p"));
        assert!(matches!(frames.next().await, Some(Inbound::Text(t)) if t == "hello you"));
        assert!(matches!(frames.next().await, Some(Inbound::Binary)));
        assert!(matches!(frames.next().await, Some(Inbound::Text(t)) if t == "plain"));
        // Every whole frame read, the reading half holds no buffer.
        assert_eq!(frames.buf.capacity(), 0);
        drop(client);
        assert!(frames.next().await.is_none());
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_too_large_even_in_small_pieces() {
        let (mut client, _socket, mut frames) = connection(8).await;
        send(
            &mut client,
            vec![piece(Item::FirstText, b"12345"), piece(Item::Last, b"6789")],
        )
        .await;
        assert!(matches!(frames.next().await, Some(Inbound::TooLarge)));
        let (mut client, _socket, mut frames) = connection(8).await;
        send(&mut client, vec![Message::Text("123456789".into())]).await;
        assert!(matches!(frames.next().await, Some(Inbound::TooLarge)));
    }

    #[tokio::test]
    async fn broken_framing_and_invalid_text_break_the_stream() {
        // By hand (a client's encoder refuses them), masked with a zero mask: a last piece with
        // no first, a second first piece, a text frame that is not UTF-8.
        let cases: [&[u8]; 3] = [
            &[0x80, 0x81, 0, 0, 0, 0, b'x'],
            &[0x01, 0x81, 0, 0, 0, 0, b'a', 0x01, 0x81, 0, 0, 0, 0, b'b'],
            &[0x81, 0x81, 0, 0, 0, 0, 0xff],
        ];
        for bytes in cases {
            let (mut client, _socket, mut frames) = connection(64).await;
            client.write_all(bytes).await.expect("write");
            assert!(
                matches!(frames.next().await, Some(Inbound::Broken)),
                "{bytes:?}"
            );
        }
    }

    #[tokio::test]
    async fn direct_writes_keep_frames_whole_and_in_order_when_the_kernel_is_full() {
        let (mut client, mut socket, _frames) = connection(64).await;
        let direct = socket.direct();
        let text = |i: usize| ByteString::from(format!("{i:06}{}", "x".repeat(1000)));
        // The client does not read: the kernel's buffers fill, and one frame is taken in part.
        let mut sent = 0;
        loop {
            match direct.try_send(&text(sent)).expect("socket") {
                Sent::Whole => sent += 1,
                Sent::Partly => break sent += 1,
                Sent::No => panic!("nothing was waiting"),
            }
        }
        // Its rest waits: nothing more is taken directly, and the session's own frame queues.
        assert_eq!(direct.try_send(&text(sent)).expect("socket"), Sent::No);
        let session = tokio::spawn(async move {
            socket.flush().await.expect("flush");
            socket.send(text(sent)).await.expect("send");
            socket
        });
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        let mut got = 0;
        while got <= sent {
            if let Some(frame) = codec.decode(&mut buf).expect("decode") {
                assert!(matches!(&frame, Frame::Text(t) if **t == *text(got).as_bytes()));
                got += 1;
                continue;
            }
            assert!(client.read_buf(&mut buf).await.expect("read") > 0);
        }
        let socket = session.await.expect("join");
        // Everything written, nothing is kept, and direct writes go out again.
        assert_eq!(socket.shared.out().bytes.capacity(), 0);
        assert_eq!(direct.try_send(&text(0)).expect("socket"), Sent::Whole);
    }

    #[tokio::test]
    async fn frames_go_out_whole_and_a_close_waits_for_the_clients_answer() {
        let (mut client, mut socket, frames) = connection(64).await;
        // As in a session: its frames are dropped before it closes.
        drop(frames);
        socket.send("hello".into()).await.expect("send");
        // Written, the writing half holds no buffer either.
        assert_eq!(socket.shared.out().bytes.capacity(), 0);
        let closing = tokio::spawn(socket.close(4004, "room not found"));
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        while got.len() < 2 {
            if let Some(frame) = codec.decode(&mut buf).expect("decode") {
                got.push(frame);
                continue;
            }
            assert!(client.read_buf(&mut buf).await.expect("read") > 0);
        }
        assert!(matches!(&got[0], Frame::Text(t) if t == "hello"));
        assert!(
            matches!(&got[1], Frame::Close(Some(r)) if u16::from(r.code) == 4004 && r.description.as_deref() == Some("room not found"))
        );
        assert!(
            !closing.is_finished(),
            "the close waits for the client's answer"
        );
        send(&mut client, vec![Message::Close(None)]).await;
        tokio::time::timeout(Duration::from_millis(500), closing)
            .await
            .expect("the close ends once the client answered")
            .expect("join");
        // The server's end is gone.
        assert_eq!(client.read_buf(&mut buf).await.expect("read"), 0);
    }
}
