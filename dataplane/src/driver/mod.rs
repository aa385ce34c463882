//! Sockets, rings and shard threads.
