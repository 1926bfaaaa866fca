//! The lease table and the one connection that renews it. Every call is bounded by
//! `db_timeout`; a call that fails or times out drops the connection (its state is unknown) and
//! the next round connects again.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, Statement};

use crate::config::CoordinationConfig;

/// The table the agents share. Created by the first agent that finds it missing (the README
/// gives the same SQL for operators who prefer to create it themselves). `token` rises on every
/// change of holder: a fencing value for whatever consumes the group's results.
/// `metrics_agent_member` lists the live members of `shard` groups (a heartbeat each round).
pub(crate) const CREATE_SQL: &str = "CREATE TABLE IF NOT EXISTS metrics_agent_lease (
    grp        text        PRIMARY KEY,
    holder     text        NOT NULL,
    token      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics_agent_member (
    grp        text        NOT NULL,
    member     text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (grp, member)
)";

/// Registers member $2 of group $1 for $3 ms (database clock) and lists the other live members
/// (the statement's snapshot does not show its own insert; the caller adds itself).
const HEARTBEAT_SQL: &str = "WITH me AS (
    INSERT INTO metrics_agent_member (grp, member, expires_at)
    VALUES ($1::text, $2::text, now() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (grp, member) DO UPDATE SET expires_at = EXCLUDED.expires_at
)
SELECT member FROM metrics_agent_member
 WHERE grp = $1::text AND member <> $2::text AND expires_at > now()";

/// Leaves a shard group at once (clean stop): the others take its share at their next round.
const LEAVE_SQL: &str =
    "DELETE FROM metrics_agent_member WHERE grp = $1::text AND member = $2::text";

/// Takes or renews the lease of group $1 for holder $2 for $3 ms, on the database's clock: one
/// statement, so two agents can never both win. It wins when the row is new, already ours, or
/// expired. Returns the row as it now is: (token, holder, won, ms until it expires).
const RENEW_SQL: &str = "WITH won AS (
    INSERT INTO metrics_agent_lease AS l (grp, holder, token, expires_at)
    VALUES ($1::text, $2::text, 1, now() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (grp) DO UPDATE
       SET token = CASE WHEN l.holder = EXCLUDED.holder THEN l.token ELSE l.token + 1 END,
           holder = EXCLUDED.holder,
           expires_at = EXCLUDED.expires_at
     WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
    RETURNING token, holder
)
SELECT token, holder, true, $3::bigint FROM won
UNION ALL
SELECT token, holder, false,
       (extract(epoch FROM expires_at - now()) * 1000)::bigint FROM metrics_agent_lease
 WHERE grp = $1::text AND NOT EXISTS (SELECT 1 FROM won)";

/// Gives the lease up at once: expired, held by nobody, so the next taker (even this agent)
/// raises the token.
const RELEASE_SQL: &str = "UPDATE metrics_agent_lease SET holder = '', expires_at = '-infinity'
 WHERE grp = $1::text AND holder = $2::text";

/// Serialises the creation of the table by agents starting together (two concurrent
/// `CREATE TABLE IF NOT EXISTS` can both try to create the row type). Any constant will do.
const CREATE_LOCK: i64 = 0x6d61_6c65; // "male": metrics-agent lease

#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Token and holder of the row after the statement (`None`: not visible yet).
    pub token: Option<i64>,
    pub holder: Option<String>,
    /// This agent holds the lease.
    pub won: bool,
    /// How long the lease has left on the server's clock (negative: expired), so that a standby
    /// tries again right when the holder's lease runs out rather than up to a renew_interval
    /// later.
    pub left_ms: Option<i64>,
}

pub(crate) struct Db {
    client: Client,
    driver: JoinHandle<()>,
    renew: Statement,
    release: Statement,
    heartbeat: Statement,
    leave: Statement,
    timeout: Duration,
}

impl Drop for Db {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn bounded<T>(
    timeout: Duration,
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(DbError::Timeout(timeout)),
    }
}

impl Db {
    /// Connects, creates the table if missing and prepares the statements, all within one
    /// `db_timeout` each.
    pub(crate) async fn connect(cfg: &CoordinationConfig) -> Result<Db, DbError> {
        let timeout = cfg.db_timeout;
        let mut pg = cfg.postgres.clone();
        if let Some(p) = &cfg.password {
            pg.password(p.expose());
        }
        if pg.get_application_name().is_none() {
            pg.application_name("metrics-agent");
        }
        // A half-open connection must fail a call, not hang it: the kernel gives up on unacked
        // data after db_timeout, and keepalives find a silent peer.
        pg.connect_timeout(timeout)
            .tcp_user_timeout(timeout)
            .keepalives_idle(cfg.renew_interval.max(Duration::from_secs(1)));
        let (client, conn) = bounded(timeout, pg.connect(NoTls)).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("coordination: connection closed: {e}");
            }
        });
        let exists: bool = bounded(
            timeout,
            client.query_one(
                "SELECT to_regclass('metrics_agent_lease') IS NOT NULL \
                 AND to_regclass('metrics_agent_member') IS NOT NULL",
                &[],
            ),
        )
        .await?
        .get(0);
        if !exists {
            let create =
                format!("BEGIN; SELECT pg_advisory_xact_lock({CREATE_LOCK}); {CREATE_SQL}; COMMIT");
            bounded(timeout, client.batch_execute(&create)).await?;
        }
        let renew = bounded(timeout, client.prepare(RENEW_SQL)).await?;
        let release = bounded(timeout, client.prepare(RELEASE_SQL)).await?;
        let heartbeat = bounded(timeout, client.prepare(HEARTBEAT_SQL)).await?;
        let leave = bounded(timeout, client.prepare(LEAVE_SQL)).await?;
        Ok(Db {
            client,
            driver,
            renew,
            release,
            heartbeat,
            leave,
            timeout,
        })
    }

    pub(crate) async fn renew(
        &self,
        group: &str,
        me: &str,
        ttl: Duration,
    ) -> Result<Lease, DbError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let row = bounded(
            self.timeout,
            self.client.query_opt(&self.renew, &[&group, &me, &ttl_ms]),
        )
        .await?;
        Ok(match row {
            Some(r) => Lease {
                token: r.try_get(0).ok(),
                holder: r.try_get(1).ok(),
                won: r.try_get(2).unwrap_or(false),
                left_ms: r.try_get(3).ok(),
            },
            None => Lease {
                token: None,
                holder: None,
                won: false,
                left_ms: None,
            },
        })
    }

    pub(crate) async fn release(&self, group: &str, me: &str) -> Result<(), DbError> {
        bounded(
            self.timeout,
            self.client.execute(&self.release, &[&group, &me]),
        )
        .await?;
        Ok(())
    }

    /// Heartbeat of a shard member: the other live members, by name.
    pub(crate) async fn heartbeat(
        &self,
        group: &str,
        me: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, DbError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let rows = bounded(
            self.timeout,
            self.client.query(&self.heartbeat, &[&group, &me, &ttl_ms]),
        )
        .await?;
        Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
    }

    pub(crate) async fn leave(&self, group: &str, me: &str) -> Result<(), DbError> {
        bounded(
            self.timeout,
            self.client.execute(&self.leave, &[&group, &me]),
        )
        .await?;
        Ok(())
    }
}
