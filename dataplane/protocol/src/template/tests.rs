use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("rack".to_owned(), "r12".to_owned()),
        ("role/os".to_owned(), "debian-13".to_owned()),
    ])
}

fn render(source: &str) -> String {
    let labels = labels();
    let vars = Vars {
        hostname: "web-01.lab",
        name: "web-01",
        mac: [0x52, 0x54, 0x00, 0xab, 0x0c, 0x01],
        ip: Some(Ipv4Addr::new(10, 0, 0, 21)),
        next_server: Some(Ipv4Addr::new(10, 0, 0, 1)),
        http_port: 8080,
        profile: "rescue",
        labels: &labels,
    };
    let template = Template::parse(source).expect("valid template");
    String::from_utf8(template.render(&vars)).expect("UTF-8 in, UTF-8 out")
}

#[test]
fn http_base_is_the_next_server_and_the_http_port() {
    assert_eq!(
        render("chain {{http-base}}/{{profile}}.efi"),
        "chain http://10.0.0.1:8080/rescue.efi"
    );
}

#[test]
fn every_variable_is_substituted() {
    assert_eq!(
        render(
            "{{hostname}} {{name}} {{mac}} {{mac-hyphen}} {{ip}} {{next-server}} {{profile}} {{label:rack}} {{label:role/os}}"
        ),
        "web-01.lab web-01 52:54:00:ab:0c:01 52-54-00-ab-0c-01 10.0.0.21 10.0.0.1 rescue r12 debian-13"
    );
}

#[test]
fn ipxe_variables_pass_through_untouched() {
    let script = "#!ipxe\ndhcp\nchain tftp://${next-server}/refind_x64.efi?mac=${net0/mac:hexhyp} ${ip} $${x} ${}\n";
    assert_eq!(render(script), script);
    let t = Template::parse(script).expect("valid");
    assert_eq!(t.variables().count(), 0);
    assert_eq!(t.source(), script);
}

#[test]
fn mixed_template_renders_only_double_braces() {
    assert_eq!(
        render(
            "#!ipxe\nset host {{ hostname }}\necho ${hostname} on {{mac}}\nchain http://{{next-server}}/{{profile}}.cfg\n"
        ),
        "#!ipxe\nset host web-01.lab\necho ${hostname} on 52:54:00:ab:0c:01\nchain http://10.0.0.1/rescue.cfg\n"
    );
}

#[test]
fn quadruple_brace_is_a_literal_double_brace() {
    assert_eq!(render("a {{{{mac}} b"), "a {{mac}} b");
    assert_eq!(render("{{{{{{{{"), "{{{{");
    assert_eq!(render("}} and }"), "}} and }");
    assert_eq!(render("{ {mac} }"), "{ {mac} }");
}

#[test]
fn missing_values_render_as_nothing() {
    let labels = BTreeMap::new();
    let vars = Vars {
        hostname: "h",
        name: "h",
        mac: [0; 6],
        ip: None,
        next_server: None,
        http_port: 80,
        profile: "default",
        labels: &labels,
    };
    let t = Template::parse("[{{ip}}][{{next-server}}][{{label:rack}}]").expect("valid");
    assert_eq!(t.render(&vars), b"[][][]");
    // No next-server known here: iPXE fills in the one its DHCP reply named.
    let t = Template::parse("{{http-base}}/x").expect("valid");
    assert_eq!(t.render(&vars), b"http://${next-server}:80/x");
}

#[test]
fn unknown_variable_is_refused_with_its_position() {
    let err = Template::parse("#!ipxe\necho  {{hostnmae}}\n").unwrap_err();
    assert_eq!(
        err,
        TemplateError::UnknownVariable {
            line: 2,
            column: 7,
            name: "hostnmae".to_owned()
        }
    );
    assert!(
        err.to_string()
            .starts_with("line 2, column 7: unknown variable `hostnmae`")
    );
}

#[test]
fn unclosed_placeholder_is_refused() {
    assert_eq!(
        Template::parse("ok\né {{mac\n}}").unwrap_err(),
        TemplateError::Unclosed { line: 2, column: 3 }
    );
    assert_eq!(
        Template::parse("{{").unwrap_err(),
        TemplateError::Unclosed { line: 1, column: 1 }
    );
}

#[test]
fn bad_label_keys_are_refused() {
    for (source, reason) in [
        ("{{label:}}", "empty"),
        (
            "{{label:a b}}",
            "only letters, digits, '.', '_', '-' and '/' are allowed",
        ),
        (
            "{{label:ré}}",
            "only letters, digits, '.', '_', '-' and '/' are allowed",
        ),
    ] {
        match Template::parse(source) {
            Err(TemplateError::BadLabelKey { reason: r, .. }) => assert_eq!(r, reason, "{source}"),
            other => panic!("{source}: {other:?}"),
        }
    }
    let long = format!("{{{{label:{}}}}}", "k".repeat(64));
    assert!(matches!(
        Template::parse(&long),
        Err(TemplateError::BadLabelKey { .. })
    ));
}

#[test]
fn label_keys_are_listed() {
    let t = Template::parse("{{label:a}}{{mac}}{{label:b}}{{label:a}}").expect("valid");
    assert_eq!(t.label_keys().collect::<Vec<_>>(), ["a", "b", "a"]);
}

#[test]
fn oversized_template_is_refused() {
    let big = "x".repeat(MAX_TEMPLATE_LEN + 1);
    assert_eq!(
        Template::parse(&big).unwrap_err(),
        TemplateError::TooLong {
            len: MAX_TEMPLATE_LEN + 1,
            max: MAX_TEMPLATE_LEN
        }
    );
    assert!(Template::parse(&big[1..]).is_ok());
}

proptest! {
    /// Any input either parses or is refused; a parsed one renders, and
    /// text without `{{` renders as itself.
    #[test]
    fn hostile_input_never_panics(source in "(\\PC|\\{|\\}|\\$|\n){0,200}") {
        if let Ok(t) = Template::parse(&source) {
            let out = String::from_utf8(t.render(&Vars {
                hostname: "h",
                name: "n",
                mac: [1, 2, 3, 4, 5, 6],
                ip: None,
                next_server: None,
                http_port: 80,
                profile: "p",
                labels: &BTreeMap::new(),
            }));
            prop_assert!(out.is_ok());
            if !source.contains("{{") {
                prop_assert_eq!(out.unwrap_or_default(), source);
            }
        }
    }
}
