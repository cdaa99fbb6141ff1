//! Backend calls per tito operation, counted with the `Counting` wrapper: the round trips each
//! operation would cost on a networked backend such as TiKV.

use std::fmt::Write;

use tito_core::TitoEngine;
use tito_core::backend::{CallCounts, Counting, Embedded};

use crate::data::{Plan, post_id};
use crate::system::{Result, System, setup};
use crate::systems::tito::Tito;

/// One counted operation: its name, the counts and the goal.
#[derive(Debug, Clone)]
pub struct Counted {
    /// What was done.
    pub operation: &'static str,
    /// The calls it made.
    pub counts: CallCounts,
    /// The round-trip goal, in words.
    pub goal: &'static str,
}

/// Counts the calls of one operation of each kind on a small data set.
pub async fn count() -> Result<Vec<Counted>> {
    let plan = Plan::new(300, 10);
    let backend = Counting::new(Embedded::temporary_builder().open_backend()?);
    let mut tito = Tito::on(TitoEngine::new(backend.clone()).await?);
    setup(&mut tito, &plan).await?;
    let posts = (0..plan.rows).map(|i| plan.post(i)).collect();
    tito.insert(posts).await?;
    backend.take();
    let mut out = Vec::new();
    let mut record = |operation, goal| {
        out.push(Counted {
            operation,
            counts: backend.take(),
            goal,
        })
    };

    tito.insert(vec![plan.post(plan.rows)]).await?;
    record("insert 1 record (2 indexes)", "1 commit");
    tito.insert(
        (plan.rows + 1..plan.rows + 101)
            .map(|i| plan.post(i))
            .collect(),
    )
    .await?;
    record("insert 100 records in one transaction", "1 commit");
    tito.get(&post_id(plan.get_target(0))).await?;
    record("get by id", "1 get");
    let first = tito.page_by_author(&plan.query_author(0), None).await?;
    record("index query, page of 10", "1 scan + 1 batch read");
    tito.page_by_author(&plan.query_author(0), first.next)
        .await?;
    record("next page through the cursor", "1 scan + 1 batch read");
    tito.page_by_category_with_author(&plan.query_category(0))
        .await?;
    record("page of 10 with one relationship", "1 scan + 2 batch reads");
    tito.update(plan.updated_post(plan.update_target(0)))
        .await?;
    record("update changing one indexed field", "1 read + 1 commit");
    tito.delete(&post_id(plan.delete_target(0))).await?;
    record("delete by id", "1 read + 1 commit");
    Ok(out)
}

/// The counts as a Markdown table.
pub fn markdown(counted: &[Counted]) -> String {
    let mut out = String::from(
        "| tito operation | get | batch get | scan | commit | round trips | puts+deletes (buffered) | goal |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for c in counted {
        let n = &c.counts;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | **{}** | {} | {} |",
            c.operation,
            n.get,
            n.batch_get,
            n.scan,
            n.commit,
            n.round_trips(),
            n.write,
            c.goal
        );
    }
    out
}
