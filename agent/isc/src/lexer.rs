//! Tokenizer for ISC dhcpd configuration text.
//!
//! Words are runs of characters other than white space and the punctuation
//! `{ } ; , = ( ) ! ~ " ' #`, so addresses (`192.168.1.1`), MACs and hex
//! strings (`00:07`), names (`ipxe.bus-id`) and numbers (`-18000`) are single
//! words. Strings take either quote and backslash escapes. `#` starts a
//! comment that runs to the end of the line.

use super::{Pos, SyntaxError};

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// `;`
    Semi,
    /// `,`
    Comma,
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `~=` or `~~` (regular expression match)
    Regex,
    /// `(`
    LParen,
    /// `)`
    RParen,
}

impl Tok {
    /// The token as it would be written in the file (for messages).
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Word(w) => w.clone(),
            Self::Str(s) => format!("{s:?}"),
            Self::Open => "{".into(),
            Self::Close => "}".into(),
            Self::Semi => ";".into(),
            Self::Comma => ",".into(),
            Self::Eq => "=".into(),
            Self::NotEq => "!=".into(),
            Self::Regex => "~=".into(),
            Self::LParen => "(".into(),
            Self::RParen => ")".into(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: Pos,
}

/// Splits `text` (file number `file`) into tokens.
pub(crate) fn tokenize(text: &str, file: u16) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let mut line: u32 = 1;
    let mut chars = text.chars().peekable();
    let err = |line: u32, message: String| SyntaxError {
        pos: Pos { file, line },
        message,
    };
    while let Some(c) = chars.next() {
        let pos = Pos { file, line };
        let single = match c {
            '\n' => {
                line += 1;
                continue;
            }
            '\0' => return Err(err(line, "NUL byte in the text".into())),
            c if c.is_whitespace() => continue,
            '#' => {
                while chars.next_if(|&c| c != '\n').is_some() {}
                continue;
            }
            '{' => Some(Tok::Open),
            '}' => Some(Tok::Close),
            ';' => Some(Tok::Semi),
            ',' => Some(Tok::Comma),
            '=' => Some(Tok::Eq),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '!' if chars.next_if_eq(&'=').is_some() => Some(Tok::NotEq),
            '~' if chars.next_if(|&c| c == '=' || c == '~').is_some() => Some(Tok::Regex),
            '!' | '~' => return Err(err(line, format!("unexpected `{c}`"))),
            _ => None,
        };
        if let Some(tok) = single {
            out.push(Token { tok, pos });
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => {
                        return Err(err(
                            pos.line,
                            format!("unterminated string (opened with {c})"),
                        ));
                    }
                    Some(q) if q == c => break,
                    Some('\0') => return Err(err(line, "NUL byte in the text".into())),
                    Some('\n') => {
                        line += 1;
                        s.push('\n');
                    }
                    Some('\\') => match chars.next() {
                        None => {
                            return Err(err(
                                pos.line,
                                format!("unterminated string (opened with {c})"),
                            ));
                        }
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some('\n') => line += 1,
                        Some(other) => s.push(other),
                    },
                    Some(other) => s.push(other),
                }
            }
            out.push(Token {
                tok: Tok::Str(s),
                pos,
            });
            continue;
        }
        let mut word = String::from(c);
        while let Some(c) =
            chars.next_if(|&c| !c.is_whitespace() && !"{};,=()!~\"'#".contains(c) && c != '\0')
        {
            word.push(c);
        }
        out.push(Token {
            tok: Tok::Word(word),
            pos,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<(Tok, u32)> {
        tokenize(text, 0)
            .expect("tokenizes")
            .into_iter()
            .map(|t| (t.tok, t.pos.line))
            .collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.to_owned())
    }

    #[test]
    fn words_strings_punctuation_and_lines() {
        let got =
            toks("if option arch = 00:07 { # x64\n  filename 'a \"b\"';\n} x != \"y\\\"z\" ~~ ()");
        assert_eq!(
            got,
            [
                (w("if"), 1),
                (w("option"), 1),
                (w("arch"), 1),
                (Tok::Eq, 1),
                (w("00:07"), 1),
                (Tok::Open, 1),
                (w("filename"), 2),
                (Tok::Str("a \"b\"".into()), 2),
                (Tok::Semi, 2),
                (Tok::Close, 3),
                (w("x"), 3),
                (Tok::NotEq, 3),
                (Tok::Str("y\"z".into()), 3),
                (Tok::Regex, 3),
                (Tok::LParen, 3),
                (Tok::RParen, 3),
            ]
        );
    }

    #[test]
    fn multi_line_strings_count_lines() {
        let got = toks("a \"x\ny\" b");
        assert_eq!(
            got,
            [(w("a"), 1), (Tok::Str("x\ny".into()), 1), (w("b"), 2)]
        );
    }

    #[test]
    fn bad_input_names_the_line() {
        let e = tokenize("a;\nb \"open\n\n", 3).expect_err("unterminated");
        assert_eq!(e.pos, Pos { file: 3, line: 2 });
        assert_eq!(e.message, "unterminated string (opened with \")");
        let e = tokenize("a;\n\nb\0;", 0).expect_err("nul");
        assert_eq!(
            (e.pos.line, e.message.as_str()),
            (3, "NUL byte in the text")
        );
        assert!(tokenize("a ! b", 0).is_err());
    }
}
