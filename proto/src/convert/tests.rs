use std::net::Ipv4Addr;
use std::path::Path;

use bootwave_protocol::config;

use super::*;
use crate::v1;

fn shipped() -> config::Config {
    let text = include_str!("../../../assets/bootwave.toml");
    config::parse(text, "bootwave.toml", Path::new("/etc/bootwave")).expect("shipped config")
}

fn subnet() -> v1::Subnet {
    v1::Subnet {
        network: "10.0.0.0/24".into(),
        ranges: vec![v1::AddrRange {
            start: "10.0.0.100".into(),
            end: "10.0.0.200".into(),
        }],
        boot_rules: vec![v1::BootRule {
            arch: vec![7],
            filename: "ipxe.efi".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn host(mac: &str, ip: &str) -> v1::Host {
    v1::Host {
        mac: mac.into(),
        fixed_address: ip.into(),
        ..Default::default()
    }
}

fn state(hosts: Vec<v1::Host>) -> v1::DesiredState {
    v1::DesiredState {
        subnets: vec![subnet()],
        hosts,
        ..Default::default()
    }
}

#[test]
fn bad_mac_names_the_field() {
    let e = HostSpec::try_from(host("zz", "")).unwrap_err();
    assert_eq!(e.to_string(), r#"mac: "zz" is not a MAC address"#);
    assert_eq!(e.within("host").field, "host.mac");
    let e = State::try_from(state(vec![host("02:00:00:00:00:01", "10.0.0.300")])).unwrap_err();
    assert_eq!(e.field, "hosts[0].fixed_address");
}

#[test]
fn mac_forms() {
    assert_eq!(parse_mac("02-00-00-00-00-0a"), Some([2, 0, 0, 0, 0, 10]));
    assert_eq!(parse_mac("02:00:00:00:00:0A"), Some([2, 0, 0, 0, 0, 10]));
    assert_eq!(parse_mac("02:00:00:00:00"), None);
    assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
    assert_eq!(parse_mac("2:00:00:00:00:00"), None);
}

#[test]
fn wire_round_trip_is_identity() {
    let mut h = host("02:00:00:00:00:01", "10.0.0.5");
    h.labels.insert("rack".into(), "r1".into());
    h.profile = "rescue".into();
    let mut wire = state(vec![h]);
    wire.profiles.push(v1::Profile {
        name: "rescue".into(),
        rules: vec![v1::BootRule {
            filename: "rescue.efi".into(),
            ..Default::default()
        }],
        ipxe_script: String::new(),
        script_path: String::new(),
    });
    let domain = State::try_from(wire).unwrap();
    let back = State::try_from(v1::DesiredState::from(&domain)).unwrap();
    assert_eq!(back, domain);
    let config = domain.to_config().unwrap();
    let rules = &config.subnets[0].boot_rules;
    assert_eq!(rules[0].profile.as_deref(), Some("rescue"));
    assert_eq!(rules[1].filename, "ipxe.efi");
    assert_eq!(
        config.hosts[0].fixed_address,
        Some(Ipv4Addr::new(10, 0, 0, 5))
    );
}

#[test]
fn data_plane_validation_names_the_object() {
    let s = State::try_from(state(vec![host("02:00:00:00:00:01", "10.9.0.5")])).unwrap();
    let e = s.to_config().unwrap_err();
    assert_eq!(e.field, "host 02:00:00:00:00:01: fixed-address", "{e}");
    let mut h = host("02:00:00:00:00:01", "");
    h.profile = "nope".into();
    let e = State::try_from(state(vec![h]))
        .unwrap()
        .to_config()
        .unwrap_err();
    assert_eq!(e.field, "host 02:00:00:00:00:01: profile", "{e}");
}

#[test]
fn host_subnet_must_exist_and_hold_the_address() {
    let mut h = host("02:00:00:00:00:01", "10.0.0.5");
    h.subnet = "10.1.0.0/24".into();
    let e = State::try_from(state(vec![h]))
        .unwrap()
        .to_config()
        .unwrap_err();
    assert!(e.reason.contains("no subnet 10.1.0.0/24"), "{e}");
}

#[test]
fn shipped_config_survives_state_round_trip() {
    let config = shipped();
    let state = State::from(&config);
    let again = state.to_config_with(&config).unwrap();
    assert_eq!(again, config);
}

fn scripted_state(host_labels: &[(&str, &str)], script: &str) -> v1::DesiredState {
    let mut h = host("02:00:00:00:00:01", "10.0.0.5");
    h.profile = "rescue".into();
    for (k, v) in host_labels {
        h.labels.insert((*k).into(), (*v).into());
    }
    let mut wire = state(vec![h]);
    wire.profiles.push(v1::Profile {
        name: "rescue".into(),
        rules: vec![v1::BootRule {
            user_class: "iPXE".into(),
            filename: "boot.ipxe".into(),
            ..Default::default()
        }],
        ipxe_script: script.into(),
        script_path: "boot.ipxe".into(),
    });
    wire
}

#[test]
fn profile_scripts_and_used_labels_reach_the_config() {
    let script = "#!ipxe\necho {{hostname}} rack {{label:rack}} ${net0/mac}\n";
    let wire = scripted_state(&[("rack", "r1"), ("team name", "a\nb")], script);
    let domain = State::try_from(wire).unwrap();
    assert_eq!(
        domain.profiles["rescue"].script_path.as_deref(),
        Some("boot.ipxe")
    );
    let config = domain.to_config().unwrap();
    let profile = &config.profiles[0];
    let rendered = profile.script.as_ref().expect("a script");
    assert_eq!(
        (profile.name.as_str(), rendered.path.as_str()),
        ("rescue", "boot.ipxe")
    );
    assert_eq!(rendered.template.source(), script);
    // Only the label a template uses is sent; the other one (not valid in a
    // script) stays in the agent.
    let labels: Vec<_> = config.hosts[0].labels.iter().collect();
    assert_eq!(labels, [(&"rack".to_owned(), &"r1".to_owned())]);
    // And back: the file configuration carries the profile and the labels.
    let back = State::from(&config);
    assert_eq!(back.profiles["rescue"].ipxe_script.as_deref(), Some(script));
    assert_eq!(
        back.profiles["rescue"].script_path.as_deref(),
        Some("boot.ipxe")
    );
    assert_eq!(back.hosts[&[2, 0, 0, 0, 0, 1]].labels.len(), 1);
}

#[test]
fn script_path_defaults_to_the_profile_name() {
    let mut wire = scripted_state(&[], "#!ipxe\n");
    wire.profiles[0].script_path.clear();
    let config = State::try_from(wire).unwrap().to_config().unwrap();
    let path = config.profiles[0].script.as_ref().map(|s| s.path.as_str());
    assert_eq!(path, Some("rescue.ipxe"));
}

#[test]
fn script_errors_name_the_profile_or_the_host() {
    let wire = scripted_state(&[], "#!ipxe\necho {{hostnmae}}\n");
    let e = State::try_from(wire).unwrap().to_config().unwrap_err();
    assert_eq!(e.field, "profile rescue: template");
    assert!(
        e.reason
            .starts_with("line 2, column 6: unknown variable `hostnmae`"),
        "{e}"
    );
    let wire = scripted_state(&[("row", "3")], "#!ipxe\necho {{label:rack}}\n");
    let e = State::try_from(wire).unwrap().to_config().unwrap_err();
    assert_eq!(e.field, "host 02:00:00:00:00:01: labels");
    assert!(e.reason.contains("{{label:rack}}"), "{e}");
}

/// A state with `dynamic-bootp`, its lease length and trusted relays.
fn bootp_and_relays() -> v1::DesiredState {
    let mut wire = state(Vec::new());
    wire.subnets[0].dynamic_bootp = true;
    wire.subnets[0].dynamic_bootp_lease_length_s = 1800;
    wire.dhcp = Some(v1::DhcpSettings {
        relays: vec!["10.1.0.0/16".into(), "192.0.2.7".into()],
        ..Default::default()
    });
    wire
}

#[test]
fn dynamic_bootp_and_relays_survive_wire_config_and_file() {
    let domain = State::try_from(bootp_and_relays()).unwrap();
    let subnet = &domain.subnets.values().next().unwrap();
    assert!(subnet.dynamic_bootp);
    assert_eq!(
        subnet.dynamic_bootp_lease_length,
        Some(std::time::Duration::from_secs(1800))
    );
    let relays = vec![
        config::Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap(),
        config::Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 7), 32).unwrap(),
    ];
    assert_eq!(domain.dhcp.relays, relays);
    // Wire → domain → wire → domain.
    let back = State::try_from(v1::DesiredState::from(&domain)).unwrap();
    assert_eq!(back, domain);
    // The data plane's config carries them…
    let config = domain.to_config().unwrap();
    assert!(config.subnets[0].dynamic_bootp);
    assert_eq!(
        config.subnets[0].dynamic_bootp_lease_length,
        Some(std::time::Duration::from_secs(1800))
    );
    assert_eq!(config.dhcp.relays, relays);
    // …and so does the file rendered from the state, read back.
    let text = domain.render().unwrap();
    let parsed = config::parse(&text, "rendered", Path::new("/")).unwrap();
    let reread = State::from(&parsed);
    assert_eq!(reread.dhcp.relays, relays, "{text}");
    assert_eq!(
        (
            reread.subnets[&subnet.net].dynamic_bootp,
            reread.subnets[&subnet.net].dynamic_bootp_lease_length
        ),
        (true, subnet.dynamic_bootp_lease_length),
        "{text}"
    );
    // Without them, the file says nothing about them.
    let plain = State::try_from(state(Vec::new()))
        .unwrap()
        .render()
        .unwrap();
    assert!(
        !plain.contains("dynamic-bootp") && !plain.contains("relays"),
        "{plain}"
    );
}

#[test]
fn bad_relays_and_bootp_lengths_are_refused() {
    let mut wire = bootp_and_relays();
    wire.dhcp
        .as_mut()
        .unwrap()
        .relays
        .push("10.1.0.0/16".into());
    let e = State::try_from(wire).unwrap_err();
    assert_eq!(e.field, "dhcp.relays[2]", "{e}");
    assert!(e.reason.contains("listed twice"), "{e}");
    let mut wire = bootp_and_relays();
    wire.dhcp.as_mut().unwrap().relays[0] = "10.1.0.1/16".into();
    let e = State::try_from(wire).unwrap_err();
    assert_eq!(e.field, "dhcp.relays[0]", "{e}");
    // The data plane's own checks: a length needs dynamic-bootp and stays
    // within the maximum lease time.
    let mut wire = bootp_and_relays();
    wire.subnets[0].dynamic_bootp = false;
    let e = State::try_from(wire).unwrap().to_config().unwrap_err();
    assert_eq!(
        e.field, "subnet 10.0.0.0/24: dynamic-bootp-lease-length",
        "{e}"
    );
    let mut wire = bootp_and_relays();
    wire.subnets[0].dynamic_bootp_lease_length_s = 10 * 86_400;
    let e = State::try_from(wire).unwrap().to_config().unwrap_err();
    assert!(e.reason.contains("exceeds the maximum lease time"), "{e}");
}

#[test]
fn a_delta_carries_relays_and_refuses_bad_ones() {
    let delta = v1::StateDelta {
        dhcp: Some(v1::DhcpSettings {
            relays: vec!["192.0.2.7".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let d = Delta::try_from(delta).unwrap();
    assert_eq!(d.dhcp.map(|d| d.relays.len()), Some(1));
    let bad = v1::StateDelta {
        dhcp: Some(v1::DhcpSettings {
            relays: vec!["relay-1".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = Delta::try_from(bad).unwrap_err();
    assert_eq!(e.field, "dhcp.relays[0]", "{e}");
}
