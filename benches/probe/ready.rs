//! Restart to ready: polls a readiness URL until it answers 200 and reports the time since
//! the daemon was exec'd (a wall-clock instant the caller took just before starting it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::Line;

/// Time between polls: the resolution of the measurement.
const POLL: Duration = Duration::from_millis(2);

/// Waits up to `deadline` for `url` to answer 200; prints `ready_ms`, the time from
/// `since_ns` (nanoseconds since the Unix epoch) to the first 200.
pub async fn run(
    client: &reqwest::Client,
    url: &str,
    since_ns: u128,
    deadline: Duration,
) -> anyhow::Result<()> {
    let since = UNIX_EPOCH + Duration::from_nanos(u64::try_from(since_ns)?);
    loop {
        let answered = client.get(url).timeout(Duration::from_secs(1)).send().await;
        let now = SystemTime::now();
        let waited = now.duration_since(since).unwrap_or_default();
        if answered.is_ok_and(|r| r.status().is_success()) {
            Line::default()
                .add("ready_ms", format!("{:.0}", waited.as_secs_f64() * 1e3))
                .print();
            return Ok(());
        }
        anyhow::ensure!(waited < deadline, "{url} not ready after {waited:?}");
        tokio::time::sleep(POLL).await;
    }
}
