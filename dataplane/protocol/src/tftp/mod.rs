//! The TFTP server core.
