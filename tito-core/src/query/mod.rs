//! Index queries: exact values on leading index fields, an optional range on the next one,
//! forward or reverse, a page at a time.

mod cursor;
mod typed;
mod value;

pub use cursor::CursorKeys;
pub use typed::{End, Field, QueryArg, Relation, TextField, TypedQuery};
pub use value::QueryValue;

pub use crate::relation::MAX_HYDRATED_LEN;

use futures_util::stream::{self, Stream, TryStreamExt};

use crate::backend::{Backend, KeyRange, key_after, prefix_end};
use crate::codec::{self, Direction};
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::TitoModelTrait;
use crate::model::schema::IndexDef;
use crate::observe::Operation;
use crate::ops::TitoModel;
use crate::txn::TitoTransaction;

/// Index entries read per backend scan by [`IndexQuery::count`].
const SCAN_CHUNK: usize = 1000;

/// Records read per page by [`IndexQuery::stream`].
pub const STREAM_PAGE: usize = 100;

/// The most records one page holds: a query with no limit or a larger one returns pages of this
/// many, with a cursor to the rest, so no query loads a whole index at once.
pub const MAX_PAGE_LEN: usize = 1000;

/// One page of query results.
#[derive(Debug, Clone)]
pub struct TitoPage<T> {
    /// The records of the page, in index order (reversed for reverse queries).
    pub items: Vec<T>,
    /// Continues after the last item; `None` when there are no more rows.
    pub cursor: Option<String>,
}

/// A bound on the field after the exact values.
#[derive(Debug, Clone)]
enum Bound {
    Gt(QueryValue),
    Gte(QueryValue),
    Lt(QueryValue),
    Lte(QueryValue),
    Between(QueryValue, QueryValue),
    StartsWith(String),
}

