//! The MQTT connection of one `mqtt_consumer` instance: connect, subscribe, receive, hand each
//! message to the handler, acknowledge it once its lines are queued, reconnect.
//!
//! rumqttc leaves reconnection pacing and resubscription to its caller (it reconnects on the
//! next poll, at once, and does not restore subscriptions when the broker has no session), so
//! this loop does both:
//! - after an error it waits 1 s doubling to `max_reconnect_interval`, ±20 % jitter, and cycles
//!   through `servers`; the password file or variable is read again for every attempt;
//! - on every CONNACK without a stored session it subscribes to every topic (counted in
//!   `resubscribes` after the first connection); with a stored session (persistent sessions)
//!   it subscribes to topics added and unsubscribes from topics removed since the last
//!   connection of this process with the same client id and broker;
//! - a PINGREQ unanswered for `ping_timeout` drops the connection (rumqttc alone notices only
//!   at the next keep-alive, and a broker that accepts but never answers the CONNECT is bounded
//!   by `connection_timeout`).
//!
//! Two futures share the instance's task. The driver alone talks to rumqttc and never waits
//! on the handler: it polls the connection without pause (so keep-alive, acknowledgements and
//! dead letters flow while the handler waits for room in the output queue), passes messages
//! through a channel of `max_undelivered_messages`, holds up to as many more when that channel
//! is full, and only then stops reading (QoS 1/2 messages stay with the broker). The handler
//! parses each message under isolation, queues its lines without evicting anything, and sends
//! its replies (dead letter, acknowledgement) back to the driver. (A handler that awaited
//! rumqttc's request channel while the driver awaited room in the handler's channel stopped
//! QoS 1 flow for good.)
//!
//! Acknowledgements are tied to the connection a message came on: after a reconnect, messages
//! of the old connection are not acknowledged on the new one (the broker redelivers them with
//! the DUP flag, counted in `duplicates`, when the session was kept).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Publish,
    QoS, SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};

use super::config::{Config, Scheme, Server};
use super::parse_message;
use crate::modules::service::ServiceCtx;
use crate::modules::GatherError;
use crate::output::now_ns;
use crate::stats::lock;

/// The largest packet MQTT can carry (256 MiB − 1). A lower limit would make rumqttc drop the
/// connection on a big message, which the broker would then redeliver forever: one oversized
/// message would stop the input. Memory stays bounded by the broker's in-flight window.
const MAX_PACKET: usize = 268_435_455;

/// First reconnection delay; doubles up to `max_reconnect_interval`.
const RECONNECT_BASE: Duration = Duration::from_secs(1);

/// How long a stop may spend sending the acknowledgements already decided and a DISCONNECT.
const STOP_FLUSH: Duration = Duration::from_millis(200);

/// The self-metric fields of one instance.
pub(super) struct Counters {
    pub received: Arc<AtomicU64>,
    pub duplicates: Arc<AtomicU64>,
    pub parse_errors: Arc<AtomicU64>,
    pub dead_lettered: Arc<AtomicU64>,
    pub acknowledged: Arc<AtomicU64>,
    pub in_flight: Arc<AtomicU64>,
    pub reconnects: Arc<AtomicU64>,
    pub resubscribes: Arc<AtomicU64>,
    pub since_last: Arc<AtomicU64>,
}

