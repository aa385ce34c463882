//! DHCP server behaviour end to end (bytes in, bytes out), with every reply
//! decoded by the `dhcproto` oracle.

mod dhcp_support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use bootwave_protocol::config::{ClientArch, UnknownClients};
use bootwave_protocol::dhcp::{
    Action, Destination, DhcpServer, DropReason, IPXE_NO_PXEDHCP, LeaseState, NakReason, Packet,
    RecordKind, Snapshot, UnixTime, Verdict,
};
use dhcp_support::*;
use dhcproto::v4::{DhcpOption, Message, MessageType as Mt, OptionCode, UnknownOption};

fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

fn u32_opt(m: &Message, code: OptionCode) -> Option<u32> {
    match opt(m, code)? {
        DhcpOption::AddressLeaseTime(v) | DhcpOption::Renewal(v) | DhcpOption::Rebinding(v) => {
            Some(*v)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn file(m: &Message) -> String {
    let f = m.fname().unwrap_or_default();
    String::from_utf8_lossy(f).trim_end_matches('\0').to_owned()
}

/// DISCOVER → OFFER → REQUEST → ACK; returns the bound address.
fn dora(s: &mut DhcpServer, mac: [u8; 6], now: UnixTime) -> Ipv4Addr {
    let offer = run(s, now, &bcast(), &discover(mac).build());
    let yiaddr = offer.decoded().yiaddr();
    let ack = run(s, now, &bcast(), &select(mac, yiaddr, SERVER).build());
    assert_eq!(ack.decoded().opts().msg_type(), Some(Mt::Ack));
    yiaddr
}

#[test]
fn ovmf_capture_is_offered_ipxe_efi() {
    let mut s = server(guide_config());
    let step = run(&mut s, t(0), &bcast(), &ovmf_discover());
    let m = step.decoded();
    assert_eq!(m.opts().msg_type(), Some(Mt::Offer));
    assert_eq!(m.xid(), 0xb549_c41b);
    assert_eq!(m.chaddr(), &CAPTURE_MAC);
    assert!((2..=5).contains(&m.yiaddr().octets()[3]), "{}", m.yiaddr());
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(file(&m), "ipxe.efi");
    assert_eq!(
        opt(&m, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(u32_opt(&m, OptionCode::AddressLeaseTime), Some(7200));
    assert_eq!(u32_opt(&m, OptionCode::Renewal), Some(3600));
    assert_eq!(u32_opt(&m, OptionCode::Rebinding), Some(6300));
    assert_eq!(
        opt(&m, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 240)))
    );
    assert_eq!(
        opt(&m, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        opt(&m, OptionCode::BroadcastAddr),
        Some(&DhcpOption::BroadcastAddr(Ipv4Addr::new(192, 168, 1, 15)))
    );
    assert_eq!(
        opt(&m, OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    assert_eq!(
        opt(&m, OptionCode::VendorExtensions),
        Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
    );
    assert_eq!(
        opt(&m, OptionCode::ClientMachineIdentifier),
        Some(&DhcpOption::ClientMachineIdentifier(vec![0; 17]))
    );
    // OVMF lists 66 and 67 in option 55.
    assert_eq!(
        opt(&m, OptionCode::TFTPServerName),
        Some(&DhcpOption::TFTPServerName(b"192.168.1.1".to_vec()))
    );
    assert_eq!(
        opt(&m, OptionCode::BootfileName),
        Some(&DhcpOption::BootfileName(b"ipxe.efi".to_vec()))
    );
    // Firmware PXE is not iPXE: no option 175.
    assert_eq!(opt(&m, OptionCode::Unknown(175)), None);
    // OVMF set the broadcast flag.
    let tx = step.transmit.expect("sent");
    assert_eq!(tx.destination, Destination::Broadcast);
    assert_eq!((tx.src_ip, tx.ifindex), (SERVER, 2));
    assert!(tx.len >= 300 && tx.len <= 1472 - 28);
    let ev = step.handled.event;
    assert_eq!(ev.verdict, Verdict::Offered);
    assert_eq!(ev.arch, Some(ClientArch::EFI_X64));
    assert!(!ev.user_class && !ev.ipxe_encap);
    assert_eq!(
        ev.vendor_class.as_bytes(),
        b"PXEClient:Arch:00007:UNDI:003000"
    );
    assert_eq!(ev.boot_file.as_bytes(), b"ipxe.efi");
    assert!(step.records.is_empty(), "offers are not journaled");
}

#[test]
fn ipxe_capture_is_offered_refind_pxe_on_the_same_address() {
    let mut s = server(guide_config());
    let first = run(&mut s, t(0), &bcast(), &ovmf_discover())
        .decoded()
        .yiaddr();
    let ack = run(
        &mut s,
        t(1),
        &bcast(),
        &select(CAPTURE_MAC, first, SERVER).build(),
    );
    assert_eq!(ack.records[0].kind, RecordKind::Bind);
    // iPXE adds a client identifier; the client is still keyed by chaddr.
    let step = run(&mut s, t(5), &bcast(), &ipxe_discover());
    let m = step.decoded();
    assert_eq!(m.yiaddr(), first);
    assert_eq!(file(&m), "refind.pxe");
    assert_eq!(m.siaddr(), SERVER);
    // No broadcast flag: unicast to the new address, by MAC.
    assert_eq!(
        step.transmit.expect("sent").destination,
        Destination::Direct {
            addr: SocketAddrV4::new(first, 68),
            mac: CAPTURE_MAC
        }
    );
    // iPXE is told not to wait for ProxyDHCP offers.
    assert_eq!(
        opt(&m, OptionCode::Unknown(175)),
        Some(&DhcpOption::Unknown(UnknownOption::new(
            OptionCode::Unknown(175),
            IPXE_NO_PXEDHCP.to_vec()
        )))
    );
    let ev = step.handled.event;
    assert!(ev.user_class && ev.ipxe_encap);
    assert_eq!(ev.user_class_text(), "iPXE", "the capture's option 77");
    assert_eq!(ev.boot_file.as_bytes(), b"refind.pxe");
}

/// The iPXE capture with its user class (option 77) renamed to an unknown
/// code: option 175 still says iPXE.
fn ipxe_without_user_class() -> Vec<u8> {
    let mut d = ipxe_discover();
    let at = d
        .windows(6)
        .position(|w| w == b"\x4d\x04iPXE")
        .expect("option 77");
    d[at] = 250;
    d
}

#[test]
fn ipxe_with_option_175_but_no_user_class() {
    let datagram = ipxe_without_user_class();
    // The guide's rules look at the user class only, as ISC dhcpd would.
    let mut s = server(guide_config());
    let m = run(&mut s, t(0), &bcast(), &datagram).decoded();
    assert_eq!(file(&m), "ipxe.efi");
    // A rule on option 175 catches it.
    let mut cfg = guide_config();
    let mut encap = rule(7, None, "refind.pxe");
    encap.ipxe_encap = Some(true);
    cfg.subnets[0].boot_rules.insert(0, encap);
    let mut s = server(cfg);
    let step = run(&mut s, t(0), &bcast(), &datagram);
    assert_eq!(file(&step.decoded()), "refind.pxe");
    assert!(!step.handled.event.user_class && step.handled.event.ipxe_encap);
    assert!(step.handled.event.user_class_value.is_empty());
}

#[test]
fn full_exchange_renew_and_rebind() {
    let mut s = server(lab_config());
    let mac = [2, 0, 0, 0, 0, 7];
    let offer = run(&mut s, t(0), &bcast(), &discover(mac).build());
    let m = offer.decoded();
    let addr = m.yiaddr();
    assert_eq!(
        opt(&m, OptionCode::DomainName),
        Some(&DhcpOption::DomainName("lab.example".into()))
    );
    assert_eq!(
        opt(&m, OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![
            Ipv4Addr::new(192, 168, 1, 2),
            Ipv4Addr::new(192, 168, 1, 3)
        ]))
    );
    assert_eq!(
        opt(&m, OptionCode::NtpServers),
        Some(&DhcpOption::NtpServers(vec![Ipv4Addr::new(192, 168, 1, 4)]))
    );
    assert_eq!(opt(&m, OptionCode::TimeOffset), None, "not in option 55");
    assert_eq!(
        s.leases().of_client(&mac).map(|l| l.state),
        Some(LeaseState::Offered)
    );

    let ack = run(&mut s, t(1), &bcast(), &select(mac, addr, SERVER).build());
    let m = ack.decoded();
    assert_eq!(m.yiaddr(), addr);
    assert_eq!(ack.records.len(), 1);
    let r = ack.records[0];
    assert_eq!(
        (r.kind, r.mac, r.addr, r.at, r.until),
        (RecordKind::Bind, mac, addr, t(1), t(7201))
    );
    assert_eq!(
        s.leases().of_client(&mac).map(|l| l.state),
        Some(LeaseState::Bound)
    );

    // RENEWING: unicast from ciaddr, no option 50/54.
    let renew = Msg::dhcp(3, mac).ciaddr(addr).build();
    let step = run(&mut s, t(3600), &unicast(addr, 68), &renew);
    assert_eq!(step.decoded().opts().msg_type(), Some(Mt::Ack));
    assert_eq!(step.decoded().ciaddr(), addr);
    assert_eq!(step.records[0].kind, RecordKind::Renew);
    assert_eq!(step.records[0].until, t(3600 + 7200));
    assert_eq!(
        step.transmit.expect("sent").destination,
        Destination::Direct {
            addr: SocketAddrV4::new(addr, 68),
            mac
        }
    );
    // REBINDING: broadcast from ciaddr.
    let step = run(&mut s, t(6400), &bcast_from(addr), &renew);
    assert_eq!(step.decoded().opts().msg_type(), Some(Mt::Ack));
    assert_eq!(step.records[0].kind, RecordKind::Renew);
    // A ciaddr that is not the datagram's source gets no reply.
    let step = run(&mut s, t(6500), &bcast(), &renew);
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::BadCiaddr)
    );
}

#[test]
fn lease_time_is_clamped_and_t1_t2_follow() {
    let mut s = server(lab_config());
    let mac = [2, 0, 0, 0, 0, 8];
    let d = discover(mac).opt(51, &30u32.to_be_bytes()).build();
    let m = run(&mut s, t(0), &bcast(), &d).decoded();
    assert_eq!(u32_opt(&m, OptionCode::AddressLeaseTime), Some(60));
    let r = select(mac, m.yiaddr(), SERVER)
        .opt(51, &1_000_000u32.to_be_bytes())
        .build();
    let m = run(&mut s, t(0), &bcast(), &r).decoded();
    assert_eq!(u32_opt(&m, OptionCode::AddressLeaseTime), Some(7200));
    let r = select(mac, m.yiaddr(), SERVER)
        .opt(51, &1000u32.to_be_bytes())
        .build();
    let m = run(&mut s, t(0), &bcast(), &r).decoded();
    assert_eq!(u32_opt(&m, OptionCode::AddressLeaseTime), Some(1000));
    assert_eq!(u32_opt(&m, OptionCode::Renewal), Some(500));
    assert_eq!(u32_opt(&m, OptionCode::Rebinding), Some(875));
}

#[test]
fn naks_for_wrong_subnet_foreign_address_and_lost_lease() {
    let mut s = server(lab_config());
    let mac = [2, 0, 0, 0, 0, 9];
    let other = [2, 0, 0, 0, 0, 10];
    let bound = dora(&mut s, other, t(0));
    let _ = dora(&mut s, mac, t(0));
    let cases = [
        (Ipv4Addr::new(10, 9, 9, 9), NakReason::WrongSubnet),
        (Ipv4Addr::new(192, 168, 1, 250), NakReason::NotOurs),
        (FIXED_ADDR, NakReason::NotOurs),
        (bound, NakReason::LeaseGone),
    ];
    for (addr, reason) in cases {
        // INIT-REBOOT for `addr`.
        let step = run(
            &mut s,
            t(10),
            &bcast(),
            &Msg::dhcp(3, mac).ip_opt(50, addr).build(),
        );
        let m = step.decoded();
        assert_eq!(m.opts().msg_type(), Some(Mt::Nak), "{addr}");
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(opt(&m, OptionCode::AddressLeaseTime), None);
        assert_eq!(
            opt(&m, OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(
            step.transmit.expect("sent").destination,
            Destination::Broadcast
        );
        assert_eq!(
            step.handled.event.verdict,
            Verdict::Nacked(reason),
            "{addr}"
        );
        assert!(step.records.is_empty());
    }
    // RENEWING an address whose lease is gone (expired, then taken).
    let stranger = [2, 0, 0, 0, 0, 11];
    let later = t(7300);
    let step = run(
        &mut s,
        later,
        &bcast(),
        &discover(stranger).opt(50, &bound.octets()).build(),
    );
    assert_eq!(
        step.decoded().yiaddr(),
        bound,
        "expired address may go to another"
    );
    run(
        &mut s,
        later,
        &bcast(),
        &select(stranger, bound, SERVER).build(),
    );
    let renew = Msg::dhcp(3, other).ciaddr(bound).build();
    let step = run(&mut s, later, &unicast(bound, 68), &renew);
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Nacked(NakReason::LeaseGone)
    );
}

#[test]
fn silence_where_rfc_2131_wants_it() {
    let mut cfg = lab_config();
    cfg.dhcp.authoritative = false;
    let mut s = server(cfg);
    let mac = [2, 0, 0, 0, 0, 12];
    // INIT-REBOOT from a client with no record: silent, even authoritative.
    let reboot = Msg::dhcp(3, mac)
        .ip_opt(50, Ipv4Addr::new(192, 168, 1, 77))
        .build();
    let mut auth = server(lab_config());
    let step = run(&mut auth, t(0), &bcast(), &reboot);
    assert_eq!(step.handled.action, Did::Nothing);
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::NoRecord)
    );
    // Not authoritative: a NAK becomes silence.
    let wrong = Msg::dhcp(3, mac)
        .ip_opt(50, Ipv4Addr::new(10, 9, 9, 9))
        .build();
    let step = run(&mut s, t(0), &bcast(), &wrong);
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::NotAuthoritative)
    );
    assert_eq!(s.counters().get(DropReason::NotAuthoritative), 1);
    // SELECTING another server: silent, and our offer is withdrawn.
    let addr = run(&mut s, t(0), &bcast(), &discover(mac).build())
        .decoded()
        .yiaddr();
    let step = run(
        &mut s,
        t(1),
        &bcast(),
        &select(mac, addr, Ipv4Addr::new(192, 168, 1, 254)).build(),
    );
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::OtherServer)
    );
    assert!(s.leases().of_client(&mac).is_none());
}

