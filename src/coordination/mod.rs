//! Probe groups coordinated in PostgreSQL (issue 13). For each `leader` group one live agent
//! holds a lease row and runs the group's instances; the others keep them built but paused
//! behind a gate (see `Supervisor::start`) and try to take the lease each `renew_interval`.
//! In a `shard` group every instance is a target with a gate of its own, open on the one live
//! member that rendezvous hashing picks; members heartbeat a row instead of holding a lease, with
//! the same deadline rules.
//!
//! Safety rests on two clocks. The server's: a lease expires at the database's `now() + ttl`
//! after the last renewal and only then can another agent take it. The leader's own monotonic
//! clock: from the *start* of its last successful renewal it keeps a deadline of
//! `ttl - db_timeout` and closes its gates when it passes, which is before the server can hand
//! the lease to anyone else. The deadline is enforced twice: each gate checks it synchronously
//! before every gather (after a SIGSTOP past the ttl every timer is due at once, and a probe's
//! tick may run before anything else), and a plain OS thread (the guard) closes the gates when
//! it passes, which pauses the instances and abandons a running gather.
//!
//! The coordinator lives for the whole process: a reload (SIGHUP) hands the new supervisor the
//! same gates and keeps every lease; a clean stop releases them at once.

mod lease;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, CoordinationConfig, GroupMode, InputInstance, OnDbLoss};
use crate::modules::ModuleContext;
use crate::output::{Accumulator, Decoration, Metric, Queue, now_ns};
use crate::stats::{InstanceStats, Registry, lock};
use crate::supervisor::Gate;
use lease::{Db, Lease};

/// The self-metric measurement, one line per group per renewal round.
pub(crate) const MEASUREMENT: &str = "metrics_agent_group";

/// How many times per `renew_interval` a lost connection is retried at most: backoff starts at
/// this fraction of the interval and doubles up to the interval itself.
const RECONNECT_STEPS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Waiting for the lease (or the database).
    Standby,
    Leader,
    /// `all` mode (always running), or a registered `shard` member.
    Member,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Standby => "standby",
            Role::Leader => "leader",
            Role::Member => "member",
        }
    }
}

struct Group {
    mode: GroupMode,
    gate: watch::Sender<bool>,
    role: Role,
    /// Last token seen (ours or the holder's).
    token: Option<i64>,
    holder: Option<String>,
    /// While leader: gates close at this instant unless renewed first.
    deadline: Option<Instant>,
    /// Changes of holder seen (leader) or of the member set (shard).
    leader_changes: u64,
    renew_failures: u64,
    renew_latency: Duration,
    /// `shard`: the gate of each target (instance key) and every live member, this agent included.
    targets: BTreeMap<String, watch::Sender<bool>>,
    members: Vec<String>,
    /// `shard`: since when this agent is registered without a lapse. It opens gates only a ttl
    /// later: by then every other member has seen it join (or stopped at its own deadline) and
    /// has given up the targets that move to it.
    member_since: Option<Instant>,
}

impl Group {
    fn new(mode: GroupMode) -> Group {
        let open = mode == GroupMode::All;
        Group {
            mode,
            gate: watch::Sender::new(open),
            role: if open { Role::Member } else { Role::Standby },
            token: None,
            holder: None,
            deadline: None,
            leader_changes: 0,
            renew_failures: 0,
            renew_latency: Duration::ZERO,
            targets: BTreeMap::new(),
            members: Vec::new(),
            member_since: None,
        }
    }

    /// Closes the gate (probes stop; a running gather is abandoned).
    fn step_down(&mut self, name: &str, why: &str) {
        self.deadline = None;
        if self.role == Role::Leader {
            tracing::warn!("probe group {name}: no longer leader ({why}); its probes are paused");
        }
        if self.member_since.take().is_some() {
            tracing::warn!("probe group {name}: membership lapsed ({why}); its probes are paused");
        }
        if self.mode != GroupMode::All {
            self.role = Role::Standby;
        }
        self.gate
            .send_if_modified(|open| std::mem::replace(open, false));
        for tx in self.targets.values() {
            tx.send_if_modified(|open| std::mem::replace(open, false));
        }
    }

