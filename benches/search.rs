//! Search and reports on a big store: 100,000 tickets (with their history and a comment on
//! every tenth) over 100 days on the real sled store, indexed by the same code that indexes
//! an old store when the engine opens it (`store::layout::search::ensure`); then the
//! latency of `q=` searches, of combined filters, of a time range, of sorted listings, and
//! of a 30-day report.
//!
//!   cargo bench --bench search
//!   TICKETS=20000 QUERIES=100 cargo bench --bench search
//!
//! Prints one `name=value` line per measurement (p50, p99 and max in milliseconds).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use itsmd::config::{Config, StoreConfig};
use itsmd::reports::aggregate::SlaSetup;
use itsmd::store::layout::{self, TicketFilter};
use itsmd::store::{Store, Tree, WriteBatch, encode};
use itsmd::tickets::{
    Actor, Comment, FieldChange, HistoryEntry, Kind, Level, State, Ticket, TicketId, Visibility,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const GROUPS: usize = 10;
const AGENTS: usize = 40;
const HOSTS: usize = 500;
const START: &str = "2026-01-01T00:00:00Z";

fn change(field: &str, old: Value, new: Value) -> FieldChange {
    FieldChange {
        field: field.into(),
        old,
        new,
    }
}

fn entry(seq: u64, at: Timestamp, name: &str, changes: Vec<FieldChange>) -> HistoryEntry {
    HistoryEntry {
        seq,
        at,
        actor: Actor::User { name: name.into() },
        changes,
        reason: Some("bench".into()),
        event: None,
        rules_version: None,
    }
}

/// Ticket `n` of `total`, spread evenly over 100 days: in a group, with an agent and a
/// priority, acknowledged after 1..60 min, and (three in four) resolved after 1..48 h.
fn ticket(n: usize, total: usize, start: Timestamp) -> (Ticket, Vec<HistoryEntry>) {
    let span = 100 * 86_400 * 1000_i64;
    let created = start + SignedDuration::from_millis(span / total as i64 * n as i64);
    let group = format!("g{}", n % GROUPS);
    let agent = format!("u{}", n % AGENTS);
    let priority = (n % 5) as u8 + 1;
    let acked = created + SignedDuration::from_mins((n % 60) as i64 + 1);
    let resolved = created + SignedDuration::from_hours((n % 48) as i64 + 1);
    let done = !n.is_multiple_of(4);
    let mut history = vec![
        entry(
            1,
            created,
            &agent,
            vec![
                change("state", Value::Null, json!("new")),
                change("group", Value::Null, json!(group)),
                change("assignee", Value::Null, json!(agent)),
                change("priority", Value::Null, json!(priority)),
            ],
        ),
        entry(
            2,
            acked,
            &agent,
            vec![change("state", json!("new"), json!("in_progress"))],
        ),
    ];
    if done {
        history.push(entry(
            3,
            resolved,
            &agent,
            vec![change("state", json!("in_progress"), json!("resolved"))],
        ));
    }
    let t = Ticket {
        id: TicketId {
            kind: Kind::Incident,
            number: n as u64 + 1,
        },
        state: if done {
            State::Resolved
        } else {
            State::InProgress
        },
        title: format!("Disk almost full on db{}", n % HOSTS),
        description: format!(
            "Filesystem /var/lib/data{} above 95 percent on rack r{}",
            n % 7,
            n % 50
        ),
        group: Some(group),
        assignee: Some(agent),
        impact: Level::Medium,
        urgency: Level::Medium,
        priority,
        tags: [format!("t{}", n % 20)].into(),
        correlation_key: None,
        key_source: None,
        alert: None,
        custom: Default::default(),
        process: itsmd::tickets::ProcessFields {
            comments: u64::from(n.is_multiple_of(10)),
            ..Default::default()
        },
        created_at: created,
        updated_at: history.last().map_or(created, |e| e.at),
        history_len: history.len() as u64,
        sla: Default::default(),
    };
    (t, history)
}

fn build(store: &dyn Store, total: usize) -> Duration {
    let started = Instant::now();
    let start: Timestamp = START.parse().expect("start");
    let mut batch = WriteBatch::default();
    for n in 0..total {
        let (t, history) = ticket(n, total, start);
        for e in &history {
            batch.put(Tree::History, layout::history_key(t.id, e.seq), encode(e));
        }
        if t.process.comments > 0 {
            let c = Comment {
                seq: 1,
                at: t.created_at,
                author: Actor::User { name: "u1".into() },
                visibility: Visibility::Internal,
                body: format!("Rotated the logs of switch sw{}", n % 1000),
                event: 0,
            };
            batch.put(Tree::Comments, layout::comment_key(t.id, 1), encode(&c));
        }
        batch.put(Tree::Tickets, t.id.key(), encode(&t));
        if batch.len() > 20_000 {
            store.apply(std::mem::take(&mut batch)).expect("apply");
        }
    }
    store.apply(batch).expect("apply");
    store.flush().expect("flush");
    started.elapsed()
}

fn percentiles(name: &str, mut d: Vec<Duration>) {
    d.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * d.len() as f64).ceil() as usize;
        d[rank.clamp(1, d.len()) - 1].as_secs_f64() * 1e3
    };
    println!(
        "{name} n={} p50={:.2} p99={:.2} max={:.2}",
        d.len(),
        at(50.0),
        at(99.0),
        d.last().map_or(0.0, |m| m.as_secs_f64() * 1e3)
    );
}