#[test]
fn decline_quarantines_the_address() {
    let mut s = server(guide_config());
    let mac = [2, 0, 0, 0, 0, 13];
    let addr = dora(&mut s, mac, t(0));
    let decline = Msg::dhcp(4, mac)
        .ip_opt(50, addr)
        .ip_opt(54, SERVER)
        .build();
    let step = run(&mut s, t(1), &bcast(), &decline);
    assert!(step.reply.is_none());
    assert_eq!(step.records.len(), 1);
    let r = step.records[0];
    assert_eq!(
        (r.kind, r.addr, r.until),
        (RecordKind::Decline, addr, t(3601))
    );
    // Never offered during the quarantine, even when asked for, to anyone.
    for (i, now) in [t(2), t(100), t(3600)].into_iter().enumerate() {
        let who = [2, 0, 0, 0, 1, i as u8];
        let step = run(
            &mut s,
            now,
            &bcast(),
            &discover(who).ip_opt(50, addr).build(),
        );
        assert_ne!(step.decoded().yiaddr(), addr);
    }
    // Afterwards it is back in the pool.
    let step = run(
        &mut s,
        t(3601),
        &bcast(),
        &discover([2, 0, 0, 0, 2, 0]).ip_opt(50, addr).build(),
    );
    assert_eq!(step.decoded().yiaddr(), addr);
}

