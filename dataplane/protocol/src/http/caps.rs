//! Connection caps: per client address and in total.

use std::collections::HashMap;
use std::net::IpAddr;

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client already holds `max-connections-per-client` connections.
    PerClient,
    /// The server already holds `max-connections` connections.
    Total,
}

/// Counts open connections per client address and in total. Memory is
/// bounded by the total cap: an address is kept only while it holds a
/// connection.
#[derive(Debug, Clone)]
pub struct ConnectionCaps {
    per_client: u32,
    total: u32,
    open: u32,
    by_client: HashMap<IpAddr, u32>,
}

impl ConnectionCaps {
    /// Caps of `per_client` connections per address and `total` overall.
    pub fn new(per_client: u32, total: u32) -> Self {
        Self {
            per_client,
            total,
            open: 0,
            by_client: HashMap::new(),
        }
    }

    /// Counts a new connection from `client`, or says why it is refused
    /// (then nothing is counted).
    pub fn admit(&mut self, client: IpAddr) -> Result<(), Refusal> {
        let held = self.by_client.get(&client).copied().unwrap_or(0);
        if held >= self.per_client {
            return Err(Refusal::PerClient);
        }
        if self.open >= self.total {
            return Err(Refusal::Total);
        }
        self.by_client.insert(client, held + 1);
        self.open += 1;
        Ok(())
    }

    /// Forgets one admitted connection of `client`.
    pub fn release(&mut self, client: IpAddr) {
        let Some(held) = self.by_client.get_mut(&client) else {
            return;
        };
        *held -= 1;
        if *held == 0 {
            self.by_client.remove(&client);
        }
        self.open = self.open.saturating_sub(1);
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.open
    }

    /// Client addresses holding a connection now.
    pub fn clients(&self) -> usize {
        self.by_client.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn caps_per_client_and_in_total() {
        let mut caps = ConnectionCaps::new(2, 3);
        assert_eq!(caps.admit(ip(1)), Ok(()));
        assert_eq!(caps.admit(ip(1)), Ok(()));
        assert_eq!(caps.admit(ip(1)), Err(Refusal::PerClient));
        assert_eq!(caps.admit(ip(2)), Ok(()));
        assert_eq!(caps.admit(ip(3)), Err(Refusal::Total));
        assert_eq!((caps.open(), caps.clients()), (3, 2));
        caps.release(ip(1));
        assert_eq!(caps.admit(ip(3)), Ok(()));
        assert_eq!(caps.admit(ip(1)), Err(Refusal::Total));
        caps.release(ip(3));
        assert_eq!(caps.admit(ip(1)), Ok(()));
        assert_eq!(caps.admit(ip(1)), Err(Refusal::PerClient));
    }

    #[test]
    fn releasing_forgets_idle_clients_and_ignores_strangers() {
        let mut caps = ConnectionCaps::new(4, 100);
        caps.release(ip(9));
        assert_eq!(caps.open(), 0);
        for n in 0..50 {
            caps.admit(ip(n)).expect("room");
        }
        for n in 0..50 {
            caps.release(ip(n));
        }
        assert_eq!((caps.open(), caps.clients()), (0, 0));
    }
}
