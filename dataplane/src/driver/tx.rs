//! The transmit queue a service fills and a backend drains.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use bootwave_protocol::tftp::FileData;

use super::ephemeral::{Ephemeral, EphemeralSpec, OpenError};

/// Capacity of a fresh send buffer: one Ethernet frame of payload.
const BUFFER_CAPACITY: usize = 1536;
/// Send buffers kept for reuse; more are freed.
const POOL_LIMIT: usize = 4096;
/// Most datagrams in one window (far above any TFTP `windowsize` in use).
pub const MAX_WINDOW: usize = 1024;

/// Where a reply leaves from, as `IP_PKTINFO` on the send side.
///
/// DHCP sets this from the request's [`RecvMeta`](bootwave_protocol::net::RecvMeta)
/// so a reply to a broadcast leaves by the interface it came in on, with our
/// address on that interface as its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceHint {
    /// Outgoing interface (`ipi_ifindex`); 0 lets routing choose.
    pub ifindex: u32,
    /// Source address (`ipi_spec_dst`); unspecified lets routing choose.
    pub addr: Ipv4Addr,
}

/// One datagram of a TFTP window: a 4-byte header followed by
/// `len` bytes of the file from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// The TFTP DATA header (opcode and block number).
    pub header: [u8; 4],
    /// Offset of the payload in the file.
    pub start: usize,
    /// Payload length (0 for the empty last block).
    pub len: usize,
}

/// Why a transmit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The socket index is not one of the shard's sockets.
    #[error("no socket {0} in this shard")]
    NoSuchSocket(usize),
    /// A chunk reaches past the end of the file.
    #[error("chunk {start}+{len} beyond file of {file_len} bytes")]
    OutOfRange {
        /// Chunk offset.
        start: usize,
        /// Chunk length.
        len: usize,
        /// File length.
        file_len: usize,
    },
    /// A window without chunks.
    #[error("empty window")]
    EmptyWindow,
    /// A window of more than [`MAX_WINDOW`] chunks.
    #[error("window of {0} datagrams exceeds {MAX_WINDOW}")]
    WindowTooLarge(usize),
}

/// Bytes of one queued transmit.
#[derive(Debug)]
pub(crate) enum Payload {
    /// A whole datagram in a pooled buffer.
    Bytes(Vec<u8>),
    /// A TFTP window: one datagram per chunk, payload borrowed from `file`.
    Window {
        /// The file the chunks point into; kept alive until the send completes.
        file: Arc<dyn FileData>,
        /// The datagrams, in order.
        chunks: Vec<Chunk>,
    },
}

/// One queued transmit.
#[derive(Debug)]
pub(crate) struct Transmit {
    /// Index of the shard socket to send from.
    pub(crate) sock: usize,
    /// Destination.
    pub(crate) dst: SocketAddrV4,
    /// `IP_PKTINFO` for the send, if any.
    pub(crate) src: Option<SourceHint>,
    /// The bytes.
    pub(crate) payload: Payload,
}

/// Transmits queued by a service for its shard's backend.
///
/// Buffers come from a pool and return to it when their send completes, so
/// a steady state allocates nothing per datagram.
#[derive(Debug)]
pub struct Tx {
    sockets: usize,
    queue: VecDeque<Transmit>,
    buffers: Vec<Vec<u8>>,
    chunk_lists: Vec<Vec<Chunk>>,
    ephemeral: Ephemeral,
}

impl Tx {
    /// A queue for a shard with `sockets` sockets and no run-time sockets.
    pub fn new(sockets: usize) -> Self {
        Self::with_ephemeral(sockets, EphemeralSpec::default())
    }

    /// A queue for a shard with `sockets` fixed sockets, whose service may
    /// open run-time sockets as `spec` says.
    pub fn with_ephemeral(sockets: usize, spec: EphemeralSpec) -> Self {
        Self {
            sockets,
            queue: VecDeque::with_capacity(256),
            buffers: Vec::new(),
            chunk_lists: Vec::new(),
            ephemeral: Ephemeral::new(sockets, spec),
        }
    }

    /// Opens a socket on a port the kernel draws from its ephemeral range;
    /// returns its socket index (for [`Tx::send`] and
    /// [`Service::on_datagram`](super::Service::on_datagram)) and its
    /// address. Datagrams to it reach this shard's service from the next
    /// loop iteration on.
    pub fn open_socket(&mut self) -> Result<(usize, SocketAddrV4), OpenError> {
        self.ephemeral.open()
    }

    /// Closes a socket of [`Tx::open_socket`] once what was queued for it
    /// before this call has been sent; then its index may be reused.
    pub fn close_socket(&mut self, sock: usize) {
        self.ephemeral.close(sock);
    }

    /// The run-time sockets, for the backend.
    pub(crate) fn ephemeral(&mut self) -> &mut Ephemeral {
        &mut self.ephemeral
    }

