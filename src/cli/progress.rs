//! How far an import has got: a bar on a terminal, plain lines otherwise
//! (a log file or a CI job gets text, not control characters).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A plain line at least this often when the file's size is unknown.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The counts an import keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub rejected: u64,
}

impl Tally {
    pub fn done(&self) -> u64 {
        self.created + self.updated + self.rejected
    }
}

pub struct Progress {
    what: String,
    started: Instant,
    file_size: Option<u64>,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Lines {
        last_line: Instant,
        /// The last tenth of the file a line was printed for.
        last_tenth: u64,
    },
}

impl Progress {
    /// `what` names the import (`people from contacts.csv`).
    pub fn new(what: String, file_size: Option<u64>) -> Self {
        let display = if std::io::stderr().is_terminal() {
            Display::Bar(bar(file_size))
        } else {
            Display::Lines {
                last_line: Instant::now(),
                last_tenth: 0,
            }
        };
        Self {
            what,
            started: Instant::now(),
            file_size,
            display,
        }
    }

    /// Shows `tally`, with the rows up to `bytes` into the file taken: the
    /// bar moves; a line is printed at each tenth of the file, or every few
    /// seconds when its size is unknown.
    pub fn update(&mut self, tally: &Tally, bytes: u64) {
        // Rows taken, not answered: a people segment is answered at its end.
        let rate = self.rate(tally.read);
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!(
                    "{} rows read, {rate:.0} rows/s, {} rejected",
                    tally.read, tally.rejected
                ));
            }
            Display::Lines {
                last_line,
                last_tenth,
            } => {
                let tenth = self
                    .file_size
                    .filter(|size| *size > 0)
                    .map(|size| bytes.min(size) * 10 / size);
                let due = match tenth {
                    Some(tenth) => tenth > *last_tenth,
                    None => last_line.elapsed() >= PLAIN_EVERY,
                };
                if due {
                    let share = self
                        .file_size
                        .filter(|size| *size > 0)
                        .map(|size| format!(" ({}% of the file)", bytes.min(size) * 100 / size));
                    eprintln!(
                        "importing {}: {} rows read{}, {rate:.0} rows/s, {} created, {} updated, {} rejected",
                        self.what,
                        tally.read,
                        share.unwrap_or_default(),
                        tally.created,
                        tally.updated,
                        tally.rejected
                    );
                    *last_line = Instant::now();
                    *last_tenth = tenth.unwrap_or(0);
                }
            }
        }
    }

    /// A line of its own (a rejection), above the bar when there is one.
    pub fn println(&self, line: &str) {
        match &self.display {
            Display::Bar(bar) => bar.println(line),
            Display::Lines { .. } => eprintln!("{line}"),
        }
    }

    /// Removes the bar; the summary follows as a plain line.
    pub fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn rate(&self, rows: u64) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            rows as f64 / seconds
        } else {
            0.0
        }
    }
}

fn bar(file_size: Option<u64>) -> ProgressBar {
    let bar = match file_size {
        Some(size) => ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {percent:>3}% {msg} (ETA {eta})",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template")),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
