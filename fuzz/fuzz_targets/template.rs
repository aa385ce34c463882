#![no_main]
//! Arbitrary text into the script template parser, and every template that
//! parses rendered with one host's values. Neither may panic; the output
//! is text, text without `{{` renders as itself, and parsing is
//! deterministic.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use bootwave_protocol::template::{Template, Vars};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(template) = Template::parse(source) else {
        return;
    };
    let labels = BTreeMap::from([
        ("rack".to_owned(), "r1".to_owned()),
        ("a".to_owned(), String::new()),
    ]);
    let vars = Vars {
        hostname: "host.lab",
        name: "host",
        mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        ip: Some(Ipv4Addr::new(10, 0, 0, 5)),
        next_server: None,
        http_port: 8080,
        profile: "default",
        labels: &labels,
    };
    let out = template.render(&vars);
    let out = std::str::from_utf8(&out).expect("UTF-8 in, UTF-8 out");
    if !source.contains("{{") {
        assert_eq!(out, source);
    }
    assert_eq!(Template::parse(template.source()).as_ref(), Ok(&template));
});
