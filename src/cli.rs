//! Command line: `metrics-agent [--config PATH] [--once | --check-config | --print-config |
//! --version | --help]`. Hand-parsed: six flags do not justify an argument-parsing crate.

use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
metrics-agent: network probes and host collectors writing InfluxDB line protocol to stdout,
made to run under telegraf's [[inputs.execd]].

Usage: metrics-agent [--config PATH] [OPTION]

Options:
  -c, --config PATH   config file (default: the embedded default, see --print-config)
      --once          gather every input once, print the lines and exit (like telegraf --test)
      --check-config  validate the config and exit (0 = valid; errors name file:line:column)
      --print-config  print the embedded default config (fully commented) and exit
  -V, --version       print the version and exit
  -h, --help          print this help and exit

Signals: SIGHUP reloads the config (an invalid one is reported and the running one kept);
SIGTERM, SIGINT and EOF on stdin (how telegraf stops a child) flush every queued line and exit 0.
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run,
    Once,
    CheckConfig,
    PrintConfig,
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub config: Option<PathBuf>,
    pub action: Action,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("{0} and {1} cannot be combined")]
    Conflict(String, String),
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, CliError> {
    let mut config = None;
    let mut action: Option<(Action, String)> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        let set = |a: Action, action: &mut Option<(Action, String)>| match action {
            Some((_, prev)) => Err(CliError::Conflict(prev.clone(), text.clone())),
            None => {
                *action = Some((a, text.clone()));
                Ok(())
            }
        };
        match text.as_str() {
            "-c" | "--config" => {
                config = Some(PathBuf::from(
                    args.next().ok_or(CliError::MissingValue(text.clone()))?,
                ));
            }
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            "--once" | "--test" => set(Action::Once, &mut action)?,
            "--check-config" => set(Action::CheckConfig, &mut action)?,
            "--print-config" => set(Action::PrintConfig, &mut action)?,
            "-V" | "--version" => set(Action::Version, &mut action)?,
            "-h" | "--help" => set(Action::Help, &mut action)?,
            _ => return Err(CliError::Unknown(text)),
        }
    }
    Ok(Cli {
        config,
        action: action.map_or(Action::Run, |(a, _)| a),
    })
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
        assert_eq!(p(&["-c"]), Err(CliError::MissingValue("-c".into())));
        assert_eq!(p(&["--bogus"]), Err(CliError::Unknown("--bogus".into())));
        assert!(matches!(
            p(&["--once", "--version"]),
            Err(CliError::Conflict(..))
        ));
    }
}
