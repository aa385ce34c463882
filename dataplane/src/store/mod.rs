//! The boot-file store.
