//! Choosing between the io_uring and the portable backend.

use std::io;

use super::DriverError;

/// The I/O backend a shard group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One io_uring per shard: multishot receive over provided buffers.
    Uring,
    /// `poll` + `recvmmsg` + `sendmmsg`.
    Portable,
}

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when the kernel allows it, else portable.
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// Portable, never io_uring.
    Portable,
}

/// Decides the backend from the choice and the outcome of an io_uring probe.
///
/// `probe` sets up a small ring with a provided-buffer ring, as a shard
/// would. Under [`BackendChoice::Auto`] a refusal (EPERM, EACCES: seccomp
/// or `kernel.io_uring_disabled`; ENOSYS: no io_uring; EINVAL, EOPNOTSUPP:
/// a kernel too old for provided-buffer rings) selects the portable backend
/// with one log line; any other failure (ENOMEM, EMFILE) is an error.
pub fn select_backend(
    choice: BackendChoice,
    probe: impl FnOnce() -> io::Result<()>,
) -> Result<Backend, DriverError> {
    match choice {
        BackendChoice::Portable => Ok(Backend::Portable),
        BackendChoice::Uring => {
            probe()
                .map(|()| Backend::Uring)
                .map_err(|source| DriverError::Uring {
                    op: "setup",
                    source,
                })
        }
        BackendChoice::Auto => match probe() {
            Ok(()) => Ok(Backend::Uring),
            Err(err) if is_refusal(&err) => {
                tracing::info!(error = %err, "io_uring unavailable, using the portable backend (poll + recvmmsg/sendmmsg)");
                Ok(Backend::Portable)
            }
            Err(source) => Err(DriverError::Uring {
                op: "setup",
                source,
            }),
        },
    }
}

fn is_refusal(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fails(errno: i32) -> impl FnOnce() -> io::Result<()> {
        move || Err(io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn auto_falls_back_on_refusal() {
        for errno in [libc::EPERM, libc::EACCES, libc::ENOSYS] {
            assert_eq!(
                select_backend(BackendChoice::Auto, fails(errno)).unwrap(),
                Backend::Portable
            );
        }
    }

    #[test]
    fn auto_takes_uring_when_the_probe_succeeds() {
        assert_eq!(
            select_backend(BackendChoice::Auto, || Ok(())).unwrap(),
            Backend::Uring
        );
    }

    #[test]
    fn resource_errors_are_not_hidden() {
        assert!(matches!(
            select_backend(BackendChoice::Auto, fails(libc::ENOMEM)),
            Err(DriverError::Uring { .. })
        ));
    }

    #[test]
    fn explicit_choices_are_honoured() {
        assert!(select_backend(BackendChoice::Uring, fails(libc::EPERM)).is_err());
        let mut probed = false;
        let backend = select_backend(BackendChoice::Portable, || {
            probed = true;
            Ok(())
        });
        assert_eq!(backend.unwrap(), Backend::Portable);
        assert!(!probed, "portable must not probe io_uring");
    }
}
