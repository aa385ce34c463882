//! `bootwave subnet add|rm|ls|show` and `bootwave profile add|rm|ls|show`
//! against a running agent: what reaches the state, errors and exit codes.
#![allow(clippy::unwrap_used)]

mod agent_support;

use agent_support::*;

#[test]
fn subnet_commands() {
    let (_dir, state, socket) = temp();
    let _agent = spawn_agent(&state, &socket);
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };

    let reply = cli.json(&[
        "subnet",
        "add",
        "--network",
        "10.1.0.0/24",
        "--range",
        "10.1.0.100-10.1.0.150",
        "--range",
        "10.1.0.200-10.1.0.210",
        "--router",
        "10.1.0.1",
        "--dns",
        "10.1.0.2",
        "--dns",
        "10.1.0.3",
        "--ntp",
        "10.1.0.4",
        "--domain",
        "lab.example",
        "--next-server",
        "10.1.0.5",
        "--unknown-clients",
        "deny",
        "--lease-time",
        "600",
        "--max-lease-time",
        "3600",
        "--rule",
        "arch=7,file=ipxe.efi",
    ]);
    assert_eq!(reply["generation"], 1);

    let list = cli.json(&["subnet", "ls"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let s = cli.json(&["subnet", "show", "10.1.0.0/24"]);
    assert_eq!(s["network"], "10.1.0.0/24");
    assert_eq!(
        s["ranges"],
        serde_json::json!(["10.1.0.100-10.1.0.150", "10.1.0.200-10.1.0.210"])
    );
    assert_eq!(s["routers"], serde_json::json!(["10.1.0.1"]));
    assert_eq!(s["dns"], serde_json::json!(["10.1.0.2", "10.1.0.3"]));
    assert_eq!(s["ntp"], serde_json::json!(["10.1.0.4"]));
    assert_eq!(s["domain"], "lab.example");
    assert_eq!(s["next_server"], "10.1.0.5");
    assert_eq!(s["boot_rules"][0]["arch"], serde_json::json!([7]));
    assert_eq!(s["boot_rules"][0]["filename"], "ipxe.efi");
    let text = cli.ok(&["subnet", "show", "--network", "10.1.0.0/24"]);
    assert!(text.contains("unknown-clients: deny"), "{text}");
    assert!(text.contains("lease-time: 600s"), "{text}");
    assert!(text.contains("max-lease-time: 3600s"), "{text}");
    assert!(text.contains("rule 0: arch=7,file=ipxe.efi"), "{text}");

    // The agent refuses what the data plane would refuse, naming the field.
    let err = cli.fails(
        &[
            "subnet",
            "add",
            "--network",
            "10.2.0.0/24",
            "--range",
            "10.9.0.1-10.9.0.9",
        ],
        1,
    );
    assert!(err.contains("range"), "{err}");
    let err = cli.fails(
        &[
            "subnet",
            "add",
            "--network",
            "10.2.0.0/24",
            "--rule",
            "arch=7",
        ],
        2,
    );
    assert!(err.contains("file=NAME"), "{err}");
    cli.fails(
        &[
            "subnet",
            "add",
            "--network",
            "10.2.0.0/24",
            "--unknown-clients",
            "maybe",
        ],
        2,
    );

    cli.fails(&["subnet", "show", "10.3.0.0/24"], 3);
    cli.ok(&["subnet", "rm", "10.1.0.0/24"]);
    assert_eq!(cli.json(&["subnet", "ls"]), serde_json::json!([]));
    cli.fails(&["subnet", "rm", "--network", "10.1.0.0/24"], 3);
}

#[test]
fn profile_commands() {
    let (dir, state, socket) = temp();
    let _agent = spawn_agent(&state, &socket);
    let cli = Cli {
        agent: format!("unix:{}", socket.display()),
    };
    let script = dir.path().join("refind.ipxe");
    std::fs::write(&script, "#!ipxe\nchain refind_x64.efi\n").unwrap();
    // Profile rules reach the data plane through the subnets they apply in.
    cli.ok(&["subnet", "add", "--network", "10.0.0.0/24"]);

    cli.ok(&[
        "profile",
        "add",
        "refind",
        "--rule",
        "arch=7,user-class=iPXE,file=refind.pxe,next-server=10.0.0.9",
        "--rule",
        "arch=7,file=ipxe.efi",
        "--ipxe-script",
        script.to_str().unwrap(),
    ]);
    let p = cli.json(&["profile", "show", "refind"]);
    assert_eq!(p["name"], "refind");
    assert_eq!(p["rules"].as_array().unwrap().len(), 2);
    assert_eq!(p["rules"][0]["user_class"], "iPXE");
    assert_eq!(p["rules"][0]["filename"], "refind.pxe");
    assert_eq!(p["rules"][0]["next_server"], "10.0.0.9");
    assert_eq!(p["rules"][1]["filename"], "ipxe.efi");
    assert_eq!(p["ipxe_script"], "#!ipxe\nchain refind_x64.efi\n");
    let table = cli.ok(&["profile", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["refind", "2", "yes"]),
        "{table}"
    );
    let text = cli.ok(&["profile", "show", "refind"]);
    assert!(
        text.contains("rule 0: arch=7,user-class=iPXE,file=refind.pxe,next-server=10.0.0.9"),
        "{text}"
    );

    // A host can now name the profile.
    cli.ok(&["host", "add", "02:00:00:00:00:01", "--profile", "refind"]);

    let missing = dir.path().join("missing.ipxe");
    let err = cli.fails(
        &[
            "profile",
            "add",
            "other",
            "--ipxe-script",
            missing.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("missing.ipxe"), "{err}");
    cli.fails(&["profile", "show", "nope"], 3);
    cli.fails(&["profile", "rm", "nope"], 3);
    cli.ok(&["host", "rm", "02:00:00:00:00:01"]);
    cli.ok(&["profile", "rm", "refind"]);
    cli.fails(&["profile", "show", "refind"], 3);
}
