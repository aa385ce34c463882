//! `if` conditions to boot-rule matchers.
//!
//! A condition is read into an expression of `and`, `or`, `not` and atoms,
//! then brought into disjunctive normal form: a list of alternatives, each a
//! [`Matchers`] conjunction that one boot rule can express. Supported atoms:
//! `option <arch option> = 00:07` (any option defined with code 93),
//! `option user-class = "iPXE"` (code 77; `exists user-class` is implied by
//! it), and `exists <option 175 or an option of the space it encapsulates>`
//! (iPXE's encapsulated options, matched as "option 175 present"), also
//! under `not`, and `substring (option vendor-class-identifier, 0, 10) =
//! "HTTPClient"` (UEFI HTTP boot firmware, matched by the HTTP boot
//! architectures it sends with that class). Anything else is unsupported
//! and reported by its text.

use std::collections::{HashMap, HashSet};

use super::lexer::{Tok, Token};

/// Option names the configuration defined or dhcpd knows built in.
#[derive(Debug, Clone)]
pub(crate) struct OptionNames {
    codes: HashMap<String, u16>,
    encap_spaces: HashSet<String>,
}

impl Default for OptionNames {
    fn default() -> Self {
        let builtin = [
            ("user-class", 77),
            ("pxe-system-type", 93),
            ("vendor-class-identifier", 60),
        ];
        Self {
            codes: builtin.iter().map(|&(n, c)| (n.to_owned(), c)).collect(),
            encap_spaces: HashSet::new(),
        }
    }
}

impl OptionNames {
    /// Records `option NAME code CODE = …;`; `encapsulates` names the
    /// option space of `= encapsulate SPACE`.
    pub(crate) fn define(&mut self, name: &str, code: u16, encapsulates: Option<&str>) {
        self.codes.insert(name.to_owned(), code);
        if let (175, Some(space)) = (code, encapsulates) {
            self.encap_spaces.insert(space.to_owned());
        }
    }

    pub(crate) fn code(&self, name: &str) -> Option<u16> {
        self.codes.get(name).copied()
    }

    /// Whether `name` is option 175 or a sub-option carried inside it.
    fn in_ipxe_encap(&self, name: &str) -> bool {
        if self.code(name) == Some(175) && !name.contains('.') {
            return true;
        }
        name.split_once('.')
            .is_some_and(|(space, _)| self.encap_spaces.contains(space))
    }
}

/// One conjunction of conditions a boot rule can express.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Matchers {
    /// Client architecture is one of these.
    pub(crate) arch: Option<Vec<u16>>,
    /// User class equals this.
    pub(crate) user_class: Option<String>,
    /// Option 175 present (`true`) or absent (`false`).
    pub(crate) encap: Option<bool>,
    /// `exists user-class` seen; satisfied by `user_class`.
    needs_user_class: bool,
}

impl Matchers {
    /// Both conjunctions at once; `None` when no client can match both.
    pub(crate) fn and(&self, other: &Self) -> Option<Self> {
        let arch = match (&self.arch, &other.arch) {
            (Some(a), Some(b)) => {
                let both: Vec<u16> = a.iter().copied().filter(|x| b.contains(x)).collect();
                if both.is_empty() {
                    return None;
                }
                Some(both)
            }
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let user_class = match (&self.user_class, &other.user_class) {
            (Some(a), Some(b)) if a != b => return None,
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let encap = match (self.encap, other.encap) {
            (Some(a), Some(b)) if a != b => return None,
            (a, b) => a.or(b),
        };
        Some(Self {
            arch,
            user_class,
            encap,
            needs_user_class: self.needs_user_class || other.needs_user_class,
        })
    }

    /// Whether no client can match both.
    pub(crate) fn disjoint(&self, other: &Self) -> bool {
        self.and(other).is_none()
    }
}

/// A condition in disjunctive normal form, with remarks on approximations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cond {
    /// Alternatives; a client matches when it matches any.
    pub(crate) any_of: Vec<Matchers>,
    /// Approximations made (reported as info).
    pub(crate) notes: Vec<String>,
}

/// Most alternatives one condition may expand to.
const MAX_ALTERNATIVES: usize = 64;

/// The option 93 values of HTTP boot firmware (`efi-ia32-http` …
/// `bios-http`), which the data plane also treats as HTTP clients.
pub(crate) const HTTP_BOOT_ARCHES: [u16; 6] = [15, 16, 17, 18, 19, 20];

/// The vendor class (option 60) HTTP boot firmware starts with.
pub(crate) const HTTP_CLIENT: &str = "HTTPClient";

/// Reads condition tokens; `Err` holds the text of what cannot be expressed.
pub(crate) fn condition(tokens: &[Token], names: &OptionNames) -> Result<Cond, String> {
    let mut reader = Reader {
        tokens,
        next: 0,
        names,
        notes: Vec::new(),
    };
    let any_of = reader.or()?;
    if let Some(t) = tokens.get(reader.next) {
        return Err(format!("unexpected `{}`", t.tok.text()));
    }
    let mut kept = Vec::new();
    for m in any_of {
        if m.needs_user_class && m.user_class.is_none() {
            return Err("exists user-class (without comparing its value)".into());
        }
        kept.push(m);
    }
    Ok(Cond {
        any_of: kept,
        notes: reader.notes,
    })
}

struct Reader<'a> {
    tokens: &'a [Token],
    next: usize,
    names: &'a OptionNames,
    notes: Vec<String>,
}

