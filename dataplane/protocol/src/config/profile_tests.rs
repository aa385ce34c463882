//! Parsing tests of `[[profiles]]` and host labels.

use std::path::{Path, PathBuf};

use super::*;
use crate::template::Var;

const SUBNET: &str = "[[subnets]]\nnetwork = \"10.0.0.0/24\"\nnext-server = \"10.0.0.1\"\n";

fn ok(text: &str) -> Config {
    match parse(&format!("{SUBNET}{text}"), "t.toml", Path::new("/etc/bw")) {
        Ok(config) => config,
        Err(e) => panic!("rejected: {e}\n{text}"),
    }
}

fn err(text: &str) -> ConfigError {
    parse(&format!("{SUBNET}{text}"), "t.toml", Path::new("/etc/bw")).expect_err("must be rejected")
}

fn invalid(e: &ConfigError) -> (&str, &str) {
    match e {
        ConfigError::Invalid { key, message, .. } => (key, message),
        other => panic!("not a validation error: {other}"),
    }
}

#[test]
fn inline_template_with_its_script_path() {
    let c = ok(r#"
[[profiles]]
name = "rescue"
script = "/boot\\rescue.pxe"
template = """
#!ipxe
echo {{hostname}} ${net0/mac}
"""
"#);
    let script = c.profiles[0].script.as_ref().expect("a script");
    assert_eq!(c.profiles[0].name, "rescue");
    assert_eq!(script.path, "boot/rescue.pxe");
    assert_eq!(
        script.template.source(),
        "#!ipxe\necho {{hostname}} ${net0/mac}\n"
    );
    assert_eq!(
        script.template.variables().collect::<Vec<_>>(),
        [&Var::Hostname]
    );
    assert_eq!(script.template_file, None);
}

#[test]
fn script_path_defaults_to_the_profile_name() {
    let c = ok("[[profiles]]\nname = \"install\"\ntemplate = \"#!ipxe\\n\"\n");
    assert_eq!(
        c.profiles[0].script.as_ref().map(|s| s.path.as_str()),
        Some("install.ipxe")
    );
}

#[test]
fn a_profile_without_template_declares_a_name_only() {
    let c = ok(r#"
[[profiles]]
name = "local-disk"

[[hosts]]
name = "n1"
mac = "02:00:00:00:00:01"
profile = "local-disk"
"#);
    assert_eq!(c.profiles[0].script, None);
    assert_eq!(c.hosts[0].profile.as_deref(), Some("local-disk"));
}

#[test]
fn template_errors_name_the_key_and_the_template_position() {
    let e = err("[[profiles]]\nname = \"rescue\"\ntemplate = \"#!ipxe\\necho {{hostnmae}}\"\n");
    // Line 6 of the file holds the template value, starting at column 12.
    assert_eq!(e.location().position, Some((6, 12)));
    let (key, message) = invalid(&e);
    assert_eq!(key, "profiles[0].template");
    assert!(
        message.starts_with("line 2, column 6: unknown variable `hostnmae`"),
        "{message}"
    );
}

#[test]
fn script_sources_are_exclusive_and_required() {
    let e = err("[[profiles]]\nname = \"a\"\ntemplate = \"x\"\ntemplate-file = \"a.ipxe\"\n");
    assert_eq!(invalid(&e).0, "profiles[0].template-file");
    let e = err("[[profiles]]\nname = \"a\"\nscript = \"a.ipxe\"\n");
    assert_eq!(
        invalid(&e),
        (
            "profiles[0].script",
            "a script needs `template` or `template-file`"
        )
    );
    let e = err("[[profiles]]\nname = \"a\"\nscript = \"../a.ipxe\"\ntemplate = \"x\"\n");
    assert_eq!(invalid(&e).0, "profiles[0].script");
    let e = err("[[profiles]]\nname = \"a\"\n[[profiles]]\nname = \"a\"\n");
    assert_eq!(
        invalid(&e),
        ("profiles[1].name", "`a` is already profiles[0]")
    );
}

#[test]
fn template_files_are_read_through_the_callers_reader() {
    let text = format!(
        "{SUBNET}[[profiles]]\nname = \"rescue\"\ntemplate-file = \"scripts/rescue.ipxe\"\n"
    );
    let read = |path: &Path| {
        if path == Path::new("/etc/bw/scripts/rescue.ipxe") {
            Ok("#!ipxe\nchain {{profile}}.cfg\n".to_owned())
        } else {
            Err(format!("no such file {}", path.display()))
        }
    };
    let c = parse_with(&text, "t.toml", Path::new("/etc/bw"), &read).expect("valid");
    let script = c.profiles[0].script.as_ref().expect("a script");
    assert_eq!(script.template.source(), "#!ipxe\nchain {{profile}}.cfg\n");
    assert_eq!(
        script.template_file,
        Some(PathBuf::from("/etc/bw/scripts/rescue.ipxe"))
    );
    let e = parse_with(&text, "t.toml", Path::new("/srv"), &read).expect_err("unreadable");
    assert!(
        invalid(&e)
            .1
            .contains("cannot read scripts/rescue.ipxe: no such file /srv/scripts/rescue.ipxe")
    );
    let e = parse(&text, "t.toml", Path::new("/etc/bw")).expect_err("pure parse reads no file");
    assert_eq!(invalid(&e).0, "profiles[0].template-file");
    let bad = |_: &Path| Ok("{{nope}}".to_owned());
    let e = parse_with(&text, "t.toml", Path::new("/"), &bad).expect_err("bad template");
    assert!(
        invalid(&e)
            .1
            .starts_with("scripts/rescue.ipxe: line 1, column 1: unknown variable")
    );
}

#[test]
fn host_labels_are_checked() {
    let c = ok(
        "[[hosts]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\nlabels = { rack = \"r1\", \"role/os\" = \"debian 13\" }\n",
    );
    assert_eq!(
        c.hosts[0].labels.get("rack").map(String::as_str),
        Some("r1")
    );
    assert_eq!(
        c.hosts[0].labels.get("role/os").map(String::as_str),
        Some("debian 13")
    );
    let e = err(
        "[[hosts]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\nlabels = { rack = \"r1\\nchain evil\" }\n",
    );
    assert_eq!(invalid(&e).0, "hosts[0].labels.rack");
    let e = err(
        "[[hosts]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\nlabels = { \"a b\" = \"x\" }\n",
    );
    assert_eq!(invalid(&e).0, "hosts[0].labels.a b");
}

#[test]
fn a_host_must_have_the_labels_its_profile_template_uses() {
    let profile = "[[profiles]]\nname = \"rescue\"\ntemplate = \"rack {{label:rack}}\"\n";
    let host = "[[hosts]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\nprofile = \"rescue\"\n";
    let e = err(&format!("{profile}{host}"));
    let (key, message) = invalid(&e);
    assert_eq!(key, "hosts[0].labels");
    assert!(message.contains("{{label:rack}}"), "{message}");
    let c = ok(&format!("{profile}{host}labels = {{ rack = \"r7\" }}\n"));
    assert_eq!(c.hosts[0].labels.len(), 1);
    // A host of another profile needs no such label.
    ok(&format!(
        "{profile}[[hosts]]\nname = \"n2\"\nmac = \"02:00:00:00:00:02\"\n"
    ));
}

#[test]
fn an_undeclared_profile_is_still_refused() {
    let e = err("[[hosts]]\nname = \"n1\"\nmac = \"02:00:00:00:00:01\"\nprofile = \"resuce\"\n");
    assert_eq!(invalid(&e).0, "hosts[0].profile");
}
