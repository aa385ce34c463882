//! Statement parser: tokens to a tree of statements, with `include` files
//! spliced in place.
//!
//! The grammar is the shape every dhcpd.conf statement shares: words ending
//! in `;`, words followed by a `{ … }` block, and `if` / `elsif` / `else if`
//! / `else` chains. What the words mean is the converter's business.

use std::path::{Path, PathBuf};

use super::lexer::{Tok, Token, tokenize};
use super::{Loader, MAX_DEPTH, MAX_INCLUDE_DEPTH, MAX_TOTAL_BYTES, Pos, SyntaxError};

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stmt {
    /// `words… ;`
    Simple {
        /// The words before `;` (never empty).
        words: Vec<Token>,
        /// Where the statement starts.
        pos: Pos,
    },
    /// `head… { body }`
    Block {
        /// The words before `{` (may be empty: a bare `{ … }`).
        head: Vec<Token>,
        /// The statements inside.
        body: Vec<Self>,
        /// Where the statement starts.
        pos: Pos,
    },
    /// An `if` chain.
    If {
        /// `if`, then every `elsif` / `else if`, then `else` (no condition).
        branches: Vec<Branch>,
    },
}

/// One arm of an `if` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Branch {
    /// The condition tokens; `None` for `else`.
    pub(crate) cond: Option<Vec<Token>>,
    /// The statements inside.
    pub(crate) body: Vec<Stmt>,
    /// Where the arm starts.
    pub(crate) pos: Pos,
}

/// The files read so far, by number, and the resource bounds shared by all.
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// Display names, indexed by [`Pos::file`].
    pub(crate) names: Vec<String>,
    paths: Vec<PathBuf>,
    total_bytes: usize,
}

impl Files {
    /// The display name of file number `file`.
    pub(crate) fn name(&self, file: u16) -> &str {
        self.names
            .get(usize::from(file))
            .map_or("?", String::as_str)
    }
}

/// Reads, tokenizes and parses `path` and every file it includes.
pub(crate) fn parse_file(
    path: &Path,
    loader: &mut dyn Loader,
    files: &mut Files,
    include_stack: &mut Vec<PathBuf>,
    from: Option<Pos>,
) -> Result<Vec<Stmt>, SyntaxError> {
    let here = from.unwrap_or(Pos { file: 0, line: 0 });
    let fail = |message: String| SyntaxError { pos: here, message };
    if include_stack.len() > MAX_INCLUDE_DEPTH {
        return Err(fail(format!(
            "includes nest deeper than {MAX_INCLUDE_DEPTH} files"
        )));
    }
    let key = loader.identity(path);
    if include_stack.contains(&key) {
        return Err(fail(format!(
            "{} includes itself (include loop)",
            path.display()
        )));
    }
    let bytes = loader
        .load(path, MAX_TOTAL_BYTES.saturating_sub(files.total_bytes))
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    files.total_bytes += bytes.len();
    if files.total_bytes > MAX_TOTAL_BYTES {
        return Err(fail(format!(
            "input exceeds {} MiB in total",
            MAX_TOTAL_BYTES >> 20
        )));
    }
    let file =
        u16::try_from(files.names.len()).map_err(|_| fail("too many included files".into()))?;
    files.names.push(path.display().to_string());
    files.paths.push(path.to_path_buf());
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line =
            u32::try_from(valid.iter().filter(|&&b| b == b'\n').count() + 1).unwrap_or(u32::MAX);
        SyntaxError {
            pos: Pos { file, line },
            message: "the text is not UTF-8".into(),
        }
    })?;
    let tokens = tokenize(&text, file)?;
    include_stack.push(key);
    let mut parser = Parser {
        tokens: &tokens,
        next: 0,
        loader,
        files,
        include_stack,
        dir: path.parent().map(Path::to_path_buf),
    };
    let body = parser.statements(None, 0);
    parser.include_stack.pop();
    body
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    loader: &'a mut dyn Loader,
    files: &'a mut Files,
    include_stack: &'a mut Vec<PathBuf>,
    dir: Option<PathBuf>,
}

