//! Logging setup. Logs go to stderr, human-readable by default or one JSON object per line;
//! the level comes from RUST_LOG (default `info`).

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Starts logging; `default_level` applies when RUST_LOG is not set.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only on a terminal: under systemd (journald), in a file or a pipe, escape codes
    // would be written into the log; NO_COLOR turns it off on a terminal too.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            // Every line names the spans it was logged in (`"spans": [{"name": "replay"}]`),
            // so what a replay or a rules test logs is told apart from the daemon's own.
            .with_span_list(true)
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// A sender-controlled text (a Message-ID, a file name) made safe to log: every control
/// character (terminal escape codes, CR and LF that would forge a log line, C1 codes) is
/// written as `\u{..}`. Log it with `%Escaped(&text)`.
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let id = "<a\u{1b}[31mred\r\nfake line\u{9b}@x.example>";
        assert_eq!(
            Escaped(id).to_string(),
            "<a\\u{1b}[31mred\\u{d}\\u{a}fake line\\u{9b}@x.example>"
        );
        assert_eq!(Escaped("<ok-ü@x>").to_string(), "<ok-ü@x>");
    }
}