    /// `shard`: this agent owns `key` now (registered for a warm-up, deadline not passed).
    fn owns(&self, me: &str, key: &str, warmup: Duration) -> bool {
        let now = Instant::now();
        self.deadline.is_some_and(|d| now < d)
            && self.member_since.is_some_and(|s| now >= s + warmup)
            && owner(&self.members, key) == Some(me)
    }

    fn targets_owned(&self) -> u64 {
        self.targets.values().filter(|t| *t.borrow()).count() as u64
    }
}

struct Shared {
    groups: Mutex<BTreeMap<String, Group>>,
    /// Wakes the guard when a deadline moves or on stop.
    changed: Condvar,
    stopping: AtomicBool,
    on_db_loss: OnDbLoss,
    /// This agent's id and the shard warm-up (the ttl).
    me: String,
    warmup: Duration,
    /// Groups a reload removed while this agent held them: given up at once by the task.
    dropped: Mutex<Vec<(String, GroupMode)>>,
    /// Wakes the task for a round now (a reload dropped a group).
    wake: tokio::sync::Notify,
}

impl Shared {
    /// The leader's local deadline has not passed (always true with `on_db_loss = "keep"`,
    /// where the open/closed value alone decides).
    fn lease_valid(&self, group: &str) -> bool {
        self.on_db_loss == OnDbLoss::Keep
            || lock(&self.groups)
                .get(group)
                .and_then(|g| g.deadline)
                .is_some_and(|d| Instant::now() < d)
    }
}

