//! Service inputs (not ticked: they run continuously and hand metrics over as "messages"
//! arrive) under the same isolation as gathers, proven with the test-only `chaos` input in
//! `service = true` mode: poison messages, a service that fails, one that hangs ignoring
//! cancellation, one that blocks its thread, and a flood behind a stalled reader.

use std::time::{Duration, Instant};

use crate::harness::*;

const SEC: Duration = Duration::from_secs(1);

/// The `seq` fields of measurement `m`, in stdout order.
fn seqs(lines: &[String], m: &str) -> Vec<i64> {
    lines
        .iter()
        .filter(|l| measurement(l) == m)
        .map(|l| parse_line(l).int("seq").expect("seq"))
        .collect()
}

/// Checks that `seqs` count 1, 2, 3... without a gap or repeat (a chaos service numbers its lines
/// across its own restarts, so any gap is a lost line).
fn assert_gapless(m: &str, seqs: &[i64]) {
    assert!(!seqs.is_empty(), "{m}: no lines");
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s, i as i64 + 1, "{m}: line {i} has seq {s}");
    }
}

#[test]
fn poison_messages_cost_one_message_and_a_failing_service_is_rebuilt_with_backoff() {
    let cfg = "[[inputs.chaos]]\nservice = true\nrate = 200\nmode = \"panic\"\nevery = 10\nalias = \"poison\"\nname_override = \"poison\"\n\
               [[inputs.chaos]]\nservice = true\nrate = 100\nmode = \"error\"\nevery = 20\nalias = \"failing\"\nname_override = \"failing\"\n\
               [[inputs.internal]]\ninterval = \"500ms\"\n";
    let mut a = Agent::start(cfg);
    let t0 = Instant::now();
    // Long enough for the failing one's 1 s and 2 s backoffs (each ±20 %) to pass.
    a.wait_for("the failing service's second restart", 15 * SEC, |l| {
        gather_stat(l, "failing", "restarts").unwrap_or(0) >= 2
    });
    let ran = t0.elapsed();
    let n = a.line_count();
    a.wait_for("a fresh internal line", 3 * SEC, |l| {
        l[n..]
            .iter()
            .any(|l| measurement(l) == "metrics_agent_gather")
    });
    a.signal(libc::SIGTERM);
    let (st, _) = a.wait_exit(5 * SEC);
    assert!(st.success(), "{st:?}\n{}", a.stderr());
    let lines = a.lines();
    let stderr = a.stderr();

    // Poison: every 10th message panics inside its handler; the service carries on, so its
    // lines count on without a gap and it is never restarted.
    let poison = seqs(&lines, "poison");
    assert_gapless("poison", &poison);
    let panics = gather_stat(&lines, "poison", "panics").unwrap();
    let poisoned = gather_stat(&lines, "poison", "messages_poisoned").unwrap();
    let received = gather_stat(&lines, "poison", "messages_received").unwrap();
    let queued = gather_stat(&lines, "poison", "messages_queued").unwrap();
    // One snapshot: a panic counted, its message not yet (at most one apart).
    assert!(
        panics == poisoned || panics == poisoned + 1,
        "every poison message is one counted panic: {panics} vs {poisoned}"
    );
    assert!(panics >= 5, "{panics} panics in {ran:?}");
    // Every message accounted for; the internal line is a snapshot that may catch one message
    // between being received and being queued.
    let in_hand = received - (poisoned + queued);
    assert!(
        (0..=1).contains(&in_hand),
        "received {received}, poisoned {poisoned}, queued {queued}"
    );
    assert_eq!(gather_stat(&lines, "poison", "restarts"), Some(0));
    // Logged once (same cause), counted always.
    assert_eq!(
        stderr
            .matches("[inputs.chaos::poison] handler panicked: chaos: poison message")
            .count(),
        1,
        "{stderr}"
    );

    // Failing: each failure ends the service; it is rebuilt after 1 s, then 2 s (±20 %), and
    // its lines still count on without a gap (nothing queued is lost, nothing repeated).
    assert_gapless("failing", &seqs(&lines, "failing"));
    let restarts: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("[inputs.chaos::failing] failed: chaos: service failing on purpose"))
        .collect();
    assert!(restarts.len() >= 2, "{stderr}");
    assert!(
        restarts[0].contains("restarting the input in 0.") || restarts[0].contains("in 1."),
        "{}",
        restarts[0]
    );
    assert!(
        restarts[1].contains("in 1.") || restarts[1].contains("in 2."),
        "{}",
        restarts[1]
    );
}

