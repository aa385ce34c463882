//! The append-only lease journal.
