//! Output that many threads hand over whole and one thread writes, gathered: the log on
//! stderr, plugins' output on stdout. A write a log line or a message would cost the
//! session's thread a syscall; a channel a message would cost an allocation freed on
//! another thread. Here output is copied into one buffer that the writing thread swaps for
//! an empty one every few milliseconds, and both buffers keep their capacity.
//!
//! While output keeps coming the thread wakes on its own; it waits to be woken only after
//! a quiet spell, so that a busy server's sessions never pay for a wake-up. Output whose
//! caller must know it is written (a message printed before its 250) is handed over
//! urgently: the thread writes at once, with whatever else has gathered meanwhile, and
//! [`GatheringWriter::written`] waits for it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How long output gathers before it is written.
/// 10 ms: a wake-up costs this thread ~14 µs on a VM, so at 1,400 messages a second
/// (a log line each) 2 ms spent 4 µs of CPU a message.
const GATHER: Duration = Duration::from_millis(10);
/// Rounds of [`GATHER`] without output before the thread waits to be woken.
const QUIET_ROUNDS: u32 = 10;
/// A buffer bigger than this after a large output is let go rather than kept.
const KEEP: usize = 1024 * 1024;

/// What keeps the output waiting to be written from growing without bound.
#[derive(Clone, Copy)]
pub enum Bound {
    /// Past this many octets, whoever hands output over writes it all itself (the log:
    /// handed over from code that cannot wait).
    WriteThrough(usize),
    /// Callers take room from this semaphore before they hand output over (and forget
    /// the permits); the thread gives it back once the output is written. Output then
    /// waits in the caller, never in a blocked write on a runtime thread (stdout may be a
    /// pipe nobody reads).
    Room(&'static Semaphore),
}

struct Pending {
    bytes: Vec<u8>,
    /// Permits of [`Bound::Room`] that `bytes` hold.
    room: u32,
    /// The thread waits on `wake`: the next output must wake it.
    parked: bool,
    /// Outputs handed over so far; each is a ticket for [`GatheringWriter::written`].
    handed: u64,
    /// An output handed over is waited for: write without gathering longer.
    urgent: bool,
}

/// Where batches are written, and the buffer a batch is swapped into to be written
/// (swapped, not taken: both buffers keep their capacity, whoever writes).
struct Output {
    to: Box<dyn Write + Send>,
    batch: Vec<u8>,
}

struct Shared {
    name: &'static str,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held while writing, and taken before `pending` is let go: a batch goes out after
    /// the one before it, whoever writes it.
    out: Mutex<Output>,
    bound: Bound,
    /// No thread: every output is written at once.
    direct: AtomicBool,
    /// `out` never blocks for long (a regular file): an urgent output is written by its
    /// caller, which costs a write instead of waking the thread.
    writes_promptly: bool,
    /// A failed write has been logged: an output that is gone stays gone.
    reported: AtomicBool,
    /// The tickets written (or failed: a failed write is not retried).
    written: tokio::sync::watch::Sender<u64>,
}

/// A handle on one gathering writer; clones share it.
#[derive(Clone)]
pub struct GatheringWriter {
    shared: Arc<Shared>,
}

impl GatheringWriter {
    /// Starts the thread (named `name`) that writes to `out`. If it cannot start, output
    /// is written as it is handed over, and a line on stderr says so.
    pub fn start(name: &'static str, out: Box<dyn Write + Send>, bound: Bound) -> GatheringWriter {
        GatheringWriter::start_to(name, out, bound, false)
    }

    /// As [`GatheringWriter::start`]; `writes_promptly`: `out` is one whose writes never
    /// wait on a reader (a regular file), so urgent output is written by its caller.
    pub fn start_to(
        name: &'static str,
        out: Box<dyn Write + Send>,
        bound: Bound,
        writes_promptly: bool,
    ) -> GatheringWriter {
        let shared = Arc::new(Shared {
            name,
            pending: Mutex::new(Pending {
                bytes: Vec::new(),
                room: 0,
                parked: false,
                handed: 0,
                urgent: false,
            }),
            wake: Condvar::new(),
            out: Mutex::new(Output {
                to: out,
                batch: Vec::new(),
            }),
            bound,
            direct: AtomicBool::new(false),
            writes_promptly,
            reported: AtomicBool::new(false),
            written: tokio::sync::watch::Sender::new(0),
        });
        let gatherer = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || gather(&gatherer));
        if let Err(e) = started {
            shared.direct.store(true, Ordering::Relaxed);
            eprintln!("cannot start the {name} thread ({e}); writing its output at once");
        }
        GatheringWriter { shared }
    }