#[test]
fn a_service_that_ignores_cancellation_or_blocks_does_not_hold_up_reload_or_stop() {
    let cfg = "[[inputs.chaos]]\nservice = true\nrate = 100\nmode = \"hang\"\nevery = 20\nalias = \"hang\"\nname_override = \"hang\"\n\
               [[inputs.chaos]]\nservice = true\nrate = 100\nmode = \"block\"\nduration = \"300ms\"\nevery = 50\nalias = \"block\"\nname_override = \"block\"\n\
               [[inputs.chaos]]\ninterval = \"50ms\"\nalias = \"ticked\"\nname_override = \"ticked\"\n";
    let mut a = Agent::start(cfg);
    // The hanging service has hung once it wrote its 19th line and no more.
    a.wait_for("the hang service to hang", 10 * SEC, |l| {
        seqs(l, "hang").len() >= 20
    });
    std::thread::sleep(SEC / 2);
    assert_eq!(seqs(&a.lines(), "hang").len(), 20, "hung after message 20");
    // Reload: the hung service is given a second to stop, then aborted; the new one runs.
    let before = seqs(&a.lines(), "ticked").len();
    a.signal(libc::SIGHUP);
    a.wait_stderr(
        "[inputs.chaos::hang] did not stop within 200ms of being cancelled; aborted",
        5 * SEC,
    );
    a.wait_for("the new hang service's lines", 10 * SEC, |l| {
        seqs(l, "hang").len() > 20
    });
    // The ticked input kept gathering through the reload.
    assert!(seqs(&a.lines(), "ticked").len() > before);
    // Stop: bounded by the service stop wait, well inside telegraf's 5 s.
    a.wait_for("the new hang service to hang", 10 * SEC, |l| {
        seqs(l, "hang").len() >= 40
    });
    a.signal(libc::SIGTERM);
    let (st, took) = a.wait_exit(5 * SEC);
    assert!(st.success(), "{st:?}\n{}", a.stderr());
    assert!(took < 3 * SEC, "stop took {took:?}");
    // The blocking service blocked its thread for 300 ms every 50 messages and kept going.
    assert!(seqs(&a.lines(), "block").len() >= 50);
}

#[test]
fn a_flooding_service_waits_for_room_while_probes_lose_their_oldest_lines() {
    // 100-line queue, a service flooding 20 messages of 10 lines a second... behind a reader
    // that does not read: the service's lines wait (nothing lost), the ticked input's are the
    // ones evicted or refused, and memory stays bounded.
    let cfg = "[agent]\nmetric_buffer_limit = 100\n\
               [[inputs.chaos]]\nservice = true\nrate = 200\nlines = 10\nalias = \"flood\"\nname_override = \"flood\"\n\
               [[inputs.chaos]]\ninterval = \"20ms\"\nalias = \"probe\"\nname_override = \"probe\"\n\
               [[inputs.internal]]\ninterval = \"1s\"\n";
    let mut a = Agent::start_with(cfg, &[], false);
    std::thread::sleep(SEC);
    let rss1 = a.rss_bytes();
    std::thread::sleep(3 * SEC);
    let rss4 = a.rss_bytes();
    assert!(
        rss4 < rss1 + 2 * 1024 * 1024,
        "RSS grew from {rss1} to {rss4} behind a stalled reader"
    );
    a.resume_reading();
    a.wait_for(
        "the flood to go on after the reader resumed",
        10 * SEC,
        |l| seqs(l, "flood").len() >= 2000,
    );
    // The probe lost lines while the reader stalled, and they were counted.
    a.wait_for(
        "an internal line counting the probe's dropped lines",
        10 * SEC,
        |l| {
            l.iter().any(|l| {
                measurement(l) == "metrics_agent"
                    && parse_line(l).int("metrics_dropped").unwrap_or(0) > 0
            })
        },
    );
    a.signal(libc::SIGTERM);
    let (st, _) = a.wait_exit(5 * SEC);
    assert!(st.success(), "{st:?}\n{}", a.stderr());
    // The flood lost nothing: every line it queued was written, in order.
    assert_gapless("flood", &seqs(&a.lines(), "flood"));
}
