//! `[agent.coordination]`: probe groups coordinated through a lease table in PostgreSQL (see
//! the `coordination` module and the README section "Probe groups"). Resolved at load so that a
//! connection string that does not parse, an unreadable password file or a lease that could
//! expire between two renewals is a file:line:column error, not a surprise at run time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::options::{ConfigDuration, Secret, SpanError};

/// `[agent.coordination]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CoordinationRaw {
    /// libpq-style connection: key/values ("host=127.0.0.1 port=5432 user=agent dbname=agents")
    /// or a `postgresql://` URL. Plain TCP or a Unix socket directory; no TLS.
    postgres: Spanned<String>,
    /// File holding the password (first line, surrounding whitespace removed); read at load and
    /// on reload, never logged. Prefer this to a password in `postgres`.
    password_file: Option<Spanned<String>>,
    /// Environment variable holding the password; never logged.
    password_env: Option<Spanned<String>>,
    /// This agent's name in the lease table (default: the host name). Must differ between the
    /// agents of a group: two agents with one id are one holder.
    agent_id: Option<Spanned<String>>,
    /// How long a lease lives on the server after its last renewal (default 15s). A dead leader's
    /// group moves to another agent within ttl + renew_interval.
    ttl: Option<Spanned<ConfigDuration>>,
    /// How often the leader renews and standbys try to acquire (default 5s).
    renew_interval: Option<Spanned<ConfigDuration>>,
    /// Bound on every database call, connecting included (default 3s). The leader stops its
    /// group's probes this long before the lease could expire on the server, so
    /// `renew_interval + 2 x db_timeout < ttl` is required.
    db_timeout: Option<Spanned<ConfigDuration>>,
    /// What a leader does when it cannot renew: "stop" (default: its probes stop at its local
    /// deadline, so no two agents probe at once) or "keep" (probes go on: no gap, but duplicates
    /// are possible while the database is unreachable).
    on_db_loss: Option<OnDbLoss>,
    /// Group name = "leader" | "shard" | "all". `leader`: one live agent runs the group's
    /// instances; `shard`: each instance of the group (a target: one `net_response` address,
    /// one `ping`/`http_response` table) runs on one live agent, picked by rendezvous hashing
    /// of its `alias` (or, without one, its place `inputs.NAME[i]`: give the agents the same
    /// file) over the group's members; `all`: every agent runs them, tagged with the group.
    #[serde(default)]
    groups: BTreeMap<String, Spanned<GroupMode>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDbLoss {
    Stop,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupMode {
    Leader,
    Shard,
    All,
}

impl GroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMode::Leader => "leader",
            GroupMode::Shard => "shard",
            GroupMode::All => "all",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationConfig {
    /// Parsed connection settings (their `Debug` redacts a password written in the string).
    pub postgres: tokio_postgres::Config,
    pub password: Option<Secret>,
    pub agent_id: String,
    pub ttl: Duration,
    pub renew_interval: Duration,
    pub db_timeout: Duration,
    pub on_db_loss: OnDbLoss,
    pub groups: BTreeMap<String, GroupMode>,
}

impl CoordinationConfig {
    /// Same database, same identity, same timing: a reload with these unchanged keeps every
    /// lease it holds.
    pub fn same_connection(&self, other: &CoordinationConfig) -> bool {
        CoordinationConfig {
            groups: BTreeMap::new(),
            ..self.clone()
        } == CoordinationConfig {
            groups: BTreeMap::new(),
            ..other.clone()
        }
    }
}

/// Defaults (the issue's): a dead leader is replaced within about 20 s.
const DEFAULT_TTL: Duration = Duration::from_secs(15);
const DEFAULT_RENEW: Duration = Duration::from_secs(5);
const DEFAULT_DB_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn resolve(raw: CoordinationRaw) -> Result<CoordinationConfig, SpanError> {
    let postgres: tokio_postgres::Config = raw.postgres.get_ref().parse().map_err(|e| {
        // The message of a parse error names the problem, never the password.
        SpanError::new(
            raw.postgres.span(),
            "coordination.postgres",
            format!("not a PostgreSQL connection string or URL: {e}"),
        )
    })?;
    if postgres.get_hosts().is_empty() {
        return Err(SpanError::new(
            raw.postgres.span(),
            "coordination.postgres",
            "names no host",
        ));
    }
    if raw.password_file.is_some() && raw.password_env.is_some() {
        let span = raw.password_env.as_ref().map(Spanned::span).unwrap_or(0..0);
        return Err(SpanError::new(
            span,
            "coordination.password_env",
            "give password_file or password_env, not both",
        ));
    }
    let password = if let Some(f) = &raw.password_file {
        let text = std::fs::read_to_string(f.get_ref()).map_err(|e| {
            SpanError::new(
                f.span(),
                "coordination.password_file",
                format!("cannot read {}: {e}", f.get_ref()),
            )
        })?;
        Some(Secret::new(text.lines().next().unwrap_or("").trim()))
    } else if let Some(v) = &raw.password_env {
        let value = std::env::var(v.get_ref()).map_err(|_| {
            SpanError::new(
                v.span(),
                "coordination.password_env",
                format!("environment variable {} is not set", v.get_ref()),
            )
        })?;
        Some(Secret::new(value))
    } else {
        None
    };
    let agent_id = match raw.agent_id {
        Some(id) if id.get_ref().trim().is_empty() => {
            return Err(SpanError::new(
                id.span(),
                "coordination.agent_id",
                "must not be empty",
            ));
        }
        Some(id) => id.into_inner(),
        None => host_name().ok_or_else(|| {
            SpanError::new(
                raw.postgres.span(),
                "coordination.agent_id",
                "the host name is unknown: set agent_id",
            )
        })?,
    };
    let positive = |d: Option<Spanned<ConfigDuration>>, key: &str, default: Duration| match d {
        Some(d) if d.get_ref().get().is_zero() => Err(SpanError::new(
            d.span(),
            format!("coordination.{key}"),
            "must be > 0",
        )),
        Some(d) => Ok((d.get_ref().get(), Some(d.span()))),
        None => Ok((default, None)),
    };
    let (ttl, ttl_span) = positive(raw.ttl, "ttl", DEFAULT_TTL)?;
    let (renew_interval, _) = positive(raw.renew_interval, "renew_interval", DEFAULT_RENEW)?;
    let (db_timeout, _) = positive(raw.db_timeout, "db_timeout", DEFAULT_DB_TIMEOUT)?;
    if renew_interval + db_timeout * 2 >= ttl {
        return Err(SpanError::new(
            ttl_span.unwrap_or_else(|| raw.postgres.span()),
            "coordination.ttl",
            format!(
                "renew_interval + 2 x db_timeout ({:?}) must be < ttl ({ttl:?}): otherwise the \
                 lease can expire between two renewals of a healthy leader",
                renew_interval + db_timeout * 2
            ),
        ));
    }
    let groups = raw
        .groups
        .into_iter()
        .map(|(name, mode)| (name, mode.into_inner()))
        .collect();
    Ok(CoordinationConfig {
        postgres,
        password,
        agent_id,
        ttl,
        renew_interval,
        db_timeout,
        on_db_loss: raw.on_db_loss.unwrap_or(OnDbLoss::Stop),
        groups,
    })
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GroupMode, OnDbLoss};

    const BASE: &str = "[agent.coordination]\npostgres = \"host=127.0.0.1 port=5432 user=agent password=hunter2 dbname=agents\"\n";

    fn parse(coord: &str, inputs: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{coord}\n{inputs}"), "c.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_shape_resolves_and_grouped_lines_are_tagged() {
        let c = parse(
            "agent_id = \"web-1\"\nttl = \"15s\"\nrenew_interval = \"5s\"\ndb_timeout = \"3s\"\n\
             on_db_loss = \"keep\"\n[agent.coordination.groups]\nsite-a = \"leader\"\nall-b = \"all\"\n",
            "[[inputs.cpu]]\ngroup = \"site-a\"\n[[inputs.mem]]\n",
        )
        .unwrap();
        let co = c.agent.coordination.as_ref().unwrap();
        assert_eq!(co.agent_id, "web-1");
        assert_eq!(co.on_db_loss, OnDbLoss::Keep);
        assert_eq!(co.groups["site-a"], GroupMode::Leader);
        assert_eq!(
            c.inputs[0].group,
            Some(("site-a".to_owned(), GroupMode::Leader))
        );
        assert_eq!(
            c.inputs[0].decoration.tags[0],
            ("probe_group".to_owned(), "site-a".to_owned())
        );
        assert!(c.inputs[1].group.is_none());
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "password in Debug output");
    }

    #[test]
    fn defaults_and_a_url() {
        let c = Config::parse(
            "[agent.coordination]\npostgres = \"postgresql://agent@127.0.0.1:5/agents\"\n[[inputs.cpu]]\n",
            "c.toml",
        )
        .unwrap();
        let co = c.agent.coordination.unwrap();
        assert_eq!(co.ttl, std::time::Duration::from_secs(15));
        assert_eq!(co.on_db_loss, OnDbLoss::Stop);
        assert!(!co.agent_id.is_empty(), "host name by default");
    }

    #[test]
    fn a_lease_that_could_expire_between_renewals_is_refused_where_written() {
        let e = parse(
            "ttl = \"5s\"\nrenew_interval = \"3s\"\ndb_timeout = \"1s\"\n",
            "[[inputs.cpu]]\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("c.toml:3:7: agent.coordination.ttl: renew_interval + 2 x db_timeout"),
            "{e}"
        );
    }

    #[test]
    fn an_undeclared_group_is_refused_at_the_input() {
        let e = parse(
            "[agent.coordination.groups]\na = \"leader\"\n",
            "[[inputs.cpu]]\ngroup = \"b\"\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("c.toml:7:9: inputs.cpu[0].group: no group \"b\""),
            "{e}"
        );
        let e = Config::parse("[[inputs.cpu]]\ngroup = \"b\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("no group"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_place() {
        let e = parse(
            "[agent.coordination.groups]\na = \"some\"\n",
            "[[inputs.cpu]]\n",
        )
        .unwrap_err();
        assert!(e.contains("c.toml:4:5"), "{e}");
        let e = parse(
            "password_env = \"NO_SUCH_VAR_FOR_TEST\"\n",
            "[[inputs.cpu]]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("c.toml:3:16: agent.coordination.password_env"),
            "{e}"
        );
        let e = parse("password_file = \"/nonexistent/pw\"\n", "[[inputs.cpu]]\n").unwrap_err();
        assert!(
            e.contains("c.toml:3:17: agent.coordination.password_file"),
            "{e}"
        );
        let e = Config::parse(
            "[agent.coordination]\npostgres = \"host=x port=notaport\"\n[[inputs.cpu]]\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("c.toml:2:12: agent.coordination.postgres"),
            "{e}"
        );
    }
}
