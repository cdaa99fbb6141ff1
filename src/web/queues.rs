//! The queue pages: each consumer group's lag per partition (the heatmap), throughput, oldest
//! pending age, retrying events and dead letters, and replaying dead letters.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Form;
use axum::extract::Path;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tito_core::Backend;
use tito_core::event::PARTITIONS;
use tito_queue::PartitionLag;

use super::html::{self, age, count, escape, link, path};
use super::{Shared, State, WebError};

/// Dead letters listed on the dead-letter page.
const DEAD_SHOWN: usize = 100;
/// Dead letters searched for the one a replay names, and counted on summaries.
const DEAD_SEARCHED: usize = 10_000;

/// Totals of a consumer group's lag.
struct Totals {
    pending: u64,
    retrying: u64,
    oldest: Duration,
    busy_partitions: usize,
}

fn totals(lag: &[PartitionLag]) -> Totals {
    Totals {
        pending: lag.iter().map(|l| l.pending).sum(),
        retrying: lag.iter().map(|l| l.retrying).sum(),
        oldest: lag.iter().map(|l| l.oldest_age).max().unwrap_or_default(),
        busy_partitions: lag.len(),
    }
}

/// The heat level of a partition with `pending` events: 0 (none) to 6; the script computes
/// the same.
pub fn heat_level(pending: u64) -> u32 {
    match pending {
        0 => 0,
        1 => 1,
        2..=4 => 2,
        5..=16 => 3,
        17..=64 => 4,
        65..=256 => 5,
        _ => 6,
    }
}

/// Fails with 404 unless `event_type` has queue keys and `group` is one of its groups.
async fn check_group<B: Backend>(
    state: &State<B>,
    event_type: &str,
    group: &str,
) -> Result<(), WebError> {
    if !state
        .queue
        .event_types()
        .await?
        .iter()
        .any(|t| t == event_type)
    {
        return Err(WebError::NotFound(format!("no event type `{event_type}`")));
    }
    if !state
        .queue
        .groups(event_type)
        .await?
        .iter()
        .any(|g| g == group)
    {
        return Err(WebError::NotFound(format!(
            "event type `{event_type}` has no consumer group `{group}`"
        )));
    }
    Ok(())
}

fn group_href(base: &str, event_type: &str, group: &str) -> String {
    format!("{base}/queues/{}/{}", path(event_type), path(group))
}

/// `n`, or `n+` if counting stopped at `limit`.
fn at_most(n: usize, limit: usize) -> String {
    if n >= limit {
        format!("{}+", count(n as u64))
    } else {
        count(n as u64)
    }
}