impl Reader<'_> {
    fn word(&self, i: usize) -> Option<&str> {
        match self.tokens.get(self.next + i) {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => Some(w.as_str()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Vec<Matchers>, String> {
        let mut out = self.and()?;
        while self.word(0) == Some("or") {
            self.next += 1;
            out.extend(self.and()?);
            if out.len() > MAX_ALTERNATIVES {
                return Err(format!(
                    "a condition with more than {MAX_ALTERNATIVES} alternatives"
                ));
            }
        }
        Ok(out)
    }

    fn and(&mut self) -> Result<Vec<Matchers>, String> {
        let mut out = self.unary()?;
        while self.word(0) == Some("and") {
            self.next += 1;
            let rhs = self.unary()?;
            out = out
                .iter()
                .flat_map(|a| rhs.iter().filter_map(|b| a.and(b)))
                .collect();
            if out.len() > MAX_ALTERNATIVES {
                return Err(format!(
                    "a condition with more than {MAX_ALTERNATIVES} alternatives"
                ));
            }
        }
        Ok(out)
    }

    fn unary(&mut self) -> Result<Vec<Matchers>, String> {
        if self.word(0) == Some("not") {
            self.next += 1;
            let start = self.next;
            let inner = self.unary()?;
            let text = self.text(start);
            return match inner.as_slice() {
                [m] if m.encap == Some(true) && m.arch.is_none() && m.user_class.is_none() => {
                    Ok(vec![Matchers {
                        encap: Some(false),
                        ..Matchers::default()
                    }])
                }
                _ => Err(format!("not {text}")),
            };
        }
        if matches!(
            self.tokens.get(self.next),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            self.next += 1;
            let inner = self.or()?;
            return match self.tokens.get(self.next) {
                Some(Token {
                    tok: Tok::RParen, ..
                }) => {
                    self.next += 1;
                    Ok(inner)
                }
                _ => Err("unbalanced `(`".into()),
            };
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Vec<Matchers>, String> {
        let start = self.next;
        if let Some(m) = self.http_client_class() {
            return Ok(vec![m]);
        }
        if self.word(0) == Some("exists") {
            if let Some(name) = self.word(1).map(str::to_owned) {
                self.next += 2;
                if self.names.code(&name) == Some(77) {
                    return Ok(vec![Matchers {
                        needs_user_class: true,
                        ..Matchers::default()
                    }]);
                }
                if self.names.in_ipxe_encap(&name) {
                    if name.contains('.') {
                        self.notes.push(format!(
                            "`exists {name}` is matched as \"option 175 present\""
                        ));
                    }
                    return Ok(vec![Matchers {
                        encap: Some(true),
                        ..Matchers::default()
                    }]);
                }
            }
            return Err(self.skip_atom(start));
        }
        if self.word(0) == Some("option") {
            let name = self.word(1).map(str::to_owned);
            let is_eq = matches!(
                self.tokens.get(self.next + 2),
                Some(Token { tok: Tok::Eq, .. })
            );
            let value = self.tokens.get(self.next + 3).map(|t| t.tok.clone());
            if let (Some(name), true, Some(value)) = (name, is_eq, value) {
                let matched = match (self.names.code(&name), &value) {
                    (Some(93), Tok::Word(w)) => arch_value(w).map(|a| Matchers {
                        arch: Some(vec![a]),
                        ..Matchers::default()
                    }),
                    (Some(77), Tok::Str(s)) => Some(Matchers {
                        user_class: Some(s.clone()),
                        ..Matchers::default()
                    }),
                    (Some(77), Tok::Word(w)) => hex_string(w).map(|s| Matchers {
                        user_class: Some(s),
                        ..Matchers::default()
                    }),
                    _ => None,
                };
                if let Some(m) = matched {
                    self.next += 4;
                    if !self.at_atom_end() {
                        return Err(self.skip_atom(start));
                    }
                    return Ok(vec![m]);
                }
            }
        }
        Err(self.skip_atom(start))
    }

    /// `substring (option <option 60>, 0, N) = "HTTPClient"` with N the
    /// length of the string: UEFI HTTP boot firmware, which sends an HTTP
    /// boot architecture in option 93 along with that class.
    fn http_client_class(&mut self) -> Option<Matchers> {
        let t = |i: usize| self.tokens.get(self.next + i).map(|t| &t.tok);
        let word = |i: usize, w: &str| matches!(t(i), Some(Tok::Word(x)) if x == w);
        let shape = word(0, "substring")
            && matches!(t(1), Some(Tok::LParen))
            && word(2, "option")
            && matches!(t(3), Some(Tok::Word(name)) if self.names.code(name) == Some(60))
            && matches!(t(4), Some(Tok::Comma))
            && word(5, "0")
            && matches!(t(6), Some(Tok::Comma))
            && word(7, &HTTP_CLIENT.len().to_string())
            && matches!(t(8), Some(Tok::RParen))
            && matches!(t(9), Some(Tok::Eq))
            && matches!(t(10), Some(Tok::Str(s)) if s == HTTP_CLIENT);
        if !shape {
            return None;
        }
        let at = self.next;
        self.next += 11;
        if !self.at_atom_end() {
            self.next = at;
            return None;
        }
        self.notes.push(format!(
            "the vendor class \"{HTTP_CLIENT}\" is matched as option 93 being an HTTP boot architecture (15-20), which such firmware sends with it; bootwave answers those clients with option 60 \"{HTTP_CLIENT}\" itself"
        ));
        Some(Matchers {
            arch: Some(HTTP_BOOT_ARCHES.to_vec()),
            ..Matchers::default()
        })
    }

    fn at_atom_end(&self) -> bool {
        matches!(self.word(0), Some("and" | "or"))
            || matches!(
                self.tokens.get(self.next),
                None | Some(Token {
                    tok: Tok::RParen,
                    ..
                })
            )
    }

    /// Skips an unsupported atom (to the next top-level `and`/`or` or
    /// unbalanced `)`) and returns its text.
    fn skip_atom(&mut self, start: usize) -> String {
        self.next = start;
        let mut depth = 0usize;
        while let Some(t) = self.tokens.get(self.next) {
            match &t.tok {
                Tok::LParen => depth += 1,
                Tok::RParen if depth == 0 => break,
                Tok::RParen => depth -= 1,
                Tok::Word(w) if depth == 0 && (w == "and" || w == "or") && self.next > start => {
                    break;
                }
                _ => {}
            }
            self.next += 1;
        }
        self.text(start)
    }

    fn text(&self, start: usize) -> String {
        let end = self.next.min(self.tokens.len());
        self.tokens[start.min(end)..end]
            .iter()
            .map(|t| t.tok.text())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `00:07` (hex octets, big-endian) or `7` (decimal).
fn arch_value(word: &str) -> Option<u16> {
    if word.contains(':') {
        let bytes = hex_bytes(word)?;
        return match bytes.as_slice() {
            [b] => Some(u16::from(*b)),
            [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        };
    }
    word.parse().ok()
}

/// Colon-separated hex octets (`69:50:58:45`) read as a UTF-8 string.
fn hex_string(word: &str) -> Option<String> {
    String::from_utf8(hex_bytes(word)?)
        .ok()
        .filter(|s| !s.is_empty())
}

fn hex_bytes(word: &str) -> Option<Vec<u8>> {
    word.split(':')
        .map(|part| {
            if part.is_empty() || part.len() > 2 {
                None
            } else {
                u8::from_str_radix(part, 16).ok()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn names() -> OptionNames {
        let mut n = OptionNames::default();
        n.define("arch", 93, None);
        n.define("ipxe-encap-opts", 175, Some("ipxe"));
        n.define("ipxe.bus-id", 177, None);
        n
    }

    fn cond(text: &str) -> Result<Cond, String> {
        condition(&tokenize(text, 0).expect("tokens"), &names())
    }

    fn m(arch: Option<&[u16]>, class: Option<&str>, encap: Option<bool>) -> Matchers {
        Matchers {
            arch: arch.map(<[u16]>::to_vec),
            user_class: class.map(str::to_owned),
            encap,
            needs_user_class: false,
        }
    }

    #[test]
    fn arch_and_user_class() {
        let c = cond("option arch = 00:07").expect("ok");
        assert_eq!(c.any_of, [m(Some(&[7]), None, None)]);
        let c = cond("exists user-class and option user-class = \"iPXE\"").expect("ok");
        assert_eq!(c.any_of[0].user_class.as_deref(), Some("iPXE"));
        let c = cond("option pxe-system-type = 00:09 or option arch = 7").expect("ok");
        assert_eq!(
            c.any_of,
            [m(Some(&[9]), None, None), m(Some(&[7]), None, None)]
        );
        let c = cond(
            "(option arch = 00:07 or option arch = 00:09) and option user-class = 69:50:58:45",
        )
        .expect("ok");
        assert_eq!(
            c.any_of,
            [
                m(Some(&[7]), Some("iPXE"), None),
                m(Some(&[9]), Some("iPXE"), None)
            ]
        );
    }

    #[test]
    fn ipxe_encapsulation_presence() {
        let c = cond("exists ipxe.bus-id").expect("ok");
        assert_eq!(c.any_of, [m(None, None, Some(true))]);
        assert_eq!(c.notes.len(), 1);
        let c = cond("not exists ipxe-encap-opts").expect("ok");
        assert_eq!(c.any_of, [m(None, None, Some(false))]);
        assert!(c.notes.is_empty());
    }

    #[test]
    fn contradictions_vanish() {
        let c = cond("option arch = 00:07 and option arch = 00:06").expect("ok");
        assert!(c.any_of.is_empty());
        assert!(m(Some(&[7]), None, None).disjoint(&m(Some(&[6]), Some("iPXE"), None)));
        assert!(!m(Some(&[7]), None, None).disjoint(&m(None, Some("iPXE"), None)));
    }

    #[test]
    fn the_http_client_vendor_class_is_the_http_boot_architectures() {
        let c =
            cond("substring (option vendor-class-identifier, 0, 10) = \"HTTPClient\"").expect("ok");
        assert_eq!(c.any_of, [m(Some(&HTTP_BOOT_ARCHES), None, None)]);
        assert_eq!(c.notes.len(), 1);
        let c = cond(
            "substring(option vendor-class-identifier,0,10) = \"HTTPClient\" and option arch = 00:10",
        )
        .expect("ok");
        assert_eq!(c.any_of, [m(Some(&[16]), None, None)]);
        // Another length or prefix stays unsupported.
        assert!(cond("substring (option vendor-class-identifier, 0, 4) = \"HTTP\"").is_err());
    }

    #[test]
    fn unsupported_conditions_report_their_text() {
        let e = cond("substring (option vendor-class-identifier, 0, 9) = \"PXEClient\"")
            .expect_err("unsupported");
        assert_eq!(
            e,
            "substring ( option vendor-class-identifier , 0 , 9 ) = \"PXEClient\""
        );
        assert_eq!(
            cond("exists user-class").expect_err("alone"),
            "exists user-class (without comparing its value)"
        );
        assert_eq!(
            cond("not option arch = 00:07").expect_err("not"),
            "not option arch = 00:07"
        );
        assert_eq!(
            cond("option arch != 00:07").expect_err("ne"),
            "option arch != 00:07"
        );
        assert_eq!(
            cond("option arch = 00:07 and known").expect_err("known"),
            "known"
        );
    }
}