/// A query on one index of model `T`, built with `.value(..)` and friends, run with
/// `.execute()`, `.execute_reverse()` or their `_tx` forms.
#[derive(Debug, Clone)]
pub struct IndexQuery<T, B: Backend> {
    model: TitoModel<T, B>,
    index: String,
    values: Vec<QueryValue>,
    bounds: Vec<Bound>,
    relationships: Vec<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl<T: TitoModelTrait, B: Backend> IndexQuery<T, B> {
    pub(crate) fn new(model: TitoModel<T, B>, index: String) -> Self {
        IndexQuery {
            model,
            index,
            values: Vec::new(),
            bounds: Vec::new(),
            relationships: Vec::new(),
            limit: None,
            cursor: None,
        }
    }

    /// Matches the next index field exactly. Strings given for number fields are parsed.
    pub fn value(&mut self, value: impl Into<QueryValue>) -> &mut Self {
        self.values.push(value.into());
        self
    }

    /// Keeps rows whose next field is greater than `value`.
    pub fn gt(&mut self, value: impl Into<QueryValue>) -> &mut Self {
        self.bounds.push(Bound::Gt(value.into()));
        self
    }

    /// Keeps rows whose next field is at least `value`.
    pub fn gte(&mut self, value: impl Into<QueryValue>) -> &mut Self {
        self.bounds.push(Bound::Gte(value.into()));
        self
    }

    /// Keeps rows whose next field is less than `value`.
    pub fn lt(&mut self, value: impl Into<QueryValue>) -> &mut Self {
        self.bounds.push(Bound::Lt(value.into()));
        self
    }

    /// Keeps rows whose next field is at most `value`.
    pub fn lte(&mut self, value: impl Into<QueryValue>) -> &mut Self {
        self.bounds.push(Bound::Lte(value.into()));
        self
    }

    /// Keeps rows whose next field lies in `low..=high`.
    pub fn between(
        &mut self,
        low: impl Into<QueryValue>,
        high: impl Into<QueryValue>,
    ) -> &mut Self {
        self.bounds.push(Bound::Between(low.into(), high.into()));
        self
    }

    /// Keeps rows whose next field (a string field) starts with `prefix`.
    pub fn starts_with(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.bounds.push(Bound::StartsWith(prefix.into()));
        self
    }

    /// Hydrates the relationship with this destination field in every returned record.
    pub fn relationship(&mut self, name: impl Into<String>) -> &mut Self {
        self.relationships.push(name.into());
        self
    }

    /// Returns at most `limit` records per page (`10` or `Some(10)`); `None`, or a limit above
    /// [`MAX_PAGE_LEN`], gives pages of [`MAX_PAGE_LEN`] (follow the cursor, or use
    /// [`all`](Self::all) or [`stream`](Self::stream), for every record).
    pub fn limit(&mut self, limit: impl Into<Option<usize>>) -> &mut Self {
        self.limit = limit.into();
        self
    }

    /// Continues after the page that returned `cursor`; `None` starts at the beginning.
    pub fn cursor(&mut self, cursor: Option<String>) -> &mut Self {
        self.cursor = cursor;
        self
    }

    /// Runs the query in index order on a consistent snapshot.
    pub async fn execute(&self) -> Result<TitoPage<T>> {
        self.run_snapshot(false).await
    }

    /// Runs the query in reverse index order on a consistent snapshot.
    pub async fn execute_reverse(&self) -> Result<TitoPage<T>> {
        self.run_snapshot(true).await
    }

    /// Runs the query in index order inside `tx`, seeing its uncommitted writes.
    pub async fn execute_tx(&self, tx: &TitoTransaction<B>) -> Result<TitoPage<T>> {
        self.run(tx, false).await
    }

    /// Runs the query in reverse index order inside `tx`.
    pub async fn execute_reverse_tx(&self, tx: &TitoTransaction<B>) -> Result<TitoPage<T>> {
        self.run(tx, true).await
    }

    /// The first record in index order, if any, on a consistent snapshot.
    pub async fn first(&self) -> Result<Option<T>> {
        self.model
            .engine
            .read(|tx| async move { self.first_tx(&tx).await })
            .await
    }

    /// The first record in index order, if any, inside `tx`.
    pub async fn first_tx(&self, tx: &TitoTransaction<B>) -> Result<Option<T>> {
        let mut query = self.clone();
        query.limit(1);
        Ok(query.run(tx, false).await?.items.into_iter().next())
    }

    /// Every record the query matches (after its cursor, if any), in index order, ignoring its
    /// limit: for sets small enough to hold in memory.
    pub async fn all(&self) -> Result<Vec<T>> {
        self.model
            .engine
            .read(|tx| async move { self.all_tx(&tx).await })
            .await
    }

    /// [`all`](Self::all) inside `tx`.
    pub async fn all_tx(&self, tx: &TitoTransaction<B>) -> Result<Vec<T>>
    where
        T: 'static,
    {
        self.pages(MAX_PAGE_LEN, move |query| async move {
            query.execute_tx(tx).await
        })
        .try_collect()
        .await
    }

    /// Every record the query matches (after its cursor, if any), ignoring its limit, as a
    /// lazy stream that reads [`STREAM_PAGE`] records at a time, each page on a snapshot of its
    /// own: rows are never skipped or repeated, but a page may see writes an earlier one did
    /// not.
    pub fn stream(&self) -> impl Stream<Item = Result<T>> + use<T, B>
    where
        T: 'static,
    {
        self.pages(STREAM_PAGE, |query| async move { query.execute().await })
    }

    /// [`stream`](Self::stream) inside `tx`, every page seeing its writes.
    pub fn stream_tx<'a>(
        &self,
        tx: &'a TitoTransaction<B>,
    ) -> impl Stream<Item = Result<T>> + use<'a, T, B>
    where
        T: 'static,
    {
        self.pages(STREAM_PAGE, move |query| async move {
            query.execute_tx(tx).await
        })
    }

    /// Streams the records of the pages of `size` that `read` returns, following their cursors.
    fn pages<F, Fut>(
        &self,
        size: usize,
        read: F,
    ) -> impl Stream<Item = Result<T>> + use<F, Fut, T, B>
    where
        F: Fn(IndexQuery<T, B>) -> Fut,
        Fut: Future<Output = Result<TitoPage<T>>>,
    {
        let mut first = self.clone();
        first.limit(size);
        let pages = stream::try_unfold((Some(first), read), |(next, read)| async move {
            let Some(query) = next else {
                return Ok(None);
            };
            let page = read(query.clone()).await?;
            let next = page.cursor.map(|cursor| {
                let mut query = query;
                query.cursor(Some(cursor));
                query
            });
            let records = stream::iter(page.items.into_iter().map(Ok));
            Ok(Some((records, (next, read))))
        });
        pages.try_flatten()
    }

