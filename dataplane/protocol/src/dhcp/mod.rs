//! The DHCPv4 server core.