impl Counters {
    pub(super) fn new(ctx: &ServiceCtx) -> Counters {
        Counters {
            received: ctx.counter("messages_received"),
            duplicates: ctx.counter("duplicates"),
            parse_errors: ctx.counter("parse_errors"),
            dead_lettered: ctx.counter("dead_lettered"),
            acknowledged: ctx.counter("acknowledged"),
            in_flight: ctx.counter("in_flight"),
            reconnects: ctx.counter("reconnects"),
            resubscribes: ctx.counter("resubscribes"),
            since_last: ctx.counter("seconds_since_last_message"),
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One message on its way from the driver to the handler.
struct Delivery {
    publish: Publish,
    /// The connection it arrived on.
    connection: u64,
}

/// Topics subscribed per (broker, client id) by the last connection of this process, so a
/// reload that changes `topics` with a persistent session can unsubscribe the removed ones.
type Remembered = Mutex<HashMap<(String, String), (Vec<String>, u8)>>;

fn remembered() -> &'static Remembered {
    static M: OnceLock<Remembered> = OnceLock::new();
    M.get_or_init(Default::default)
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// A client id for runs without one: `metrics-agent-` and 8 random hex digits.
fn random_client_id() -> String {
    format!(
        "metrics-agent-{:08x}",
        crate::rand::u64() as u32
    )
}

/// Connection options for `server`, reading the password now.
fn options(cfg: &Config, server: &Server, client_id: &str) -> Result<MqttOptions, String> {
    let addr = match server.scheme {
        Scheme::Tcp | Scheme::Tls => server.host.clone(),
        Scheme::Ws | Scheme::Wss => {
            let scheme = if server.scheme == Scheme::Ws {
                "ws"
            } else {
                "wss"
            };
            let host = if server.host.contains(':') {
                format!("[{}]", server.host)
            } else {
                server.host.clone()
            };
            format!("{scheme}://{host}:{}{}", server.port, server.path)
        }
    };
    let mut o = MqttOptions::new(client_id, addr, server.port);
    o.set_keep_alive(cfg.keepalive)
        .set_clean_session(!cfg.persistent_session)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        // Outgoing QoS > 0 packets are dead letters only.
        .set_inflight(100);
    if cfg.username.is_some() || cfg.password.is_some() {
        let password = match &cfg.password {
            Some(p) => p.read().map_err(|e| format!("password: {e}"))?.expose().to_owned(),
            None => String::new(),
        };
        o.set_credentials(cfg.username.clone().unwrap_or_default(), password);
    }
    if let Some(tls) = &cfg.tls {
        let name = tls
            .server_name
            .as_deref()
            .map(crate::modules::tls::server_name)
            .transpose()?;
        let config = tls.trust.client_config(!tls.insecure, name)?;
        let tc = TlsConfiguration::Rustls(Arc::new(config));
        match server.scheme {
            Scheme::Tls => {
                o.set_transport(Transport::tls_with_config(tc));
            }
            Scheme::Wss => {
                o.set_transport(Transport::wss_with_config(tc));
            }
            _ => {}
        }
    }
    if server.scheme == Scheme::Ws {
        o.set_transport(Transport::Ws);
    }
    Ok(o)
}

/// A short, stable description of why a connection failed, so the log says it once per cause.
fn cause(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!("refused: {code:?}"),
        ConnectionError::NetworkTimeout => "connection timeout".into(),
        ConnectionError::Io(io) => format!("I/O: {:?}", io.kind()),
        ConnectionError::MqttState(s) => format!("protocol: {s}"),
        other => other.to_string(),
    }
}

fn explain(e: &ConnectionError) -> String {
    match e {
        // Brokers answer bad credentials with either code (mosquitto: not authorized).
        ConnectionError::ConnectionRefused(
            code @ (rumqttc::ConnectReturnCode::BadUserNamePassword
            | rumqttc::ConnectReturnCode::NotAuthorized),
        ) => format!("the broker refused the credentials (username/password, {code:?})"),
        ConnectionError::NetworkTimeout => {
            "no CONNACK within connection_timeout (is this an MQTT broker?)".into()
        }
        other => other.to_string(),
    }
}

/// What the handler asks the driver to send, in order.
enum Reply {
    /// Republish this payload to `dead_letter_topic`.
    DeadLetter(bytes::Bytes),
    /// Acknowledge the message (its lines are queued or it was dead-lettered).
    Ack { publish: Publish, connection: u64 },
}

/// Runs the instance until `ctx.cancel()`.
pub(super) async fn run(cfg: &Config, ctx: &ServiceCtx) -> Result<(), GatherError> {
    let counters = Counters::new(ctx);
    let client_id = cfg.client_id.clone().unwrap_or_else(random_client_id);
    let first = options(cfg, &cfg.servers[0], &client_id).map_err(GatherError::Failed)?;
    let (client, mut eventloop) = AsyncClient::new(first, REQUESTS);
    let mut net = NetworkOptions::new();
    net.set_connection_timeout(cfg.connection_timeout.as_secs_f64().ceil() as u64);
    eventloop.set_network_options(net);
    let (tx, rx) = tokio::sync::mpsc::channel::<Delivery>(cfg.max_undelivered);
    // Unbounded, yet bounded by the messages the driver handed over (at most two replies each).
    let (reply_tx, reply_rx) = tokio::sync::mpsc::unbounded_channel::<Reply>();
    let driver = Driver {
        cfg,
        ctx,
        client: &client,
        counters: &counters,
        client_id: &client_id,
        connection: 0,
        replies: std::collections::VecDeque::new(),
        held: std::collections::VecDeque::new(),
    };
    let (d, h) = tokio::join!(
        driver.run(&mut eventloop, tx, reply_rx),
        handle(cfg, ctx, rx, reply_tx, &counters)
    );
    d.and(h)
}

/// Capacity of rumqttc's request channel; only the driver writes to it, without waiting.
const REQUESTS: usize = 256;

/// Owns the connection: polls it without ever waiting on the handler, so keep-alive,
/// acknowledgements and dead letters keep flowing while the handler waits for the output
/// queue. Messages the handler has no room for are held here, up to `max_undelivered_messages`;
/// beyond that it stops reading (the broker keeps the rest).
struct Driver<'a> {
    cfg: &'a Config,
    ctx: &'a ServiceCtx,
    client: &'a AsyncClient,
    counters: &'a Counters,
    client_id: &'a str,
    /// Connections so far: a message is acknowledged only on the connection it came on.
    connection: u64,
    /// Replies not yet accepted by rumqttc's request channel.
    replies: std::collections::VecDeque<Reply>,
    /// Messages received while the handler's channel was full.
    held: std::collections::VecDeque<Delivery>,
}

impl Driver<'_> {
    /// Hands queued replies to the client while its request channel has room.
    fn flush_replies(&mut self) {
        while let Some(r) = self.replies.pop_front() {
            let sent = match &r {
                Reply::DeadLetter(payload) => match &self.cfg.dead_letter_topic {
                    Some(dl) => match self.client.try_publish(
                        dl.clone(),
                        qos(self.cfg.qos),
                        false,
                        payload.clone(),
                    ) {
                        Ok(()) => {
                            inc(&self.counters.dead_lettered);
                            true
                        }
                        Err(rumqttc::ClientError::TryRequest(_)) => false,
                        Err(e) => {
                            self.ctx.error_once(
                                "dead letter",
                                format_args!("cannot publish to {dl}: {e}"),
                            );
                            true
                        }
                    },
                    None => true,
                },
                Reply::Ack {
                    publish,
                    connection,
                } => {
                    if *connection != self.connection {
                        // Came on an earlier connection: the broker redelivers it if it kept
                        // the session; acknowledging its packet id now would be wrong.
                        true
                    } else {
                        match self.client.try_ack(publish) {
                            Ok(()) => {
                                inc(&self.counters.acknowledged);
                                true
                            }
                            Err(rumqttc::ClientError::TryRequest(_)) => false,
                            Err(_) => true,
                        }
                    }
                }
            };
            if !sent {
                self.replies.push_front(r);
                return;
            }
        }
    }

