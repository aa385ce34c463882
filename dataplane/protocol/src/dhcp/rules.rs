//! Boot rules: which file a client boots.
//!
//! The rules of a subnet are tried in order and the first whose every
//! present matcher agrees wins, as nested `if` blocks in an ISC dhcpd
//! configuration would decide. Clients are described by [`ClientClass`].

use crate::config::{BootRule, ClientArch};

/// What boot rules can look at.
#[derive(Debug, Clone, Copy)]
pub struct ClientClass<'a> {
    /// The host's boot profile ([`crate::config::DEFAULT_PROFILE`] when none).
    pub profile: &'a str,
    /// Option 93 (first architecture).
    pub arch: Option<ClientArch>,
    /// Option 77, raw.
    pub user_class: Option<&'a [u8]>,
    /// Whether option 175 is present.
    pub ipxe_encap: bool,
}

/// The first rule of `rules` that matches `client`.
pub fn select<'r>(rules: &'r [BootRule], client: &ClientClass<'_>) -> Option<&'r BootRule> {
    rules.iter().find(|rule| matches(rule, client))
}

/// Whether every matcher present in `rule` agrees with `client`.
pub fn matches(rule: &BootRule, client: &ClientClass<'_>) -> bool {
    if rule.profile.as_deref().is_some_and(|p| p != client.profile) {
        return false;
    }
    if !rule.arch.is_empty() && !client.arch.is_some_and(|a| rule.arch.contains(&a)) {
        return false;
    }
    if let Some(want) = &rule.user_class
        && !client.user_class.is_some_and(|uc| user_class_is(uc, want))
    {
        return false;
    }
    rule.ipxe_encap.is_none_or(|want| want == client.ipxe_encap)
}

/// Whether a raw option 77 value names `want`. iPXE sends the bare string
/// (`iPXE`); RFC 3004 clients frame each class with a length byte, so a
/// single framed class counts too.
pub fn user_class_is(raw: &[u8], want: &str) -> bool {
    let want = want.as_bytes();
    raw == want
        || (raw.len() == want.len() + 1 && usize::from(raw[0]) == want.len() && &raw[1..] == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_PROFILE;

    fn rule(arch: &[u16], user_class: Option<&str>, file: &str) -> BootRule {
        BootRule {
            profile: None,
            arch: arch.iter().map(|&a| ClientArch(a)).collect(),
            user_class: user_class.map(str::to_owned),
            ipxe_encap: None,
            filename: file.to_owned(),
            next_server: None,
            http: false,
        }
    }

    /// The guide's nested `if` blocks as ordered rules.
    fn guide_rules() -> Vec<BootRule> {
        vec![
            rule(&[7], Some("iPXE"), "refind.pxe"),
            rule(&[7], None, "ipxe.efi"),
            rule(&[6], Some("iPXE"), "refind.pxe"),
            rule(&[6], None, "ipxe32.efi"),
        ]
    }

    fn class(arch: Option<u16>, uc: Option<&'static [u8]>) -> ClientClass<'static> {
        ClientClass {
            profile: DEFAULT_PROFILE,
            arch: arch.map(ClientArch),
            user_class: uc,
            ipxe_encap: false,
        }
    }

    fn file(rules: &[BootRule], c: &ClientClass<'_>) -> Option<String> {
        select(rules, c).map(|r| r.filename.clone())
    }

    #[test]
    fn guide_rules_pick_by_arch_and_user_class() {
        let rules = guide_rules();
        let f = |a, uc| file(&rules, &class(a, uc));
        assert_eq!(f(Some(7), None).as_deref(), Some("ipxe.efi"));
        assert_eq!(f(Some(7), Some(b"iPXE")).as_deref(), Some("refind.pxe"));
        assert_eq!(f(Some(6), None).as_deref(), Some("ipxe32.efi"));
        assert_eq!(f(Some(6), Some(b"iPXE")).as_deref(), Some("refind.pxe"));
        assert_eq!(f(Some(7), Some(b"gPXE")).as_deref(), Some("ipxe.efi"));
        assert_eq!(f(Some(0), None), None);
        assert_eq!(f(None, Some(b"iPXE")), None);
    }

    #[test]
    fn framed_user_class_matches() {
        assert!(user_class_is(b"\x04iPXE", "iPXE"));
        assert!(user_class_is(b"iPXE", "iPXE"));
        assert!(!user_class_is(b"\x05iPXE", "iPXE"));
        assert!(!user_class_is(b"iPX", "iPXE"));
    }

    #[test]
    fn profile_and_ipxe_encap_matchers() {
        let mut special = rule(&[], None, "special.efi");
        special.profile = Some("rescue".to_owned());
        let mut encap = rule(&[7], None, "refind.pxe");
        encap.ipxe_encap = Some(true);
        let rules = vec![special, encap, rule(&[7], None, "ipxe.efi")];
        let mut c = class(Some(7), None);
        assert_eq!(file(&rules, &c).as_deref(), Some("ipxe.efi"));
        c.ipxe_encap = true;
        assert_eq!(file(&rules, &c).as_deref(), Some("refind.pxe"));
        c.profile = "rescue";
        assert_eq!(file(&rules, &c).as_deref(), Some("special.efi"));
    }
}
