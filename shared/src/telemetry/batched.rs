//! Log lines gathered in memory and written to stdout in batches by a thread of their own, for
//! `crm serve`: a line per request and per applied event was a `write` call each on the threads
//! that answer webhooks and apply events (docs/PERFORMANCE.md, "Load"). A Lambda keeps writing each
//! line at once, since a frozen process would hold back what it had not written.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line waits for its batch at most.
const PERIOD: Duration = Duration::from_millis(50);
/// A writer finding this much pending writes it out itself, so a burst cannot grow memory unbounded.
const MOST_PENDING: usize = 1 << 20;

/// Where the lines gather, then go to `out`.
struct Lines<W> {
    pending: Mutex<Vec<u8>>,
    out: Mutex<W>,
    /// Set once the writing thread stops: a line logged later (while the process winds down) is
    /// written at once rather than left in memory.
    unbatched: Arc<AtomicBool>,
}

impl<W: Write> Lines<W> {
    fn lock_pending(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while appending leaves at worst a partial line; logging goes on.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes out what is pending. `out` is taken before `pending` is let go, so batches reach it in
    /// the order they were gathered.
    fn write_out(&self, mut pending: MutexGuard<'_, Vec<u8>>) -> io::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut *pending);
        drop(pending);
        out.write_all(&batch)?;
        out.flush()
    }
}

/// The `MakeWriter` of batched lines.
pub struct BatchedWriter<W>(Arc<Lines<W>>);

/// What one log line is written through.
pub struct Line<'a, W>(&'a Lines<W>);

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.lock_pending();
        pending.extend_from_slice(bytes);
        if pending.len() >= MOST_PENDING || self.0.unbatched.load(Ordering::Acquire) {
            self.0.write_out(pending)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BatchedWriter<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.0)
    }
}

/// Keeps the writing thread; dropping it writes out what is left and ends the thread.
pub struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    unbatched: Arc<AtomicBool>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Before the thread's last write: a line appended after that write is then written by its
        // own writer.
        self.unbatched.store(true, Ordering::Release);
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A writer of batched lines to `out`, and the thread that writes them out every `PERIOD`.
pub fn batched<W: Write + Send + 'static>(out: W) -> io::Result<(BatchedWriter<W>, Flusher)> {
    let unbatched = Arc::new(AtomicBool::new(false));
    let lines =
        Arc::new(Lines { pending: Mutex::new(Vec::new()), out: Mutex::new(out), unbatched: Arc::clone(&unbatched) });
    let (stop, stopped) = mpsc::channel::<()>();
    let writer = Arc::clone(&lines);
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        loop {
            let last = !matches!(stopped.recv_timeout(PERIOD), Err(RecvTimeoutError::Timeout));
            if let Err(e) = writer.write_out(writer.lock_pending()) {
                eprintln!("log lines not written: {e}");
            }
            if last {
                return;
            }
        }
    })?;
    Ok((BatchedWriter(lines), Flusher { stop: Some(stop), thread: Some(thread), unbatched }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("sink").push(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("sink").concat()).expect("UTF-8")
        }

        fn writes(&self) -> usize {
            self.0.lock().expect("sink").len()
        }
    }

    #[test]
    fn lines_go_out_together_in_order_and_all_of_them_by_the_stop() {
        let sink = Sink::default();
        let (writer, flusher) = batched(sink.clone()).expect("thread");
        for i in 0..100 {
            writer.make_writer().write_all(format!("line {i}\n").as_bytes()).expect("write");
        }
        assert!(sink.writes() < 100, "a line is not a write of its own");
        std::thread::sleep(PERIOD * 3);
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(sink.text(), expected, "written within a period, in order");
        writer.make_writer().write_all(b"last\n").expect("write");
        drop(flusher);
        assert!(sink.text().ends_with("line 99\nlast\n"), "the stop writes out what is left");
        writer.make_writer().write_all(b"after\n").expect("write");
        assert!(sink.text().ends_with("last\nafter\n"), "a line after the stop is written at once");
    }

    #[test]
    fn a_writer_finding_too_much_pending_writes_it_out_itself() {
        let sink = Sink::default();
        let (writer, _flusher) = batched(sink.clone()).expect("thread");
        let line = vec![b'x'; MOST_PENDING];
        writer.make_writer().write_all(&line).expect("write");
        assert_eq!(sink.text().len(), MOST_PENDING, "written before the period ends");
    }
}