    async fn run(
        mut self,
        eventloop: &mut EventLoop,
        tx: tokio::sync::mpsc::Sender<Delivery>,
        mut reply_rx: tokio::sync::mpsc::UnboundedReceiver<Reply>,
    ) -> Result<(), GatherError> {
        let cfg = self.cfg;
        let ctx = self.ctx;
        let counters = self.counters;
        let cancel = ctx.cancel();
        let mut server_idx = 0;
        let mut attempt: u32 = 0;
        let mut connected_once = false;
        let mut connected = false;
        let mut ping_sent: Option<Instant> = None;
        let started = Instant::now();
        let mut last_message: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set when a reconnection must wait first.
        let mut wait: Option<Duration> = None;
        let topics: &[String] = &cfg.topics;
        let mut failure = None;
        loop {
            self.flush_replies();
            while let Some(d) = self.held.pop_front() {
                match tx.try_send(d) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(d)) => {
                        self.held.push_front(d);
                        break;
                    }
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                        self.held.clear();
                        break;
                    }
                }
            }
            if let Some(delay) = wait.take() {
                let until = tokio::time::Instant::now() + delay;
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep_until(until) => break,
                        _ = tick.tick() => {
                            let since = last_message.unwrap_or(started).elapsed().as_secs();
                            counters.since_last.store(since, Ordering::Relaxed);
                        }
                        p = tx.reserve(), if !self.held.is_empty() => {
                            if let (Ok(p), Some(d)) = (p, self.held.pop_front()) {
                                p.send(d);
                            }
                        }
                    }
                }
                if cancel.is_cancelled() {
                    break;
                }
                server_idx = (server_idx + 1) % cfg.servers.len();
                match options(cfg, &cfg.servers[server_idx], self.client_id) {
                    Ok(o) => eventloop.mqtt_options = o,
                    Err(e) => {
                        ctx.error_once("options", format_args!("cannot connect: {e}"));
                        wait = Some(backoff(&mut attempt, cfg.max_reconnect_interval));
                        continue;
                    }
                }
            }
            let reading = self.held.len() < cfg.max_undelivered;
            // rumqttc's poll may be dropped and polled again at any point of a connection, but
            // not while it connects (that would start over): nothing else wakes it then.
            let up = eventloop.network.is_some();
            let event = tokio::select! {
                _ = cancel.cancelled() => break,
                r = reply_rx.recv(), if up => {
                    if let Some(r) = r {
                        self.replies.push_back(r);
                    }
                    continue;
                }
                p = tx.reserve(), if up && !self.held.is_empty() => {
                    if let (Ok(p), Some(d)) = (p, self.held.pop_front()) {
                        p.send(d);
                    }
                    continue;
                }
                _ = tick.tick(), if up => {
                    let since = last_message.unwrap_or(started).elapsed().as_secs();
                    counters.since_last.store(since, Ordering::Relaxed);
                    // Alive for /readyz while connected and the broker answers pings, however
                    // quiet the topics (seconds_since_last_message tells that story).
                    if connected && ping_sent.is_none_or(|t| t.elapsed() <= cfg.ping_timeout) {
                        ctx.mark_alive();
                    }
                    if let Some(t) = ping_sent
                        && connected
                        && t.elapsed() > cfg.ping_timeout
                    {
                        ctx.error_once(
                            "ping timeout",
                            format_args!(
                                "{}: no answer to a keep-alive ping within ping_timeout ({:?}); reconnecting",
                                cfg.servers[server_idx].url, cfg.ping_timeout
                            ),
                        );
                        eventloop.clean();
                        connected = false;
                        ping_sent = None;
                        inc(&counters.reconnects);
                        wait = Some(backoff(&mut attempt, cfg.max_reconnect_interval));
                    }
                    continue;
                }
                ev = eventloop.poll(), if reading || !up => ev,
            };
            if cfg.client_trace {
                tracing::debug!(input = "mqtt_consumer", "{event:?}");
            }
            match event {
                Ok(Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    self.connection += 1;
                    connected = true;
                    ping_sent = None;
                    attempt = 0;
                    ctx.mark_alive();
                    let server = &cfg.servers[server_idx];
                    if connected_once {
                        tracing::info!(
                            "[inputs.mqtt_consumer] reconnected to {} (session present: {})",
                            server.url,
                            ack.session_present
                        );
                    }
                    let key = (server.url.clone(), self.client_id.to_owned());
                    let previous = lock(remembered()).get(&key).cloned();
                    let kept = cfg.persistent_session && ack.session_present;
                    if connected_once && !ack.session_present {
                        inc(&counters.resubscribes);
                    }
                    let (subscribe, unsubscribe) =
                        subscription_changes(topics, cfg.qos, kept.then_some(previous).flatten());
                    connected_once = true;
                    // The request channel has room for these unless rumqttc stopped reading
                    // it; then the service is rebuilt.
                    let sent = unsubscribe
                        .iter()
                        .try_for_each(|t| self.client.try_unsubscribe(t.clone()))
                        .and_then(|()| {
                            if subscribe.is_empty() {
                                return Ok(());
                            }
                            self.client.try_subscribe_many(
                                subscribe.iter().map(|t| SubscribeFilter::new(t.clone(), qos(cfg.qos))),
                            )
                        });
                    if let Err(e) = sent {
                        failure = Some(GatherError::Failed(format!("cannot subscribe: {e}")));
                        break;
                    }
                    lock(remembered()).insert(key, (topics.to_vec(), cfg.qos));
                }
                Ok(Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    last_message = Some(Instant::now());
                    counters.since_last.store(0, Ordering::Relaxed);
                    ping_sent = None;
                    ctx.mark_alive();
                    inc(&counters.received);
                    if publish.dup {
                        inc(&counters.duplicates);
                    }
                    inc(&counters.in_flight);
                    self.held.push_back(Delivery {
                        publish,
                        connection: self.connection,
                    });
                }
                Ok(Event::Incoming(rumqttc::Packet::SubAck(ack))) => {
                    ping_sent = None;
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Failure))
                    {
                        ctx.error_once(
                            "subscribe refused",
                            format_args!(
                                "the broker refused a subscription among {:?}",
                                cfg.topics
                            ),
                        );
                    }
                }
                Ok(Event::Outgoing(Outgoing::PingReq)) => {
                    if ping_sent.is_none() {
                        ping_sent = Some(Instant::now());
                    }
                }
                Ok(Event::Incoming(_)) => ping_sent = None,
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    connected = false;
                    ping_sent = None;
                    if connected_once {
                        inc(&counters.reconnects);
                    }
                    let server = &cfg.servers[server_idx].url;
                    ctx.error_once(
                        &cause(&e),
                        format_args!("{server}: {}; retrying with backoff", explain(&e)),
                    );
                    wait = Some(backoff(&mut attempt, cfg.max_reconnect_interval));
                }
            }
        }
        // Stop: messages not handed to the handler stay unacknowledged (redelivered); the
        // handler stops at once; its last replies are sent, then DISCONNECT.
        let unhandled = self.held.len() as u64;
        counters.in_flight.fetch_sub(unhandled, Ordering::Relaxed);
        self.held.clear();
        drop(tx);
        while let Some(r) = reply_rx.recv().await {
            self.replies.push_back(r);
        }
        if connected {
            let flush = async {
                loop {
                    self.flush_replies();
                    if self.replies.is_empty() {
                        let _ = self.client.try_disconnect();
                    }
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                        _ => {}
                    }
                }
            };
            let _ = tokio::time::timeout(STOP_FLUSH, flush).await;
        }
        failure.map_or(Ok(()), Err)
    }
}