    /// Hands `bytes` over, to be written whole within a few milliseconds, after everything
    /// handed over before. `room`: the permits of [`Bound::Room`] the caller took for it.
    pub fn hand_over(&self, bytes: &[u8], room: u32) {
        self.hand(bytes, room, false);
    }

    /// Hands `bytes` over to be written now, and returns the ticket that
    /// [`GatheringWriter::written`] waits for.
    pub fn hand_over_urgently(&self, bytes: &[u8], room: u32) -> u64 {
        self.hand(bytes, room, true)
    }

    fn hand(&self, bytes: &[u8], room: u32, urgent: bool) -> u64 {
        let mut pending = self.shared.lock_pending();
        pending.bytes.extend_from_slice(bytes);
        pending.room += room;
        pending.handed += 1;
        let ticket = pending.handed;
        let full = match self.shared.bound {
            Bound::WriteThrough(most) => pending.bytes.len() >= most,
            Bound::Room(_) => false,
        };
        if urgent && self.shared.writes_promptly {
            self.shared.write_swapped(pending);
        } else if full || self.shared.direct.load(Ordering::Relaxed) {
            self.shared.write_pending(pending);
        } else if pending.parked || (urgent && !pending.urgent) {
            pending.parked = false;
            pending.urgent |= urgent;
            self.shared.wake.notify_one();
        }
        ticket
    }

    /// Waits until the output of `ticket` has been written (or its write failed, which
    /// is logged).
    pub async fn written(&self, ticket: u64) {
        let mut written = self.shared.written.subscribe();
        // The sender lives as long as this handle: the wait ends only with the write.
        let _ = written.wait_for(|&done| done >= ticket).await;
    }

    /// Writes `bytes` now, on the calling thread, after everything handed over before.
    pub fn write_now(&self, bytes: &[u8]) {
        let mut pending = self.shared.lock_pending();
        pending.bytes.extend_from_slice(bytes);
        self.shared.write_pending(pending);
    }

    /// Writes everything handed over so far, waiting at most `patience` (at exit: a
    /// stdout that nobody reads must not keep the process from ending).
    pub fn flush(&self, patience: Duration) {
        let (done, flushed) = std::sync::mpsc::channel();
        let writer = self.clone();
        let started = std::thread::Builder::new()
            .name(format!("{}-flush", self.shared.name))
            .spawn(move || {
                writer.write_now(&[]);
                let _ = done.send(());
            });
        if started.is_ok() {
            let _ = flushed.recv_timeout(patience);
        }
    }
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_out(&self) -> MutexGuard<'_, Output> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what is pending after letting it go (the thread's way, and an urgent
    /// output's): output handed over meanwhile is not held up by a slow write, and goes
    /// out after this one (the output lock is taken before `pending` is let go).
    fn write_swapped(&self, mut pending: MutexGuard<'_, Pending>) {
        let mut guard = self.lock_out();
        let out = &mut *guard;
        std::mem::swap(&mut pending.bytes, &mut out.batch);
        let room = std::mem::take(&mut pending.room);
        let tickets = pending.handed;
        drop(pending);
        let written = write_all(&mut out.to, &out.batch);
        clear_keeping(&mut out.batch, KEEP);
        // Let go first: a failed write is logged, and the log may be this very writer.
        drop(guard);
        self.done_with(room, tickets, written);
    }

    /// Writes what is pending while holding it: nothing is handed over meanwhile.
    fn write_pending(&self, mut pending: MutexGuard<'_, Pending>) {
        let written = write_all(&mut self.lock_out().to, &pending.bytes);
        clear_keeping(&mut pending.bytes, KEEP);
        let room = std::mem::take(&mut pending.room);
        let tickets = pending.handed;
        drop(pending);
        self.done_with(room, tickets, written);
    }

