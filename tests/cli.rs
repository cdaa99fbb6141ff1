//! The `tito` command line reads tables, records, index entries, sizes, schemas, queue lag and
//! dead letters of a database folder, as tables or JSON; verifies and rebuilds indexes with
//! progress; refuses folders holding no tito database; and fails with a clear message and its
//! own exit status on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod cities;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tito::queue::DEFAULT_GROUP;
use tito::{Embedded, TitoError};

/// Runs `tito <command> <dir> <rest>`.
fn tito(command: &str, dir: &Path, rest: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tito"))
        .arg(command)
        .arg(dir)
        .args(rest)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The JSON a `--json` listing printed.
fn json(output: &Output) -> Value {
    serde_json::from_str(&stdout(output)).unwrap()
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tito-cli-{}", tito::DBUuid::new_v4()))
}

/// Fills a database folder with the cities of [`cities::fill`].
async fn fill(dir: &Path) {
    let db = Embedded::open(dir).await.unwrap();
    cities::fill(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reads_tables_records_indexes_and_the_queue() {
    let dir = temp_dir();
    fill(&dir).await;

    assert_eq!(
        json(&tito("tables", &dir, &["--json"])),
        json!([{"table": "city", "records": 3}])
    );
    assert_eq!(
        stdout(&tito("tables", &dir, &[])),
        "TABLE  RECORDS\ncity   3\n"
    );
    let page = tito("records", &dir, &["city", "--after", "c1", "--limit", "1"]);
    let records = stdout(&page);
    assert_eq!(records.lines().count(), 1);
    assert!(records.contains("\"Lima\""), "{records}");
    assert!(stderr(&page).contains("next page: --after c2"), "{page:?}");
    let all = json(&tito("records", &dir, &["city", "--json"]));
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    assert_eq!(json(&tito("get", &dir, &["city", "c3"]))["name"], "Rome");
    assert_eq!(
        json(&tito("index", &dir, &["city", "by_population", "--json"])),
        json!([
            {"values": "-5", "id": "c1"},
            {"values": "7", "id": "c3"},
            {"values": "10000000000", "id": "c2"},
        ]),
        "numeric order"
    );

    let stats = json(&tito("stats", &dir, &["--json"]));
    let part = |name: &str| {
        (stats.as_array().unwrap().iter())
            .find(|row| row["part"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    };
    assert_eq!(part("records")["keys"], 3);
    assert_eq!(part("manifests")["keys"], 3);
    assert_eq!(part("index by_population")["keys"], 3);
    assert!(part("records")["bytes"].as_u64().unwrap() > 3 * 20);

    assert_eq!(json(&tito("lag", &dir, &["city", "--json"])), json!([]));
    let dead = json(&tito("dead", &dir, &["city", "--json"]));
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{dead}");
    assert_eq!(dead[0]["action"], "INSERT");
    assert_eq!(dead[0]["entity"], "city:c1");
    assert_eq!(dead[0]["error"], "the map is missing");
    let replayed = tito("replay", &dir, &["city", "--json"]);
    assert_eq!(json(&replayed), json!([{"replayed": 1}]));
    assert!(
        stderr(&replayed).contains("replay: 1 dead letters, done"),
        "{replayed:?}"
    );
    let lag = json(&tito(
        "lag",
        &dir,
        &["city", "--group", DEFAULT_GROUP, "--json"],
    ));
    assert_eq!(lag[0]["pending"], 1, "{lag}");
    assert!(
        stdout(&tito("lag", &dir, &["city"])).starts_with("PARTITION  PENDING  RETRYING  OLDEST\n")
    );

    let missing = tito("get", &dir, &["city", "nowhere"]);
    assert_eq!(missing.status.code(), Some(4), "{missing:?}");
    assert!(stderr(&missing).contains("not found"));
    let unknown = tito("frobnicate", &dir, &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("Usage: tito"), "{unknown:?}");
    let bad_limit = tito("records", &dir, &["city", "--limit", "many"]);
    assert_eq!(bad_limit.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_refuses_folders_without_a_tito_database_and_creates_nothing() {
    let empty = temp_dir();
    std::fs::create_dir_all(&empty).unwrap();
    let refused = tito("tables", &empty, &[]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert!(stderr(&refused).contains("no tito database"), "{refused:?}");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing written"
    );

    let nowhere = temp_dir();
    assert_eq!(tito("tables", &nowhere, &[]).status.code(), Some(3));
    assert!(!nowhere.exists(), "no folder created");
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn cli_help_version_and_completions_succeed() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tito"))
            .args(args)
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit status"));
    assert!(stdout(&run(&["--version"])).starts_with("tito "));
    assert!(stdout(&run(&["completions", "bash"])).contains("_tito"));
    assert_eq!(run(&[]).status.code(), Some(2), "a command is needed");
}

/// The city model with an index on the name added.
#[derive(Debug, Clone, Default, Serialize, Deserialize, tito::TitoModel)]
#[tito(table = "city")]
struct NamedCity {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_name"))]
    name: String,
    #[tito(index(name = "by_population"))]
    population: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_verifies_and_rebuilds_indexes_through_the_registry() {
    let dir = temp_dir();
    fill(&dir).await;
    {
        // A newer model declares `by_name` on a table with rows: it is registered as building.
        let db = Embedded::open(&dir).await.unwrap();
        let named = db.clone().model::<NamedCity>();
        let err = NamedCity::by_name(&named).value("Rome").all().await;
        assert!(
            matches!(err, Err(TitoError::IndexNotReady { .. })),
            "{err:?}"
        );
    }
    assert_eq!(
        stdout(&tito("schema", &dir, &[])),
        "TABLE  VERSION  INDEX          FIELDS             UNIQUE  STATE\n\
         city   1        by_name        name:string        false   building\n\
         city   1        by_population  population:number  false   readable\n"
    );

    let verify = tito("verify", &dir, &["city", "--json"]);
    assert_eq!(verify.status.code(), Some(5), "{verify:?}");
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report[0]["records"], 3);
    assert_eq!(report[0]["entries"], 3);
    assert_eq!(report[0]["missing"], 3);
    assert_eq!(report[0]["consistent"], false);
    let told = stderr(&verify);
    assert!(told.contains("verify: 3 records, done"), "progress: {told}");
    assert!(told.contains("reindex"), "{told}");

    let rebuilt = tito("reindex", &dir, &["city", "--json"]);
    assert_eq!(json(&rebuilt)[0]["entries_added"], 3, "{rebuilt:?}");
    assert!(stderr(&rebuilt).contains("reindex: 3 records, done"));
    let schema = json(&tito("schema", &dir, &["city", "--json"]));
    assert_eq!(schema[0]["index"], "by_name");
    assert_eq!(schema[0]["state"], "readable");
    let verified = json(&tito("verify", &dir, &["city", "--json"]));
    assert_eq!(verified[0]["entries"], 6);
    assert_eq!(verified[0]["consistent"], true);
    // `repair` is the same command: with nothing out of step, it changes nothing.
    let repaired = json(&tito("repair", &dir, &["city", "--json"]));
    assert_eq!(repaired[0]["orphans_removed"], 0, "{repaired}");
    assert_eq!(repaired[0]["entries_added"], 0, "{repaired}");

    // The newer model now answers from the rebuilt index, and agrees with it.
    let db = Embedded::open(&dir).await.unwrap();
    let named = db.clone().model::<NamedCity>();
    let rome = NamedCity::by_name(&named)
        .value("Rome")
        .all()
        .await
        .unwrap();
    assert_eq!(rome.len(), 1);
    assert!(named.verify().await.unwrap().is_consistent());
    let in_use = tito("tables", &dir, &[]);
    assert_eq!(in_use.status.code(), Some(1), "{in_use:?}");
    assert!(
        stderr(&in_use).contains("open in another process"),
        "{in_use:?}"
    );
    drop((db, named));
    let missing = tito("schema", &dir, &["nowhere"]);
    assert_eq!(missing.status.code(), Some(4), "{missing:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One HTTP/1.1 request to `addr`; the answer's status line and body.
fn http(addr: &str, request_line: &str, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serves_the_dashboard_on_localhost_read_only_by_default() {
    use std::io::BufRead;
    let dir = temp_dir();
    fill(&dir).await;
    /// The server process, stopped even if an assertion fails.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_tito"))
            .args(["serve"])
            .arg(&dir)
            .args(["--port", "0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(server.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "binds locally: {line}");
    assert!(line.contains("read-only"), "{line}");

    let (status, page) = http(&addr, "GET /", "");
    assert!(status.contains("200"), "{page}");
    assert!(
        page.contains(r#"<a href="/tables/city">city</a>"#),
        "{page}"
    );
    let (status, page) = http(&addr, "GET /queues/city/default/dead", "");
    assert!(
        status.contains("200") && page.contains("the map is missing"),
        "{page}"
    );
    let (status, page) = http(&addr, "POST /queues/city/default/replay", "all=1");
    assert!(status.contains("403"), "{page}");
    assert!(page.contains("--allow-replay"), "{page}");
    drop(server);

    // Nothing was replayed.
    let dead = json(&tito("dead", &dir, &["city", "--json"]));
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{dead}");
    let _ = std::fs::remove_dir_all(&dir);
}
