//! Synchronous signal handling: block the signals in every thread, then
//! take them one at a time on the main thread with `sigtimedwait(2)`.
//!
//! Call [`block`] before any thread is spawned: threads inherit the mask,
//! so no shard is ever interrupted and the signals stay pending until
//! [`Blocked::wait`] takes them.

use std::io;
use std::time::Duration;

/// A signal the data plane reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM`: drain and stop.
    Term,
    /// `SIGINT`: drain and stop.
    Int,
    /// `SIGHUP`: reload configuration and files.
    Hup,
}

/// The blocked signal set; proof that [`block`] ran.
#[derive(Debug)]
pub struct Blocked {
    set: libc::sigset_t,
}

/// Blocks `SIGTERM`, `SIGINT` and `SIGHUP` in the calling thread (and so in
/// every thread it spawns afterwards).
pub fn block() -> io::Result<Blocked> {
    // Safety: an all-zero `sigset_t` is a valid value to initialise with
    // `sigemptyset`.
    #[allow(unsafe_code)]
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // Safety: `set` is a valid, exclusively borrowed signal set; the
    // signal numbers are valid constants.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(Blocked { set })
}

impl Blocked {
    /// Waits up to `timeout` for one of the blocked signals; `None` when
    /// none arrived in time (or the wait was interrupted).
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // Safety: `set` was initialised by `block`; a null info pointer is
        // allowed; `ts` lives across the call.
        #[allow(unsafe_code)]
        let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        match sig {
            libc::SIGTERM => Some(Signal::Term),
            libc::SIGINT => Some(Signal::Int),
            libc::SIGHUP => Some(Signal::Hup),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_signal_is_taken_by_wait() {
        let blocked = block().expect("block");
        // Safety: raising a signal that is blocked in this thread only
        // makes it pending for this thread.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
        assert_eq!(rc, 0);
        assert_eq!(blocked.wait(Duration::from_secs(1)), Some(Signal::Hup));
        assert_eq!(blocked.wait(Duration::from_millis(10)), None);
    }
}
