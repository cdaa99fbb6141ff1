//! The benchmark's data set and operation plan, generated deterministically from the row count,
//! so every system (each in its own process) writes and reads exactly the same records.

use serde::{Deserialize, Serialize};

/// Posts per author and per category: every author and category has enough posts for two pages.
pub const POSTS_PER_GROUP: u64 = 100;
/// Rows per page of the query workloads.
pub const PAGE: usize = 10;
/// Records per transaction of the batched insert workload.
pub const BATCH: u64 = 100;

/// The author a post references; the target of the hydrated relationship.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Author {
    /// Primary key.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The benchmarked record: two secondary indexes, `(author_id, created_at)` and
/// `(category, created_at)`, and a relationship `author_id -> author`.
///
/// Fields are declared in alphabetical order so that serializing the struct and serializing
/// its `serde_json::Value` (sorted keys) give the same bytes: the raw system can then write
/// exactly what tito writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Post {
    /// Hydrated from `author_id` on request; never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// Id of the author.
    pub author_id: String,
    /// About 200 bytes of text.
    pub body: String,
    /// Indexed with `created_at`; the update workload changes it.
    pub category: String,
    /// Unique per post, so index order is total.
    pub created_at: i64,
    /// Primary key.
    pub id: String,
    /// A short title.
    pub title: String,
}

/// splitmix64: a fixed, fast pseudo-random mix (no dependency, the same in every process).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A permutation of `0..n`: `j -> (j * step + offset) mod n`, so no element repeats.
#[derive(Debug, Clone, Copy)]
pub struct Permutation {
    n: u64,
    step: u64,
    offset: u64,
}

impl Permutation {
    /// A permutation of `0..n` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let n = n.max(1);
        let mut step = 1_000_003 % n;
        while step == 0 || gcd(step, n) != 1 {
            step += 1;
        }
        Permutation {
            n,
            step,
            offset: mix(seed) % n,
        }
    }

    /// The `j`-th element.
    pub fn at(&self, j: u64) -> u64 {
        ((j as u128 * self.step as u128 + self.offset as u128) % self.n as u128) as u64
    }
}

/// Sizes of one run: `rows` records loaded, `ops` operations per single-record workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Records loaded by the batched insert workload.
    pub rows: u64,
    /// Operations of each other workload (at most `rows`).
    pub ops: u64,
}

impl Plan {
    /// A plan for `rows` records and `ops` operations per workload.
    pub fn new(rows: u64, ops: u64) -> Self {
        let rows = rows.max(BATCH).div_ceil(BATCH) * BATCH;
        Plan {
            rows,
            ops: ops.clamp(1, rows),
        }
    }

    /// Number of authors (and of categories).
    pub fn groups(&self) -> u64 {
        (self.rows / POSTS_PER_GROUP).max(1)
    }

    /// Author `i`.
    pub fn author(&self, i: u64) -> Author {
        Author {
            id: author_id(i),
            name: format!("Author number {i}"),
        }
    }

    /// Post `i` as first written. Posts `0..rows` are loaded in batches; `rows..rows + ops`
    /// are inserted one per transaction and later deleted.
    pub fn post(&self, i: u64) -> Post {
        let groups = self.groups();
        let category = mix(i) % groups;
        Post {
            author: None,
            author_id: author_id(i % groups),
            body: format!(
                "Post {i} body. {}",
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
                 incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
                 nostrud exercitation."
            ),
            category: category_name(category),
            created_at: 1_700_000_000_000 + i as i64,
            id: post_id(i),
            title: format!("Title of post {i}"),
        }
    }

    /// Post `i` after the update workload: its category moves to the next one.
    pub fn updated_post(&self, i: u64) -> Post {
        let mut post = self.post(i);
        post.category = category_name((mix(i) + 1) % self.groups());
        post
    }

    /// The post the `j`-th get reads: any post present after the inserts.
    pub fn get_target(&self, j: u64) -> u64 {
        mix(j ^ 0x6765_7400) % (self.rows + self.ops)
    }

    /// The author whose posts the `j`-th query pages through.
    pub fn query_author(&self, j: u64) -> String {
        author_id(mix(j ^ 0x7175_6572) % self.groups())
    }

    /// The category whose first page the `j`-th relationship query reads.
    pub fn query_category(&self, j: u64) -> String {
        category_name(mix(j ^ 0x7265_6c00) % self.groups())
    }

    /// The post the `j`-th update changes: each loaded post at most once.
    pub fn update_target(&self, j: u64) -> u64 {
        Permutation::new(self.rows, 1).at(j)
    }

    /// The post the `j`-th delete removes: each singly inserted post once.
    pub fn delete_target(&self, j: u64) -> u64 {
        self.rows + Permutation::new(self.ops, 2).at(j)
    }
}

/// The id of post `i`.
pub fn post_id(i: u64) -> String {
    format!("p{i:09}")
}

/// The id of author `i` (fixed width, so native_db's concatenated tuple keys stay unambiguous).
pub fn author_id(i: u64) -> String {
    format!("a{i:07}")
}

/// The name of category `i` (fixed width, for the same reason).
pub fn category_name(i: u64) -> String {
    format!("c{i:07}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_cover_every_element_once() {
        for n in [1, 7, 100, 1000, 1_000_003 * 2] {
            let p = Permutation::new(n, 3);
            let count = n.min(5000);
            let mut seen: Vec<u64> = (0..count).map(|j| p.at(j)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len() as u64, count);
            assert!(seen.iter().all(|&x| x < n));
        }
    }

    #[test]
    fn struct_and_value_serialize_alike() {
        let post = Plan::new(1000, 10).post(5);
        let direct = serde_json::to_vec(&post).unwrap();
        let via_value = serde_json::to_vec(&serde_json::to_value(&post).unwrap()).unwrap();
        assert_eq!(direct, via_value);
    }
}