/// The overview's queue section: every event type's groups with their totals.
pub(crate) async fn overview<B: Backend>(state: &State<B>) -> Result<String, WebError> {
    let base = state.base();
    let mut rows = Vec::new();
    for event_type in state.queue.event_types().await? {
        for group in state.queue.groups(&event_type).await? {
            let t = totals(&state.queue.lag(&event_type, &group).await?);
            let dead = (state.queue)
                .dead_letters(&event_type, &group, DEAD_SEARCHED)
                .await?
                .len();
            let href = group_href(base, &event_type, &group);
            rows.push(vec![
                link(&href, &event_type),
                link(&href, &group),
                format!(r#"<span class="num">{}</span>"#, count(t.pending)),
                format!(r#"<span class="num">{}</span>"#, count(t.retrying)),
                format!(
                    r#"<a class="num{}" href="{}">{}</a>"#,
                    if dead > 0 { " alert" } else { "" },
                    escape(&format!("{href}/dead")),
                    at_most(dead, DEAD_SEARCHED)
                ),
                age(t.oldest),
            ]);
        }
    }
    let mut out = String::from("<section><h2>Queues</h2>");
    out.push_str(&html::table(
        "data",
        &[
            "Event type",
            "Group",
            "Pending",
            "Retrying",
            "Dead letters",
            "Oldest pending",
        ],
        &rows,
    ));
    out.push_str("</section>");
    Ok(out)
}

/// A consumer group: totals, the partition heatmap, throughput and links to dead letters.
pub(crate) async fn queue<B: Backend>(
    state: Shared<B>,
    Path((event_type, group)): Path<(String, String)>,
) -> Result<Html<String>, WebError> {
    check_group(&state, &event_type, &group).await?;
    let base = state.base();
    let here = group_href(base, &event_type, &group);
    let lag = state.queue.lag(&event_type, &group).await?;
    let t = totals(&lag);
    let checkpoints = state.queue.checkpoints(&event_type, &group).await?;
    let handled: u64 = checkpoints.iter().map(|c| c.handled).sum();
    let dead = (state.queue)
        .dead_letters(&event_type, &group, DEAD_SEARCHED)
        .await?
        .len();

    let mut body = String::new();
    let _ = write!(
        body,
        r#"<div class="cards" id="stats" data-url="{stats}">
<div class="card"><div class="label">Pending</div><div class="value" data-stat="pending">{pending}</div></div>
<div class="card"><div class="label">Retrying</div><div class="value" data-stat="retrying">{retrying}</div></div>
<div class="card"><div class="label">Oldest pending</div><div class="value" data-stat="oldest">{oldest}</div></div>
<div class="card"><div class="label">Handled</div><div class="value" data-stat="handled">{handled}</div></div>
<div class="card"><div class="label">Dead letters</div><div class="value"><a class="{dead_class}" href="{dead_href}">{dead}</a></div></div>
</div>"#,
        stats = escape(&format!("{here}/stats.json")),
        pending = count(t.pending),
        retrying = count(t.retrying),
        oldest = age(t.oldest),
        handled = count(handled),
        dead_class = if dead > 0 { "alert" } else { "" },
        dead_href = escape(&format!("{here}/dead")),
        dead = at_most(dead, DEAD_SEARCHED),
    );

    body.push_str(
        r#"<section><h2>Throughput <span class="hint">events handled per second, sampled while this page is open</span></h2>
<div class="sparkline"><svg id="throughput" viewBox="0 0 600 80" preserveAspectRatio="none" role="img" aria-label="throughput"><polyline points="" /></svg><span id="rate" class="rate">–</span></div></section>"#,
    );

    let _ = write!(
        body,
        r#"<section><h2>Lag per partition <span class="hint">{busy} of {PARTITIONS} partitions with work; hover a cell for its counts</span></h2>
<div class="heatmap" id="heatmap">"#,
        busy = count(t.busy_partitions as u64),
    );
    let mut by_partition = vec![PartitionLag::default(); PARTITIONS as usize];
    for l in &lag {
        if let Some(slot) = by_partition.get_mut(l.partition as usize) {
            *slot = *l;
        }
    }
    for (partition, l) in by_partition.iter().enumerate() {
        let retry = if l.retrying > 0 { " retry" } else { "" };
        let _ = write!(
            body,
            r#"<div class="cell h{level}{retry}" data-partition="{partition}" data-pending="{pending}" title="partition {partition}: {pending} pending, {retrying} retrying, oldest {oldest}"></div>"#,
            level = heat_level(l.pending),
            pending = l.pending,
            retrying = l.retrying,
            oldest = age(l.oldest_age),
        );
    }
    body.push_str(
        r#"</div><div class="legend"><span>0</span><i class="cell h0"></i><i class="cell h1"></i><i class="cell h2"></i><i class="cell h3"></i><i class="cell h4"></i><i class="cell h5"></i><i class="cell h6"></i><span>256+ pending</span><i class="cell h0 retry"></i><span>retrying</span></div></section>"#,
    );

    let mut busiest = lag.clone();
    busiest.sort_by_key(|l| std::cmp::Reverse((l.pending, l.retrying)));
    let rows: Vec<Vec<String>> = (busiest.iter())
        .take(20)
        .map(|l| {
            vec![
                format!(r#"<span class="num">{}</span>"#, l.partition),
                format!(r#"<span class="num">{}</span>"#, count(l.pending)),
                format!(r#"<span class="num">{}</span>"#, count(l.retrying)),
                age(l.oldest_age),
            ]
        })
        .collect();
    body.push_str("<section><h2>Busiest partitions</h2>");
    body.push_str(&html::table(
        "data",
        &["Partition", "Pending", "Retrying", "Oldest"],
        &rows,
    ));
    body.push_str("</section>");

    let crumbs = [(here.clone(), format!("{event_type} / {group}"))];
    Ok(Html(html::page(
        base,
        &format!("Queue {event_type} / {group}"),
        &crumbs,
        &body,
    )))
}

/// The group's totals and busy partitions as JSON, for the page's periodic refresh.
pub(crate) async fn stats<B: Backend>(
    state: Shared<B>,
    Path((event_type, group)): Path<(String, String)>,
) -> Result<Response, WebError> {
    check_group(&state, &event_type, &group).await?;
    let lag = state.queue.lag(&event_type, &group).await?;
    let t = totals(&lag);
    let handled: u64 = (state.queue.checkpoints(&event_type, &group).await?)
        .iter()
        .map(|c| c.handled)
        .sum();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let partitions: Vec<[u64; 3]> = (lag.iter())
        .map(|l| [u64::from(l.partition), l.pending, l.retrying])
        .collect();
    let json = serde_json::json!({
        "at_ms": now,
        "pending": t.pending,
        "retrying": t.retrying,
        "oldest": age(t.oldest),
        "handled": handled,
        "partitions": partitions,
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response())
}

/// The query of the dead-letter page after a replay.
#[derive(Debug, Deserialize)]
pub(crate) struct Replayed {
    replayed: Option<usize>,
}

/// A group's dead letters with their errors, each with a replay button.
pub(crate) async fn dead<B: Backend>(
    state: Shared<B>,
    Path((event_type, group)): Path<(String, String)>,
    replayed: Result<axum::extract::Query<Replayed>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, WebError> {
    let replayed = super::pages::query(replayed)?;
    check_group(&state, &event_type, &group).await?;
    let base = state.base();
    let here = group_href(base, &event_type, &group);
    let letters = (state.queue)
        .dead_letters(&event_type, &group, DEAD_SHOWN)
        .await?;
    let allowed = state.options.replay_allowed();
    let action = escape(&format!("{here}/replay"));
    let disabled = if allowed { "" } else { " disabled" };

    let mut body = String::new();
    if let Some(n) = replayed.replayed {
        let _ = write!(
            body,
            r#"<p class="ok" id="replayed">Replayed {n} dead letter{}: back in the queue.</p>"#,
            if n == 1 { "" } else { "s" }
        );
    }
    if !allowed {
        body.push_str(
            r#"<p class="note">Replay is disabled. Start the dashboard with <code>tito serve --allow-replay</code> (or <code>WebOptions::allow_replay(true)</code>) to enable it.</p>"#,
        );
    }
    if !letters.is_empty() {
        let _ = write!(
            body,
            r#"<form method="post" action="{action}" class="inline"><input type="hidden" name="all" value="1"><button type="submit" class="danger" data-replay-all{disabled}>Replay all</button></form>"#,
        );
    }
    let rows: Vec<Vec<String>> = (letters.iter())
        .map(|d| {
            let e = &d.event;
            let record = format!("{base}/tables/{}/record?id={}", path(&e.table), path(&e.record_id));
            vec![
                format!("<code>{}</code>", escape(&e.id)),
                escape(&e.action.to_string()),
                link(&record, &e.entity),
                format!(r#"<span class="num">{}</span>"#, e.partition),
                format!(r#"<span class="num">{}</span>"#, d.attempts),
                escape(&html::timestamp(d.failed_at)),
                format!(r#"<span class="error-text">{}</span>"#, escape(&d.error)),
                format!(
                    r#"<form method="post" action="{action}"><input type="hidden" name="id" value="{id}"><button type="submit" data-replay="{id}"{disabled}>Replay</button></form>"#,
                    id = escape(&e.id),
                ),
            ]
        })
        .collect();
    body.push_str("<section>");
    body.push_str(&html::table(
        "data dead",
        &[
            "Event",
            "Action",
            "Entity",
            "Partition",
            "Attempts",
            "Failed at (UTC)",
            "Error",
            "",
        ],
        &rows,
    ));
    if letters.len() == DEAD_SHOWN {
        let _ = write!(body, r#"<p class="hint">The first {DEAD_SHOWN} shown.</p>"#);
    }
    body.push_str("</section>");
    let crumbs = [
        (here.clone(), format!("{event_type} / {group}")),
        (format!("{here}/dead"), "dead letters".to_string()),
    ];
    Ok(Html(html::page(
        base,
        &format!("Dead letters {event_type} / {group}"),
        &crumbs,
        &body,
    )))
}

/// The replay form: one dead letter by event id, or all of them.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplayForm {
    id: Option<String>,
    all: Option<String>,
}

/// Refuses a form another site's page sent (the browser says so in `Sec-Fetch-Site`, or an
/// `Origin` naming another host than `Host`).
fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = || WebError::Forbidden("refused: the replay form came from another site".into());
    if text("sec-fetch-site") == Some("cross-site") {
        return Err(refused());
    }
    if let (Some(origin), Some(host)) = (text("origin"), text("host")) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
}

/// Replays dead letters if the dashboard allows it (403 otherwise), then shows the page again.
pub(crate) async fn replay<B: Backend>(
    state: Shared<B>,
    Path((event_type, group)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> Result<Response, WebError> {
    if !state.options.replay_allowed() {
        return Err(WebError::Forbidden(
            "replay is disabled: start the dashboard with `tito serve --allow-replay` \
             (or `WebOptions::allow_replay(true)`) to enable it"
                .into(),
        ));
    }
    same_origin(&headers)?;
    let Form(form) = form.map_err(|e| WebError::BadRequest(e.body_text()))?;
    check_group(&state, &event_type, &group).await?;
    let replayed = match (form.all.as_deref(), form.id) {
        (Some(_), _) => {
            (state.queue)
                .replay_dead_letters(&event_type, &group)
                .await?
        }
        (None, Some(id)) => {
            let letters = (state.queue)
                .dead_letters(&event_type, &group, DEAD_SEARCHED)
                .await?;
            let letter = (letters.iter().find(|d| d.event.id == id)).ok_or_else(|| {
                WebError::NotFound(format!(
                    "no dead letter `{id}` among the first {DEAD_SEARCHED} of `{event_type}` / `{group}`"
                ))
            })?;
            usize::from(state.queue.replay_dead_letter(letter).await?)
        }
        (None, None) => {
            return Err(WebError::BadRequest(
                "a replay names a dead letter (`id`) or all of them (`all`)".into(),
            ));
        }
    };
    let to = format!(
        "{}/dead?replayed={replayed}",
        group_href(state.base(), &event_type, &group)
    );
    Ok(Redirect::to(&to).into_response())
}