#[test]
fn release_frees_the_address() {
    let mut s = server(guide_config());
    let mac = [2, 0, 0, 0, 0, 14];
    let addr = dora(&mut s, mac, t(0));
    let release = Msg::dhcp(7, mac).ciaddr(addr).ip_opt(54, SERVER).build();
    let step = run(&mut s, t(5), &unicast(addr, 68), &release);
    assert!(step.reply.is_none());
    assert_eq!(
        (step.records[0].kind, step.records[0].addr),
        (RecordKind::Release, addr)
    );
    assert_eq!(
        s.leases().get(addr).map(|l| l.state),
        Some(LeaseState::Released)
    );
    // A second release changes nothing and is counted.
    let again = run(&mut s, t(6), &unicast(addr, 68), &release);
    assert_eq!(
        again.handled.event.verdict,
        Verdict::Dropped(DropReason::NotHeld)
    );
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let mut s = server(lab_config());
    let ip = Ipv4Addr::new(192, 168, 1, 240);
    let inform = Msg::dhcp(8, [2, 0, 0, 0, 0, 15])
        .ciaddr(ip)
        .opt(55, &[1, 3, 6])
        .build();
    let step = run(&mut s, t(0), &unicast(ip, 68), &inform);
    let m = step.decoded();
    assert_eq!(m.opts().msg_type(), Some(Mt::Ack));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.ciaddr(), ip);
    assert_eq!(opt(&m, OptionCode::AddressLeaseTime), None);
    assert_eq!(opt(&m, OptionCode::Renewal), None);
    assert_eq!(
        opt(&m, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        step.transmit.expect("sent").destination,
        Destination::Broadcast,
        "the address is no binding of this MAC: broadcast, never an ARP for it"
    );
    // A forged ciaddr (not the source, or off the link) gets no reply.
    for (meta, ciaddr) in [
        (bcast(), ip),
        (unicast(Ipv4Addr::new(192, 168, 1, 241), 68), ip),
        (
            unicast(Ipv4Addr::new(10, 99, 0, 1), 68),
            Ipv4Addr::new(10, 99, 0, 1),
        ),
    ] {
        let forged = Msg::dhcp(8, [2, 0, 0, 0, 0, 15]).ciaddr(ciaddr).build();
        let step = run(&mut s, t(1), &meta, &forged);
        assert_eq!(
            step.handled.event.verdict,
            Verdict::Dropped(DropReason::BadCiaddr),
            "{ciaddr} from {:?}",
            meta.src
        );
        assert!(step.transmit.is_none());
    }
    assert_eq!(step.handled.event.verdict, Verdict::Informed);
    assert!(step.records.is_empty());
    assert!(s.leases().is_empty());
}

