//! Glob patterns as telegraf reads them in its metric filters (`namepass`, `fieldinclude`,
//! `tagpass` values...): `*` any run of characters other than the separators, `**` any run at
//! all, `?` one character other than a separator, `[abc]` `[a-z]` `[!abc]` one character of (or
//! not of) a class, `{a,b}` one of the alternatives, `\` the next character literally. With no
//! separators (the default) `*` matches anything. A pattern without any of these characters is
//! compared as a plain string.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    separators: Vec<char>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*` (false) or `**` (true: crosses separators).
    Star(bool),
    Any,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    Alt(Vec<Vec<Token>>),
}

/// Why a pattern cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("unclosed [ in {0:?}")]
    UnclosedClass(String),
    #[error("unclosed {{ in {0:?}")]
    UnclosedAlt(String),
    #[error("{0:?} ends with a lone \\")]
    TrailingEscape(String),
}

impl Glob {
    pub fn new(pattern: &str, separators: &str) -> Result<Glob, GlobError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let tokens = parse(&chars, &mut pos, false, pattern)?;
        Ok(Glob {
            tokens,
            separators: separators.chars().collect(),
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        match_at(&self.tokens, &text, &self.separators)
    }
}

fn parse(c: &[char], pos: &mut usize, in_alt: bool, src: &str) -> Result<Vec<Token>, GlobError> {
    let mut out = Vec::new();
    while *pos < c.len() {
        let ch = c[*pos];
        if in_alt && (ch == ',' || ch == '}') {
            return Ok(out);
        }
        *pos += 1;
        match ch {
            '\\' => {
                let Some(&next) = c.get(*pos) else {
                    return Err(GlobError::TrailingEscape(src.to_owned()));
                };
                *pos += 1;
                out.push(Token::Char(next));
            }
            '*' => {
                let double = c.get(*pos) == Some(&'*');
                if double {
                    *pos += 1;
                }
                out.push(Token::Star(double));
            }
            '?' => out.push(Token::Any),
            '[' => out.push(parse_class(c, pos, src)?),
            '{' => {
                let mut alts = Vec::new();
                loop {
                    alts.push(parse(c, pos, true, src)?);
                    match c.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err(GlobError::UnclosedAlt(src.to_owned())),
                    }
                }
                out.push(Token::Alt(alts));
            }
            other => out.push(Token::Char(other)),
        }
    }
    if in_alt {
        return Err(GlobError::UnclosedAlt(src.to_owned()));
    }
    Ok(out)
}

fn parse_class(c: &[char], pos: &mut usize, src: &str) -> Result<Token, GlobError> {
    let negated = c.get(*pos) == Some(&'!');
    if negated {
        *pos += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let Some(&ch) = c.get(*pos) else {
            return Err(GlobError::UnclosedClass(src.to_owned()));
        };
        *pos += 1;
        if ch == ']' && !first {
            return Ok(Token::Class { negated, items });
        }
        first = false;
        let lo = if ch == '\\' {
            let Some(&e) = c.get(*pos) else {
                return Err(GlobError::UnclosedClass(src.to_owned()));
            };
            *pos += 1;
            e
        } else {
            ch
        };
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|&h| h != ']') {
            let hi = c[*pos + 1];
            *pos += 2;
            items.push((lo, hi));
        } else {
            items.push((lo, lo));
        }
    }
}

/// Backtracking match of `tokens` against all of `text`. Patterns are short (names, keys), so
/// the worst case of nested stars does not matter in practice; alternatives are expanded into
/// the rest of the pattern.
fn match_at(tokens: &[Token], text: &[char], seps: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Char(c) => text.first() == Some(c) && match_at(rest, &text[1..], seps),
        Token::Any => text
            .first()
            .is_some_and(|c| !seps.contains(c) && match_at(rest, &text[1..], seps)),
        Token::Class { negated, items } => text.first().is_some_and(|c| {
            let inside = items.iter().any(|(lo, hi)| lo <= c && c <= hi);
            inside != *negated && match_at(rest, &text[1..], seps)
        }),
        Token::Star(cross) => {
            for i in 0..=text.len() {
                if match_at(rest, &text[i..], seps) {
                    return true;
                }
                if i < text.len() && !cross && seps.contains(&text[i]) {
                    return false;
                }
            }
            false
        }
        Token::Alt(alts) => alts.iter().any(|alt| {
            let mut joined = alt.clone();
            joined.extend_from_slice(rest);
            match_at(&joined, text, seps)
        }),
    }
}

/// A list of patterns: matches when any one does (telegraf's filter lists).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobSet(Vec<Glob>);

impl GlobSet {
    pub fn new<S: AsRef<str>>(patterns: &[S], separators: &str) -> Result<GlobSet, GlobError> {
        patterns
            .iter()
            .map(|p| Glob::new(p.as_ref(), separators))
            .collect::<Result<_, _>>()
            .map(GlobSet)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, text: &str) -> bool {
        self.0.iter().any(|g| g.matches(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p, "").unwrap().matches(t)
    }

    #[test]
    fn telegraf_glob_forms() {
        assert!(m("cpu", "cpu") && !m("cpu", "cpu0"));
        assert!(m("cpu*", "cpu") && m("cpu*", "cpu-total") && !m("cpu*", "mem"));
        assert!(m("*_percent", "used_percent") && !m("*_percent", "percent_used"));
        assert!(m("usage_?", "usage_a") && !m("usage_?", "usage_ab"));
        assert!(m("sd[a-c]", "sdb") && !m("sd[a-c]", "sdd") && m("sd[!a-c]", "sdd"));
        assert!(m("{mem,swap}_*", "swap_in") && !m("{mem,swap}_*", "cpu_x"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("*", "") && m("**", "a.b"));
    }

    #[test]
    fn separators_stop_single_stars() {
        let g = Glob::new("net.*", ".").unwrap();
        assert!(g.matches("net.eth0") && !g.matches("net.eth0.rx"));
        let g = Glob::new("net.**", ".").unwrap();
        assert!(g.matches("net.eth0.rx"));
        assert!(!Glob::new("a?c", ".").unwrap().matches("a.c"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(matches!(
            Glob::new("[ab", ""),
            Err(GlobError::UnclosedClass(_))
        ));
        assert!(matches!(
            Glob::new("{a,b", ""),
            Err(GlobError::UnclosedAlt(_))
        ));
        assert!(matches!(
            Glob::new("a\\", ""),
            Err(GlobError::TrailingEscape(_))
        ));
        assert!(m("[]]", "]"));
    }
}
