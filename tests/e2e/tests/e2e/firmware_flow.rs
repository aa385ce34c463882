//! The network-boot flow without firmware: the DISCOVERs captured from OVMF
//! and from iPXE, sent as they are from a client namespace whose MAC is the
//! captured chaddr, get `ipxe.efi` and `refind.pxe`, and the named file
//! downloads intact from `siaddr`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use bootwave_e2e::{
    BootRuleSpec, CAPTURES_DIR, DhcpProbe, Lab, POOL_END, POOL_START, Reply, SERVER_ADDR, Server,
    TftpClient, capture_payload, request_selecting, require_root_and_tools,
};
use dhcproto::v4::MessageType;

use crate::on_each_backend;
use crate::tftp_download::pattern;

const CHADDR: [u8; 6] = [0x52, 0x54, 0x00, 0x77, 0x00, 0x10];

on_each_backend!(captured_ovmf_and_ipxe_discovers_get_ipxe_then_the_script);
fn captured_ovmf_and_ipxe_discovers_get_ipxe_then_the_script(server: Server) -> anyhow::Result<()> {
    require_root_and_tools(&["ip", "ss", "atftp"]);
    let root = tempfile::tempdir()?;
    let ipxe = pattern(1_040_000, 11);
    let script = b"#!ipxe\nchain refind_x64.efi\n".to_vec();
    std::fs::write(root.path().join("ipxe.efi"), &ipxe)?;
    std::fs::write(root.path().join("refind.pxe"), &script)?;
    let lab = Lab::star(1)?;
    let mut spec = lab.spec(Some(root.path().to_owned()), None);
    spec.boot_rules = vec![
        BootRuleSpec {
            arch: vec![7, 9],
            user_class: Some("iPXE".to_owned()),
            filename: "refind.pxe".to_owned(),
        },
        BootRuleSpec {
            arch: vec![7, 9],
            user_class: None,
            filename: "ipxe.efi".to_owned(),
        },
    ];
    let running = server.start(&lab.server, &spec)?;
    let client = &lab.clients[0];
    client.ns.set_mac(&client.ifname, CHADDR)?;
    // iPXE's DISCOVER has the broadcast flag clear, so the OFFER goes to
    // yiaddr: let the client namespace accept any pool address (not the
    // server's .1) as its own until it has one.
    for net in [
        "10.77.0.8/29",
        "10.77.0.16/28",
        "10.77.0.32/27",
        "10.77.0.64/26",
        "10.77.0.128/25",
    ] {
        client.ns.ip(&["route", "add", "local", net, "dev", "lo"])?;
    }
    let probe = client
        .ns
        .run_inside(|| DhcpProbe::broadcast(&client.ifname))??;
    let ctx = |what: &str| format!("{server:?}: {what}\n{}", running.child.tail());

    let ovmf = exchange(&probe, "dhcpdiscover_ovmf.hex")
        .map_err(|e| anyhow::anyhow!(ctx(&e.to_string())))?;
    assert_eq!(
        ovmf.file.as_deref(),
        Some("ipxe.efi"),
        "{}",
        ctx("OVMF ACK")
    );
    assert_eq!(ovmf.siaddr, SERVER_ADDR, "{}", ctx("OVMF next server"));
    let ipxe_reply = exchange(&probe, "dhcpdiscover_ipxe.hex")
        .map_err(|e| anyhow::anyhow!(ctx(&e.to_string())))?;
    assert_eq!(
        ipxe_reply.file.as_deref(),
        Some("refind.pxe"),
        "{}",
        ctx("iPXE ACK")
    );
    assert_eq!(
        ipxe_reply.siaddr,
        SERVER_ADDR,
        "{}",
        ctx("iPXE next server")
    );

    // Both files download from siaddr the way each stage asks.
    client.ns.add_addr(&client.ifname, ipxe_reply.yiaddr, 24)?;
    let out = tempfile::tempdir()?;
    for (client_kind, file, bytes) in [
        (TftpClient::AtftpWindowed, "ipxe.efi", &ipxe),
        (TftpClient::Atftp, "refind.pxe", &script),
    ] {
        let dest = out.path().join(file);
        client_kind
            .get(&client.ns, ipxe_reply.siaddr, file, &dest)
            .map_err(|e| anyhow::anyhow!(ctx(&format!("{file}: {e}"))))?;
        assert!(
            std::fs::read(&dest)? == *bytes,
            "{}",
            ctx(&format!("{file} differs"))
        );
    }
    Ok(())
}

/// Sends the captured DISCOVER as is, then a REQUEST for the offered
/// address carrying the capture's options 60, 77 and 93; returns the ACK
/// after checking that OFFER and ACK agree.
fn exchange(probe: &DhcpProbe, capture: &str) -> anyhow::Result<Reply> {
    let text = std::fs::read_to_string(Path::new(CAPTURES_DIR).join(capture))?;
    let payload = capture_payload(&text)?;
    let discover = {
        use dhcproto::{Decodable, Decoder};
        dhcproto::v4::Message::decode(&mut Decoder::new(&payload))?
    };
    let xid = discover.xid();
    probe.send_raw(&payload)?;
    let offer = wait_for(probe, xid, MessageType::Offer)?
        .ok_or_else(|| anyhow::anyhow!("{capture}: no OFFER"))?;
    assert_eq!(offer.chaddr, CHADDR, "{capture}");
    let in_pool = (u32::from(POOL_START)..=u32::from(POOL_END)).contains(&u32::from(offer.yiaddr));
    assert!(in_pool, "{capture}: {offer:?}");
    let server = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut request = request_selecting(CHADDR, xid, offer.yiaddr, server);
    for code in [60u8, 77, 93, 97] {
        if let Some(opt) = discover.opts().get(code.into()) {
            request.opts_mut().insert(opt.clone());
        }
    }
    request.set_flags(discover.flags());
    probe.send(&request)?;
    let ack = wait_for(probe, xid, MessageType::Ack)?
        .ok_or_else(|| anyhow::anyhow!("{capture}: no ACK for {}", offer.yiaddr))?;
    assert_eq!(ack.yiaddr, offer.yiaddr, "{capture}");
    assert_eq!(
        ack.file, offer.file,
        "{capture}: OFFER and ACK name one file"
    );
    Ok(ack)
}

fn wait_for(probe: &DhcpProbe, xid: u32, kind: MessageType) -> anyhow::Result<Option<Reply>> {
    for _ in 0..20 {
        match probe.recv(Duration::from_millis(250))? {
            Some(r) if r.xid == xid && r.kind == kind => return Ok(Some(r)),
            _ => {}
        }
    }
    Ok(None)
}