#[test]
fn bootp_gets_a_bounded_pool_binding_only_with_dynamic_bootp() {
    let mac = [2, 0, 0, 0, 0, 16];
    // Without dynamic-bootp: dropped and counted, nothing bound.
    let mut s = server(lab_config());
    let step = run(&mut s, t(0), &bcast(), &Msg::bootp(mac).build());
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::BootpNotDynamic)
    );
    assert!(step.records.is_empty());
    assert!(s.leases().of_client(&mac).is_none());
    let mut cfg = lab_config();
    for subnet in &mut cfg.subnets {
        subnet.dynamic_bootp = true;
        subnet.dynamic_bootp_lease_length = Some(Duration::from_secs(600));
    }
    let mut s = server(cfg);
    let step = run(&mut s, t(0), &bcast(), &Msg::bootp(mac).build());
    let m = step.decoded();
    assert_eq!(m.opts().msg_type(), None);
    assert_eq!(opt(&m, OptionCode::AddressLeaseTime), None);
    assert_eq!(
        opt(&m, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(step.reply.as_ref().map(Vec::len), Some(300));
    assert_eq!(step.records[0].until, t(600));
    assert_eq!(step.handled.event.verdict, Verdict::BootReply);
    let lease = s.leases().of_client(&mac).expect("bound");
    assert!(lease.is_bound(t(599)) && !lease.is_bound(t(600)));
    // A fixed host: its address, nothing to journal.
    let step = run(&mut s, t(0), &bcast(), &Msg::bootp(FIXED_MAC).build());
    assert_eq!(step.decoded().yiaddr(), FIXED_ADDR);
    assert!(step.records.is_empty());
    // BOOTP off: dropped and counted.
    let mut cfg = lab_config();
    cfg.dhcp.allow_bootp = false;
    let mut s = server(cfg);
    let step = run(&mut s, t(0), &bcast(), &Msg::bootp(mac).build());
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::BootpDisabled)
    );
}