pub(crate) struct Coordinator {
    config: CoordinationConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// What the self-metric lines are written with.
struct Output {
    queue: Arc<Queue>,
    registry: Arc<Registry>,
}

impl Coordinator {
    /// Starts the renewal task and the deadline guard for `agent.coordination` (if set).
    pub(crate) fn start(agent: &AgentConfig, ctx: &ModuleContext) -> Option<Coordinator> {
        let config = agent.coordination.clone()?;
        let groups = config
            .groups
            .iter()
            .map(|(n, m)| (n.clone(), Group::new(*m)))
            .collect();
        let shared = Arc::new(Shared {
            groups: Mutex::new(groups),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            on_db_loss: config.on_db_loss,
            me: config.agent_id.clone(),
            warmup: config.ttl,
            dropped: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        });
        let guard_shared = shared.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("lease-guard".into())
            .spawn(move || guard(&guard_shared))
        {
            // Without the guard a leader could outlive its lease: run no leader group at all.
            tracing::error!("coordination: cannot start the lease guard thread: {e}");
            return None;
        }
        let mut deco = Decoration {
            name_override: None,
            name_prefix: String::new(),
            name_suffix: String::new(),
            tags: agent.tags.clone(),
            precision_ns: agent.precision_ns(),
            filter: None,
            collection_end: false,
        };
        deco.tags.retain(|(k, _)| k != "agent_id");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            config.clone(),
            shared.clone(),
            cancel.clone(),
            Output {
                queue: ctx.queue.clone(),
                registry: ctx.registry.clone(),
            },
            Arc::new(deco),
        ));
        tracing::info!(
            "coordination: agent {} in {} group(s), ttl {:?}, renew every {:?}",
            config.agent_id,
            config.groups.len(),
            config.ttl,
            config.renew_interval
        );
        Some(Coordinator {
            config,
            shared,
            cancel,
            task,
        })
    }

    /// The gate of `inst`'s group: `None` (always open) outside a group and in `all` mode.
    /// Besides the open/closed value, the gate checks the lease's local deadline itself before
    /// every gather: after a SIGSTOP past the deadline, a tick may run before the guard thread
    /// has closed the gate.
    pub(crate) fn gate(&self, inst: &InputInstance) -> Option<Gate> {
        let (name, mode) = inst.group.as_ref()?;
        if *mode == GroupMode::All {
            return None;
        }
        let shared = &self.shared;
        let open = match lock(&shared.groups).get_mut(name) {
            Some(g) if g.mode == GroupMode::Shard => {
                let key = shard_key(inst);
                let owned = g.owns(&shared.me, &key, shared.warmup);
                g.targets
                    .entry(key)
                    .or_insert_with(|| watch::Sender::new(owned))
                    .subscribe()
            }
            Some(g) => g.gate.subscribe(),
            // A group this coordinator does not run (cannot happen after `apply`): never open.
            None => watch::Sender::new(false).subscribe(),
        };
        let (shared, name) = (self.shared.clone(), name.clone());
        Some(Gate {
            open,
            valid: Some(Arc::new(move || shared.lease_valid(&name))),
        })
    }

    /// Follows a reload: the same database and identity keep the coordinator (and its leases)
    /// and only add or drop groups; anything else replaces it, releasing its leases.
    pub(crate) async fn apply(
        current: Option<Coordinator>,
        agent: &AgentConfig,
        ctx: &ModuleContext,
    ) -> Option<Coordinator> {
        match (current, &agent.coordination) {
            (Some(c), Some(next)) if c.config.same_connection(next) => {
                c.set_groups(&next.groups);
                Some(Coordinator {
                    config: next.clone(),
                    ..c
                })
            }
            (Some(c), _) => {
                tracing::info!("coordination settings changed: releasing leases and restarting");
                c.stop().await;
                Coordinator::start(agent, ctx)
            }
            (None, _) => Coordinator::start(agent, ctx),
        }
    }

    fn set_groups(&self, wanted: &BTreeMap<String, GroupMode>) {
        let mut groups = lock(&self.shared.groups);
        let mut dropped = Vec::new();
        groups.retain(|name, g| {
            let keep = wanted.get(name) == Some(&g.mode);
            if !keep {
                if holds(g) {
                    dropped.push((name.clone(), g.mode));
                }
                g.step_down(name, "removed from the config");
            }
            keep
        });
        if !dropped.is_empty() {
            lock(&self.shared.dropped).extend(dropped);
            self.shared.wake.notify_one();
        }
        // The next supervisor registers its instances again (`gate`).
        for g in groups.values_mut() {
            g.targets.clear();
        }
        for (name, mode) in wanted {
            groups
                .entry(name.clone())
                .or_insert_with(|| Group::new(*mode));
        }
        self.shared.changed.notify_all();
    }

    /// Clean stop: closes every gate and releases every lease held (bounded by `db_timeout`
    /// per group), so a standby takes over at its next attempt instead of after the ttl.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        // Releasing stops at the first call that fails, so it takes one db_timeout at most.
        let limit = self.config.db_timeout + Duration::from_millis(200);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
        }
        self.shared.stopping.store(true, Ordering::Relaxed);
        let mut groups = lock(&self.shared.groups);
        for (name, g) in groups.iter_mut() {
            g.step_down(name, "stopping");
        }
        self.shared.changed.notify_all();
    }
}

/// The deadline guard (an OS thread, see the module doc): closes a leader's gates when its
/// local deadline passes without a renewal.
fn guard(shared: &Shared) {
    let mut groups = lock(&shared.groups);
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        if shared.on_db_loss == OnDbLoss::Stop {
            for (name, g) in groups.iter_mut() {
                match g.deadline {
                    Some(d) if d <= now => g.step_down(name, "lease not renewed in time"),
                    Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                    None => {}
                }
            }
        }
        groups = match next {
            Some(at) => {
                shared
                    .changed
                    .wait_timeout(groups, at.saturating_duration_since(now))
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => shared
                .changed
                .wait(groups)
                .unwrap_or_else(|p| p.into_inner()),
        };
    }
}

