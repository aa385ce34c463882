//! What the core asks the driver to send.
//!
//! DATA never copies file bytes: a [`Transmit`] names a 4-byte header and a
//! slice of a shared file, so the driver can send `[header | file slice]` as
//! a two-element scatter list (or a whole window as one UDP GSO send, see
//! [`TxQueue::batches`]). The queue holds a clone of each file's `Arc`, so
//! the driver may keep the bytes alive until the kernel is done with them.
//! Control packets (OACK, ERROR) are small and are written into a byte arena
//! inside the queue. Everything is cleared and reused between calls: after
//! warm-up, filling the queue allocates nothing.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;

use super::FileData;
use super::wire::DATA_HEADER_LEN;

/// Index of a file held by a [`TxQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIndex(u32);

/// The body of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A DATA block: `header` followed by `len` bytes of the file from
    /// `offset`.
    Data {
        /// Opcode and block number.
        header: [u8; DATA_HEADER_LEN],
        /// The file; see [`TxQueue::file`].
        file: FileIndex,
        /// Offset of the block in the file.
        offset: u64,
        /// Length of the block (0 for an empty final block).
        len: u32,
    },
    /// A control packet held in the queue's arena; see
    /// [`TxQueue::control`].
    Control {
        /// Start offset in the arena.
        start: u32,
        /// Length in bytes.
        len: u32,
    },
}

/// Who sends to whom: the addressing of a [`Transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// The peer.
    pub(crate) dest: SocketAddr,
    /// Our address the peer talked to.
    pub(crate) src_ip: IpAddr,
    /// Our port.
    pub(crate) local_port: u16,
}

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub dest: SocketAddr,
    /// The local address to send it from: the one the client's request was
    /// sent to ([`RecvMeta::dst_ip`](crate::net::RecvMeta::dst_ip)). A
    /// driver bound to a single address may ignore it; a multi-homed one
    /// sets it with `IP_PKTINFO`, since clients only accept replies from the
    /// address they asked.
    pub src_ip: IpAddr,
    /// The local UDP port to send it from (the transfer ID).
    pub local_port: u16,
    /// What to send.
    pub payload: Payload,
}

/// Datagrams produced by one call into the core, in order.
#[derive(Default)]
pub struct TxQueue {
    transmits: Vec<Transmit>,
    files: Vec<Arc<dyn FileData>>,
    control: Vec<u8>,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("transmits", &self.transmits.len())
            .field("files", &self.files.len())
            .field("control_bytes", &self.control.len())
            .finish()
    }
}