#[test]
fn relayed_clients_use_the_relay_subnet_and_get_option_82_back() {
    let mut s = server(lab_config());
    let mac = [2, 0, 0, 0, 0, 17];
    let agent = [1, 4, b'p', b'o', b'r', b't', 2, 2, 0xab, 0xcd];
    let d = discover(mac).giaddr(RELAY).opt(82, &agent).build();
    let step = run(&mut s, t(0), &unicast(RELAY, 67), &d);
    let m = step.decoded();
    let addr = m.yiaddr();
    assert_eq!(addr.octets()[..3], [10, 20, 1]);
    assert_eq!(m.giaddr(), RELAY);
    assert_eq!(
        opt(&m, OptionCode::Router),
        Some(&DhcpOption::Router(vec![RELAY]))
    );
    assert_eq!(
        opt(&m, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)))
    );
    assert_eq!(
        step.transmit.expect("sent").destination,
        Destination::Relay(SocketAddrV4::new(RELAY, 67))
    );
    // Option 82 comes back verbatim, as the last option.
    let bytes = step.reply.as_deref().expect("reply");
    let p = Packet::new_checked(bytes).expect("parses");
    let last = p
        .options()
        .map(|o| o.expect("well-formed"))
        .last()
        .expect("options");
    assert_eq!(last, (82, &agent[..]));
    // A relayed NAK goes to the relay with the broadcast bit set.
    let r = Msg::dhcp(3, mac)
        .giaddr(RELAY)
        .ip_opt(50, Ipv4Addr::new(192, 168, 1, 20))
        .build();
    let step = run(&mut s, t(1), &unicast(RELAY, 67), &r);
    let m = step.decoded();
    assert_eq!(m.opts().msg_type(), Some(Mt::Nak));
    assert!(m.flags().broadcast());
    assert_eq!(
        step.transmit.expect("sent").destination,
        Destination::Relay(SocketAddrV4::new(RELAY, 67))
    );
}

#[test]
fn reservations_are_kept_for_their_host() {
    let mut s = server(lab_config());
    let step = run(&mut s, t(0), &bcast(), &discover(FIXED_MAC).build());
    assert_eq!(step.decoded().yiaddr(), FIXED_ADDR);
    let ack = run(
        &mut s,
        t(0),
        &bcast(),
        &select(FIXED_MAC, FIXED_ADDR, SERVER).build(),
    );
    assert_eq!(ack.decoded().opts().msg_type(), Some(Mt::Ack));
    assert!(ack.records.is_empty(), "fixed bindings live in the config");
    // Another client asking for it gets something else, and a NAK on REQUEST.
    let other = [2, 0, 0, 0, 0, 18];
    let step = run(
        &mut s,
        t(0),
        &bcast(),
        &discover(other).ip_opt(50, FIXED_ADDR).build(),
    );
    assert_ne!(step.decoded().yiaddr(), FIXED_ADDR);
    let step = run(
        &mut s,
        t(0),
        &bcast(),
        &select(other, FIXED_ADDR, SERVER).build(),
    );
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Nacked(NakReason::NotOurs)
    );
}

#[test]
fn unknown_clients_denied_known_hosts_served_with_their_name() {
    let mut cfg = lab_config();
    cfg.subnets[0].unknown_clients = UnknownClients::Deny;
    let mut s = server(cfg);
    let step = run(
        &mut s,
        t(0),
        &bcast(),
        &discover([2, 0, 0, 0, 0, 19]).build(),
    );
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::UnknownClient)
    );
    let step = run(&mut s, t(0), &bcast(), &discover(KNOWN_MAC).build());
    let m = step.decoded();
    assert!((10..=200).contains(&m.yiaddr().octets()[3]));
    assert_eq!(
        opt(&m, OptionCode::Hostname),
        Some(&DhcpOption::Hostname("node-two".into()))
    );
}