/// What to subscribe to and unsubscribe from on a new connection: everything when the broker
/// kept no session (or we do not know what it holds), else the difference with what this
/// process last subscribed with that session (all again when the QoS changed: a SUBSCRIBE
/// replaces the QoS of an existing subscription).
fn subscription_changes(
    topics: &[String],
    qos: u8,
    kept: Option<(Vec<String>, u8)>,
) -> (Vec<String>, Vec<String>) {
    match kept {
        Some((prev, prev_qos)) => {
            let subscribe = topics
                .iter()
                .filter(|t| prev_qos != qos || !prev.contains(t))
                .cloned()
                .collect();
            let unsubscribe = prev.into_iter().filter(|t| !topics.contains(t)).collect();
            (subscribe, unsubscribe)
        }
        None => (topics.to_vec(), Vec::new()),
    }
}

/// The delay before reconnection attempt `attempt` (then incremented): 1 s doubling up to
/// `max`, ±20 % jitter so instances that lost the same broker do not come back in step.
fn backoff(attempt: &mut u32, max: Duration) -> Duration {
    let exp = RECONNECT_BASE.saturating_mul(1u32 << (*attempt).min(16));
    *attempt = attempt.saturating_add(1);
    exp.min(max).mul_f64(0.8 + 0.4 * crate::rand::unit_f64())
}