/// The renewal task: one round per `renew_interval` (sooner while reconnecting).
async fn run(
    cfg: CoordinationConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    out: Output,
    deco: Arc<Decoration>,
) {
    let stats = Arc::new(InstanceStats::new(
        "coordination",
        "coordination",
        "coordination",
        None,
    ));
    let mut db: Option<Db> = None;
    let mut db_down = false;
    let mut retry = cfg.renew_interval / RECONNECT_STEPS;
    loop {
        let round_start = Instant::now();
        if db.is_none() {
            // A stop does not wait for a database that does not answer.
            let connected = tokio::select! {
                r = Db::connect(&cfg) => r,
                _ = cancel.cancelled() => break,
            };
            match connected {
                Ok(d) => {
                    if db_down {
                        tracing::info!("coordination: database reachable again");
                    }
                    db_down = false;
                    db = Some(d);
                }
                Err(e) => {
                    if !db_down {
                        tracing::error!(
                            "coordination: cannot reach the database: {e}; leaders stop at their deadline{}",
                            if cfg.on_db_loss == OnDbLoss::Keep {
                                " unless on_db_loss = \"keep\""
                            } else {
                                ""
                            }
                        );
                    }
                    db_down = true;
                    count_failures(&shared);
                }
            }
        }
        let dropped = std::mem::take(&mut *lock(&shared.dropped));
        if let Some(d) = &db
            && !dropped.is_empty()
        {
            give_up(d, &cfg, dropped).await;
        }
        let mut expiry = None;
        if let Some(d) = &db {
            let renewed = tokio::select! {
                r = renew_all(d, &cfg, &shared) => r,
                _ = cancel.cancelled() => break,
            };
            match renewed {
                Ok(at) => expiry = at,
                Err(e) => {
                    if !db_down {
                        tracing::error!("coordination: lease renewal failed: {e}; reconnecting");
                    }
                    db_down = true;
                    db = None;
                }
            }
        }
        emit(&shared, &cfg, &out, &deco, &stats);
        let wait = if db.is_some() {
            retry = cfg.renew_interval / RECONNECT_STEPS;
            cfg.renew_interval
        } else {
            let w = retry;
            retry = (retry * 2).min(cfg.renew_interval);
            w
        };
        // A standby tries again as soon as the holder's lease runs out, if that is sooner.
        let next = expiry.map_or(round_start + wait, |e| e.min(round_start + wait));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shared.wake.notified() => {}
        }
    }
    if let Some(d) = &db {
        release_all(d, &cfg, &shared).await;
    }
    out.registry.set_groups(Vec::new());
}

fn count_failures(shared: &Shared) {
    for g in lock(&shared.groups).values_mut() {
        if g.mode != GroupMode::All {
            g.renew_failures += 1;
        }
    }
}

/// After the holder's lease runs out on the server, a standby waits this much more before it
/// tries: the answer that told it the time left was already a little late.
const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

/// One renewal (or attempt) per leader group. Stops at the first database error: the
/// connection is then in an unknown state and the remaining groups count a failure too.
/// Returns when the earliest lease held by another agent runs out (a standby's next chance).
async fn renew_all(
    db: &Db,
    cfg: &CoordinationConfig,
    shared: &Shared,
) -> Result<Option<Instant>, lease::DbError> {
    let mut expiry: Option<Instant> = None;
    let names: Vec<(String, GroupMode)> = lock(&shared.groups)
        .iter()
        .filter(|(_, g)| g.mode != GroupMode::All)
        .map(|(n, g)| (n.clone(), g.mode))
        .collect();
    for (i, (name, mode)) in names.iter().enumerate() {
        let started = Instant::now();
        let deadline = started + cfg.ttl.saturating_sub(cfg.db_timeout);
        let result = match mode {
            GroupMode::Shard => db
                .heartbeat(name, &cfg.agent_id, cfg.ttl)
                .await
                .map(Renewed::Members),
            _ => db
                .renew(name, &cfg.agent_id, cfg.ttl)
                .await
                .map(Renewed::Lease),
        };
        let mut groups = lock(&shared.groups);
        let renewed = match result {
            Ok(r) => r,
            Err(e) => {
                for (n, _) in &names[i..] {
                    if let Some(g) = groups.get_mut(n) {
                        g.renew_failures += 1;
                    }
                }
                return Err(e);
            }
        };
        if let Some(g) = groups.get_mut(name) {
            g.renew_latency = started.elapsed();
            match renewed {
                Renewed::Lease(lease) => {
                    if let (false, Some(ms)) = (lease.won, lease.left_ms)
                        && let Ok(ms) = u64::try_from(ms)
                    {
                        let at = Instant::now() + Duration::from_millis(ms) + EXPIRY_MARGIN;
                        expiry = Some(expiry.map_or(at, |e| e.min(at)));
                    }
                    apply_lease(name, g, &lease, deadline);
                }
                Renewed::Members(others) => {
                    apply_members(
                        name,
                        g,
                        &shared.me,
                        others,
                        started,
                        deadline,
                        shared.warmup,
                    );
                }
            }
        }
        shared.changed.notify_all();
    }
    Ok(expiry)
}

