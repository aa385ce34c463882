//! `bootwave.toml` for a [`ServeSpec`], in the schema of
//! `assets/bootwave.toml` (reference: `assets/README.md`), checked with
//! bootwave's own parser before a server is started.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::{HarnessError, Result};
use crate::servers::{JournalSync, ServeSpec};

/// `bootwave.toml` for `spec`. `state_dir` receives the lease journal
/// (`<state_dir>/journal`) unless `spec.state_dir` names one; without a TFTP
/// root in `spec`, `<state_dir>/tftp` (created empty by the caller) is served.
pub fn bootwave_toml(spec: &ServeSpec, state_dir: &Path) -> String {
    let journal = spec
        .state_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("journal"));
    let tftp_root = spec
        .tftp_root
        .clone()
        .unwrap_or_else(|| state_dir.join("tftp"));
    let net = Ipv4Addr::from(u32::from(spec.server_addr) & u32::from(spec.netmask()));
    let fsync = match spec.journal_sync {
        JournalSync::Never => "never",
        JournalSync::Batch => "batch",
        JournalSync::Always => "always",
    };
    let mut toml = format!(
        r#"interfaces = ["{iface}"]

[dhcp]
default-lease-time = {lease}
max-lease-time = {lease}
authoritative = true
{ping}
decline-quarantine = "1h"
{dhcp_extra}

[tftp]
root = {root}
max-transfers = 4096
{admission}
[journal]
dir = {journal}
fsync = "{fsync}"

[[subnets]]
network = "{net}/{prefix}"
ranges = ["{start}-{end}"]
routers = ["{server}"]
next-server = "{server}"
"#,
        iface = spec.interface,
        lease = spec.lease_secs,
        root = toml_string(&tftp_root.to_string_lossy()),
        journal = toml_string(&journal.to_string_lossy()),
        prefix = spec.prefix,
        start = spec.pool.0,
        end = spec.pool.1,
        server = spec.server_addr,
        dhcp_extra = spec.dhcp_toml,
        ping = spec.ping_timeout.map_or_else(
            || "ping-check = false".to_owned(),
            |t| format!("ping-check = true\nping-timeout = \"{}ms\"", t.as_millis())
        ),
        admission = spec.tftp_admission.map_or_else(String::new, |a| format!(
            "max-transfers-per-client = {}\nnew-transfers-per-second = {}\nnew-transfers-burst = {}\n",
            a.max_transfers_per_client, a.new_transfers_per_second, a.new_transfers_burst
        )),
    );
    toml.push_str(&spec.subnet_toml);
    if !toml.ends_with('\n') {
        toml.push('\n');
    }
    for rule in &spec.boot_rules {
        toml.push_str("\n[[subnets.boot-rules]]\n");
        if !rule.arch.is_empty() {
            let arch: Vec<String> = rule.arch.iter().map(u16::to_string).collect();
            let _ = writeln!(toml, "arch = [{}]", arch.join(", "));
        }
        if let Some(class) = &rule.user_class {
            let _ = writeln!(toml, "user-class = {}", toml_string(class));
        }
        let _ = writeln!(toml, "filename = {}", toml_string(&rule.filename));
    }
    if let Some(file) = &spec.boot_file {
        let _ = write!(
            toml,
            "\n[[subnets.boot-rules]]\nfilename = {}\n",
            toml_string(file)
        );
    }
    for host in &spec.hosts {
        let _ = write!(
            toml,
            "\n[[hosts]]\nname = {name}\nmac = \"{mac}\"\n",
            name = toml_string(&host.name),
            mac = host.mac.map(|b| format!("{b:02x}")).join(":"),
        );
        if let Some(ip) = host.fixed_address {
            let _ = writeln!(toml, "fixed-address = \"{ip}\"");
        }
        if let Some(name) = &host.hostname {
            let _ = writeln!(toml, "hostname = {}", toml_string(name));
        }
    }
    toml.push_str(&spec.extra_toml);
    toml
}