async fn handle(
    cfg: &Config,
    ctx: &ServiceCtx,
    mut rx: tokio::sync::mpsc::Receiver<Delivery>,
    replies: tokio::sync::mpsc::UnboundedSender<Reply>,
    counters: &Counters,
) -> Result<(), GatherError> {
    let cancel = ctx.cancel();
    loop {
        let d = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            d = rx.recv() => match d {
                Some(d) => d,
                None => break,
            },
        };
        let p = &d.publish;
        let parsed = ctx.isolate(|| parse_message(cfg, &p.topic, &p.payload, now_ns()));
        let failure = match parsed {
            Ok(Ok(metrics)) => {
                let mut acc = ctx.accumulator();
                for m in metrics {
                    acc.add(m);
                }
                if ctx.queue_lossless(acc).await.is_err() {
                    // Stopping: not queued, so not acknowledged; the broker redelivers it.
                    counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                None
            }
            Ok(Err(e)) => Some(("unparsable message", e)),
            Err(panic) => Some(("parser panicked", panic)),
        };
        if let Some((what, why)) = failure {
            inc(&counters.parse_errors);
            ctx.error_once(
                what,
                format_args!(
                    "{what} on topic {:?} ({} bytes): {why}{}; further ones are counted in parse_errors",
                    p.topic,
                    p.payload.len(),
                    if cfg.dead_letter_topic.is_some() { "; dead-lettered" } else { "" }
                ),
            );
            if cfg.dead_letter_topic.is_some() {
                let _ = replies.send(Reply::DeadLetter(p.payload.clone()));
            }
        }
        if p.qos != QoS::AtMostOnce {
            let _ = replies.send(Reply::Ack {
                publish: d.publish,
                connection: d.connection,
            });
        }
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    // Messages still waiting in the channel stay unacknowledged.
    rx.close();
    while let Ok(_d) = rx.try_recv() {
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut a = 0;
        let max = Duration::from_secs(30);
        let d: Vec<f64> = (0..8).map(|_| backoff(&mut a, max).as_secs_f64()).collect();
        for (got, want) in d.iter().zip([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]) {
            assert!(*got >= want * 0.8 && *got <= want * 1.2, "{got} vs {want}");
        }
    }

    #[test]
    fn subscriptions_follow_the_session() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let now = t(&["a", "b/#"]);
        assert_eq!(subscription_changes(&now, 1, None), (now.clone(), vec![]));
        assert_eq!(
            subscription_changes(&now, 1, Some((t(&["a", "old"]), 1))),
            (t(&["b/#"]), t(&["old"]))
        );
        assert_eq!(
            subscription_changes(&now, 1, Some((now.clone(), 1))),
            (vec![], vec![])
        );
        assert_eq!(
            subscription_changes(&now, 2, Some((now.clone(), 1))),
            (now.clone(), vec![])
        );
    }

    #[test]
    fn random_client_ids_differ() {
        let a = random_client_id();
        assert!(a.starts_with("metrics-agent-") && a.len() == 22, "{a}");
        assert_ne!(a, random_client_id());
    }
}
