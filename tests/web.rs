//! The web dashboard, driven in-process against a database with a model, a published backlog
//! and a dead letter: every page renders the data it should, escaped; index pages follow their
//! cursor; bad input gets a 4xx page; and a replay is refused unless enabled, then moves the
//! dead letter back to pending.

mod cities;
mod support;

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tito::queue::{DEFAULT_GROUP, TitoQueue};
use tito::web::{WebOptions, router};
use tito::{AnyBackend, TitoEngine};
use tower::ServiceExt;

use cities::EVENT;

/// Cities of the backlog, on top of the three of `cities::fill` and the hostile one.
const BACKLOG: u32 = 30;

/// A database with cities, one dead letter, a record whose name is markup, and a backlog.
async fn database() -> TitoEngine<AnyBackend> {
    let db = support::engine().await;
    cities::dashboard(&db, BACKLOG).await;
    db
}

/// Sends `request`; returns the status, the `Location` header and the body.
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let location =
        (response.headers().get(header::LOCATION)).map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, location, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let (status, _, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, body)
}

/// The page at `uri`, which must render.
async fn page(app: &Router, uri: &str) -> String {
    let (status, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

fn post_form(uri: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

/// The `href` of the page's next-page link, if it has one (`&amp;` undone).
fn next_link(body: &str) -> Option<String> {
    let at = body.find(r#"rel="next" href=""#)? + r#"rel="next" href=""#.len();
    let end = body[at..].find('"')?;
    Some(body[at..at + end].replace("&amp;", "&"))
}

/// How many times `needle` occurs in `body`.
fn occurrences(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_tables_records_indexes_and_health() {
    let db = database().await;
    let app = router(db.clone(), WebOptions::new());
    let records = 3 + 1 + u64::from(BACKLOG);

    let overview = page(&app, "/").await;
    assert!(
        overview.contains(r#"<a href="/tables/city">city</a>"#),
        "{overview}"
    );
    assert!(overview.contains(&format!(r#"<span class="num">{records}</span>"#)));
    assert!(
        overview.contains(r#"href="/queues/city/default""#),
        "{overview}"
    );
    assert!(page(&app, "/assets/style.css").await.contains(".heatmap"));
    assert!(page(&app, "/assets/dashboard.js").await.contains("heatmap"));

    // The table: its index, and its records a page at a time by id.
    let table = page(&app, "/tables/city").await;
    assert!(table.contains("by_population"), "{table}");
    assert!(table.contains("readable"));
    // Ids in order: b000…b029, c1, c2, c3, x1; 25 a page.
    assert!(
        table.contains(">b000<") && table.contains(">b024<"),
        "{table}"
    );
    assert!(!table.contains(">b025<"));
    let next = next_link(&table).expect("a second page of records");
    assert_eq!(next, "/tables/city?after=b024");
    let second = page(&app, &next).await;
    assert!(second.contains(">b025<") && second.contains("&quot;Oslo&quot;"));
    assert!(
        second.contains(">x1<"),
        "the last record is on the second page"
    );
    assert!(!second.contains(">b024<"));
    assert_eq!(next_link(&second), None);

    // Record contents are user data: shown, escaped, never markup.
    assert!(second.contains("&lt;script&gt;alert("), "{second}");
    for body in [&table, &second] {
        assert!(!body.contains("<script>alert"), "unescaped record: {body}");
    }
    let hostile = page(&app, "/tables/city/record?id=x1").await;
    assert!(
        hostile.contains(r#"&lt;script&gt;alert(\&quot;x\&quot;)&lt;/script&gt;"#),
        "{hostile}"
    );
    assert!(!hostile.contains("<script>alert"));
    let rome = page(&app, "/tables/city/record?id=c3").await;
    assert!(rome.contains("&quot;Rome&quot;"), "{rome}");

    // The index in index order, with the next page through its cursor.
    let index = page(&app, "/tables/city/indexes/by_population").await;
    let first = index.find(">c1<").expect("c1 (population -5) listed");
    assert!(first < index.find(">c3<").unwrap(), "numeric order");
    assert!(!index.contains(">c2<"), "10 billion is on the last page");
    assert_eq!(occurrences(&index, "/tables/city/record?id="), 25);
    let next = next_link(&index).expect("a cursor to the next page");
    assert!(
        next.starts_with("/tables/city/indexes/by_population?after="),
        "{next}"
    );
    let rest = page(&app, &next).await;
    assert!(rest.contains(">c2<"), "{rest}");
    assert!(rest.contains("10000000000"));
    assert_eq!(
        occurrences(&rest, "/tables/city/record?id="),
        records as usize - 25
    );
    assert_eq!(next_link(&rest), None);

    let health = page(&app, "/tables/city/verify").await;
    assert!(health.contains("Consistent"), "{health}");

    // Bad input: a clear page and a 4xx status, never a panic.
    for (uri, status, says) in [
        (
            "/tables/nowhere",
            StatusCode::NOT_FOUND,
            "no table `nowhere`",
        ),
        (
            "/tables/city/indexes/by_nothing",
            StatusCode::NOT_FOUND,
            "no index `by_nothing`",
        ),
        (
            "/tables/city/indexes/by_population?after=zz",
            StatusCode::BAD_REQUEST,
            "invalid cursor",
        ),
        (
            "/tables/city/indexes/by_population?after=0011",
            StatusCode::BAD_REQUEST,
            "invalid cursor",
        ),
        (
            "/tables/city/record?id=nowhere",
            StatusCode::NOT_FOUND,
            "no record `nowhere`",
        ),
        ("/tables/city/record", StatusCode::BAD_REQUEST, "id"),
        (
            "/queues/nowhere/default",
            StatusCode::NOT_FOUND,
            "no event type",
        ),
        (
            "/queues/city/nobody",
            StatusCode::NOT_FOUND,
            "no consumer group",
        ),
        ("/no/such/page", StatusCode::NOT_FOUND, "no page at"),
    ] {
        let (got, body) = get(&app, uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert!(body.contains(says), "{uri}: {body}");
        assert!(body.contains("<html"), "{uri}: an error page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_pages_show_the_backlog_heatmap_and_dead_letters() {
    let db = database().await;
    let queue = TitoQueue::new(db.clone());
    let app = router(db.clone(), WebOptions::new());
    let lag = queue.lag(EVENT, DEFAULT_GROUP).await.unwrap();
    let pending: u64 = lag.iter().map(|l| l.pending).sum();
    assert_eq!(
        pending,
        u64::from(BACKLOG) + 1,
        "the backlog and the hostile city"
    );

    let body = page(&app, "/queues/city/default").await;
    assert_eq!(
        occurrences(&body, r#"<div class="cell h"#),
        1024,
        "one cell per partition"
    );
    // The cells with pending events are exactly the backlog's partitions.
    let busy: BTreeSet<u32> = (body.split(r#"<div class="cell h"#).skip(1))
        .filter(|cell| !cell.starts_with('0'))
        .map(|cell| {
            let at = cell.find("data-partition=\"").unwrap() + "data-partition=\"".len();
            cell[at..at + cell[at..].find('"').unwrap()]
                .parse()
                .unwrap()
        })
        .collect();
    let expected: BTreeSet<u32> = lag.iter().map(|l| l.partition).collect();
    assert_eq!(busy, expected);
    assert!(
        body.contains(&format!(r#"data-stat="pending">{pending}<"#)),
        "{body}"
    );
    assert!(body.contains("1 pending"), "cell titles give the counts");

    let (status, stats) = get(&app, "/queues/city/default/stats.json").await;
    assert_eq!(status, StatusCode::OK);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["pending"], pending);
    assert_eq!(stats["handled"], 2, "c2 and c3 were handled");
    assert_eq!(
        stats["partitions"].as_array().unwrap().len(),
        expected.len()
    );

    let dead = page(&app, "/queues/city/default/dead").await;
    assert!(dead.contains("the map is missing"), "{dead}");
    assert!(dead.contains("city:c1"));
    assert!(dead.contains("Replay is disabled"));
    assert!(dead.contains("data-replay=") && dead.contains(" disabled>Replay<"));

    let overview = page(&app, "/").await;
    assert!(
        overview.contains(r#"href="/queues/city/default/dead">1<"#),
        "{overview}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_refused_unless_enabled_then_moves_the_dead_letter_back_to_pending() {
    let db = database().await;
    let queue = TitoQueue::new(db.clone());
    let letter = queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap();
    assert_eq!(letter.len(), 1);
    let id = letter[0].event.id.clone();
    let pending = |lag: Vec<tito::queue::PartitionLag>| lag.iter().map(|l| l.pending).sum::<u64>();
    let before = pending(queue.lag(EVENT, DEFAULT_GROUP).await.unwrap());
    let form = format!("id={id}");
    let dead_letters = || async {
        let dead = queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap();
        dead.len()
    };

    let read_only = router(db.clone(), WebOptions::new());
    let (status, _, body) = send(&read_only, post_form("/queues/city/default/replay", &form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("replay is disabled"), "{body}");
    assert!(body.contains("--allow-replay"));
    assert_eq!(dead_letters().await, 1);

    let app = router(db.clone(), WebOptions::new().allow_replay(true));
    let page_now = page(&app, "/queues/city/default/dead").await;
    assert!(!page_now.contains("Replay is disabled"));
    assert!(
        page_now.contains(&format!(r#"data-replay="{id}">Replay<"#)),
        "{page_now}"
    );
    // Another site's form is refused even when replay is enabled.
    let mut cross = post_form("/queues/city/default/replay", &form);
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&app, cross).await.0, StatusCode::FORBIDDEN);
    let mut other = post_form("/queues/city/default/replay", &form);
    other
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    other
        .headers_mut()
        .insert("host", "127.0.0.1:8080".parse().unwrap());
    assert_eq!(send(&app, other).await.0, StatusCode::FORBIDDEN);
    assert_eq!(dead_letters().await, 1);
    // Malformed forms.
    let (status, _, _) = send(&app, post_form("/queues/city/default/replay", "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = send(&app, post_form("/queues/city/default/replay", "id=nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut same = post_form("/queues/city/default/replay", &form);
    same.headers_mut()
        .insert("origin", "http://127.0.0.1:8080".parse().unwrap());
    same.headers_mut()
        .insert("host", "127.0.0.1:8080".parse().unwrap());
    let (status, location, body) = send(&app, same).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        location.as_deref(),
        Some("/queues/city/default/dead?replayed=1")
    );
    assert_eq!(dead_letters().await, 0);
    let after = pending(queue.lag(EVENT, DEFAULT_GROUP).await.unwrap());
    assert_eq!(after, before + 1, "the dead letter is pending again");
    let shown = page(&app, "/queues/city/default/dead?replayed=1").await;
    assert!(shown.contains("Replayed 1 dead letter:"), "{shown}");

    // Replaying all with none left replays nothing.
    let (_, location, _) = send(&app, post_form("/queues/city/default/replay", "all=1")).await;
    assert_eq!(
        location.as_deref(),
        Some("/queues/city/default/dead?replayed=0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_dashboard_links_under_its_base_path() {
    let db = support::engine().await;
    cities::fill(&db).await;
    let app = Router::new().nest("/tito", router(db, WebOptions::new().base_path("/tito/")));
    let overview = page(&app, "/tito").await;
    assert!(
        overview.contains(r#"<a href="/tito">Overview</a>"#),
        "{overview}"
    );
    assert!(
        overview.contains(r#"href="/tito/tables/city""#),
        "{overview}"
    );
    assert!(overview.contains(r#"href="/tito/assets/style.css""#));
    assert!(
        page(&app, "/tito/tables/city")
            .await
            .contains(r#"href="/tito/tables/city/indexes/by_population""#)
    );
}
