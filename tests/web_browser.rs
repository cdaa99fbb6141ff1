//! The dashboard in a real browser: headless Chromium, driven through chromedriver's WebDriver
//! protocol, loads the pages of a database with a backlog and a dead letter, sees the backlog on
//! the heatmap, replays the dead letter by clicking its button, and draws the throughput of a
//! worker draining the backlog.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`),
//! which CI machines lack, hence `#[ignore]`; run it with
//! `cargo test --all-features --test web_browser -- --ignored`. Run without them it fails, it
//! does not skip. With `TITO_SCREENSHOTS=<folder>` it saves a screenshot of each page there (the
//! README's come from `TITO_SCREENSHOTS=docs/screenshots`).

mod cities;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tito::queue::{DEFAULT_GROUP, TitoQueue, Worker};
use tito::web::WebOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use cities::EVENT;

/// Cities in the backlog: enough to colour a good part of the heatmap.
const BACKLOG: u32 = 400;
/// The element key of the WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds a program on `PATH`, or fails saying how to install it.
fn program(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "none of {names:?} on PATH: this test needs Chromium and chromedriver \
         (Debian: apt-get install chromium chromium-driver)"
    );
}

/// A free local port.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.1 request to the driver, its JSON answer's `value`.
async fn call(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // chromedriver may keep the connection open: read the head, then as much as it announces.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "{method} {path}: the driver closed without answering"
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut payload = raw[split + 4..].to_vec();
    let length = (head.lines())
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|n| n.trim().parse::<usize>().expect("a content length"));
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match length {
            Some(length) => payload.len() >= length,
            None if chunked => payload.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    let answer: Value = serde_json::from_slice(&payload).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {e}: {}",
            String::from_utf8_lossy(&payload)
        )
    });
    let value = answer["value"].clone();
    assert!(
        value.get("error").is_none(),
        "{method} {path} failed: {value}"
    );
    value
}

/// The body of a chunked transfer.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line]).trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[line + 2..line + 2 + size]);
        data = &data[line + 2 + size + 2..];
    }
    out
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// A browser session.
struct Browser {
    driver: Driver,
    session: String,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = program(&["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = program(&["chromedriver"]);
        let port = free_port().await;
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         "--force-device-scale-factor=1", "--window-size=1200,1000"],
            },
        }}});
        let session = call(port, "POST", "/session", Some(capabilities)).await;
        let session = session["sessionId"].as_str().unwrap().to_string();
        Browser { driver, session }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(self.driver.port, method, &path, body).await
    }

    async fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the page shows `text` (navigation may still be settling); fails with the
    /// page's source if it never does.
    async fn shows(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {text:?}: {source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn script(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.call("POST", "/execute/sync", Some(body)).await
    }

    async fn click(&self, css: &str) {
        let found = (self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        ))
        .await;
        let id = (found[ELEMENT].as_str())
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string();
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// A screenshot of the window `height` pixels tall; saved as `name` if asked for.
    async fn screenshot(&self, name: &str, height: u32) {
        let rect = json!({ "width": 1200, "height": height });
        self.call("POST", "/window/rect", Some(rect)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = base64_decode(
            self.call("GET", "/screenshot", None)
                .await
                .as_str()
                .unwrap(),
        );
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        if let Some(folder) = std::env::var_os("TITO_SCREENSHOTS") {
            let folder = PathBuf::from(folder);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(name), png).unwrap();
        }
    }
}

impl Drop for Browser {
    /// Ends the session, which quits Chromium, even when the test failed half-way.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.driver.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
            self.session
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read(&mut [0u8; 1024]);
        }
    }
}

/// Waits until `check` holds, for at most 30 seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver (apt-get install chromium chromium-driver); \
            run with --ignored"]
async fn the_dashboard_works_in_headless_chromium() {
    let db = support::engine().await;
    cities::dashboard(&db, BACKLOG).await;
    let queue = TitoQueue::new(db.clone());
    let lag = queue.lag(EVENT, DEFAULT_GROUP).await.unwrap();
    let pending: u64 = lag.iter().map(|l| l.pending).sum();
    assert_eq!(pending, u64::from(BACKLOG) + 1);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let options = WebOptions::new().allow_replay(true);
    let server = tokio::spawn(tito::web::serve(db.clone(), options, listener));
    let browser = Browser::start().await;

    browser.open(&format!("{base}/")).await;
    browser.shows(">city<").await;
    browser.shows("Queues").await;
    browser.screenshot("overview.png", 560).await;

    browser.open(&format!("{base}/tables/city")).await;
    browser.shows("by_population").await;
    browser.screenshot("records.png", 1000).await;
    browser.click("a[rel=next]").await;
    eventually("the second page of records", || async {
        browser.url().await.contains("after=b024")
    })
    .await;

    browser
        .open(&format!("{base}/tables/city/indexes/by_population"))
        .await;
    browser.shows(">c1<").await;
    browser.screenshot("index.png", 700).await;

    // The heatmap, after the page's script refreshed it once, shows the backlog's partitions.
    browser.open(&format!("{base}/queues/city/default")).await;
    let busy = lag.len() as u64;
    eventually("the heatmap shows the backlog", || async {
        let shown = browser
            .script(
                "return document.querySelectorAll('#heatmap .cell:not(.h0)').length \
                 + ':' + document.getElementById('rate').textContent",
            )
            .await;
        // `rate` is filled once the script has taken two samples.
        let shown = shown.as_str().unwrap_or_default().to_string();
        shown.starts_with(&format!("{busy}:")) && !shown.ends_with('–')
    })
    .await;
    let pending_shown = browser
        .script("return document.querySelector('[data-stat=pending]').textContent")
        .await;
    assert_eq!(pending_shown.as_str(), Some(pending.to_string().as_str()));

    // Replay the dead letter from its page.
    browser
        .open(&format!("{base}/queues/city/default/dead"))
        .await;
    browser.shows("the map is missing").await;
    browser.screenshot("dead-letters.png", 420).await;
    browser.click("button[data-replay]").await;
    eventually("the replay's answer", || async {
        browser.url().await.contains("replayed=1")
    })
    .await;
    browser.shows("Replayed 1 dead letter").await;
    assert!(
        (queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap()).is_empty(),
        "the dead letter left the dead letters"
    );
    let after: u64 = (queue.lag(EVENT, DEFAULT_GROUP).await.unwrap())
        .iter()
        .map(|l| l.pending)
        .sum();
    assert_eq!(after, pending + 1, "and is pending again");

    // A worker drains the backlog at about 20 events a second while the queue page samples
    // its throughput.
    let worker = Worker::new(queue.clone(), EVENT)
        .poll_interval(Duration::from_millis(5))
        .concurrency(1)
        .run(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(())
            })
        });
    browser.open(&format!("{base}/queues/city/default")).await;
    eventually("the throughput line has three samples", || async {
        let drawn = browser
            .script(
                "return document.querySelector('#throughput polyline')\
                 .getAttribute('points').split(' ').length + ':' \
                 + document.getElementById('rate').textContent",
            )
            .await;
        let drawn = drawn.as_str().unwrap_or_default().to_string();
        let (points, rate) = drawn.split_once(':').unwrap_or_default();
        points.parse::<usize>().unwrap_or(0) >= 3 && rate != "0.0 /s" && rate != "–"
    })
    .await;
    browser.screenshot("queue.png", 1000).await;
    worker.shutdown().await.unwrap();

    drop(browser);
    server.abort();
}
