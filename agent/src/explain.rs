//! Which subnet, rule and profile decide each boot stage of a MAC, computed
//! from the desired state with the DHCP core's own rule matching.

use bootwave_proto::convert::{State, rule_to_wire};
use bootwave_proto::v1;
use bootwave_protocol::config::{ClientArch, DEFAULT_PROFILE, UnknownClients, write_http_boot_url};
use bootwave_protocol::dhcp::{ClientClass, boot_rule_matches};

/// The user class iPXE sends.
const IPXE: &[u8] = b"iPXE";

/// The `[http] port` every data plane that serves HTTP reported, when they
/// agree; `None` when none reported one or they differ.
pub fn common_http_port(planes: &[v1::DataplaneInfo]) -> Option<u16> {
    let mut ports = planes
        .iter()
        .filter_map(|p| u16::try_from(p.http_port).ok().filter(|&port| port != 0));
    let first = ports.next()?;
    ports.all(|port| port == first).then_some(first)
}

/// Explains how `mac` boots under `state` at `generation`; `http_port` is
/// the data planes' `[http] port` when they all report the same one.
pub fn explain(
    state: &State,
    generation: u64,
    mac: [u8; 6],
    http_port: Option<u16>,
) -> v1::ExplainReply {
    let host = state.hosts.get(&mac);
    let profile = host
        .and_then(|h| h.profile.as_deref())
        .unwrap_or(DEFAULT_PROFILE);
    let mut reply = v1::ExplainReply {
        generation,
        known: host.is_some(),
        host: host.map(v1::Host::from),
        profile: profile.to_owned(),
        ..Default::default()
    };
    let subnet = match host {
        Some(h) => state.host_subnet(h),
        None => {
            let mut all = state.subnets.values();
            match (all.next(), all.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    let Some(subnet) = subnet else {
        reply.note = if host.is_some() {
            "the host names no subnet, has no fixed address and several subnets exist".into()
        } else {
            "unknown host: the subnet depends on the interface or relay it comes through".into()
        };
        return reply;
    };
    reply.subnet = subnet.net.to_string();
    let policy = subnet
        .unknown_clients
        .or(state.dhcp.unknown_clients)
        .unwrap_or(UnknownClients::Allow);
    if host.is_none() && policy == UnknownClients::Deny {
        reply.note = format!("unknown clients are denied in {}: no answer", subnet.net);
        return reply;
    }
    let rules = state.effective_rules(subnet);
    let stage = |user_class: Option<&[u8]>, ipxe_encap| {
        let client = ClientClass {
            profile,
            arch: Some(ClientArch::EFI_X64),
            user_class,
            ipxe_encap,
        };
        let Some((index, (source, rule))) = rules
            .iter()
            .enumerate()
            .find(|(_, (_, rule))| boot_rule_matches(rule, &client))
        else {
            return v1::StageDecision::default();
        };
        let next_server = rule.next_server.or(subnet.next_server);
        // An `http = true` rule's URL names the data plane's own address
        // when no next-server is set, and its [http] port: both are the
        // data plane's, so the URL shows what the agent does not know.
        let filename = if rule.http {
            let host =
                next_server.map_or_else(|| "<data plane address>".to_owned(), |a| a.to_string());
            match http_port {
                Some(port) => {
                    let mut url = String::new();
                    let _ = write_http_boot_url(&mut url, host, port, &rule.filename);
                    url
                }
                None => format!(
                    "http://{host}:<[http] port>/{}",
                    rule.filename.trim_start_matches('/')
                ),
            }
        } else {
            rule.filename.clone()
        };
        v1::StageDecision {
            matched: true,
            rule_index: u32::try_from(index).unwrap_or(u32::MAX),
            source: source.to_string(),
            rule: Some(rule_to_wire(rule)),
            filename,
            next_server: next_server.map(|a| a.to_string()).unwrap_or_default(),
        }
    };
    reply.firmware = Some(stage(None, false));
    reply.ipxe = Some(stage(Some(IPXE), true));
    reply
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn state() -> State {
        let wire = v1::DesiredState {
            subnets: vec![v1::Subnet {
                network: "10.0.0.0/24".into(),
                next_server: "10.0.0.1".into(),
                boot_rules: vec![
                    v1::BootRule {
                        arch: vec![7, 9],
                        user_class: "iPXE".into(),
                        filename: "refind.pxe".into(),
                        ..Default::default()
                    },
                    v1::BootRule {
                        arch: vec![7, 9],
                        filename: "ipxe.efi".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            hosts: vec![v1::Host {
                mac: "02:00:00:00:00:02".into(),
                profile: "rescue".into(),
                ..Default::default()
            }],
            profiles: vec![v1::Profile {
                name: "rescue".into(),
                rules: vec![v1::BootRule {
                    ipxe_encap: Some(true),
                    filename: "rescue.ipxe".into(),
                    next_server: "10.0.0.9".into(),
                    ..Default::default()
                }],
                ipxe_script: String::new(),
                script_path: String::new(),
            }],
            ..Default::default()
        };
        State::try_from(wire).unwrap()
    }

    #[test]
    fn an_http_rule_shows_the_url_with_the_data_planes_port() {
        let wire = v1::DesiredState {
            subnets: vec![v1::Subnet {
                network: "10.0.0.0/24".into(),
                next_server: "10.0.0.1".into(),
                boot_rules: vec![v1::BootRule {
                    arch: vec![7],
                    filename: "/efi/ipxe.efi".into(),
                    http: true,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let state = State::try_from(wire).unwrap();
        let url = |port| {
            explain(&state, 1, [2, 0, 0, 0, 0, 1], port)
                .firmware
                .unwrap()
                .filename
        };
        assert_eq!(url(Some(8080)), "http://10.0.0.1:8080/efi/ipxe.efi");
        assert_eq!(url(Some(80)), "http://10.0.0.1/efi/ipxe.efi");
        assert_eq!(url(None), "http://10.0.0.1:<[http] port>/efi/ipxe.efi");
    }

    #[test]
    fn the_http_port_is_known_when_every_serving_data_plane_agrees() {
        let plane = |port| v1::DataplaneInfo {
            http_port: port,
            ..Default::default()
        };
        assert_eq!(common_http_port(&[]), None);
        assert_eq!(common_http_port(&[plane(0)]), None, "HTTP off");
        assert_eq!(common_http_port(&[plane(8080), plane(0)]), Some(8080));
        assert_eq!(common_http_port(&[plane(8080), plane(80)]), None);
        assert_eq!(common_http_port(&[plane(70_000)]), None, "not a port");
    }

    #[test]
    fn default_profile_follows_the_subnet_rules() {
        let r = explain(&state(), 4, [2, 0, 0, 0, 0, 1], None);
        assert!(!r.known);
        assert_eq!(r.subnet, "10.0.0.0/24");
        let fw = r.firmware.unwrap();
        assert_eq!(
            (fw.filename.as_str(), fw.next_server.as_str()),
            ("ipxe.efi", "10.0.0.1")
        );
        assert_eq!((fw.rule_index, fw.source.as_str()), (2, "subnet"));
        assert_eq!(r.ipxe.unwrap().filename, "refind.pxe");
    }

    #[test]
    fn profile_rules_come_first_for_their_hosts() {
        let r = explain(&state(), 4, [2, 0, 0, 0, 0, 2], None);
        assert!(r.known);
        assert_eq!(r.profile, "rescue");
        let fw = r.firmware.unwrap();
        assert_eq!(fw.filename, "ipxe.efi", "no option 175 in firmware");
        let ipxe = r.ipxe.unwrap();
        assert_eq!(
            (ipxe.filename.as_str(), ipxe.next_server.as_str()),
            ("rescue.ipxe", "10.0.0.9")
        );
        assert_eq!(ipxe.source, "profile rescue");
    }
}
