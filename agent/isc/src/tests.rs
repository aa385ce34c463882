//! Parser, converter and hostile-input tests over in-memory files.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// Files held in memory.
#[derive(Debug, Default)]
struct MemLoader(HashMap<PathBuf, Vec<u8>>);

impl MemLoader {
    fn with(files: &[(&str, &[u8])]) -> Self {
        Self(
            files
                .iter()
                .map(|(p, b)| (PathBuf::from(p), b.to_vec()))
                .collect(),
        )
    }
}

impl Loader for MemLoader {
    fn load(&mut self, path: &Path, limit: usize) -> io::Result<Vec<u8>> {
        let bytes = self
            .0
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if bytes.len() > limit {
            return Err(io::Error::other("too large"));
        }
        Ok(bytes)
    }
}

fn run(text: &str) -> Result<Import, ImportError> {
    import(
        Path::new("/etc/dhcpd.conf"),
        &Options::default(),
        &mut MemLoader::with(&[("/etc/dhcpd.conf", text.as_bytes())]),
    )
}

fn syntax_error(text: &[u8]) -> (u32, String) {
    let result = import(
        Path::new("/etc/dhcpd.conf"),
        &Options::default(),
        &mut MemLoader::with(&[("/etc/dhcpd.conf", text)]),
    );
    match result {
        Err(ImportError::Syntax {
            file,
            line,
            message,
        }) => {
            assert_eq!(file, "/etc/dhcpd.conf");
            (line, message)
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

fn warnings(import: &Import) -> Vec<(u32, &str)> {
    import
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| (d.line, d.message.as_str()))
        .collect()
}

const SUBNET: &str =
    "authoritative;\nsubnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.10 10.0.0.20;\n";

#[test]
fn malformed_input_names_the_line() {
    assert_eq!(
        syntax_error(b"a;\n}\n"),
        (2, "`}` without a matching `{`".into())
    );
    assert_eq!(
        syntax_error(b"subnet 1.0.0.0 netmask 255.0.0.0 {\n a;\n"),
        (1, "this `{` is never closed".into())
    );
    assert_eq!(
        syntax_error(b"a;\nfilename \"x\"\n}"),
        (3, "missing `;` before `}`".into())
    );
    assert_eq!(
        syntax_error(b"a;\nfilename \"x\""),
        (2, "statement has no ending `;`".into())
    );
    assert_eq!(
        syntax_error(b"\n\nfilename \"x;\n"),
        (3, "unterminated string (opened with \")".into())
    );
    assert_eq!(
        syntax_error(b"x;\nfilename 'a\0';\n"),
        (2, "NUL byte in the text".into())
    );
    assert_eq!(
        syntax_error(b"x;\ny;\nfilename \"\xff\";\n"),
        (3, "the text is not UTF-8".into())
    );
    assert_eq!(
        syntax_error(b"if a { b; } else c;"),
        (1, "`else` must be followed by `{` or `if`".into())
    );
    assert_eq!(
        syntax_error(b"if { b; }"),
        (1, "`if` without a condition".into())
    );
    let deep = "group {\n".repeat(MAX_DEPTH + 1);
    let (line, message) = syntax_error(deep.as_bytes());
    assert_eq!(
        (line, message.as_str()),
        (
            u32::try_from(MAX_DEPTH).expect("small") + 1,
            "blocks nest deeper than 64"
        )
    );
}

#[test]
fn includes_resolve_relative_and_stop_loops_and_depth() {
    let mut loader = MemLoader::with(&[
        (
            "/etc/dhcpd.conf",
            b"authoritative;\ninclude \"conf.d/hosts.conf\";\n",
        ),
        (
            "/etc/conf.d/hosts.conf",
            b"\n\nhost a { hardware ethernet 02:00:00:00:00:01; }\n",
        ),
    ]);
    let done = import(
        Path::new("/etc/dhcpd.conf"),
        &Options::default(),
        &mut loader,
    )
    .expect("imports");
    assert!(done.toml.contains("name = \"a\""), "{}", done.toml);
    assert!(
        done.toml.contains("[[hosts]]  # /etc/conf.d/hosts.conf:3"),
        "{}",
        done.toml
    );

    let mut looped = MemLoader::with(&[
        ("/a.conf", b"include \"b.conf\";"),
        ("/b.conf", b"x;\ninclude \"a.conf\";"),
    ]);
    match import(Path::new("/a.conf"), &Options::default(), &mut looped) {
        Err(ImportError::Syntax {
            file,
            line,
            message,
        }) => {
            assert_eq!((file.as_str(), line), ("/b.conf", 2));
            assert!(message.contains("include loop"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let chain: Vec<(String, Vec<u8>)> = (0..=MAX_INCLUDE_DEPTH + 1)
        .map(|i| {
            (
                format!("/{i}.conf"),
                format!("include \"{}.conf\";", i + 1).into_bytes(),
            )
        })
        .collect();
    let mut deep = MemLoader(
        chain
            .into_iter()
            .map(|(p, b)| (PathBuf::from(p), b))
            .collect(),
    );
    let err = import(Path::new("/0.conf"), &Options::default(), &mut deep).expect_err("too deep");
    assert!(
        err.to_string().contains("includes nest deeper than 8"),
        "{err}"
    );

    let mut missing = MemLoader::with(&[("/a.conf", b"\ninclude \"nope.conf\";")]);
    let err = import(Path::new("/a.conf"), &Options::default(), &mut missing)
        .expect_err("missing include");
    assert!(
        err.to_string()
            .starts_with("/a.conf:2: cannot read /nope.conf"),
        "{err}"
    );
}

#[test]
fn total_size_is_bounded() {
    let mut big = vec![b'#'; MAX_TOTAL_BYTES - 10];
    big.extend_from_slice(b"\ninclude \"more.conf\";\n");
    let mut loader = MemLoader::with(&[("/a.conf", &big), ("/more.conf", &[b' '; 64])]);
    let err = import(Path::new("/a.conf"), &Options::default(), &mut loader).expect_err("too big");
    assert!(
        matches!(err, ImportError::Read { .. } | ImportError::Syntax { .. }),
        "{err}"
    );
}

#[test]
fn later_statements_win_like_dhcpd() {
    let text = format!(
        "{SUBNET}  filename \"default.efi\";\n  if option pxe-system-type = 00:07 {{ filename \"x64.efi\"; }}\n}}\n"
    );
    let done = run(&text).expect("imports");
    let config = bootwave_protocol::config::parse(&done.toml, "t", Path::new("/")).expect("valid");
    let files: Vec<&str> = config.subnets[0]
        .boot_rules
        .iter()
        .map(|r| r.filename.as_str())
        .collect();
    assert_eq!(files, ["x64.efi", "default.efi"]);
    assert!(warnings(&done).is_empty(), "{:?}", done.diagnostics);

    let shadowed = format!(
        "{SUBNET}  if option pxe-system-type = 00:07 {{ filename \"x64.efi\"; }}\n  filename \"all.efi\";\n}}\n"
    );
    let done = run(&shadowed).expect("imports");
    assert_eq!(
        warnings(&done),
        [(
            4,
            "has no effect: the file name set at line 5 always overrides it"
        )]
    );
}

#[test]
fn partial_branches_that_leak_into_else_are_flagged() {
    let text = format!(
        "{SUBNET}  if option pxe-system-type = 00:07 {{\n    if option user-class = \"iPXE\" {{ filename \"a\"; }}\n  }} else {{\n    filename \"b\";\n  }}\n}}\n"
    );
    let done = run(&text).expect("imports");
    let w = warnings(&done);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, 6);
    assert!(
        w[0].1
            .starts_with("approximate: clients that match the condition at line 4"),
        "{}",
        w[0].1
    );
    // Disjoint arms do not leak: arch 7 and arch 6 never match the same client.
    let disjoint = format!(
        "{SUBNET}  if option pxe-system-type = 00:07 {{\n    if option user-class = \"iPXE\" {{ filename \"a\"; }}\n  }} elsif option pxe-system-type = 00:06 {{\n    filename \"b\";\n  }}\n}}\n"
    );
    assert!(warnings(&run(&disjoint).expect("imports")).is_empty());
}

#[test]
fn unsupported_statements_are_reported_never_dropped() {
    let text = "option domain-search \"a.example\";\nserver-identifier 10.0.0.1;\ndeny booting;\nfailover peer \"x\" { primary; }\nsubnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.1.0.1 10.1.0.5;\n  hardware ethernet 02:00:00:00:00:01;\n}\nhost nomac { fixed-address 10.0.0.7; }\n";
    let done = run(text).expect("imports");
    let lines: Vec<u32> = warnings(&done).iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [1, 2, 3, 4, 6, 7, 9], "{:?}", done.diagnostics);
}

#[test]
fn hostile_names_and_values_stay_valid_toml() {
    let text = "authoritative;\nsubnet 10.0.0.0 netmask 255.255.255.0 {\n  filename \"we\\\"ird\\\\ name\";\n  if option pxe-system-type = 7 { filename \"two\\nlines\"; }\n}\nhost \"bad name!\" { hardware ethernet 2:0:0:0:0:9; option host-name \"h\"; }\n";
    let done = run(text).expect("imports");
    let config = bootwave_protocol::config::parse(&done.toml, "t", Path::new("/")).expect("valid");
    assert_eq!(config.hosts[0].name, "bad-name-");
    assert_eq!(config.hosts[0].mac, [2, 0, 0, 0, 0, 9]);
    let files: Vec<&str> = config.subnets[0]
        .boot_rules
        .iter()
        .map(|r| r.filename.as_str())
        .collect();
    assert_eq!(files, ["we\"ird\\ name"]);
    assert_eq!(
        warnings(&done).iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [4]
    );
}

/// Tokens that make up dhcpd.conf text, for random soup.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{",
        "}",
        ";",
        ",",
        "=",
        "!=",
        "(",
        ")",
        "\"",
        "'",
        "#",
        "\n",
        " ",
        "if",
        "else",
        "elsif",
        "and",
        "or",
        "not",
        "exists",
        "option",
        "arch",
        "user-class",
        "\"iPXE\"",
        "00:07",
        "subnet",
        "10.0.0.0",
        "netmask",
        "255.255.255.0",
        "range",
        "10.0.0.5",
        "10.0.0.9",
        "host",
        "h1",
        "hardware",
        "ethernet",
        "02:00:00:00:00:01",
        "fixed-address",
        "filename",
        "\"a.efi\"",
        "group",
        "shared-network",
        "pool",
        "include",
        "\"x.conf\"",
        "allow",
        "deny",
        "unknown-clients",
        "next-server",
        "routers",
        "code",
        "93",
        "space",
        "ipxe",
        "encapsulate",
        "\0",
        "é",
    ])
}

const FIXTURES: [&str; 3] = [
    include_str!("../tests/fixtures/uefi-ipxe.conf"),
    include_str!("../tests/fixtures/nfs-root.conf"),
    include_str!("../tests/fixtures/layered.conf"),
];

fn no_panic(bytes: &[u8]) {
    let mut loader = MemLoader::with(&[
        ("/d.conf", bytes),
        (
            "/x.conf",
            b"host inc { hardware ethernet 02:00:00:00:00:02; }",
        ),
    ]);
    if let Ok(done) = import(Path::new("/d.conf"), &Options::default(), &mut loader) {
        // Whatever converts must be accepted by bootwave (import checks it).
        assert!(bootwave_protocol::config::parse(&done.toml, "t", Path::new("/")).is_ok());
    }
}

proptest! {
    #[test]
    fn random_token_soup_never_panics(tokens in prop::collection::vec(token(), 0..200)) {
        no_panic(tokens.join(" ").as_bytes());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..FIXTURES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = FIXTURES[which].as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1)).min(bytes.len());
            match op {
                0 if i < bytes.len() => { bytes.remove(i); }
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => bytes[i] = byte,
                _ => bytes.push(byte),
            }
        }
        no_panic(&bytes);
    }
}