    /// How many records the query matches (after its cursor, if any, in the cursor's
    /// direction), ignoring its limit; reads index entries only, not the records.
    pub async fn count(&self) -> Result<usize> {
        self.model
            .engine
            .read(|tx| async move { self.count_tx(&tx).await })
            .await
    }

    /// [`count`](Self::count) inside `tx`.
    pub async fn count_tx(&self, tx: &TitoTransaction<B>) -> Result<usize> {
        Operation::new("count", &self.model.schema)
            .on_index(&self.index)
            .run(self.model.engine.slow(), self.count_in(tx), |n| *n)
            .await
    }

    async fn count_in(&self, tx: &TitoTransaction<B>) -> Result<usize> {
        // A cursor of a reverse page counts what remains in its direction: the rows before it.
        let (_, range, _) = match self.plan(false) {
            Err(TitoError::InvalidCursor(_)) if self.cursor.is_some() => self.plan(true)?,
            planned => planned?,
        };
        let model = &self.model;
        model
            .engine
            .check_readable(&model.schema, &self.index)
            .await?;
        let mut counted = 0;
        let mut range = range;
        loop {
            let chunk = tx.scan(range.clone(), SCAN_CHUNK).await?;
            counted += chunk.len();
            match chunk.last() {
                Some((last, _)) if chunk.len() == SCAN_CHUNK => range.start = key_after(last),
                _ => return Ok(counted),
            }
        }
    }

    async fn run_snapshot(&self, reverse: bool) -> Result<TitoPage<T>> {
        self.model
            .engine
            .read(|tx| async move { self.run(&tx, reverse).await })
            .await
    }