fn timed(
    store: &dyn Store,
    queries: usize,
    filter: impl Fn(usize) -> TicketFilter,
) -> Vec<Duration> {
    (0..queries)
        .map(|i| {
            let f = filter(i);
            let started = Instant::now();
            let (page, _) = layout::list_tickets(store, &f, None, 50).expect("list");
            let took = started.elapsed();
            std::hint::black_box(page);
            took
        })
        .collect()
}

fn main() {
    let total = common::env("TICKETS", 100_000);
    let queries = common::env("QUERIES", 200);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::default();
    let store: Arc<dyn Store> = itsmd::store::open(&StoreConfig {
        data_dir: dir.path().to_path_buf(),
        ..config.store.clone()
    })
    .expect("open store");
    let built = build(&*store, total);
    let calendars = itsmd::sla::Calendars::default();
    let sla = SlaSetup {
        config: &config.sla,
        calendars: &calendars,
    };
    let started = Instant::now();
    let indexed = layout::search::ensure(&*store, sla).expect("index");
    println!(
        "build tickets={total} write_ms={} index_ms={} indexed={indexed} disk_mb={}",
        built.as_millis(),
        started.elapsed().as_millis(),
        store.size_on_disk() >> 20
    );

    // One host's tickets (200 of 100,000): one word.
    let rare = timed(&*store, queries, |i| TicketFilter {
        text: Some(format!("db{}", (i * 37) % HOSTS)),
        ..TicketFilter::default()
    });
    percentiles("search_q_rare_word", rare);
    // A word in every ticket with a rarer one: two lists merged.
    let two = timed(&*store, queries, |i| TicketFilter {
        text: Some(format!("disk db{}", (i * 37) % HOSTS)),
        ..TicketFilter::default()
    });
    percentiles("search_q_two_words", two);
    // A word only comments have (one switch's: 10 of 100,000).
    let comment = timed(&*store, queries, |i| TicketFilter {
        text: Some(format!("SW{}", (i * 130) % 1000)),
        ..TicketFilter::default()
    });
    percentiles("search_q_comment_word", comment);
    // A word in every ticket: the first page comes at once.
    let common = timed(&*store, queries, |_| TicketFilter {
        text: Some("disk".into()),
        ..TicketFilter::default()
    });
    percentiles("search_q_common_word", common);
    // State + group + priority + assignee: four lists.
    let combined = timed(&*store, queries, |i| TicketFilter {
        state: Some(if i % 2 == 0 {
            State::InProgress
        } else {
            State::Resolved
        }),
        group: Some(format!("g{}", i % GROUPS)),
        priority: Some((i % 5) as u8 + 1),
        assignee: Some(format!("u{}", (i * 10 + i % GROUPS) % AGENTS)),
        ..TicketFilter::default()
    });
    percentiles("search_combined_filter", combined);
    // A combination nothing matches (the lists never meet): the worst case of the merge.
    let empty = timed(&*store, queries, |i| TicketFilter {
        group: Some(format!("g{}", i % GROUPS)),
        assignee: Some(format!("u{}", (i % GROUPS + 1) % AGENTS)),
        ..TicketFilter::default()
    });
    percentiles("search_combined_no_match", empty);

    let start: Timestamp = START.parse().expect("start");
    // One day's tickets (1,000 of 100,000): the created range read as a list of its own.
    let day = timed(&*store, queries, |i| {
        let from = start + SignedDuration::from_hours(24 * (i % 100) as i64);
        TicketFilter {
            created: layout::TimeRange {
                after: Some(from),
                before: Some(from + SignedDuration::from_hours(24)),
            },
            ..TicketFilter::default()
        }
    });
    percentiles("search_created_one_day", day);
    // Sorted listings: every ticket by last update, newest first; one group by priority
    // (10,000 tickets, walked along the priority lists); each page of 50.
    let sorted = |filter: &dyn Fn(usize) -> TicketFilter, sort: &str| -> Vec<Duration> {
        let sort: layout::Sort = sort.parse().expect("sort");
        (0..queries)
            .map(|i| {
                let f = filter(i);
                let started = Instant::now();
                let page = layout::list_tickets_sorted(&*store, &f, sort, None, 50).expect("list");
                let took = started.elapsed();
                std::hint::black_box(page);
                took
            })
            .collect()
    };
    percentiles(
        "search_sorted_all_by_updated_desc",
        sorted(&|_| TicketFilter::default(), "-updated"),
    );
    percentiles(
        "search_sorted_group_by_priority",
        sorted(
            &|i| TicketFilter {
                group: Some(format!("g{}", i % GROUPS)),
                ..TicketFilter::default()
            },
            "priority",
        ),
    );
    let reports: Vec<Duration> = (0..20)
        .map(|i| {
            let to = start + SignedDuration::from_hours(24 * (40 + i));
            let from = to - SignedDuration::from_hours(24 * 30);
            let started = Instant::now();
            let r = itsmd::reports::compute(&*store, &config.sla, &calendars, from, to)
                .expect("report");
            let took = started.elapsed();
            assert!(!r.mtta.is_empty(), "the report saw the acknowledgements");
            took
        })
        .collect();
    percentiles("report_30_days", reports);
}
