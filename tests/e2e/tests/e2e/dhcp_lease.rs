//! Real DHCP clients get leases from each server.

use std::net::Ipv4Addr;

use bootwave_e2e::{Lab, POOL_END, POOL_START, SERVER_ADDR, require_root_and_tools, udhcpc_lease};

use crate::SERVERS;

const PXE_CLASS: &str = "PXEClient:Arch:00007:UNDI:003000";

fn in_pool(ip: Ipv4Addr) -> bool {
    (u32::from(POOL_START)..=u32::from(POOL_END)).contains(&u32::from(ip))
}

#[test]
fn udhcpc_clients_get_distinct_leases_in_the_pool() -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "busybox", "dnsmasq"]);
    for &server in SERVERS {
        let lab = Lab::star(3)?;
        let spec = lab.spec(None, Some("ipxe.efi"));
        let running = server.start(&lab.server, &spec)?;
        let leases = std::thread::scope(|scope| {
            let handles: Vec<_> = lab
                .clients
                .iter()
                .map(|c| scope.spawn(|| udhcpc_lease(&c.ns, &c.ifname, Some(PXE_CLASS))))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| panic!("udhcpc thread panicked"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| anyhow::anyhow!("{server:?}: {e}\n{}", running.child.tail()))?;
        for lease in &leases {
            assert!(
                in_pool(lease.ip),
                "{server:?}: {} outside the pool",
                lease.ip
            );
            assert_eq!(lease.mask, 24, "{server:?}");
            assert_eq!(lease.server_id, Some(SERVER_ADDR), "{server:?}");
            assert_eq!(lease.router, Some(SERVER_ADDR), "{server:?}");
            assert_eq!(lease.siaddr, Some(SERVER_ADDR), "{server:?}");
            assert_eq!(lease.boot_file.as_deref(), Some("ipxe.efi"), "{server:?}");
            assert_eq!(lease.lease_secs, Some(spec.lease_secs), "{server:?}");
        }
        let mut ips: Vec<_> = leases.iter().map(|l| l.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(
            ips.len(),
            leases.len(),
            "{server:?}: duplicate addresses {leases:?}"
        );
    }
    Ok(())
}

#[test]
fn a_client_gets_the_same_address_again() -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "busybox", "dnsmasq"]);
    for &server in SERVERS {
        let lab = Lab::star(1)?;
        let _running = server.start(&lab.server, &lab.spec(None, None))?;
        let client = &lab.clients[0];
        let first = udhcpc_lease(&client.ns, &client.ifname, None)?;
        let second = udhcpc_lease(&client.ns, &client.ifname, None)?;
        assert_eq!(
            first.ip, second.ip,
            "{server:?}: the same MAC keeps its address"
        );
    }
    Ok(())
}