enum Renewed {
    Lease(Lease),
    /// `shard`: the other live members.
    Members(Vec<String>),
}

/// Takes in a shard heartbeat: the member set, then each target's gate.
fn apply_members(
    name: &str,
    g: &mut Group,
    me: &str,
    mut members: Vec<String>,
    started: Instant,
    deadline: Instant,
    warmup: Duration,
) {
    if Instant::now() >= deadline {
        g.step_down(name, "the heartbeat answered too late");
        return;
    }
    members.push(me.to_owned());
    members.sort();
    members.dedup();
    if members != g.members {
        if !g.members.is_empty() {
            g.leader_changes += 1;
        }
        tracing::info!(
            "probe group {name}: {} member(s): {}",
            members.len(),
            members.join(", ")
        );
        g.members = members;
    }
    g.deadline = Some(deadline);
    g.member_since.get_or_insert(started);
    g.role = Role::Member;
    let keys: Vec<String> = g.targets.keys().cloned().collect();
    for key in keys {
        let own = g.owns(me, &key, warmup);
        if let Some(tx) = g.targets.get(&key) {
            tx.send_if_modified(|open| own != std::mem::replace(open, own));
        }
    }
}

/// A shard target's name, the same on every agent that runs the same file.
fn shard_key(inst: &InputInstance) -> String {
    inst.alias.clone().unwrap_or_else(|| inst.id.clone())
}

/// Rendezvous (highest random weight) hashing: the member with the highest score for `key`
/// owns it, so when a member leaves only its keys move, and when one joins only keys that it
/// now wins move to it.
fn owner<'a>(members: &'a [String], key: &str) -> Option<&'a str> {
    members
        .iter()
        .max_by_key(|m| (score(m, key), m.as_str()))
        .map(String::as_str)
}

