//! Which script a TFTP request gets: the rendered template of the
//! requesting host's profile, or nothing (the file store answers).

use std::net::IpAddr;

use super::Vars;
use crate::config::DEFAULT_PROFILE;
use crate::dhcp::Snapshot;
use crate::tftp::ResolveRequest;

/// Renders the script for `request` from the configuration in `snapshot`.
///
/// Answers `Some(bytes)` when the request's path is the script path of
/// the profile of the host declared for the client's MAC. Answers `None`
/// (the file store then serves the path as a plain file, or answers "not
/// found") when no profile serves that path, when the client's MAC is
/// unknown, when no host is declared for it, or when the host's profile
/// serves another path or none. Hosts without a profile have
/// [`DEFAULT_PROFILE`].
///
/// Values: `{{ip}}` is the host's fixed address, else the client's
/// address; `{{next-server}}` is the `next-server` of the most specific
/// subnet holding that address (empty when there is none).
pub fn script_for(snapshot: &Snapshot, request: &ResolveRequest<'_>) -> Option<Vec<u8>> {
    let config = snapshot.config();
    // Fast path: most requests are for plain files.
    if !config
        .profiles
        .iter()
        .filter_map(|p| p.script.as_ref())
        .any(|s| s.path == request.path)
    {
        return None;
    }
    let host = snapshot.host(&request.mac?)?;
    let profile = host.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    let script = config
        .profiles
        .iter()
        .find(|p| p.name == profile)?
        .script
        .as_ref()
        .filter(|s| s.path == request.path)?;
    let ip = host.fixed_address.or(match request.client.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    });
    let next_server = ip
        .and_then(|ip| snapshot.subnet_index(ip))
        .and_then(|i| snapshot.subnet(i))
        .and_then(|s| s.next_server);
    Some(script.template.render(&Vars {
        hostname: host.hostname.as_deref().unwrap_or(&host.name),
        name: &host.name,
        mac: host.mac,
        ip,
        next_server,
        http_port: config.http.port,
        profile,
        labels: &host.labels,
    }))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    const CONFIG: &str = r##"
[[subnets]]
network = "10.0.0.0/24"
next-server = "10.0.0.1"

[[profiles]]
name = "rescue"
script = "boot.ipxe"
template = "#!ipxe\necho {{hostname}} {{mac-hyphen}} {{ip}} {{next-server}} {{profile}} {{label:rack}} ${net0/mac}\n"

[[profiles]]
name = "local-disk"
script = "boot.ipxe"
template = "#!ipxe\nsanboot --drive 0x80 # {{name}}\n"

[[profiles]]
name = "default"
script = "default.ipxe"
template = "#!ipxe\necho {{profile}} {{ip}}\n"

[[profiles]]
name = "install"

[[hosts]]
name = "a"
hostname = "a.lab"
mac = "02:00:00:00:00:0a"
fixed-address = "10.0.0.10"
profile = "rescue"
labels = { rack = "r4" }

[[hosts]]
name = "b"
mac = "02:00:00:00:00:0b"
profile = "local-disk"

[[hosts]]
name = "c"
mac = "02:00:00:00:00:0c"

[[hosts]]
name = "d"
mac = "02:00:00:00:00:0d"
profile = "install"
"##;

    fn snapshot() -> Snapshot {
        Snapshot::new(parse(CONFIG, "t.toml", Path::new("/")).expect("valid"))
    }

    fn script(snap: &Snapshot, path: &str, last: Option<u8>, from: [u8; 4]) -> Option<String> {
        let request = ResolveRequest {
            path,
            client: SocketAddr::from((Ipv4Addr::from(from), 2070)),
            mac: last.map(|l| [2, 0, 0, 0, 0, l]),
        };
        script_for(snap, &request).map(|b| String::from_utf8(b).expect("UTF-8"))
    }

    #[test]
    fn each_host_gets_its_profile_script_at_the_shared_path() {
        let snap = snapshot();
        assert_eq!(
            script(&snap, "boot.ipxe", Some(0x0a), [10, 0, 0, 10]).as_deref(),
            Some("#!ipxe\necho a.lab 02-00-00-00-00-0a 10.0.0.10 10.0.0.1 rescue r4 ${net0/mac}\n")
        );
        assert_eq!(
            script(&snap, "boot.ipxe", Some(0x0b), [10, 0, 0, 77]).as_deref(),
            Some("#!ipxe\nsanboot --drive 0x80 # b\n")
        );
    }

    #[test]
    fn a_host_without_profile_gets_the_default_profile_script_with_its_address() {
        let snap = snapshot();
        assert_eq!(
            script(&snap, "default.ipxe", Some(0x0c), [10, 0, 0, 99]).as_deref(),
            Some("#!ipxe\necho default 10.0.0.99\n")
        );
    }

    #[test]
    fn other_requests_fall_through() {
        let snap = snapshot();
        // Unknown MAC, no MAC, undeclared host.
        assert_eq!(script(&snap, "boot.ipxe", None, [10, 0, 0, 10]), None);
        assert_eq!(script(&snap, "boot.ipxe", Some(0x99), [10, 0, 0, 10]), None);
        // The host's profile serves another path, or none.
        assert_eq!(
            script(&snap, "default.ipxe", Some(0x0a), [10, 0, 0, 10]),
            None
        );
        assert_eq!(script(&snap, "boot.ipxe", Some(0x0c), [10, 0, 0, 10]), None);
        assert_eq!(script(&snap, "boot.ipxe", Some(0x0d), [10, 0, 0, 10]), None);
        // Not a script path at all.
        assert_eq!(script(&snap, "ipxe.efi", Some(0x0a), [10, 0, 0, 10]), None);
    }

    #[test]
    fn next_server_is_empty_outside_every_subnet() {
        let snap = snapshot();
        assert_eq!(
            script(&snap, "default.ipxe", Some(0x0c), [192, 168, 9, 9]).as_deref(),
            Some("#!ipxe\necho default 192.168.9.9\n")
        );
    }
}