impl Parser<'_> {
    /// Statements up to the `}` closing the block opened at `open` (or the
    /// end of the file when `open` is `None`).
    fn statements(&mut self, open: Option<Pos>, depth: usize) -> Result<Vec<Stmt>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            let Some(first) = self.tokens.get(self.next) else {
                return match open {
                    None => Ok(out),
                    Some(pos) => Err(SyntaxError {
                        pos,
                        message: "this `{` is never closed".into(),
                    }),
                };
            };
            if first.tok == Tok::Close {
                self.next += 1;
                return match open {
                    Some(_) => Ok(out),
                    None => Err(SyntaxError {
                        pos: first.pos,
                        message: "`}` without a matching `{`".into(),
                    }),
                };
            }
            if first.tok == Tok::Word("if".into()) {
                out.push(self.if_chain(depth)?);
                continue;
            }
            let (words, end) = self.words_until_end()?;
            let pos = words.first().map_or(end.pos, |w| w.pos);
            match end.tok {
                Tok::Semi if words.is_empty() => {}
                Tok::Semi => self.simple(words, pos, &mut out)?,
                _ => {
                    let body = self.block(end.pos, depth)?;
                    out.push(Stmt::Block {
                        head: words,
                        body,
                        pos,
                    });
                }
            }
        }
    }

    /// Collects words up to (and consuming) the next `;` or `{`.
    fn words_until_end(&mut self) -> Result<(Vec<Token>, Token), SyntaxError> {
        let start = self.next;
        while let Some(t) = self.tokens.get(self.next) {
            self.next += 1;
            match t.tok {
                Tok::Semi | Tok::Open => {
                    return Ok((self.tokens[start..self.next - 1].to_vec(), t.clone()));
                }
                Tok::Close => {
                    return Err(SyntaxError {
                        pos: t.pos,
                        message: "missing `;` before `}`".into(),
                    });
                }
                _ => {}
            }
        }
        let pos = self
            .tokens
            .get(start)
            .map_or(Pos { file: 0, line: 0 }, |t| t.pos);
        Err(SyntaxError {
            pos,
            message: "statement has no ending `;`".into(),
        })
    }

    fn block(&mut self, open: Pos, depth: usize) -> Result<Vec<Stmt>, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(SyntaxError {
                pos: open,
                message: format!("blocks nest deeper than {MAX_DEPTH}"),
            });
        }
        self.statements(Some(open), depth + 1)
    }

    /// A `;` statement; `include "file";` is replaced by the file's statements.
    fn simple(
        &mut self,
        words: Vec<Token>,
        pos: Pos,
        out: &mut Vec<Stmt>,
    ) -> Result<(), SyntaxError> {
        let [
            Token {
                tok: Tok::Word(w), ..
            },
            Token {
                tok: Tok::Str(file),
                ..
            },
        ] = words.as_slice()
        else {
            out.push(Stmt::Simple { words, pos });
            return Ok(());
        };
        if w != "include" {
            out.push(Stmt::Simple { words, pos });
            return Ok(());
        }
        let path = match &self.dir {
            Some(dir) => dir.join(file),
            None => PathBuf::from(file),
        };
        let body = parse_file(
            &path,
            self.loader,
            self.files,
            self.include_stack,
            Some(pos),
        )?;
        out.extend(body);
        Ok(())
    }

    fn if_chain(&mut self, depth: usize) -> Result<Stmt, SyntaxError> {
        let mut branches = Vec::new();
        // At `if`: condition words up to `{`.
        let mut pos = self.tokens[self.next].pos;
        self.next += 1;
        loop {
            let cond = self.condition(pos)?;
            let body = self.block(pos, depth)?;
            branches.push(Branch {
                cond: Some(cond),
                body,
                pos,
            });
            let word = |i: usize| match self.tokens.get(i) {
                Some(Token {
                    tok: Tok::Word(w),
                    pos,
                }) => Some((w.as_str(), *pos)),
                _ => None,
            };
            match (word(self.next), word(self.next + 1)) {
                (Some(("elsif", p)), _) => {
                    pos = p;
                    self.next += 1;
                }
                (Some(("else", p)), Some(("if", _))) => {
                    pos = p;
                    self.next += 2;
                }
                (Some(("else", p)), _) => {
                    self.next += 1;
                    match self.tokens.get(self.next) {
                        Some(Token { tok: Tok::Open, .. }) => self.next += 1,
                        _ => {
                            return Err(SyntaxError {
                                pos: p,
                                message: "`else` must be followed by `{` or `if`".into(),
                            });
                        }
                    }
                    let body = self.block(p, depth)?;
                    branches.push(Branch {
                        cond: None,
                        body,
                        pos: p,
                    });
                    return Ok(Stmt::If { branches });
                }
                _ => return Ok(Stmt::If { branches }),
            }
        }
    }

    /// Condition tokens up to (and consuming) `{`.
    fn condition(&mut self, pos: Pos) -> Result<Vec<Token>, SyntaxError> {
        let (cond, end) = self.words_until_end()?;
        if end.tok != Tok::Open {
            return Err(SyntaxError {
                pos: end.pos,
                message: "`if` condition must be followed by `{`".into(),
            });
        }
        if cond.is_empty() {
            return Err(SyntaxError {
                pos,
                message: "`if` without a condition".into(),
            });
        }
        Ok(cond)
    }
}