    /// The key range the query covers, before any cursor.
    fn range(&self, index: &IndexDef) -> Result<KeyRange> {
        let fields = &index.fields;
        let bounded = usize::from(!self.bounds.is_empty());
        if self.values.len() + bounded > fields.len() {
            return Err(TitoError::InvalidQuery(format!(
                "index `{}` has {} fields; the query gives {} values{}",
                index.name,
                fields.len(),
                self.values.len(),
                if bounded == 1 { " and a range" } else { "" }
            )));
        }
        if self.bounds.len() > 1 {
            return Err(TitoError::InvalidQuery(
                "one range per query; use `between` for two bounds".into(),
            ));
        }
        let mut base = index.prefix.clone();
        for (value, field) in self.values.iter().zip(fields) {
            value.encode(&mut base, field, &index.name)?;
        }
        let everything = KeyRange {
            start: base.clone(),
            end: prefix_end(&base),
        };
        let Some(bound) = self.bounds.first() else {
            return Ok(everything);
        };
        let field = &fields[self.values.len()];
        let at = |value: &QueryValue| -> Result<Vec<u8>> {
            let mut key = base.clone();
            value.encode(&mut key, field, &index.name)?;
            Ok(key)
        };
        let after = |value: &QueryValue| -> Result<Option<Vec<u8>>> { Ok(prefix_end(&at(value)?)) };
        let range = match bound {
            Bound::Gte(v) => KeyRange {
                start: at(v)?,
                end: everything.end,
            },
            Bound::Gt(v) => match after(v)? {
                Some(start) => KeyRange {
                    start,
                    end: everything.end,
                },
                None => KeyRange::new(base.clone(), base.clone()),
            },
            Bound::Lt(v) => KeyRange {
                start: base.clone(),
                end: Some(at(v)?),
            },
            Bound::Lte(v) => KeyRange {
                start: base.clone(),
                end: after(v)?,
            },
            Bound::Between(low, high) => KeyRange {
                start: at(low)?,
                end: after(high)?,
            },
            Bound::StartsWith(prefix) => {
                if field.r#type != crate::model::TitoIndexBlockType::String {
                    return Err(TitoError::InvalidQuery(format!(
                        "index `{}` field `{}` is a number: `starts_with` needs a string field",
                        index.name, field.name
                    )));
                }
                let mut start = base.clone();
                codec::put_str(&mut start, prefix, Direction::Asc);
                // Drop the two-byte terminator: what remains prefixes every longer string.
                start.truncate(start.len() - 2);
                KeyRange {
                    end: prefix_end(&start),
                    start,
                }
            }
        };
        Ok(range)
    }

    /// Checks the query against the model, and gives its index, the key range left to read
    /// (after the cursor, if any) and what cursors of the query are bound to.
    fn plan(&self, reverse: bool) -> Result<(&IndexDef, KeyRange, Vec<u8>)> {
        let schema = &self.model.schema;
        schema.check()?;
        let index = schema.index(&self.index)?;
        for name in &self.relationships {
            schema.relationship(name)?;
        }
        let mut range = self.range(index)?;
        // The query's whole range: the start's length first, so the boundary is unambiguous.
        let mut query = Vec::with_capacity(range.start.len() + 64);
        query.extend_from_slice(&(range.start.len() as u64).to_be_bytes());
        query.extend_from_slice(&range.start);
        if let Some(end) = &range.end {
            query.push(1);
            query.extend_from_slice(end);
        }
        if let Some(cursor) = &self.cursor {
            let last = self
                .model
                .engine
                .cursor_keys()
                .open(cursor, &query, reverse)?;
            if !range.contains(&last) {
                return Err(TitoError::InvalidCursor(
                    "the cursor lies outside the query's range".into(),
                ));
            }
            if reverse {
                range.end = Some(last);
            } else {
                range.start = key_after(&last);
            }
        }
        Ok((index, range, query))
    }

    async fn run(&self, tx: &TitoTransaction<B>, reverse: bool) -> Result<TitoPage<T>> {
        Operation::new("query", &self.model.schema)
            .on_index(&self.index)
            .run(
                self.model.engine.slow(),
                self.read_page(tx, reverse),
                |page| page.items.len(),
            )
            .await
    }

    /// The page [`run`](Self::run) returns.
    async fn read_page(&self, tx: &TitoTransaction<B>, reverse: bool) -> Result<TitoPage<T>> {
        let (index, range, query) = self.plan(reverse)?;
        let schema = &self.model.schema;
        self.model
            .engine
            .check_readable(schema, &self.index)
            .await?;
        let limit = self.limit.map_or(MAX_PAGE_LEN, |n| n.min(MAX_PAGE_LEN));
        // One entry more than the page tells whether a next page exists.
        let entries = if reverse {
            tx.scan_reverse(range, limit + 1).await?
        } else {
            tx.scan(range, limit + 1).await?
        };
        let has_more = entries.len() > limit;
        let entries = &entries[..entries.len().min(limit)];
        let ids = entries
            .iter()
            .map(|(key, value)| entry_id(index, key, value))
            .collect::<Result<Vec<String>>>()?;
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| keyspace::record_key(&schema.table, id))
            .collect();
        let found = tx.batch_get(&keys).await?;
        let mut rows = Vec::with_capacity(keys.len());
        for (key, bytes) in keys.into_iter().zip(found) {
            match bytes {
                Some(bytes) => rows.push((key, bytes)),
                None => {
                    return Err(crate::model::record::decode_error(
                        &key,
                        format!("index `{}` names a record that does not exist", index.name),
                    ));
                }
            }
        }
        let items = self
            .model
            .decode_rows(rows, &self.relationships, tx)
            .await?;
        let cursor = match entries.last() {
            Some((last, _)) if has_more => {
                Some(self.model.engine.cursor_keys().seal(&query, reverse, last))
            }
            _ => None,
        };
        Ok(TitoPage { items, cursor })
    }
}

/// The record id an index entry points to.
pub(crate) fn entry_id(index: &IndexDef, key: &[u8], value: &[u8]) -> Result<String> {
    let id = if index.unique {
        String::from_utf8(value.to_vec()).ok()
    } else {
        keyspace::id_from_index_key(key, index.prefix.len())
    };
    id.ok_or_else(|| crate::model::record::decode_error(key, "malformed index entry".into()))
}