/// Checks `text` with bootwave's configuration parser, as the server will.
pub fn check_bootwave_toml(text: &str, base_dir: &Path) -> Result<()> {
    bootwave_protocol::config::parse(text, "bootwave.toml", base_dir)
        .map(drop)
        .map_err(|e| HarnessError::Parse {
            what: format!("generated bootwave.toml rejected: {e}"),
            text: text.to_owned(),
        })
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use bootwave_protocol::config::{FsyncPolicy, parse};

    use super::*;
    use crate::servers::{BootRuleSpec, HostSpec};

    fn spec() -> ServeSpec {
        ServeSpec {
            interface: "srv0".to_owned(),
            server_addr: Ipv4Addr::new(10, 77, 0, 1),
            prefix: 24,
            pool: (Ipv4Addr::new(10, 77, 0, 10), Ipv4Addr::new(10, 77, 0, 250)),
            lease_secs: 600,
            boot_file: Some("ipxe.efi".to_owned()),
            tftp_root: Some(PathBuf::from("/srv/boot")),
            boot_rules: vec![BootRuleSpec {
                arch: vec![7, 9],
                user_class: Some("iPXE".to_owned()),
                filename: "refind.pxe".to_owned(),
            }],
            hosts: vec![HostSpec {
                name: "node-7".to_owned(),
                mac: [0x02, 0, 0, 0, 0, 7],
                fixed_address: Some(Ipv4Addr::new(10, 77, 0, 5)),
                hostname: Some("node-7".to_owned()),
            }],
            state_dir: None,
            journal_sync: JournalSync::Batch,
            tftp_admission: None,
            ping_timeout: None,
            extra_toml: String::new(),
            subnet_toml: String::new(),
            dhcp_toml: String::new(),
            shards: None,
            metrics: None,
        }
    }

    #[test]
    fn generated_toml_passes_the_real_parser_with_every_value() {
        let text = bootwave_toml(&spec(), Path::new("/tmp/state"));
        let config = parse(&text, "bootwave.toml", Path::new("/")).unwrap_or_else(|e| {
            panic!("{e}\n{text}");
        });
        assert_eq!(config.interfaces, vec!["srv0".to_owned()], "{text}");
        assert_eq!(config.tftp.root, PathBuf::from("/srv/boot"));
        assert_eq!(config.journal.dir, PathBuf::from("/tmp/state/journal"));
        assert!(matches!(config.journal.fsync, FsyncPolicy::Batch(_)));
        assert!(!config.dhcp.ping_check);
        let [subnet] = config.subnets.as_slice() else {
            panic!("one subnet: {text}");
        };
        assert_eq!(subnet.net.addr(), Ipv4Addr::new(10, 77, 0, 0));
        assert_eq!(subnet.net.prefix(), 24);
        assert_eq!(subnet.boot_rules.len(), 2, "iPXE rule, then the catch-all");
        assert_eq!(config.hosts.len(), 1);
        assert_eq!(config.hosts[0].hostname.as_deref(), Some("node-7"));
    }

    #[test]
    fn minimal_spec_passes_the_parser_and_serves_an_empty_root() {
        let spec = ServeSpec {
            boot_file: None,
            tftp_root: None,
            boot_rules: Vec::new(),
            hosts: Vec::new(),
            state_dir: Some(PathBuf::from("/var/tmp/j")),
            journal_sync: JournalSync::Never,
            ..spec()
        };
        let text = bootwave_toml(&spec, Path::new("/tmp/state"));
        check_bootwave_toml(&text, Path::new("/")).expect("valid");
        let config = parse(&text, "t", Path::new("/")).expect("valid");
        assert_eq!(config.tftp.root, PathBuf::from("/tmp/state/tftp"));
        assert_eq!(config.journal.dir, PathBuf::from("/var/tmp/j"));
        assert_eq!(config.journal.fsync, FsyncPolicy::Never);
        assert!(config.subnets[0].boot_rules.is_empty());
    }

    #[test]
    fn tftp_admission_override_reaches_the_config() {
        let admission = bootwave_protocol::config::TftpAdmission::UNLIMITED;
        let lifted = ServeSpec {
            tftp_admission: Some(admission),
            ping_timeout: None,
            ..spec()
        };
        let text = bootwave_toml(&lifted, Path::new("/tmp/state"));
        let config = parse(&text, "t", Path::new("/")).expect("valid");
        assert_eq!(config.tftp.admission, admission);
        let config = parse(
            &bootwave_toml(&spec(), Path::new("/tmp/state")),
            "t",
            Path::new("/"),
        )
        .expect("valid");
        assert_eq!(
            config.tftp.admission,
            bootwave_protocol::config::TftpAdmission::DEFAULT
        );
    }

    #[test]
    fn a_bad_spec_is_refused_before_the_server_starts() {
        let spec = ServeSpec {
            pool: (Ipv4Addr::new(10, 78, 0, 10), Ipv4Addr::new(10, 78, 0, 20)),
            ..spec()
        };
        let text = bootwave_toml(&spec, Path::new("/tmp/state"));
        let err = check_bootwave_toml(&text, Path::new("/")).expect_err("pool outside subnet");
        assert!(err.to_string().contains("ranges"), "{err}");
    }

    /// The peer benchmarks' Python generator (`benches/netns.py`) writes
    /// the same schema; its output must pass the parser too.
    #[test]
    fn bench_generator_output_passes_the_real_parser() {
        let benches = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches");
        let script = "import sys; sys.path.insert(0, sys.argv[1]); import netns; \
            print(netns.bootwave_config('srv0', '10.77.0.1', '10.77.0.0', 16, '10.77.1.0', \
            '10.77.32.255', 3600, '/tmp/bw \"state', tftp_root='/srv/t', boot_file='ipxe.efi'))";
        let python = crate::find_tool("python3").expect("python3 is installed");
        let out = std::process::Command::new(python)
            .args(["-c", script])
            .arg(&benches)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        let config = parse(&text, "bench.toml", Path::new("/")).unwrap_or_else(|e| {
            panic!("{e}\n{text}");
        });
        assert_eq!(config.interfaces, vec!["srv0".to_owned()]);
        assert_eq!(config.tftp.root, PathBuf::from("/srv/t"));
        assert_eq!(config.journal.dir, PathBuf::from("/tmp/bw \"state/journal"));
        assert_eq!(config.journal.fsync, FsyncPolicy::Never);
        assert_eq!(config.subnets[0].net.prefix(), 16);
        assert_eq!(config.subnets[0].boot_rules.len(), 1);
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
