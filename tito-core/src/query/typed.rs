//! Typed index queries, the builders `#[derive(TitoModel)]` generates one constructor per index
//! for (`User::by_email(&users)`).
//!
//! A [`TypedQuery`] carries the types of the index fields not yet matched as a type-level list
//! ([`Field`]`<F, Rest>` ... [`End`]), so giving a value of the wrong type, or more values than the
//! index has fields, is a compile error. It delegates to the untyped [`IndexQuery`], so both run
//! exactly the same scans.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::marker::PhantomData;

use crate::backend::Backend;
use crate::codec::Number;
use crate::error::Result;
use crate::query::{IndexQuery, QueryValue, TitoPage};
use crate::txn::TitoTransaction;

/// The remaining index fields of a [`TypedQuery`]: the next one has type `F`.
#[derive(Debug)]
pub struct Field<F, Rest>(PhantomData<fn() -> (F, Rest)>);

/// No index field left to match: only running the query remains.
#[derive(Debug)]
pub struct End;

/// A value that can be matched against an index field of type `F` (for `Option`, `Vec` and set
/// fields, a value of their element type).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be matched against an index field of type `{F}`",
    label = "expected a value of the index field's type"
)]
pub trait QueryArg<F: ?Sized> {
    /// The value as the untyped query takes it.
    fn into_query_value(self) -> QueryValue;
}

/// Marks index field types stored as text, which support [`TypedQuery::starts_with`].
#[diagnostic::on_unimplemented(
    message = "`starts_with` needs a string index field, not `{Self}`",
    label = "this index field is not a string"
)]
pub trait TextField {}

/// A relationship of model `T`, named by its destination field; the derive generates one
/// associated constant per relationship (`Post::TAGS`).
pub struct Relation<T> {
    name: &'static str,
    _model: PhantomData<fn() -> T>,
}

impl<T> Relation<T> {
    /// A relationship of `T` whose destination field is `name` (used by generated code).
    #[doc(hidden)]
    pub const fn new(name: &'static str) -> Self {
        Relation {
            name,
            _model: PhantomData,
        }
    }

    /// The destination field name, as the untyped API takes it.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Relation<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Relation<T> {}

impl<T> fmt::Debug for Relation<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Relation({})", self.name)
    }
}

impl<T> From<Relation<T>> for String {
    fn from(relation: Relation<T>) -> String {
        relation.name.to_string()
    }
}

/// A query on one index of model `T` whose unmatched fields are `Fields`.
pub struct TypedQuery<T, B: Backend, Fields> {
    query: IndexQuery<T, B>,
    _fields: PhantomData<fn() -> Fields>,
}

impl<T, B: Backend, Fields> Clone for TypedQuery<T, B, Fields>
where
    IndexQuery<T, B>: Clone,
{
    fn clone(&self) -> Self {
        TypedQuery {
            query: self.query.clone(),
            _fields: PhantomData,
        }
    }
}

impl<T, B: Backend, Fields> fmt::Debug for TypedQuery<T, B, Fields>
where
    IndexQuery<T, B>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedQuery").field(&self.query).finish()
    }
}

impl<T, B: Backend, Fields> TypedQuery<T, B, Fields> {
    fn next<Next>(self) -> TypedQuery<T, B, Next> {
        TypedQuery {
            query: self.query,
            _fields: PhantomData,
        }
    }
}

impl<T: crate::model::TitoModelTrait, B: Backend, Fields> TypedQuery<T, B, Fields> {
    /// Wraps an untyped query whose index fields are `Fields` (used by generated code).
    #[doc(hidden)]
    pub fn new(query: IndexQuery<T, B>) -> Self {
        TypedQuery {
            query,
            _fields: PhantomData,
        }
    }

    /// Hydrates `relation` in every returned record.
    pub fn relationship(mut self, relation: Relation<T>) -> Self {
        self.query.relationship(relation.name);
        self
    }

    /// Returns at most `limit` records per page (`10` or `Some(10)`); `None`, or a limit above
    /// [`MAX_PAGE_LEN`](super::MAX_PAGE_LEN), gives pages of that many, with a cursor to the rest.
    pub fn limit(mut self, limit: impl Into<Option<usize>>) -> Self {
        self.query.limit(limit);
        self
    }

    /// Continues after the page that returned `cursor`; `None` starts at the beginning.
    pub fn cursor(mut self, cursor: Option<String>) -> Self {
        self.query.cursor(cursor);
        self
    }

    /// Runs the query in index order on a consistent snapshot.
    pub async fn execute(&self) -> Result<TitoPage<T>> {
        self.query.execute().await
    }

    /// Runs the query in reverse index order on a consistent snapshot.
    pub async fn execute_reverse(&self) -> Result<TitoPage<T>> {
        self.query.execute_reverse().await
    }

    /// Runs the query in index order inside `tx`, seeing its uncommitted writes.
    pub async fn execute_tx(&self, tx: &TitoTransaction<B>) -> Result<TitoPage<T>> {
        self.query.execute_tx(tx).await
    }

    /// Runs the query in reverse index order inside `tx`.
    pub async fn execute_reverse_tx(&self, tx: &TitoTransaction<B>) -> Result<TitoPage<T>> {
        self.query.execute_reverse_tx(tx).await
    }

    /// The first record in index order, if any, on a consistent snapshot.
    pub async fn first(&self) -> Result<Option<T>> {
        self.query.first().await
    }

    /// The first record in index order, if any, inside `tx`.
    pub async fn first_tx(&self, tx: &TitoTransaction<B>) -> Result<Option<T>> {
        self.query.first_tx(tx).await
    }

