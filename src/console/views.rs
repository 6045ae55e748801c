//! Small renderings shared by the queue and the ticket page: states, SLA clocks as
//! text (time left, paused, breached), durations, times.

use maud::{Markup, html};

use crate::sla::view::ClockView;

/// Seconds as "2h 05m", "12m", "45s".
pub fn duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

pub use crate::clock::readable as time;

/// One clock's standing in words, and the CSS class that colours it (the words carry the
/// meaning; the colour only repeats it).
pub fn clock_text(c: &ClockView) -> (String, &'static str) {
    if let Some(p) = &c.problem {
        return (format!("cannot compute: {p}"), "warning");
    }
    if c.breached {
        let by = if c.remaining_secs < 0 {
            format!(" by {}", duration(c.remaining_secs))
        } else {
            String::new()
        };
        let when = if c.phase == "running" || c.phase == "paused" {
            ""
        } else {
            " (stopped)"
        };
        return (format!("breached{by}{when}"), "breached");
    }
    match c.phase {
        // The resolution pauses the clock until the ticket is closed or reopened: stopped,
        // as an agent reads it.
        "paused" if c.pause_reason.as_deref() == Some("resolved") => (
            format!(
                "stopped by the resolution, within target ({} to spare)",
                duration(c.remaining_secs)
            ),
            "muted",
        ),
        "paused" => (
            match &c.pause_reason {
                Some(r) => format!("paused ({r}), {} left", duration(c.remaining_secs)),
                None => format!("paused, {} left", duration(c.remaining_secs)),
            },
            "paused",
        ),
        "running" => {
            let warn = !c.reached.is_empty();
            (
                format!("{} left", duration(c.remaining_secs)),
                if warn { "warning" } else { "" },
            )
        }
        "stopped" => ("stopped, within target".to_string(), "muted"),
        _ => ("not started".to_string(), "muted"),
    }
}

/// The clocks of a ticket, one per line: "response: 3h 58m left".
pub fn clocks(list: &[ClockView]) -> Markup {
    html! {
        @for c in list {
            @let (text, class) = clock_text(c);
            div.clock { span.muted { (c.name) ": " } span class=(class) { (text) } }
        }
    }
}