    /// After a batch's write: gives back the room it held, and logs a failed write once a
    /// writer (if this is the log's own writer, that line fails the same way, and is not
    /// said again).
    fn done_with(&self, room: u32, tickets: u64, written: std::io::Result<()>) {
        if let Bound::Room(semaphore) = self.bound {
            semaphore.add_permits(room as usize);
        }
        // Batches are written in order, so the watermark only rises.
        self.written.send_if_modified(|done| {
            let rises = tickets > *done;
            *done = (*done).max(tickets);
            rises
        });
        if let Err(error) = written
            && !self.reported.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(writer = self.name, "cannot write: {error}; what it is handed is lost");
        }
    }
}

fn write_all(out: &mut Box<dyn Write + Send>, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    out.write_all(bytes)?;
    out.flush()
}

/// Empties a buffer for reuse, keeping its capacity unless one large output made it
/// bigger than `most`.
pub fn clear_keeping(bytes: &mut Vec<u8>, most: usize) {
    if bytes.capacity() > most {
        *bytes = Vec::new();
    } else {
        bytes.clear();
    }
}

fn gather(shared: &Shared) {
    let mut quiet = 0;
    loop {
        let pending = shared.lock_pending();
        // Gathers for a while, unless an output is waited for.
        let waited = shared.wake.wait_timeout_while(pending, GATHER, |p| !p.urgent);
        let mut pending = waited.map_or_else(|e| e.into_inner().0, |(pending, _)| pending);
        pending.urgent = false;
        if pending.bytes.is_empty() {
            // Whatever was handed over has been written (an empty output too).
            let tickets = pending.handed;
            shared
                .written
                .send_if_modified(|done| std::mem::replace(done, tickets) != tickets);
            quiet += 1;
            if quiet < QUIET_ROUNDS {
                continue;
            }
            while pending.bytes.is_empty() {
                pending.parked = true;
                pending = shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            quiet = 0;
            // Woken by the first output: the output of the next moment joins it.
            continue;
        }
        quiet = 0;
        shared.write_swapped(pending);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An output that keeps what is written, or blocks every write while `blocked`.
    #[derive(Clone, Default)]
    struct Recorder {
        written: Arc<Mutex<Vec<u8>>>,
        blocked: Arc<AtomicBool>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            while self.blocked.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }

        /// Waits (5 s at most) until `expected` is written.
        fn wait_for(&self, expected: &str) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.text() != expected && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(self.text(), expected);
        }
    }

    fn writer(bound: Bound) -> (GatheringWriter, Recorder) {
        let recorder = Recorder::default();
        let writer = GatheringWriter::start("test-writer", Box::new(recorder.clone()), bound);
        (writer, recorder)
    }

    #[tokio::test]
    async fn an_urgent_output_to_a_prompt_writer_is_written_by_its_caller() {
        let recorder = Recorder::default();
        let writer = GatheringWriter::start_to(
            "test-writer",
            Box::new(recorder.clone()),
            Bound::WriteThrough(1 << 20),
            true,
        );
        writer.hand_over(b"log\n", 0);
        let ticket = writer.hand_over_urgently(b"message\n", 0);
        // Written before the hand-over returned, after what came before it.
        assert_eq!(recorder.text(), "log\nmessage\n");
        tokio::time::timeout(Duration::from_secs(1), writer.written(ticket))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_urgent_output_is_written_before_its_wait_ends_with_what_came_before() {
        let (writer, recorder) = writer(Bound::WriteThrough(1 << 20));
        // Parked first (a quiet spell), then gathering: the urgent output wakes it both times.
        std::thread::sleep(GATHER * (QUIET_ROUNDS + 2));
        for round in 0..2 {
            writer.hand_over(format!("log {round}\n").as_bytes(), 0);
            let ticket = writer.hand_over_urgently(format!("message {round}\n").as_bytes(), 0);
            writer.written(ticket).await;
            let expected: String = (0..=round).map(|r| format!("log {r}\nmessage {r}\n")).collect();
            assert_eq!(recorder.text(), expected, "written when the wait ended");
        }
        // A ticket already written does not wait.
        tokio::time::timeout(Duration::from_secs(1), writer.written(1))
            .await
            .unwrap();
    }

    #[test]
    fn output_handed_over_is_written_whole_and_in_order_by_the_thread() {
        let (writer, recorder) = writer(Bound::WriteThrough(1 << 20));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        writer.hand_over(format!("<{t}:{i}>\n").as_bytes(), 0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while recorder.text().lines().count() < 400 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let text = recorder.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 400, "{text}");
        for t in 0..4 {
            let own: Vec<String> = lines
                .iter()
                .filter(|line| line.starts_with(&format!("<{t}:")))
                .map(|line| line.to_string())
                .collect();
            let expected: Vec<String> = (0..100).map(|i| format!("<{t}:{i}>")).collect();
            assert_eq!(own, expected, "each thread's output whole and in its order");
        }
    }

    #[test]
    fn a_parked_thread_is_woken_by_the_next_output() {
        let (writer, recorder) = writer(Bound::WriteThrough(1 << 20));
        writer.hand_over(b"one\n", 0);
        recorder.wait_for("one\n");
        // Long enough for the quiet spell: the thread now waits to be woken.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !writer.shared.lock_pending().parked && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(writer.shared.lock_pending().parked);
        writer.hand_over(b"two\n", 0);
        recorder.wait_for("one\ntwo\n");
    }

    #[test]
    fn written_now_after_what_was_handed_over_and_past_the_bound_at_once() {
        let (writer, recorder) = writer(Bound::WriteThrough(10));
        recorder.blocked.store(true, Ordering::Relaxed);
        // The thread takes "first" and blocks writing it; "second" waits in the buffer.
        writer.hand_over(b"first ", 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !writer.shared.lock_pending().bytes.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        writer.hand_over(b"second ", 0);
        let urgent = {
            let writer = writer.clone();
            std::thread::spawn(move || writer.write_now(b"urgent "))
        };
        std::thread::sleep(Duration::from_millis(20));
        recorder.blocked.store(false, Ordering::Relaxed);
        urgent.join().unwrap();
        assert_eq!(recorder.text(), "first second urgent ", "in the order handed over");
        // Eleven octets pending: over the bound of ten, written by the caller.
        writer.hand_over(b"0123456789a", 0);
        assert_eq!(recorder.text(), "first second urgent 0123456789a");
    }

    #[test]
    fn room_is_given_back_once_written() {
        static ROOM: Semaphore = Semaphore::const_new(10);
        let (writer, recorder) = writer(Bound::Room(&ROOM));
        ROOM.try_acquire_many(3).unwrap().forget();
        writer.hand_over(b"held", 3);
        if ROOM.available_permits() == 10 {
            assert_eq!(recorder.text(), "held", "room given back before the output was written");
        }
        recorder.wait_for("held");
        let deadline = Instant::now() + Duration::from_secs(5);
        while ROOM.available_permits() != 10 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(ROOM.available_permits(), 10);
    }

    #[test]
    fn room_is_given_back_when_the_output_is_gone() {
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        static ROOM: Semaphore = Semaphore::const_new(4);
        let writer = GatheringWriter::start("test-gone", Box::new(Gone), Bound::Room(&ROOM));
        // Twice the room there is: the first half must come back for the second to fit.
        for _ in 0..2 {
            let deadline = Instant::now() + Duration::from_secs(5);
            let permits = loop {
                match ROOM.try_acquire_many(4) {
                    Ok(permits) => break permits,
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("room never given back: {e}"),
                }
            };
            permits.forget();
            writer.hand_over(b"lost", 4);
        }
    }

    #[test]
    fn flush_writes_what_is_pending_and_gives_up_on_a_blocked_output() {
        let (writer, recorder) = writer(Bound::WriteThrough(1 << 20));
        writer.hand_over(b"pending", 0);
        writer.flush(Duration::from_secs(5));
        assert_eq!(recorder.text(), "pending");
        recorder.blocked.store(true, Ordering::Relaxed);
        writer.hand_over(b" stuck", 0);
        let started = Instant::now();
        writer.flush(Duration::from_millis(50));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "flush kept waiting on an output that blocks"
        );
        recorder.blocked.store(false, Ordering::Relaxed);
        recorder.wait_for("pending stuck");
    }
}
