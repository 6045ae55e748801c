//! Scenario (d), the mixed stream: alerts at a fixed rate over HTTP while mails are delivered
//! into the Maildir at a fixed rate, for the same time. Reports the alerts' ack latency under
//! the mail load, the mails' commit latency, how long after the stream the last mail was
//! committed, and what the daemon itself counted (mails opened, request tickets), so
//! `bench/run.sh` can check that every mail opened exactly one ticket.

use std::time::Duration;

use crate::{mail, open_loop};

/// How long after the last delivery mails may still be arriving in cur/.
const MAIL_DEADLINE: Duration = Duration::from_secs(120);

/// Runs both streams at once and prints the scenario's line.
pub async fn run(
    client: &reqwest::Client,
    alerts: open_loop::Plan,
    mails: mail::Plan,
) -> anyhow::Result<()> {
    let delivery =
        tokio::task::spawn_blocking(move || mail::deliver_and_watch(&mails, MAIL_DEADLINE));
    let alerted = open_loop::run(client, &alerts).await;
    let mut mailed = delivery.await??;
    let text = client
        .get(format!("{}/metrics", alerts.url))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    alerted
        .line(&alerts)
        .add("mails", mailed.delivered)
        .add("mails_in_cur", mailed.committed)
        .add("mails_left_in_new", mailed.left_in_new)
        .latencies("mail_", &mut mailed.latencies)
        .add(
            "mail_last_after_stream",
            format!("{:.2}", mailed.last_after_stream.as_secs_f64() * 1e3),
        )
        .add(
            "mails_opened",
            sum(&text, "itsmd_mails_processed_total{", "outcome=\"opened\""),
        )
        .add(
            "request_tickets",
            sum(&text, "itsmd_tickets{", "kind=\"request\""),
        )
        .print();
    Ok(())
}

/// The sum of the samples of metric `family` (written with its `{`) whose labels contain
/// `label`, in Prometheus text exposition.
fn sum(text: &str, family: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(family) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
