//! The one owner of stdout: a plain thread that takes whole-line batches off the queue, writes
//! them and flushes once per round, so telegraf sees lines promptly and a stalled reader blocks
//! only this thread.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::queue::Queue;
use crate::stats::{self, AgentStats};

/// How long the writer waits, after a wake-up from outside a round (a probe's result), for a
/// round in progress to end so that one write carries both.
const LINGER: Duration = Duration::from_millis(2);
/// Longest sleep of the writer. Closing the queue and the end of a round wake it at once; this
/// bounds how long a round's lines wait when one of its gathers hangs until its timeout.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Bytes the writer takes off the queue per write round. Taken lines are outside the queue's
/// bounds while a stalled reader blocks the write, so this is what memory can exceed
/// `metric_buffer_bytes` by (plus one batch); small enough for that, large enough that a
/// round is still one big write.
const TAKE_BYTES: usize = 64 * 1024;

/// Why the writer stopped.
#[derive(Debug)]
pub enum WriterExit {
    /// The queue was closed and everything in it was written.
    Drained,
    /// The reader went away (EPIPE): nothing more can be delivered.
    ReaderGone,
    Failed(io::Error),
}

pub struct Writer {
    done: mpsc::Receiver<()>,
    thread: std::thread::JoinHandle<WriterExit>,
}

impl Writer {
    /// Starts the writer thread over `out`. `on_stop` runs on the writer thread when it stops for
    /// any reason other than a drained, closed queue (so the agent can shut down).
    pub fn spawn<W, F>(
        out: W,
        queue: Arc<Queue>,
        stats: Arc<crate::stats::Registry>,
        on_stop: F,
    ) -> io::Result<Writer>
    where
        W: Write + Send + 'static,
        F: FnOnce(&WriterExit) + Send + 'static,
    {
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stdout-writer".into())
            .spawn(move || {
                let exit = run(out, &queue, &stats.agent);
                if !matches!(exit, WriterExit::Drained) {
                    on_stop(&exit);
                }
                let _ = tx.send(());
                exit
            })?;
        Ok(Writer { done, thread })
    }

    /// Waits up to `timeout` for the writer to finish; `None` if it is still blocked on stdout.
    pub fn join(self, timeout: Duration) -> Option<WriterExit> {
        match self.done.recv_timeout(timeout) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => self.thread.join().ok(),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        }
    }
}

fn run<W: Write>(mut out: W, queue: &Queue, stats: &AgentStats) -> WriterExit {
    let mut buf: Vec<u8> = Vec::with_capacity(TAKE_BYTES);
    loop {
        let mut batches = queue.take(IDLE_WAIT, TAKE_BYTES);
        if batches.is_empty() {
            if queue.is_closed() {
                return WriterExit::Drained;
            }
            continue;
        }
        let taken: usize = batches.iter().map(|b| b.bytes.len()).sum();
        if taken < TAKE_BYTES && !queue.is_closed() {
            // Woken by a batch from outside a round while a round is gathering: wait (briefly)
            // for the round, so one write and one reader wake-up carry both.
            queue.wait_round_end(LINGER);
            batches.extend(queue.take(Duration::ZERO, TAKE_BYTES - taken));
        }
        buf.clear();
        let mut lines = 0;
        for batch in &batches {
            buf.extend_from_slice(&batch.bytes);
            lines += batch.lines;
        }
        drop(batches);
        if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
            return classify(e);
        }
        stats::add(&stats.lines_written, lines);
        if buf.capacity() > 2 * TAKE_BYTES {
            buf = Vec::with_capacity(TAKE_BYTES);
        }
    }
}

fn classify(e: io::Error) -> WriterExit {
    if e.kind() == io::ErrorKind::BrokenPipe {
        WriterExit::ReaderGone
    } else {
        WriterExit::Failed(e)
    }
}

/// After the last flush, waits (bounded) until the reader has taken everything out of the stdout
/// pipe: telegraf closes its end as soon as the child exits, and bytes still in the pipe then are
/// lost. Returns at once when stdout is not a pipe or socket.
pub fn wait_until_read(limit: Duration) {
    let start = Instant::now();
    loop {
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which is valid for the call.
        let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::FIONREAD, &mut pending) };
        if rc != 0 || pending <= 0 || start.elapsed() >= limit {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::queue::Batch;
    use crate::stats::Registry;

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_pipe_stops_the_writer_and_reports() {
        let q = Arc::new(Queue::new(100, 1 << 20));
        let reg = Arc::new(Registry::default());
        q.push(Batch::new(b"m f=1i 1\n".to_vec(), 1), &reg.agent);
        let (tx, rx) = mpsc::channel();
        let w = Writer::spawn(Broken, q, reg, move |e| {
            let _ = tx.send(matches!(e, WriterExit::ReaderGone));
        })
        .unwrap();
        assert!(matches!(
            w.join(Duration::from_secs(5)),
            Some(WriterExit::ReaderGone)
        ));
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(true));
    }

    #[test]
    fn drains_everything_after_close() {
        let q = Arc::new(Queue::new(100_000, 64 << 20));
        let reg = Arc::new(Registry::default());
        for i in 0..1000 {
            q.push(
                Batch::new(format!("m f={i}i 1\n").into_bytes(), 1),
                &reg.agent,
            );
        }
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let w = Writer::spawn(Shared(buf.clone()), q.clone(), reg.clone(), |_| {}).unwrap();
        q.close();
        assert!(matches!(
            w.join(Duration::from_secs(5)),
            Some(WriterExit::Drained)
        ));
        assert_eq!(
            buf.lock().unwrap().iter().filter(|&&b| b == b'\n').count(),
            1000
        );
        assert_eq!(stats::get(&reg.agent.lines_written), 1000);
    }
}