#[test]
fn host_declaration_names_as_host_names() {
    let mut cfg = guide_config();
    cfg.hosts[0].hostname = None;
    let mac = cfg.hosts[0].mac;
    let mut s = server(cfg.clone());
    let m = run(&mut s, t(0), &bcast(), &discover(mac).build()).decoded();
    assert_eq!(opt(&m, OptionCode::Hostname), None);
    cfg.dhcp.use_host_decl_names = true;
    let mut s = server(cfg);
    let m = run(&mut s, t(0), &bcast(), &discover(mac).build()).decoded();
    assert_eq!(
        opt(&m, OptionCode::Hostname),
        Some(&DhcpOption::Hostname("node_1".into()))
    );
}

#[test]
fn boot_profile_of_the_host_selects_its_rule() {
    let mut cfg = lab_config();
    let mut rescue = rule(7, None, "rescue.efi");
    rescue.profile = Some("rescue".into());
    cfg.subnets[0].boot_rules.insert(0, rescue);
    let mut s = server(cfg);
    let d = discover(KNOWN_MAC).opt(93, &[0, 7]).build();
    assert_eq!(
        file(&run(&mut s, t(0), &bcast(), &d).decoded()),
        "rescue.efi"
    );
    let d = discover([2, 0, 0, 0, 0, 20]).opt(93, &[0, 7]).build();
    assert_eq!(file(&run(&mut s, t(0), &bcast(), &d).decoded()), "ipxe.efi");
}

#[test]
fn replies_fit_the_client_limit_by_overloading_sname() {
    let mut cfg = lab_config();
    // 162 bytes of DNS servers and a 50-byte domain: the 304 bytes of
    // options room (548 - 240 - END - option 52) run out at option 66.
    cfg.subnets[0].domain_name = Some("d".repeat(50));
    cfg.subnets[0].dns_servers = (1..=40).map(|i| Ipv4Addr::new(192, 168, 1, i)).collect();
    let mut s = server(cfg);
    let mac = [2, 0, 0, 0, 0, 21];
    // No option 57: at most 548 bytes (576 with IP and UDP headers).
    let d = discover(mac)
        .opt(93, &[0, 7])
        .opt(60, b"PXEClient:Arch:00007")
        .opt(97, &[0; 17])
        .build();
    let step = run(&mut s, t(0), &bcast(), &d);
    let bytes = step.reply.as_deref().expect("reply");
    assert!(bytes.len() <= 548, "{}", bytes.len());
    let p = Packet::new_checked(bytes).expect("parses");
    let codes: Vec<u8> = p.options().map(|o| o.expect("well-formed").0).collect();
    assert!(codes.contains(&52), "sname overloaded: {codes:?}");
    assert_eq!(p.sname()[0], 66, "option 66 was the first to spill");
    for needed in [53, 54, 51, 58, 59, 1, 3, 28, 6, 15, 42, 60, 43, 97, 66, 67] {
        assert!(codes.contains(&needed), "{needed} missing from {codes:?}");
    }
    // With option 57 = 1500 the same reply fits without overload.
    let d = discover(mac).opt(57, &1500u16.to_be_bytes()).build();
    let bytes = run(&mut s, t(0), &bcast(), &d).reply.expect("reply");
    let p = Packet::new_checked(&bytes[..]).expect("parses");
    assert!(p.options().all(|o| o.expect("well-formed").0 != 52));
}

#[test]
fn clients_of_other_shards_are_dropped_and_counted() {
    let snap = Snapshot::shared(lab_config());
    let mut s0 = DhcpServer::new(snap.clone(), 0, 2);
    let mut s1 = DhcpServer::new(snap, 1, 2);
    let mac = mac_of_shard(1, 2, 0);
    let d = discover(mac).build();
    let step = run(&mut s0, t(0), &bcast(), &d);
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::NotOurShard)
    );
    assert_eq!(s0.counters().get(DropReason::NotOurShard), 1);
    let m = run(&mut s1, t(0), &bcast(), &d).decoded();
    let off = u32::from(m.yiaddr()) - u32::from(Ipv4Addr::new(192, 168, 1, 10));
    assert_eq!(off % 2, 1, "shard 1 hands out its own slice");
}

#[test]
fn offers_are_held_then_released_by_time() {
    let mut cfg = guide_config();
    cfg.subnets[0].ranges[0].end = Ipv4Addr::new(192, 168, 1, 2);
    let mut s = server(cfg);
    let a = [2, 0, 0, 0, 0, 22];
    let b = [2, 0, 0, 0, 0, 23];
    let offer = run(&mut s, t(0), &bcast(), &discover(a).build())
        .decoded()
        .yiaddr();
    let step = run(&mut s, t(29), &bcast(), &discover(b).build());
    assert_eq!(
        step.handled.event.verdict,
        Verdict::Dropped(DropReason::NoAddress)
    );
    assert_eq!(s.poll_timeout(), Some(t(30)));
    let mut records = Vec::new();
    s.handle_timeout(t(30), &mut records);
    assert!(records.is_empty(), "offers are not journaled");
    let step = run(&mut s, t(30), &bcast(), &discover(b).build());
    assert_eq!(step.decoded().yiaddr(), offer);
}