    /// An empty send buffer from the pool. Fill it and pass it to
    /// [`Tx::send`], or drop it.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_CAPACITY))
    }

    /// Queues one datagram from socket `sock` to `dst`.
    pub fn send(
        &mut self,
        sock: usize,
        dst: SocketAddrV4,
        src: Option<SourceHint>,
        datagram: Vec<u8>,
    ) -> Result<(), TxError> {
        self.check_socket(sock)?;
        self.queue.push_back(Transmit {
            sock,
            dst,
            src,
            payload: Payload::Bytes(datagram),
        });
        Ok(())
    }

    /// Queues a window of datagrams `[chunk.header | file[chunk.start..][..chunk.len]]`.
    ///
    /// The file bytes are not copied; `file` stays alive until the kernel
    /// has sent them. When all chunks but the last have one length and the
    /// last is not longer, the backend sends the window with UDP GSO.
    pub fn send_window(
        &mut self,
        sock: usize,
        dst: SocketAddrV4,
        src: Option<SourceHint>,
        file: Arc<dyn FileData>,
        chunks: &[Chunk],
    ) -> Result<(), TxError> {
        self.check_socket(sock)?;
        if chunks.is_empty() {
            return Err(TxError::EmptyWindow);
        }
        if chunks.len() > MAX_WINDOW {
            return Err(TxError::WindowTooLarge(chunks.len()));
        }
        let file_len = file.bytes().len();
        for chunk in chunks {
            if chunk
                .start
                .checked_add(chunk.len)
                .is_none_or(|end| end > file_len)
            {
                return Err(TxError::OutOfRange {
                    start: chunk.start,
                    len: chunk.len,
                    file_len,
                });
            }
        }
        let mut list = self.chunk_lists.pop().unwrap_or_default();
        list.extend_from_slice(chunks);
        self.queue.push_back(Transmit {
            sock,
            dst,
            src,
            payload: Payload::Window { file, chunks: list },
        });
        Ok(())
    }

    /// Transmits waiting for a send slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The oldest queued transmit.
    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }

    /// Puts back a transmit that found no room, keeping its place.
    pub(crate) fn unpop(&mut self, transmit: Transmit) {
        self.queue.push_front(transmit);
    }

    /// Returns the buffers of a finished transmit to the pools.
    pub(crate) fn recycle(&mut self, transmit: Transmit) {
        match transmit.payload {
            Payload::Bytes(mut buffer) => {
                if self.buffers.len() < POOL_LIMIT {
                    buffer.clear();
                    self.buffers.push(buffer);
                }
            }
            Payload::Window { file, mut chunks } => {
                drop(file);
                if self.chunk_lists.len() < POOL_LIMIT {
                    chunks.clear();
                    self.chunk_lists.push(chunks);
                }
            }
        }
    }

    fn check_socket(&self, sock: usize) -> Result<(), TxError> {
        if sock < self.sockets || self.ephemeral.contains(sock) {
            Ok(())
        } else {
            Err(TxError::NoSuchSocket(sock))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dst() -> SocketAddrV4 {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn buffers_are_reused_after_recycle() {
        let mut tx = Tx::new(1);
        let mut buffer = tx.buffer();
        buffer.extend_from_slice(b"hello");
        let ptr = buffer.as_ptr();
        tx.send(0, dst(), None, buffer).unwrap();
        let transmit = tx.pop().unwrap();
        tx.recycle(transmit);
        let again = tx.buffer();
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
    }

    #[test]
    fn unknown_socket_is_refused() {
        let mut tx = Tx::new(2);
        assert_eq!(
            tx.send(2, dst(), None, Vec::new()),
            Err(TxError::NoSuchSocket(2))
        );
    }

    #[test]
    fn window_chunks_must_lie_in_the_file() {
        let mut tx = Tx::new(1);
        let file: Arc<dyn FileData> = Arc::new(vec![0u8; 10]);
        let bad = Chunk {
            header: [0, 3, 0, 1],
            start: 8,
            len: 3,
        };
        assert_eq!(
            tx.send_window(0, dst(), None, file.clone(), &[bad]),
            Err(TxError::OutOfRange {
                start: 8,
                len: 3,
                file_len: 10
            })
        );
        assert_eq!(
            tx.send_window(0, dst(), None, file.clone(), &[]),
            Err(TxError::EmptyWindow)
        );
        let good = Chunk { start: 7, ..bad };
        tx.send_window(0, dst(), None, file, &[good]).unwrap();
        assert_eq!(tx.queued(), 1);
    }

    #[test]
    fn window_keeps_the_file_alive_until_recycled() {
        let mut tx = Tx::new(1);
        let file: Arc<dyn FileData> = Arc::new(vec![1u8; 4]);
        let chunk = Chunk {
            header: [0, 3, 0, 1],
            start: 0,
            len: 4,
        };
        tx.send_window(0, dst(), None, file.clone(), &[chunk])
            .unwrap();
        assert_eq!(Arc::strong_count(&file), 2);
        let transmit = tx.pop().unwrap();
        tx.recycle(transmit);
        assert_eq!(Arc::strong_count(&file), 1);
    }
}
