//! Command line: `metrics-agent [--config PATH] [--once | --check-config | --print-config |
//! --version | --help]`. One list of flags, [`FLAGS`], drives the parsing and the help text
//! (ripgrep's way); `lexopt` only splits the arguments (`-c PATH`, `--config=PATH`, `--`).

use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Run,
    Once,
    CheckConfig,
    PrintConfig,
    Version,
    Help,
}

/// What a flag does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Takes the config file path.
    Config,
    /// Picks the action (at most one per command line).
    Action(Action),
}

/// One command-line flag: its names, its value, its line in `--help`.
#[derive(Debug)]
struct Flag {
    long: &'static str,
    short: Option<char>,
    /// Other long names, accepted but not shown in `--help`.
    aliases: &'static [&'static str],
    /// The value's name in `--help`, for a flag that takes one.
    value: Option<&'static str>,
    help: &'static str,
    kind: Kind,
}

const FLAGS: &[Flag] = &[
    Flag {
        long: "config",
        short: Some('c'),
        aliases: &[],
        value: Some("PATH"),
        help: "config file (default: the embedded default, see --print-config)",
        kind: Kind::Config,
    },
    Flag {
        long: "once",
        short: None,
        aliases: &["test"],
        value: None,
        help: "gather every input once, print the lines and exit (like telegraf --test)",
        kind: Kind::Action(Action::Once),
    },
    Flag {
        long: "check-config",
        short: None,
        aliases: &[],
        value: None,
        help: "validate the config and exit (0 = valid; errors name file:line:column)",
        kind: Kind::Action(Action::CheckConfig),
    },
    Flag {
        long: "print-config",
        short: None,
        aliases: &[],
        value: None,
        help: "print the embedded default config (fully commented) and exit",
        kind: Kind::Action(Action::PrintConfig),
    },
    Flag {
        long: "version",
        short: Some('V'),
        aliases: &[],
        value: None,
        help: "print the version and exit",
        kind: Kind::Action(Action::Version),
    },
    Flag {
        long: "help",
        short: Some('h'),
        aliases: &[],
        value: None,
        help: "print this help and exit",
        kind: Kind::Action(Action::Help),
    },
];

const ABOUT: &str = "\
metrics-agent: network probes and host collectors writing InfluxDB line protocol to stdout,
made to run under telegraf's [[inputs.execd]].

Usage: metrics-agent [--config PATH] [OPTION]
";

const SIGNALS: &str = "\
Signals: SIGHUP reloads the config (an invalid one is reported and the running one kept);
SIGTERM, SIGINT and EOF on stdin (how telegraf stops a child) flush every queued line and exit 0.
";

/// The `--help` text, its option lines built from [`FLAGS`].
pub(crate) fn usage() -> String {
    let mut out = format!("{ABOUT}\nOptions:\n");
    for f in FLAGS {
        let short = f.short.map_or("    ".to_owned(), |c| format!("-{c}, "));
        let long = match f.value {
            Some(v) => format!("--{} {v}", f.long),
            None => format!("--{}", f.long),
        };
        out.push_str(&format!("  {short}{long:<16}{}\n", f.help));
    }
    out.push('\n');
    out.push_str(SIGNALS);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cli {
    pub config: Option<PathBuf>,
    pub action: Action,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CliError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("{0} and {1} cannot be combined")]
    Conflict(String, String),
}

pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, CliError> {
    use lexopt::Arg;
    let mut config = None;
    let mut action: Option<(Action, String)> = None;
    let mut p = lexopt::Parser::from_args(args);
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            // A value given to a flag that takes none (`--once=x`), or a non-UTF-8 option.
            Err(e) => return Err(CliError::Unknown(lexopt_arg(&e))),
        };
        let (flag, text) = match arg {
            Arg::Short(c) => (FLAGS.iter().find(|f| f.short == Some(c)), format!("-{c}")),
            Arg::Long(l) => (
                FLAGS.iter().find(|f| f.long == l || f.aliases.contains(&l)),
                format!("--{l}"),
            ),
            Arg::Value(v) => return Err(CliError::Unknown(v.to_string_lossy().into_owned())),
        };
        let Some(flag) = flag else {
            return Err(CliError::Unknown(text));
        };
        match flag.kind {
            Kind::Config => {
                let v = p.value().map_err(|_| CliError::MissingValue(text))?;
                config = Some(PathBuf::from(v));
            }
            Kind::Action(a) => {
                if let Some((_, prev)) = &action {
                    return Err(CliError::Conflict(prev.clone(), text));
                }
                action = Some((a, text));
            }
        }
    }
    Ok(Cli {
        config,
        action: action.map_or(Action::Run, |(a, _)| a),
    })
}

/// The argument a lexopt error is about, as the user wrote it.
fn lexopt_arg(e: &lexopt::Error) -> String {
    match e {
        lexopt::Error::UnexpectedValue { option, value } => {
            format!("{option}={}", value.to_string_lossy())
        }
        lexopt::Error::NonUnicodeValue(v) => v.to_string_lossy().into_owned(),
        lexopt::Error::UnexpectedOption(o) => o.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, CliError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn forms() {
        assert_eq!(p(&[]).unwrap().action, Action::Run);
        let c = p(&["--config", "/etc/x.toml", "--once"]).unwrap();
        assert_eq!(
            (c.config.unwrap(), c.action),
            (PathBuf::from("/etc/x.toml"), Action::Once)
        );
        assert_eq!(
            p(&["--config=a.toml"]).unwrap().config,
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(p(&["--test"]).unwrap().action, Action::Once, "alias");
        assert_eq!(p(&["-V"]).unwrap().action, Action::Version);
        assert_eq!(p(&["-c"]), Err(CliError::MissingValue("-c".into())));
        assert_eq!(p(&["--bogus"]), Err(CliError::Unknown("--bogus".into())));
        assert_eq!(p(&["stray"]), Err(CliError::Unknown("stray".into())));
        assert_eq!(p(&["--once=x"]), Err(CliError::Unknown("--once=x".into())));
        assert_eq!(
            p(&["--once", "--version"]),
            Err(CliError::Conflict("--once".into(), "--version".into()))
        );
    }

    /// Every flag is in the help, on a line of its own with its help text; aliases are not.
    #[test]
    fn help_is_built_from_the_flags() {
        let u = usage();
        for f in FLAGS {
            let line = u
                .lines()
                .find(|l| l.starts_with("  ") && l.contains(&format!("--{} ", f.long)))
                .unwrap_or_else(|| panic!("--{} missing:\n{u}", f.long));
            assert!(line.ends_with(f.help), "{line}");
            if let Some(c) = f.short {
                assert!(line.starts_with(&format!("  -{c}, --")), "{line}");
            }
            for a in f.aliases {
                let listed = u.lines().any(|l| {
                    l.starts_with("  ")
                        && l.get(..22).is_some_and(|c| c.contains(&format!("--{a}")))
                });
                assert!(!listed, "alias --{a} listed as a flag");
            }
        }
        // The help columns line up.
        let cols: Vec<usize> = FLAGS
            .iter()
            .map(|f| u.lines().find(|l| l.ends_with(f.help)).unwrap().len() - f.help.len())
            .collect();
        assert!(cols.iter().all(|c| *c == cols[0]), "{cols:?}");
    }
}