    /// Every record the query matches (after its cursor, if any), ignoring its limit.
    pub async fn all(&self) -> Result<Vec<T>> {
        self.query.all().await
    }

    /// Every record the query matches, inside `tx`.
    pub async fn all_tx(&self, tx: &TitoTransaction<B>) -> Result<Vec<T>> {
        self.query.all_tx(tx).await
    }

    /// Every record the query matches (after its cursor, if any), as a lazy stream of pages
    /// (see [`IndexQuery::stream`]).
    pub fn stream(&self) -> impl futures_util::Stream<Item = Result<T>> + use<T, B, Fields>
    where
        T: 'static,
    {
        self.query.stream()
    }

    /// [`stream`](Self::stream) inside `tx`.
    pub fn stream_tx<'a>(
        &self,
        tx: &'a TitoTransaction<B>,
    ) -> impl futures_util::Stream<Item = Result<T>> + use<'a, T, B, Fields>
    where
        T: 'static,
    {
        self.query.stream_tx(tx)
    }

    /// How many records the query matches (after its cursor, if any), ignoring its limit,
    /// without reading the records.
    pub async fn count(&self) -> Result<usize> {
        self.query.count().await
    }

    /// How many records the query matches, inside `tx`.
    pub async fn count_tx(&self, tx: &TitoTransaction<B>) -> Result<usize> {
        self.query.count_tx(tx).await
    }

    /// The untyped query this builder drives.
    pub fn into_untyped(self) -> IndexQuery<T, B> {
        self.query
    }
}

impl<T: crate::model::TitoModelTrait, B: Backend, F, Rest> TypedQuery<T, B, Field<F, Rest>> {
    /// Matches the next index field exactly.
    pub fn value(mut self, value: impl QueryArg<F>) -> TypedQuery<T, B, Rest> {
        self.query.value(value.into_query_value());
        self.next()
    }

    /// Keeps rows whose next field is greater than `value`.
    pub fn gt(mut self, value: impl QueryArg<F>) -> TypedQuery<T, B, End> {
        self.query.gt(value.into_query_value());
        self.next()
    }

    /// Keeps rows whose next field is at least `value`.
    pub fn gte(mut self, value: impl QueryArg<F>) -> TypedQuery<T, B, End> {
        self.query.gte(value.into_query_value());
        self.next()
    }

    /// Keeps rows whose next field is less than `value`.
    pub fn lt(mut self, value: impl QueryArg<F>) -> TypedQuery<T, B, End> {
        self.query.lt(value.into_query_value());
        self.next()
    }

    /// Keeps rows whose next field is at most `value`.
    pub fn lte(mut self, value: impl QueryArg<F>) -> TypedQuery<T, B, End> {
        self.query.lte(value.into_query_value());
        self.next()
    }

    /// Keeps rows whose next field lies in `low..=high`.
    pub fn between(
        mut self,
        low: impl QueryArg<F>,
        high: impl QueryArg<F>,
    ) -> TypedQuery<T, B, End> {
        self.query
            .between(low.into_query_value(), high.into_query_value());
        self.next()
    }

    /// Keeps rows whose next field, a string field, starts with `prefix`.
    pub fn starts_with(mut self, prefix: impl Into<String>) -> TypedQuery<T, B, End>
    where
        F: TextField,
    {
        self.query.starts_with(prefix);
        self.next()
    }
}

impl QueryArg<String> for &str {
    fn into_query_value(self) -> QueryValue {
        QueryValue::Text(self.to_string())
    }
}

impl QueryArg<String> for String {
    fn into_query_value(self) -> QueryValue {
        QueryValue::Text(self)
    }
}

impl QueryArg<String> for &String {
    fn into_query_value(self) -> QueryValue {
        QueryValue::Text(self.clone())
    }
}

impl QueryArg<bool> for bool {
    fn into_query_value(self) -> QueryValue {
        QueryValue::from(self)
    }
}

impl QueryArg<uuid::Uuid> for uuid::Uuid {
    fn into_query_value(self) -> QueryValue {
        QueryValue::from(self)
    }
}

impl QueryArg<uuid::Uuid> for &uuid::Uuid {
    fn into_query_value(self) -> QueryValue {
        QueryValue::from(*self)
    }
}

macro_rules! number_query_arg {
    ($variant:ident, $wide:ty: $($t:ty),*) => {$(
        impl QueryArg<$t> for $t {
            fn into_query_value(self) -> QueryValue {
                QueryValue::Number(Number::$variant(self as $wide))
            }
        }
    )*};
}

number_query_arg!(Int, i64: i8, i16, i32, i64, isize);
number_query_arg!(UInt, u64: u8, u16, u32, u64, usize);
number_query_arg!(Float, f64: f32, f64);

macro_rules! element_query_arg {
    ($($c:ident),*) => {$(
        impl<F, A: QueryArg<F>> QueryArg<$c<F>> for A {
            fn into_query_value(self) -> QueryValue {
                <A as QueryArg<F>>::into_query_value(self)
            }
        }

        impl<F: TextField> TextField for $c<F> {}
    )*};
}

element_query_arg!(Option, Vec, BTreeSet);

impl<F, S, A: QueryArg<F>> QueryArg<HashSet<F, S>> for A {
    fn into_query_value(self) -> QueryValue {
        <A as QueryArg<F>>::into_query_value(self)
    }
}

impl<F: TextField, S> TextField for HashSet<F, S> {}
impl TextField for String {}
impl TextField for str {}
impl TextField for uuid::Uuid {}