#[test]
fn bindings_expire_through_the_timer() {
    let mut s = server(guide_config());
    let mac = [2, 0, 0, 0, 0, 24];
    let addr = dora(&mut s, mac, t(0));
    assert!(s.poll_timeout().is_some_and(|d| d <= t(7200)));
    let mut records = Vec::new();
    s.handle_timeout(t(7199), &mut records);
    assert!(records.is_empty());
    s.handle_timeout(t(7200), &mut records);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].kind, records[0].addr, records[0].at),
        (RecordKind::Expire, addr, t(7200))
    );
    assert_eq!(
        s.leases().get(addr).map(|l| l.state),
        Some(LeaseState::Expired)
    );
    assert_eq!(s.poll_timeout(), None);
    // The client comes back and gets its old address.
    let step = run(&mut s, t(9000), &bcast(), &discover(mac).build());
    assert_eq!(step.decoded().yiaddr(), addr);
}

#[test]
fn ping_check_probes_dynamic_addresses_first() {
    let mut cfg = guide_config();
    cfg.dhcp.ping_check = true;
    let mut s = server(cfg);
    let mac = [2, 0, 0, 0, 0, 25];
    let mut out = vec![0u8; 1500];
    let h = s.handle(t(0), &bcast(), &IFACE, &discover(mac).build(), &mut out);
    let Action::Probe(p1) = h.action else {
        panic!("expected a probe, got {h:?}")
    };
    assert_eq!(h.event.verdict, Verdict::Probing);
    assert_eq!((p1.ifindex, p1.timeout), (2, Duration::from_secs(1)));
    // A retransmitted DISCOVER while the probe runs replaces the parked
    // one: nothing is sent and nothing is parked twice.
    let again = s.handle(t(0), &bcast(), &IFACE, &discover(mac).build(), &mut out);
    assert_eq!(
        (again.action, again.event.verdict),
        (Action::None, Verdict::Probing)
    );
    assert_eq!(s.parked_probes(), 1);
    // Something answered: that address is abandoned and another is probed.
    let h = s.probe_result(t(1), p1.token, true, &mut out);
    let Action::Probe(p2) = h.action else {
        panic!("expected a second probe, got {h:?}")
    };
    assert_ne!(p2.addr, p1.addr);
    assert_eq!(
        s.leases().get(p1.addr).map(|l| l.state),
        Some(LeaseState::Abandoned)
    );
    // Silence: the OFFER goes out.
    let h = s.probe_result(t(2), p2.token, false, &mut out);
    let step = Step::from(h, &out);
    let m = step.decoded();
    assert_eq!(
        (m.opts().msg_type(), m.yiaddr()),
        (Some(Mt::Offer), p2.addr)
    );
    // The token is spent.
    let h = s.probe_result(t(2), p2.token, false, &mut out);
    assert_eq!(h.event.verdict, Verdict::Dropped(DropReason::StaleProbe));
    // The next DISCOVER of the same client needs no new probe.
    let step = run(&mut s, t(3), &bcast(), &discover(mac).build());
    assert_eq!(step.decoded().yiaddr(), p2.addr);
}

#[test]
fn ping_check_skips_reservations() {
    let mut cfg = lab_config();
    cfg.dhcp.ping_check = true;
    let mut s = server(cfg);
    let step = run(&mut s, t(0), &bcast(), &discover(FIXED_MAC).build());
    assert_eq!(step.decoded().yiaddr(), FIXED_ADDR);
}

#[test]
fn replay_with_a_different_shard_count() {
    // A one-shard run binds a few clients.
    let snap = Snapshot::shared(lab_config());
    let mut one = DhcpServer::new(snap.clone(), 0, 1);
    let mut journal = Vec::new();
    let mut bound = Vec::new();
    for i in 0..12u8 {
        let mac = [2, 0, 0, 0, 3, i];
        let offer = run(&mut one, t(0), &bcast(), &discover(mac).build());
        let addr = offer.decoded().yiaddr();
        let ack = run(&mut one, t(0), &bcast(), &select(mac, addr, SERVER).build());
        journal.extend(ack.records.iter().map(|r| r.encode()));
        bound.push((mac, addr));
    }
    // Restart with three shards; every shard replays the whole journal.
    let mut shards: Vec<DhcpServer> = (0..3)
        .map(|i| DhcpServer::new(snap.clone(), i, 3))
        .collect();
    for bytes in &journal {
        let r = bootwave_protocol::dhcp::LeaseRecord::decode(bytes).expect("decodes");
        for s in &mut shards {
            s.replay(&r);
        }
    }
    let local = Ipv4Addr::new(192, 168, 1, 10);
    for &(mac, addr) in &bound {
        let owner = bootwave_protocol::shard::shard_of(&mac, 3) as usize;
        let s = &mut shards[owner];
        assert_eq!(s.leases().of_client(&mac).map(|l| l.addr), Some(addr));
        let reboot = Msg::dhcp(3, mac).ip_opt(50, addr).build();
        let step = run(s, t(10), &bcast(), &reboot);
        let in_slice = (u32::from(addr) - u32::from(local)) % 3 == owner as u32;
        assert_eq!(
            step.handled.event.verdict,
            Verdict::Acked,
            "{addr} (in the owner's slice: {in_slice}) stays the client's"
        );
        assert_eq!(step.decoded().yiaddr(), addr);
        // A renewal from the address keeps it too.
        let renew = Msg::dhcp(3, mac).ciaddr(addr).build();
        let step = run(s, t(20), &unicast(addr, 68), &renew);
        assert_eq!(step.handled.event.verdict, Verdict::Acked, "{addr}");
        assert_eq!(step.decoded().yiaddr(), addr);
    }
    // New clients never get an address still bound to a replayed client.
    for n in 0..30 {
        for (i, s) in shards.iter_mut().enumerate() {
            let mac = mac_of_shard(i as u32, 3, n);
            let step = run(s, t(20), &bcast(), &discover(mac).build());
            let addr = step.decoded().yiaddr();
            assert!(
                !bound.iter().any(|&(m, a)| a == addr && m != mac),
                "{addr} double-booked"
            );
        }
    }
}

