//! The provided-buffer ring a shard's multishot receives draw from.
//!
//! One page-aligned ring of `entries` descriptors and one allocation of
//! `entries` equal buffers. A buffer listed in the ring belongs to the
//! kernel; a receive completion hands buffer `bid` back to us; [`BufRing::push`]
//! lists it again and [`BufRing::publish`] makes the new entries visible.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::mem::size_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// Alignment the kernel requires of the ring.
const PAGE: usize = 4096;

// `push` writes entries by the kernel's `struct io_uring_buf` layout.
const _: () = assert!(size_of::<BufRingEntry>() == 16);

/// A provided-buffer ring and its buffers.
#[derive(Debug)]
pub(crate) struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_layout: Layout,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    entries: u16,
    buf_size: u32,
    tail: u16,
}

impl BufRing {
    /// Allocates `entries` buffers of `buf_size` bytes, all listed.
    /// `entries` must be a power of two no larger than 32768.
    pub(crate) fn new(entries: u16, buf_size: u32) -> io::Result<Self> {
        if !entries.is_power_of_two() || entries > 1 << 15 || buf_size == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
        let ring_layout =
            Layout::from_size_align(usize::from(entries) * size_of::<BufRingEntry>(), PAGE)
                .map_err(invalid)?;
        let bufs_layout = Layout::from_size_align(usize::from(entries) * buf_size as usize, PAGE)
            .map_err(invalid)?;
        let ring = alloc_bytes(ring_layout)?.cast::<BufRingEntry>();
        let bufs = match alloc_bytes(bufs_layout) {
            Ok(bufs) => bufs,
            Err(err) => {
                // Safety: `ring` came from `alloc_zeroed(ring_layout)` just above.
                #[allow(unsafe_code)]
                unsafe {
                    dealloc(ring.as_ptr().cast(), ring_layout)
                };
                return Err(err);
            }
        };
        let mut this = Self {
            ring,
            ring_layout,
            bufs,
            bufs_layout,
            entries,
            buf_size,
            tail: 0,
        };
        for bid in 0..entries {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// Registers the ring as buffer group `bgid` of `ring`.
    pub(crate) fn register(&self, uring: &IoUring, bgid: u16) -> io::Result<()> {
        // Safety: the ring memory is page-aligned, holds `entries` entries and
        // stays allocated until this value is dropped, which the backend does
        // only after the io_uring is closed and every request using the group
        // has ended (otherwise it leaks the value).
        #[allow(unsafe_code)]
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                self.ring.as_ptr() as u64,
                self.entries,
                bgid,
                0,
            )
        }
    }

    /// Lists buffer `bid` again (visible after [`BufRing::publish`]).
    /// `bid` must be one the kernel handed back, or any id during setup.
    pub(crate) fn push(&mut self, bid: u16) {
        let bid = bid & (self.entries - 1);
        let index = usize::from(self.tail & (self.entries - 1));
        let addr = self.buf_ptr(bid) as u64;
        let entry = self.ring.as_ptr().wrapping_add(index).cast::<u8>();
        // Safety: `index < entries`, so the entry lies inside the ring
        // allocation. Entries between the published tail and our local tail
        // are ours: the kernel reads only up to the published tail, and at
        // most `entries` buffers are ever listed, so the entry at our tail
        // has been consumed. The writes follow `struct io_uring_buf`
        // { u64 addr; u32 len; u16 bid; u16 resv } and leave `resv` alone:
        // in entry 0 it is the shared tail, written by `publish` alone.
        #[allow(unsafe_code)]
        unsafe {
            entry.cast::<u64>().write(addr);
            entry.add(8).cast::<u32>().write(self.buf_size);
            entry.add(12).cast::<u16>().write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the entries pushed so far visible to the kernel.
    pub(crate) fn publish(&self) {
        // Safety: `ring` points to the first entry of a live ring; `tail`
        // returns the address of its tail field, a naturally aligned u16
        // that the kernel reads atomically, so viewing it as an AtomicU16 is
        // sound. The release store orders our entry writes before it.
        #[allow(unsafe_code)]
        let tail =
            unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.ring.as_ptr()).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`, which a completion has just
    /// handed back to us and which is not listed again until the returned
    /// slice is gone.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let bid = bid & (self.entries - 1);
        let len = len.min(self.buf_size as usize);
        // Safety: buffer `bid` lies inside the buffer allocation; the kernel
        // wrote it before posting the completion that returned it and will
        // not write it again until `push(bid)` + `publish`, which need
        // `&mut self` and so cannot happen while the slice lives.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.buf_ptr(bid), len)
        }
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        self.bufs
            .as_ptr()
            .wrapping_add(usize::from(bid) * self.buf_size as usize)
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Safety: both pointers come from `alloc_zeroed` with these layouts;
        // the backend drops a BufRing only once the kernel no longer uses it.
        #[allow(unsafe_code)]
        unsafe {
            dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}

fn alloc_bytes(layout: Layout) -> io::Result<NonNull<u8>> {
    // Safety: both layouts built above have a non-zero size.
    #[allow(unsafe_code)]
    let ptr = unsafe { alloc_zeroed(layout) };
    NonNull::new(ptr).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))
}
