//! Flattening `filename` statements and `if` chains into first-match boot
//! rules.
//!
//! dhcpd executes a scope's statements in order and the last `filename`
//! assigned wins; bootwave takes the first rule that matches. So the rule
//! groups of a statement list are emitted last statement first. Within one
//! `if` chain the branches keep their order: a later branch is reached only
//! when no rule of an earlier one matched, which is dhcpd's `else` as long
//! as each earlier branch either always assigns a file name ("total") or
//! cannot match the same clients. When neither holds, the result is
//! approximate and a warning says so.

use super::cond::{HTTP_CLIENT, Matchers, OptionNames, condition};
use super::lexer::Tok;
use super::parser::{Branch, Stmt};
use super::{Note, Pos};

/// One boot rule before it is placed in a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleDraft {
    /// Conditions.
    pub(crate) matchers: Matchers,
    /// Boot file name.
    pub(crate) filename: String,
    /// The `filename` statement.
    pub(crate) pos: Pos,
}

/// The rules of a statement list, in first-match order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flat {
    /// Rules, first match first.
    pub(crate) rules: Vec<RuleDraft>,
    /// Whether every client gets a file name from these rules.
    pub(crate) total: bool,
}

/// Flattens the `filename` and `if` statements of `stmts`. Inside an `if`
/// body (`nested`), any other statement is reported as not converted; at
/// scope level the caller handles them.
pub(crate) fn flatten(
    stmts: &[Stmt],
    names: &OptionNames,
    nested: bool,
    notes: &mut Vec<Note>,
) -> Flat {
    let mut groups: Vec<(Flat, Pos)> = Vec::new();
    for stmt in stmts {
        match stmt {
            Stmt::Simple { words, pos } if is_word(words.first().map(|t| &t.tok), "filename") => {
                match words
                    .get(1..)
                    .map(|rest| rest.iter().map(|t| &t.tok).collect::<Vec<_>>())
                    .as_deref()
                {
                    Some([Tok::Str(f)])
                        if f.is_empty() || f.len() > 255 || f.chars().any(char::is_control) =>
                    {
                        notes.push(Note::warn(*pos, "not converted: the file name is empty, longer than 255 bytes or holds control characters"));
                    }
                    Some([Tok::Str(f)]) => groups.push((
                        Flat {
                            rules: vec![RuleDraft {
                                matchers: Matchers::default(),
                                filename: f.clone(),
                                pos: *pos,
                            }],
                            total: true,
                        },
                        *pos,
                    )),
                    _ => notes.push(Note::warn(
                        *pos,
                        "not converted: `filename` takes one quoted string",
                    )),
                }
            }
            Stmt::If { branches } => {
                let pos = branches.first().map_or(Pos { file: 0, line: 0 }, |b| b.pos);
                groups.push((chain(branches, names, notes), pos));
            }
            Stmt::Simple { pos, words } if nested && sets_http_client_class(words, names) => {
                notes.push(Note::info(
                    *pos,
                    format!("no effect needed: bootwave answers HTTP boot clients with option 60 \"{HTTP_CLIENT}\" itself"),
                ));
            }
            Stmt::Simple { pos, words } if nested => notes.push(Note::warn(
                *pos,
                format!(
                    "not converted: only `filename` is supported inside `if` (`{}` ignored)",
                    words.first().map(|t| t.tok.text()).unwrap_or_default()
                ),
            )),
            Stmt::Block { pos, .. } if nested => {
                notes.push(Note::warn(
                    *pos,
                    "not converted: a block inside `if` (ignored)",
                ));
            }
            _ => {}
        }
    }
    let mut out = Flat::default();
    let mut total_at: Option<Pos> = None;
    for (group, pos) in groups.into_iter().rev() {
        if let Some(at) = total_at {
            notes.push(Note::warn(
                pos,
                format!(
                    "has no effect: the file name set at line {} always overrides it",
                    at.line
                ),
            ));
            continue;
        }
        if group.total {
            total_at = Some(pos);
        }
        out.rules.extend(group.rules);
    }
    out.total = total_at.is_some();
    out
}

/// `option vendor-class-identifier "HTTPClient"` (or another name of
/// option 60), which HTTP boot firmware needs in its replies.
pub(crate) fn sets_http_client_class(words: &[super::lexer::Token], names: &OptionNames) -> bool {
    matches!(
        words.iter().map(|t| &t.tok).collect::<Vec<_>>().as_slice(),
        [Tok::Word(o), Tok::Word(name), Tok::Str(value)]
            if o == "option" && names.code(name) == Some(60) && value == HTTP_CLIENT
    )
}

fn is_word(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w == word)
}

/// One branch after conversion: its alternatives (`None`: the condition
/// could not be expressed and the branch is dropped) and whether it always
/// assigns.
struct Arm {
    any_of: Option<Vec<Matchers>>,
    total: bool,
}

fn chain(branches: &[Branch], names: &OptionNames, notes: &mut Vec<Note>) -> Flat {
    let mut out = Flat::default();
    let mut arms: Vec<(Arm, Pos)> = Vec::new();
    for branch in branches {
        let any_of = match &branch.cond {
            None => Some(vec![Matchers::default()]),
            Some(tokens) => match condition(tokens, names) {
                Ok(cond) => {
                    notes.extend(cond.notes.into_iter().map(|n| Note::info(branch.pos, n)));
                    Some(cond.any_of)
                }
                Err(text) => {
                    notes.push(Note::warn(
                        branch.pos,
                        format!("not converted: condition `{text}` cannot be expressed; the file names of this branch are dropped"),
                    ));
                    None
                }
            },
        };
        let inner = flatten(&branch.body, names, true, notes);
        if let Some(alternatives) = &any_of {
            for rule in &inner.rules {
                for alt in alternatives {
                    if let Some(matchers) = alt.and(&rule.matchers) {
                        out.rules.push(RuleDraft {
                            matchers,
                            ..rule.clone()
                        });
                    }
                }
            }
        }
        let arm = Arm {
            total: any_of.is_some() && inner.total,
            any_of,
        };
        let leaks = arms
            .iter()
            .find(|(earlier, _)| !earlier.total && overlaps(earlier, &arm));
        if let Some((_, at)) = leaks {
            notes.push(Note::warn(
                branch.pos,
                format!(
                    "approximate: clients that match the condition at line {} without getting a file name there also try this branch (dhcpd would not)",
                    at.line
                ),
            ));
        }
        arms.push((arm, branch.pos));
    }
    out.total =
        branches.last().is_some_and(|b| b.cond.is_none()) && arms.iter().all(|(a, _)| a.total);
    out
}

/// Whether some client could match both arms and reach `b`'s rules (an
/// unknown condition overlaps everything; a dropped arm has no rules).
fn overlaps(a: &Arm, b: &Arm) -> bool {
    match (&a.any_of, &b.any_of) {
        (Some(x), Some(y)) => x.iter().any(|p| y.iter().any(|q| !p.disjoint(q))),
        (None, Some(_)) => true,
        (_, None) => false,
    }
}