#[test]
fn a_swapped_snapshot_applies_to_the_next_packet() {
    let snap = Snapshot::shared(guide_config());
    let mut s = DhcpServer::new(snap.clone(), 0, 1);
    let m = run(&mut s, t(0), &bcast(), &ovmf_discover()).decoded();
    assert_eq!(file(&m), "ipxe.efi");
    let mut cfg = guide_config();
    cfg.subnets[0].boot_rules[1].filename = "snponly.efi".into();
    cfg.subnets[0].next_server = Some(Ipv4Addr::new(192, 168, 1, 9));
    snap.store(std::sync::Arc::new(Snapshot::new(cfg)));
    let m = run(&mut s, t(1), &bcast(), &ovmf_discover()).decoded();
    assert_eq!(file(&m), "snponly.efi");
    assert_eq!(m.siaddr(), Ipv4Addr::new(192, 168, 1, 9));
}

#[test]
fn an_http_rule_hands_out_the_url_of_its_path_on_the_http_port() {
    let http_discover = |last: u8| {
        discover([2, 0, 0, 0, 0, last])
            .opt(93, &[0, 16])
            .opt(60, b"HTTPClient:Arch:00016:UNDI:003001")
            .opt(55, &[1, 3, 60, 66, 67])
            .build()
    };
    // No next-server anywhere: the URL names the answering server.
    let mut cfg = lab_config();
    cfg.subnets[0].next_server = None;
    let mut http = rule(16, None, "/efi/ipxe.efi");
    http.http = true;
    cfg.subnets[0].boot_rules.insert(0, http.clone());
    let mut s = server(cfg.clone());
    let m = run(&mut s, t(0), &bcast(), &http_discover(41)).decoded();
    let Some(DhcpOption::ServerIdentifier(id)) = opt(&m, OptionCode::ServerIdentifier) else {
        panic!("no server identifier: {m:?}");
    };
    let url = format!("http://{id}/efi/ipxe.efi");
    assert_eq!(file(&m), url);
    assert_eq!(
        opt(&m, OptionCode::BootfileName),
        Some(&DhcpOption::BootfileName(url.into_bytes()))
    );
    // The rule's next-server and a port other than 80.
    http.next_server = Some(Ipv4Addr::new(10, 9, 9, 9));
    cfg.subnets[0].boot_rules[0] = http;
    cfg.http.port = 8080;
    let mut s = server(cfg);
    let m = run(&mut s, t(0), &bcast(), &http_discover(42)).decoded();
    assert_eq!(file(&m), "http://10.9.9.9:8080/efi/ipxe.efi");
    assert_eq!(m.siaddr(), Ipv4Addr::new(10, 9, 9, 9));
}

#[test]
fn uefi_http_boot_clients_get_httpclient_and_their_url() {
    // A rule for arch 16 whose file is a URL, as UEFI HTTP boot needs.
    let mut cfg = lab_config();
    let url = "http://192.168.1.1/ipxe.efi";
    cfg.subnets[0].boot_rules.insert(0, rule(16, None, url));
    let mut s = server(cfg);
    let d = discover([2, 0, 0, 0, 0, 31])
        .opt(93, &[0, 16])
        .opt(60, b"HTTPClient:Arch:00016:UNDI:003001")
        .build();
    let step = run(&mut s, t(0), &bcast(), &d);
    let m = step.decoded();
    assert_eq!(m.opts().msg_type(), Some(Mt::Offer));
    assert_eq!(
        opt(&m, OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
    // No PXE menu options for HTTP boot firmware.
    assert_eq!(opt(&m, OptionCode::VendorExtensions), None);
    assert_eq!(file(&m), url);
    // A PXE client of the same subnet still gets PXEClient.
    let d = discover([2, 0, 0, 0, 0, 32])
        .opt(93, &[0, 7])
        .opt(60, b"PXEClient:Arch:00007:UNDI:003000")
        .build();
    let m = run(&mut s, t(0), &bcast(), &d).decoded();
    assert_eq!(
        opt(&m, OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
}
