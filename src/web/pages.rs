//! The database pages: the overview, a table with its records, one record, an index's entries
//! and a table's index health.

use std::fmt::Write;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::response::Html;
use serde::Deserialize;
use tito_core::Backend;

use super::html::{self, count, escape, link, path};
use super::queues;
use super::{Shared, State, WebError};

/// Records or index entries per page.
const PAGE: usize = 25;

/// A page's HTML, or the error page.
type Page = Result<Html<String>, WebError>;

/// The query of a paged listing.
#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    /// Where the page starts: a record id, or an index cursor.
    after: Option<String>,
}

/// The query of the record lookup.
#[derive(Debug, Deserialize)]
pub(crate) struct Lookup {
    id: String,
}

/// The parsed query, or a 400 saying what was wrong with it.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, WebError> {
    q.map(|Query(q)| q)
        .map_err(|e| WebError::BadRequest(e.body_text()))
}

/// Tables with their record counts, and every event type's consumer groups.
pub(crate) async fn overview<B: Backend>(state: Shared<B>) -> Page {
    let base = state.base();
    let mut rows = Vec::new();
    for stats in state.db.tables().await? {
        let href = format!("{base}/tables/{}", path(&stats.table));
        rows.push(vec![
            link(&href, &stats.table),
            format!(r#"<span class="num">{}</span>"#, count(stats.records)),
        ]);
    }
    let mut body = String::from(r#"<section><h2>Tables</h2>"#);
    body.push_str(&html::table("data", &["Table", "Records"], &rows));
    body.push_str("</section>");
    body.push_str(&queues::overview(&state).await?);
    Ok(Html(html::page(base, "Overview", &[], &body)))
}

/// Whether `table` exists: it holds records or has a registered schema.
async fn check_table<B: Backend>(state: &State<B>, table: &str) -> Result<(), WebError> {
    if !state.db.raw_records(table, None, 1).await?.is_empty() {
        return Ok(());
    }
    match state.db.table_schema(table).await {
        Ok(_) => Ok(()),
        Err(tito_core::TitoError::NotFound(_)) => {
            Err(WebError::NotFound(format!("no table `{table}`")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A table: its parts, its registered indexes, a lookup by id and a page of its records.
pub(crate) async fn table<B: Backend>(
    state: Shared<B>,
    Path(table): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Page {
    let paging = query(paging)?;
    check_table(&state, &table).await?;
    let base = state.base();
    let here = format!("{base}/tables/{}", path(&table));
    let usage = state.db.table_usage(&table).await?;
    let schema = match state.db.table_schema(&table).await {
        Ok(schema) => Some(schema),
        Err(tito_core::TitoError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };

    let mut body = String::new();
    let _ = write!(
        body,
        r#"<div class="cards">
<div class="card"><div class="label">Records</div><div class="value">{}</div></div>
<div class="card"><div class="label">Stored bytes</div><div class="value">{}</div></div>
<div class="card"><div class="label">Indexes</div><div class="value">{}</div></div>
</div>"#,
        count(usage.records.keys),
        count(usage.records.bytes + usage.manifests.bytes),
        usage.indexes.len(),
    );

    let mut rows = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for index in schema.iter().flat_map(|s| &s.indexes) {
        names.push(index.name.clone());
        let fields: Vec<String> = (index.fields.iter())
            .map(|(name, kind)| format!("{name}:{kind}"))
            .collect();
        let entries = (usage.indexes.iter())
            .filter(|u| u.index == index.name)
            .map(|u| u.entries.keys)
            .sum::<u64>();
        let state_label = format!("{:?}", index.state).to_lowercase();
        rows.push(vec![
            link(
                &format!("{here}/indexes/{}", path(&index.name)),
                &index.name,
            ),
            escape(&fields.join(", ")),
            if index.unique { "unique" } else { "" }.to_string(),
            format!(r#"<span class="badge {state_label}">{state_label}</span>"#),
            format!(r#"<span class="num">{}</span>"#, count(entries)),
        ]);
    }
    // Entries of indexes no schema lists (e.g. of a model since changed).
    for unlisted in usage.indexes.iter().filter(|u| !names.contains(&u.index)) {
        rows.push(vec![
            link(
                &format!("{here}/indexes/{}", path(&unlisted.index)),
                &unlisted.index,
            ),
            String::new(),
            if unlisted.unique { "unique" } else { "" }.to_string(),
            r#"<span class="badge unregistered">unregistered</span>"#.to_string(),
            format!(
                r#"<span class="num">{}</span>"#,
                count(unlisted.entries.keys)
            ),
        ]);
    }
    let _ = write!(
        body,
        r#"<section><h2>Indexes <a class="button small" href="{}/verify">Verify index health</a></h2>"#,
        escape(&here)
    );
    body.push_str(&html::table(
        "data",
        &["Index", "Fields", "Unique", "State", "Entries"],
        &rows,
    ));
    body.push_str("</section>");

    let _ = write!(
        body,
        r#"<section><h2>Records</h2>
<form class="lookup" method="get" action="{}/record">
<label>Record id <input type="text" name="id" required placeholder="id"></label>
<button type="submit">Open</button>
</form>"#,
        escape(&here)
    );
    let records = (state.db)
        .raw_records(&table, paging.after.as_deref(), PAGE)
        .await?;
    let rows: Vec<Vec<String>> = (records.iter())
        .map(|(id, value)| {
            vec![
                link(&format!("{here}/record?id={}", path(id)), id),
                format!(
                    r#"<code class="json">{}</code>"#,
                    escape(&html::truncate(&value.to_string(), 160))
                ),
            ]
        })
        .collect();
    body.push_str(&html::table("data records", &["Id", "Record"], &rows));
    body.push_str(&pager(
        &here,
        paging.after.is_some(),
        records
            .last()
            .filter(|_| records.len() == PAGE)
            .map(|(id, _)| id.as_str()),
    ));
    body.push_str("</section>");
    let crumbs = [(here.clone(), table.clone())];
    Ok(Html(html::page(base, &table, &crumbs, &body)))
}

/// The links under a paged listing: back to the first page, and on after `next`.
fn pager(here: &str, paged: bool, next: Option<&str>) -> String {
    let mut out = String::from(r#"<nav class="pager">"#);
    if paged {
        let _ = write!(out, r#"<a href="{}">First page</a>"#, escape(here));
    }
    if let Some(next) = next {
        let href = format!("{here}?after={}", path(next));
        let _ = write!(
            out,
            r#"<a class="next" rel="next" href="{}">Next page →</a>"#,
            escape(&href)
        );
    }
    out.push_str("</nav>");
    out
}

/// One record, as its stored JSON.
pub(crate) async fn record<B: Backend>(
    state: Shared<B>,
    Path(table): Path<String>,
    lookup: Result<Query<Lookup>, QueryRejection>,
) -> Page {
    let Lookup { id } = query(lookup)?;
    let base = state.base();
    let record = (state.db.raw_record(&table, &id).await?)
        .ok_or_else(|| WebError::NotFound(format!("`{table}` has no record `{id}`")))?;
    let pretty = serde_json::to_string_pretty(&record)
        .map_err(|e| WebError::Tito(tito_core::TitoError::Serialize(e.to_string())))?;
    let body = format!(
        r#"<section><pre class="record">{}</pre></section>"#,
        escape(&pretty)
    );
    let here = format!("{base}/tables/{}", path(&table));
    let crumbs = [
        (here.clone(), table.clone()),
        (format!("{here}/record?id={}", path(&id)), id.clone()),
    ];
    Ok(Html(html::page(
        base,
        &format!("{table} / {id}"),
        &crumbs,
        &body,
    )))
}

/// A page of an index's entries in index order, with the cursor of the next page.
pub(crate) async fn index<B: Backend>(
    state: Shared<B>,
    Path((table, index)): Path<(String, String)>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Page {
    let paging = query(paging)?;
    check_table(&state, &table).await?;
    let base = state.base();
    let page = (state.db)
        .raw_index_page(&table, &index, paging.after.as_deref(), PAGE)
        .await?;
    if page.entries.is_empty() && paging.after.is_none() {
        let registered = match state.db.table_schema(&table).await {
            Ok(schema) => schema.indexes.iter().any(|i| i.name == index),
            Err(tito_core::TitoError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !registered {
            return Err(WebError::NotFound(format!(
                "`{table}` has no index `{index}`"
            )));
        }
    }
    let table_href = format!("{base}/tables/{}", path(&table));
    let here = format!("{table_href}/indexes/{}", path(&index));
    let rows: Vec<Vec<String>> = (page.entries.iter())
        .map(|entry| {
            vec![
                format!("<code>{}</code>", escape(&entry.values)),
                link(
                    &format!("{table_href}/record?id={}", path(&entry.id)),
                    &entry.id,
                ),
            ]
        })
        .collect();
    let mut body = String::from("<section>");
    body.push_str(&html::table("data", &["Values", "Record id"], &rows));
    body.push_str(&pager(&here, paging.after.is_some(), page.next.as_deref()));
    body.push_str("</section>");
    let crumbs = [(table_href, table.clone()), (here, index.clone())];
    Ok(Html(html::page(
        base,
        &format!("{table} / index {index}"),
        &crumbs,
        &body,
    )))
}

/// Index health: a table's entries checked against its registered indexes.
pub(crate) async fn verify<B: Backend>(state: Shared<B>, Path(table): Path<String>) -> Page {
    let base = state.base();
    let report = state.db.verify_table(&table).await?;
    let verdict = if report.is_consistent() {
        r#"<p class="ok">Consistent: every index entry matches its record.</p>"#
    } else {
        r#"<p class="error">Out of step: <code>tito reindex</code> rebuilds the entries.</p>"#
    };
    let cell = |n: u64| format!(r#"<span class="num">{}</span>"#, count(n));
    let rows = vec![vec![
        cell(report.records),
        cell(report.entries),
        cell(report.missing),
        cell(report.orphans),
        cell(report.stale_manifests),
        cell(report.unchecked),
    ]];
    let mut body = format!("<section>{verdict}");
    body.push_str(&html::table(
        "data",
        &[
            "Records",
            "Entries",
            "Missing",
            "Orphans",
            "Stale manifests",
            "Unchecked",
        ],
        &rows,
    ));
    if !report.samples.is_empty() {
        body.push_str("<h2>Sample problem keys</h2><ul class=\"samples\">");
        for sample in &report.samples {
            let _ = write!(body, "<li><code>{}</code></li>", escape(sample));
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");
    let table_href = format!("{base}/tables/{}", path(&table));
    let crumbs = [
        (table_href.clone(), table.clone()),
        (format!("{table_href}/verify"), "verify".to_string()),
    ];
    Ok(Html(html::page(
        base,
        &format!("{table} / index health"),
        &crumbs,
        &body,
    )))
}
