//! Glob patterns as telegraf reads them in its metric filters (`namepass`, `fieldinclude`,
//! `tagpass` values...): `*` any run of characters other than the separators, `**` any run at
//! all, `?` one character other than a separator, `[abc]` `[a-z]` `[!abc]` one character of (or
//! not of) a class, `{a,b}` one of the alternatives, `\` the next character literally. With no
//! separators (the default) `*` matches anything. A pattern without any of these characters is
//! compared as a plain string.

/// A compiled pattern: `{a,b}` alternatives expanded, so that each alternative is matched in
/// time proportional to its length times the text's (no exponential backtracking on `*a*a*a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    alternatives: Vec<Vec<Token>>,
    separators: Vec<char>,
}

/// Expanded alternatives allowed per pattern (`{a,b}{c,d}` is 4): patterns come from the
/// config, and this bounds what one line of it can cost.
const MAX_ALTERNATIVES: usize = 256;

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
    #[error("{0:?} has more than 256 {{...}} alternatives")]
    TooManyAlternatives(String),
}

impl Glob {
    pub fn new(pattern: &str, separators: &str) -> Result<Glob, GlobError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let tokens = parse(&chars, &mut pos, false, pattern)?;
        let alternatives = expand(&tokens)
            .filter(|a| a.len() <= MAX_ALTERNATIVES)
            .ok_or_else(|| GlobError::TooManyAlternatives(pattern.to_owned()))?;
        Ok(Glob {
            alternatives,
            separators: separators.chars().collect(),
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.alternatives
            .iter()
            .any(|a| match_tokens(a, &text, &self.separators))
    }
}

/// Every pattern without `{}` that `tokens` stands for; `None` past [`MAX_ALTERNATIVES`].
fn expand(tokens: &[Token]) -> Option<Vec<Vec<Token>>> {
    let mut out: Vec<Vec<Token>> = vec![Vec::new()];
    for t in tokens {
        match t {
            Token::Alt(alts) => {
                let mut options = Vec::new();
                for a in alts {
                    options.extend(expand(a)?);
                }
                let mut next = Vec::new();
                for prefix in &out {
                    for o in &options {
                        if next.len() == MAX_ALTERNATIVES {
                            return None;
                        }
                        let mut p = prefix.clone();
                        p.extend(o.iter().cloned());
                        next.push(p);
                    }
                }
                out = next;
            }
            other => out.iter_mut().for_each(|p| p.push(other.clone())),
        }
    }
    Some(out)
}

/// Whether `tokens` (no `Alt`) match all of `text`: `ok[j]` holds whether the tokens from the
/// current one on match `text[j..]`, computed from the last token back.
fn match_tokens(tokens: &[Token], text: &[char], seps: &[char]) -> bool {
    let n = text.len();
    let mut ok = vec![false; n + 1];
    ok[n] = true;
    for t in tokens.iter().rev() {
        let mut next = vec![false; n + 1];
        match t {
            Token::Star(cross) => {
                next[n] = ok[n];
                for j in (0..n).rev() {
                    next[j] = ok[j] || ((*cross || !seps.contains(&text[j])) && next[j + 1]);
                }
            }
            single => {
                for j in 0..n {
                    let c = text[j];
                    let hit = match single {
                        Token::Char(x) => *x == c,
                        Token::Any => !seps.contains(&c),
                        Token::Class { negated, items } => {
                            items.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
                        }
                        Token::Star(_) | Token::Alt(_) => false,
                    };
                    next[j] = hit && ok[j + 1];
                }
            }
        }
        ok = next;
    }
    ok[0]
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
        assert!(matches!(
            Glob::new(&"{a,b}".repeat(9), ""),
            Err(GlobError::TooManyAlternatives(_))
        ));
    }

    #[test]
    fn many_stars_cost_linear_time() {
        let long = "a".repeat(10_000) + "b";
        let t = std::time::Instant::now();
        assert!(!m("*a*a*a*a*a*a*c", &long));
        assert!(m("*a*a*a*a*a*a*b", &long));
        // Quadratic backtracking would take seconds; this is a few ms even in a debug build.
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