#[test]
fn range_dynamic_bootp_becomes_the_subnets_dynamic_bootp() {
    let text = "subnet 10.0.0.0 netmask 255.255.255.0 {\n  range dynamic-bootp 10.0.0.10 10.0.0.20;\n  range 10.0.0.30 10.0.0.40;\n}\nsubnet 10.0.1.0 netmask 255.255.255.0 {\n  range 10.0.1.10 10.0.1.20;\n}\n";
    let done = run(text).expect("imports");
    let config = bootwave_protocol::config::parse(&done.toml, "t", Path::new("/")).expect("valid");
    let bootp: Vec<bool> = config.subnets.iter().map(|s| s.dynamic_bootp).collect();
    assert_eq!(bootp, [true, false], "{}", done.toml);
    assert_eq!(config.subnets[0].dynamic_bootp_lease_length, None);
    assert!(
        done.diagnostics
            .iter()
            .any(|d| d.message.contains("dynamic-bootp = true")),
        "{:?}",
        done.diagnostics
    );
}

#[test]
fn dynamic_bootp_lease_length_and_permits_are_converted_and_bounded() {
    let text = "default-lease-time 3600;\nmax-lease-time 7200;\n\
        dynamic-bootp-lease-length 1800;\n\
        subnet 10.0.0.0 netmask 255.255.255.0 {\n  range dynamic-bootp 10.0.0.10 10.0.0.20;\n}\n\
        subnet 10.0.1.0 netmask 255.255.255.0 {\n  pool {\n    allow dynamic bootp clients;\n    dynamic-bootp-lease-length 0;\n    range 10.0.1.10 10.0.1.20;\n  }\n}\n\
        subnet 10.0.2.0 netmask 255.255.255.0 {\n  range dynamic-bootp 10.0.2.10 10.0.2.20;\n  dynamic-bootp-lease-length 99999;\n}\n\
        subnet 10.0.3.0 netmask 255.255.255.0 {\n  range 10.0.3.10 10.0.3.20;\n  deny dynamic bootp clients;\n}\n\
        dynamic-bootp-lease-cutoff 5 2030/01/01 00:00:00;\n\
        stash-agent-options true;\n";
    let done = run(text).expect("imports");
    let config = bootwave_protocol::config::parse(&done.toml, "t", Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}\n{}", done.toml));
    let got: Vec<_> = config
        .subnets
        .iter()
        .map(|s| {
            (
                s.dynamic_bootp,
                s.dynamic_bootp_lease_length.map(|d| d.as_secs()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (true, Some(1800)),
            (true, None),
            (true, Some(7200)),
            (false, None)
        ],
        "{}",
        done.toml
    );
    let said = |what: &str| done.diagnostics.iter().any(|d| d.message.contains(what));
    for what in [
        "allow dynamic bootp clients: subnet 10.0.1.0/24 gets dynamic-bootp = true",
        "dynamic-bootp-lease-length 0 (no end)",
        "dynamic-bootp-lease-length 99999 in subnet 10.0.2.0/24 is above the maximum lease time",
        "ignored: no effect: dynamic-bootp-lease-length in subnet 10.0.3.0/24",
        "ignored: no effect: deny dynamic bootp clients",
        "not converted: `dynamic-bootp-lease-cutoff",
        "[dhcp] relays",
    ] {
        assert!(said(what), "{what}: {:?}", done.diagnostics);
    }
}

#[test]
fn deny_bootp_turns_bootp_off_and_a_subnet_permit_is_set_globally() {
    let text = format!("{SUBNET}  deny bootp;\n}}\n");
    let done = run(&text).expect("imports");
    let config = bootwave_protocol::config::parse(&done.toml, "t", Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}\n{}", done.toml));
    assert!(!config.dhcp.allow_bootp, "{}", done.toml);
    assert!(
        done.diagnostics.iter().any(|d| d
            .message
            .contains("allow/deny bootp applies to every subnet")),
        "{:?}",
        done.diagnostics
    );
    let allowed =
        run("allow bootp;\nsubnet 10.0.0.0 netmask 255.255.255.0 {\n}\n").expect("imports");
    let config =
        bootwave_protocol::config::parse(&allowed.toml, "t", Path::new("/")).expect("valid");
    assert!(config.dhcp.allow_bootp);
}

#[test]
fn http_boot_classes_become_rules_for_the_http_boot_architectures() {
    // UEFI HTTP boot as it is usually set up in dhcpd: a class on the
    // vendor class, and the same in an `if` of the subnet.
    let text = "option arch code 93 = unsigned integer 16;\n\
        class \"httpclients\" {\n\
        \x20 match if substring (option vendor-class-identifier, 0, 10) = \"HTTPClient\";\n\
        \x20 option vendor-class-identifier \"HTTPClient\";\n\
        \x20 filename \"http://10.0.0.1/ipxe.efi\";\n\
        }\n\
        authoritative;\n\
        subnet 10.0.0.0 netmask 255.255.255.0 {\n\
        \x20 range 10.0.0.10 10.0.0.20;\n\
        \x20 if option arch = 00:07 { filename \"ipxe.efi\"; }\n\
        }\n\
        subnet 10.1.0.0 netmask 255.255.255.0 {\n\
        \x20 if substring(option vendor-class-identifier, 0, 10) = \"HTTPClient\" {\n\
        \x20   option vendor-class-identifier \"HTTPClient\";\n\
        \x20   filename \"http://10.1.0.1/ipxe.efi\";\n\
        \x20 }\n\
        }\n";
    let done = run(text).expect("imports");
    assert!(warnings(&done).is_empty(), "{:?}", done.diagnostics);
    let config = bootwave_protocol::config::parse(&done.toml, "t", Path::new("/")).expect("valid");
    let rules = |i: usize| -> Vec<(Vec<u16>, String)> {
        config.subnets[i]
            .boot_rules
            .iter()
            .map(|r| (r.arch.iter().map(|a| a.0).collect(), r.filename.clone()))
            .collect()
    };
    let http = vec![15, 16, 17, 18, 19, 20];
    // The class comes before the subnet's own rules, in every subnet.
    assert_eq!(
        rules(0),
        [
            (http.clone(), "http://10.0.0.1/ipxe.efi".to_owned()),
            (vec![7], "ipxe.efi".to_owned())
        ]
    );
    assert_eq!(
        rules(1),
        [
            (http.clone(), "http://10.0.0.1/ipxe.efi".to_owned()),
            (http, "http://10.1.0.1/ipxe.efi".to_owned())
        ]
    );
    let infos: Vec<&str> = done
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        infos
            .iter()
            .any(|m| m.contains("matched as option 93 being an HTTP boot architecture")),
        "{infos:?}"
    );

    // Classes bootwave cannot express are reported.
    let sub = "class \"vendors\" { match option vendor-class-identifier; }\n\
        class \"none\" { filename \"x.efi\"; }\n";
    let done = run(&format!("{sub}{SUBNET}}}\n")).expect("imports");
    let w = warnings(&done);
    assert!(
        w.iter()
            .any(|(l, m)| *l == 1 && m.contains("matched by value")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|(l, m)| *l == 2 && m.contains("no `match if`")),
        "{w:?}"
    );
}