impl TxQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all queued datagrams and releases the file references,
    /// keeping the capacity.
    pub fn clear(&mut self) {
        self.transmits.clear();
        self.files.clear();
        self.control.clear();
    }

    /// The queued datagrams, in sending order.
    pub fn transmits(&self) -> &[Transmit] {
        &self.transmits
    }

    /// Number of queued datagrams.
    pub fn len(&self) -> usize {
        self.transmits.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty()
    }

    /// The file a DATA payload refers to.
    ///
    /// # Panics
    /// If `index` did not come from this queue since its last `clear`.
    pub fn file(&self, index: FileIndex) -> &Arc<dyn FileData> {
        &self.files[index.0 as usize]
    }

    /// The bytes of a control payload.
    ///
    /// # Panics
    /// If the range did not come from this queue since its last `clear`.
    pub fn control(&self, start: u32, len: u32) -> &[u8] {
        &self.control[start as usize..(start + len) as usize]
    }

    /// The datagram as two slices (header, body); the header is empty for a
    /// control packet. The file slice is clamped to the file, so a file that
    /// shrank can never make this panic.
    pub fn parts<'a>(&'a self, transmit: &'a Transmit) -> (&'a [u8], &'a [u8]) {
        match &transmit.payload {
            Payload::Data {
                header,
                file,
                offset,
                len,
            } => {
                let bytes = self.file(*file).bytes();
                let start = usize::try_from(*offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(*len as usize).min(bytes.len());
                (header, &bytes[start..end])
            }
            Payload::Control { start, len } => (&[], self.control(*start, *len)),
        }
    }

    /// Appends the whole datagram to `buf` (a copy; for tests and simple
    /// drivers).
    pub fn copy_datagram(&self, transmit: &Transmit, buf: &mut Vec<u8>) {
        let (header, body) = self.parts(transmit);
        buf.extend_from_slice(header);
        buf.extend_from_slice(body);
    }

    /// Groups consecutive transmits that can go out as one UDP GSO send:
    /// same destination and local port, DATA from the same file at
    /// consecutive offsets, every segment but the last of equal length.
    /// Returns index ranges into [`TxQueue::transmits`], in order.
    pub fn batches(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            if start >= self.transmits.len() {
                return None;
            }
            let mut end = start + 1;
            while end < self.transmits.len() && self.continues(start, end) {
                end += 1;
            }
            let range = start..end;
            start = end;
            Some(range)
        })
    }

    /// Whether transmit `next` can join the batch that starts at `first`
    /// and currently ends just before `next`.
    fn continues(&self, first: usize, next: usize) -> bool {
        let (a, prev, b) = (
            &self.transmits[first],
            &self.transmits[next - 1],
            &self.transmits[next],
        );
        if a.dest != b.dest || a.src_ip != b.src_ip || a.local_port != b.local_port {
            return false;
        }
        let (
            Payload::Data {
                file: fa, len: la, ..
            },
            Payload::Data {
                file: fp,
                offset: op,
                len: lp,
                ..
            },
            Payload::Data {
                file: fb,
                offset: ob,
                len: lb,
                ..
            },
        ) = (a.payload, prev.payload, b.payload)
        else {
            return false;
        };
        fa == fb && fp == fb && lp == la && lb <= la && op + u64::from(lp) == ob
    }

    /// Bytes in the control arena (for measuring what a call queued).
    pub(crate) fn control_len(&self) -> usize {
        self.control.len()
    }

    /// Queues a DATA block.
    pub(crate) fn push_data(
        &mut self,
        route: Route,
        header: [u8; DATA_HEADER_LEN],
        file: &Arc<dyn FileData>,
        offset: u64,
        len: u32,
    ) {
        let file = self.intern(file);
        self.transmits.push(Transmit {
            dest: route.dest,
            src_ip: route.src_ip,
            local_port: route.local_port,
            payload: Payload::Data {
                header,
                file,
                offset,
                len,
            },
        });
    }

    /// Queues a control packet written by `write` into the arena.
    pub(crate) fn push_control(&mut self, route: Route, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.control.len();
        write(&mut self.control);
        let len = self.control.len() - start;
        self.transmits.push(Transmit {
            dest: route.dest,
            src_ip: route.src_ip,
            local_port: route.local_port,
            payload: Payload::Control {
                start: start as u32,
                len: len as u32,
            },
        });
    }

    /// The index of `file`, cloning the `Arc` only when it differs from
    /// the most recently queued file (a window shares one).
    fn intern(&mut self, file: &Arc<dyn FileData>) -> FileIndex {
        if let Some(last) = self.files.last()
            && Arc::ptr_eq(last, file)
        {
            return FileIndex(self.files.len() as u32 - 1);
        }
        self.files.push(Arc::clone(file));
        FileIndex(self.files.len() as u32 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::wire::data_header;

    fn route(port: u16) -> Route {
        Route {
            dest: SocketAddr::from(([10, 0, 0, 1], port)),
            src_ip: IpAddr::from([10, 0, 0, 254]),
            local_port: 70,
        }
    }

    #[test]
    fn batches_full_blocks_and_a_short_tail() {
        let file: Arc<dyn FileData> = Arc::new(vec![7u8; 2500]);
        let other: Arc<dyn FileData> = Arc::new(vec![1u8; 10]);
        let mut q = TxQueue::new();
        for (i, len) in [(0u64, 1000u32), (1, 1000), (2, 500)] {
            q.push_data(route(1), data_header(i as u16 + 1), &file, i * 1000, len);
        }
        q.push_data(route(2), data_header(1), &other, 0, 10);
        q.push_control(route(2), |b| b.extend_from_slice(b"ctl"));
        q.push_data(route(2), data_header(2), &other, 0, 10);
        let batches: Vec<_> = q.batches().collect();
        assert_eq!(batches, vec![0..3, 3..4, 4..5, 5..6]);
        let (h, body) = q.parts(&q.transmits()[2]);
        assert_eq!((h, body.len()), (&data_header(3)[..], 500));
        assert_eq!(q.parts(&q.transmits()[4]), (&[][..], &b"ctl"[..]));
        let Payload::Data { file: f0, .. } = q.transmits()[0].payload else {
            panic!("not data");
        };
        let Payload::Data { file: f2, .. } = q.transmits()[2].payload else {
            panic!("not data");
        };
        assert_eq!(f0, f2, "a window shares one file entry");
        q.clear();
        assert!(q.is_empty());
        assert_eq!(Arc::strong_count(&file), 1, "clear releases the file");
    }
}