/// FNV-1a over member and key, then the splitmix64 finaliser to spread it: stable across
/// builds and platforms, which every agent of a group must agree on (std's hasher promises
/// neither).
fn score(member: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Takes in what a renewal found. `deadline` is counted from the start of the call: the
/// server's expiry is later than that in any case.
fn apply_lease(name: &str, g: &mut Group, lease: &Lease, deadline: Instant) {
    if lease.token.is_some() && lease.token != g.token {
        if g.token.is_some() {
            g.leader_changes += 1;
        }
        g.token = lease.token;
    }
    g.holder.clone_from(&lease.holder);
    if !lease.won {
        let why = format!(
            "the lease is held by {}",
            lease.holder.as_deref().unwrap_or("another agent")
        );
        g.step_down(name, &why);
        return;
    }
    // Checked now, after the answer: a process stopped between the call and here must not
    // open its gates on a lease that may have expired meanwhile.
    if Instant::now() >= deadline {
        g.step_down(name, "the renewal answered too late");
        return;
    }
    g.deadline = Some(deadline);
    if g.role != Role::Leader {
        g.role = Role::Leader;
        tracing::info!(
            "probe group {name}: leader (token {}); its probes run here",
            g.token.unwrap_or(0)
        );
    }
    g.gate
        .send_if_modified(|open| !std::mem::replace(open, true));
}

async fn release_all(db: &Db, cfg: &CoordinationConfig, shared: &Shared) {
    let held: Vec<(String, GroupMode)> = {
        let mut groups = lock(&shared.groups);
        groups
            .iter_mut()
            .filter(|(_, g)| holds(g))
            .map(|(n, g)| {
                // Probes stop before the lease goes.
                g.step_down(n, "stopping");
                (n.clone(), g.mode)
            })
            .collect()
    };
    give_up(db, cfg, held).await;
}

/// This agent leads the group or is a shard member: it may have a row to give up.
fn holds(g: &Group) -> bool {
    g.role == Role::Leader || g.mode == GroupMode::Shard
}

/// Releases leases and leaves shard groups (their probes already stopped), so that the others
/// take over at their next round instead of after the ttl.
async fn give_up(db: &Db, cfg: &CoordinationConfig, held: Vec<(String, GroupMode)>) {
    for (name, mode) in held {
        let (done, r) = match mode {
            GroupMode::Shard => ("left", db.leave(&name, &cfg.agent_id).await),
            _ => ("lease released", db.release(&name, &cfg.agent_id).await),
        };
        match r {
            Ok(()) => tracing::info!("probe group {name}: {done}"),
            Err(e) => {
                // The others take over when the rows expire.
                tracing::warn!("probe group {name}: cannot give up its place: {e}");
                return;
            }
        }
    }
}

/// One `metrics_agent_group` line per group.
fn emit(
    shared: &Shared,
    cfg: &CoordinationConfig,
    out: &Output,
    deco: &Arc<Decoration>,
    stats: &Arc<InstanceStats>,
) {
    let mut acc = Accumulator::new(
        deco.clone(),
        out.queue.clone(),
        out.registry.clone(),
        stats.clone(),
    );
    let ts = now_ns();
    let now = Instant::now();
    let groups = lock(&shared.groups);
    out.registry.set_groups(
        groups
            .iter()
            .map(|(n, g)| (n.clone(), g.role.as_str()))
            .collect(),
    );
    for (name, g) in groups.iter() {
        let left = g
            .deadline
            .map_or(0.0, |d| d.saturating_duration_since(now).as_secs_f64());
        let mut m = Metric::new(MEASUREMENT, ts)
            .tag("probe_group", name.clone())
            .tag("mode", g.mode.as_str())
            .tag("agent_id", cfg.agent_id.clone())
            .field("role", g.role.as_str())
            .field("leader", g.role != Role::Standby)
            .field("leader_changes", g.leader_changes)
            .field("renew_failures", g.renew_failures)
            .field("renew_latency_ms", g.renew_latency.as_secs_f64() * 1e3)
            .field("lease_left_s", left);
        if let Some(t) = g.token {
            m = m.field("token", t);
        }
        if let Some(h) = g.holder.as_ref().filter(|h| !h.is_empty()) {
            m = m.field("holder", h.clone());
        }
        if g.mode == GroupMode::Shard {
            m = m
                .field("members", g.members.len() as u64)
                .field("targets", g.targets.len() as u64)
                .field("targets_owned", g.targets_owned());
        }
        acc.add(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(token: i64, holder: &str, won: bool) -> Lease {
        Lease {
            token: Some(token),
            holder: Some(holder.into()),
            won,
            left_ms: None,
        }
    }

    #[test]
    fn rendezvous_spreads_keys_and_moves_only_a_leavers_share() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "c"].map(String::from).to_vec();
        let keys: Vec<String> = (0..3000)
            .map(|i| format!("inputs.net_response[{i}]"))
            .collect();
        let mut per = BTreeMap::new();
        for k in &keys {
            let before = owner(&three, k).unwrap();
            *per.entry(before).or_insert(0) += 1;
            let after = owner(&two, k).unwrap();
            if before != "b" {
                assert_eq!(before, after, "{k} moved though its owner stayed");
            }
        }
        for (m, n) in &per {
            assert!((800..1200).contains(n), "{m} owns {n} of 3000");
        }
        // Fixed values: every build and platform must agree.
        assert_eq!(score("a", "k"), score("a", "k"));
        assert_ne!(score("a", "k"), score("k", "a"));
    }

    #[test]
    fn a_shard_member_opens_its_targets_only_after_the_warm_up() {
        let mut g = Group::new(GroupMode::Shard);
        let keys = ["t1", "t2", "t3", "t4", "t5", "t6"];
        let rx: Vec<_> = keys
            .iter()
            .map(|k| {
                g.targets
                    .entry((*k).into())
                    .or_insert_with(|| watch::Sender::new(false))
                    .subscribe()
            })
            .collect();
        let start = Instant::now();
        let far = start + Duration::from_secs(60);
        let warm = Duration::from_millis(100);
        apply_members("g", &mut g, "me", vec!["other".into()], start, far, warm);
        assert!(rx.iter().all(|r| !*r.borrow()), "opened during the warm-up");
        std::thread::sleep(warm);
        apply_members("g", &mut g, "me", vec!["other".into()], start, far, warm);
        let mine: Vec<bool> = rx.iter().map(|r| *r.borrow()).collect();
        for (k, open) in keys.iter().zip(&mine) {
            assert_eq!(*open, owner(&g.members, k) == Some("me"), "{k}");
        }
        // The other member left: every target is ours at once (we are warm).
        apply_members("g", &mut g, "me", vec![], start, far, warm);
        assert!(rx.iter().all(|r| *r.borrow()));
        assert_eq!(g.targets_owned(), 6);
        g.step_down("g", "test");
        assert!(rx.iter().all(|r| !*r.borrow()));
        assert!(g.member_since.is_none(), "a lapse means a new warm-up");
    }

    #[test]
    fn a_won_lease_opens_the_gate_and_a_lost_one_closes_it() {
        let mut g = Group::new(GroupMode::Leader);
        let rx = g.gate.subscribe();
        let later = Instant::now() + Duration::from_secs(60);
        apply_lease("g", &mut g, &lease(1, "me", true), later);
        assert!(*rx.borrow());
        assert_eq!(g.role, Role::Leader);
        apply_lease("g", &mut g, &lease(2, "other", false), later);
        assert!(!*rx.borrow());
        assert_eq!(
            (g.role, g.leader_changes, g.token),
            (Role::Standby, 1, Some(2))
        );
    }

    #[test]
    fn a_renewal_that_answers_after_its_deadline_does_not_open_the_gate() {
        let mut g = Group::new(GroupMode::Leader);
        let rx = g.gate.subscribe();
        apply_lease("g", &mut g, &lease(1, "me", true), Instant::now());
        assert!(!*rx.borrow());
        assert_eq!(g.role, Role::Standby);
    }

    #[test]
    fn the_guard_closes_gates_at_the_deadline_and_exits_on_stop() {
        let mut g = Group::new(GroupMode::Leader);
        let mut rx = g.gate.subscribe();
        apply_lease(
            "g",
            &mut g,
            &lease(1, "me", true),
            Instant::now() + Duration::from_millis(50),
        );
        let shared = Arc::new(Shared {
            groups: Mutex::new(BTreeMap::from([("g".to_owned(), g)])),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            on_db_loss: OnDbLoss::Stop,
            me: "me".into(),
            warmup: Duration::ZERO,
            dropped: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        });
        let s = shared.clone();
        let t = std::thread::spawn(move || guard(&s));
        assert!(*rx.borrow_and_update());
        let start = Instant::now();
        while *rx.borrow() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "gate never closed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.stopping.store(true, Ordering::Relaxed);
        shared.changed.notify_all();
        t.join().unwrap();
    }
}
