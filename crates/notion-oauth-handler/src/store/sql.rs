//! Statements the store's writes are made of, run the same way on either backend's writer.
//!
//! A write is written once, against [`Writes`]: on PostgreSQL that is a pooled sqlx connection;
//! on SQLite it is the writer's own rusqlite connection, where each statement runs at once on
//! the writer's thread (the writer module says why SQLite's writes leave sqlx). The SQL is
//! the same text on both, with numbered parameters (`$1`), which SQLite takes as names.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use super::StoreError;

/// A value bound to a parameter. A null keeps its type: PostgreSQL must know what `$1 IS NULL`
/// compares. Not `Debug`: some are digests of secrets.
#[derive(Clone)]
pub(super) enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Blob(Option<Vec<u8>>),
}

impl From<&Vec<u8>> for Value {
    fn from(value: &Vec<u8>) -> Self {
        Self::Blob(Some(value.clone()))
    }
}

impl From<Option<&[u8]>> for Value {
    fn from(value: Option<&[u8]>) -> Self {
        Self::Blob(value.map(<[u8]>::to_vec))
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Self::Blob(Some(value))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Integer(Some(value))
    }
}

impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        Self::Integer(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Self {
        Self::Text(value.map(str::to_owned))
    }
}

impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

/// A statement with its arguments, `$1` first.
pub(super) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

/// The statement only: its arguments may be digests of secrets.
impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").field("sql", &self.sql).finish_non_exhaustive()
    }
}

/// Starts a statement; the SQL is the store's own, never built from input.
pub(super) fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query { sql: sql.into(), args: Vec::new() }
}

impl Query {
    /// Binds the next numbered parameter.
    pub(super) fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs a statement that returns no rows.
    pub(super) async fn execute(self, on: &mut dyn Writes) -> Result<Done, StoreError> {
        on.run(self).await
    }

    /// Runs a statement and keeps its first row, if any.
    pub(super) async fn fetch_optional(
        self,
        on: &mut dyn Writes,
    ) -> Result<Option<Record>, StoreError> {
        on.run_returning(self).await
    }

    /// Runs a statement that must return a row.
    pub(super) async fn fetch_one(self, on: &mut dyn Writes) -> Result<Record, StoreError> {
        on.run_returning(self).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    fn into_sqlx(self) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        let mut query = match self.sql {
            Cow::Borrowed(sql) => sqlx::query(sql),
            Cow::Owned(sql) => sqlx::query(sqlx::AssertSqlSafe(sql)),
        };
        for value in self.args {
            query = match value {
                Value::Integer(value) => query.bind(value),
                Value::Text(value) => query.bind(value),
                Value::Bool(value) => query.bind(value),
                Value::Blob(value) => query.bind(value),
            };
        }
        query
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Done {
    rows: u64,
}

impl Done {
    pub(super) fn rows_affected(self) -> u64 {
        self.rows
    }
}

/// Where a write's statements run: inside the write's transaction, or on their own for a
/// `Writer::statement` on PostgreSQL.
pub(super) trait Writes: Send {
    /// Runs a statement that returns no rows.
    fn run(&mut self, query: Query) -> BoxFuture<'_, Result<Done, StoreError>>;
    /// Runs a statement and keeps its first row, if any.
    fn run_returning(&mut self, query: Query) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;
}

impl Writes for AnyConnection {
    fn run(&mut self, query: Query) -> BoxFuture<'_, Result<Done, StoreError>> {
        Box::pin(async move {
            let done = query.into_sqlx().execute(self).await?;
            Ok(Done { rows: done.rows_affected() })
        })
    }

    fn run_returning(&mut self, query: Query) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move { Ok(query.into_sqlx().fetch_optional(self).await?.map(Record::Any)) })
    }
}

/// SQLite's writer: each statement runs before the future is made, so the future is ready.
impl Writes for rusqlite::Connection {
    fn run(&mut self, query: Query) -> BoxFuture<'_, Result<Done, StoreError>> {
        let done = prepared(self, &query)
            .and_then(|mut statement| statement.raw_execute())
            .map(|rows| Done { rows: rows as u64 })
            .map_err(StoreError::from);
        Box::pin(std::future::ready(done))
    }

    fn run_returning(&mut self, query: Query) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let record = first_row(self, &query).map_err(StoreError::from);
        Box::pin(std::future::ready(record))
    }
}

/// The statement, from the connection's cache, with every parameter bound by its number.
fn prepared<'c>(
    connection: &'c rusqlite::Connection,
    query: &Query,
) -> Result<rusqlite::CachedStatement<'c>, rusqlite::Error> {
    let mut statement = connection.prepare_cached(&query.sql)?;
    // SQLite counts distinct names: a parameter left unbound would quietly be NULL, and an
    // argument without its parameter would be lost.
    if statement.parameter_count() != query.args.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            query.args.len(),
            statement.parameter_count(),
        ));
    }
    for (number, value) in (1..).zip(&query.args) {
        // SQLite numbers `$N` parameters in the order they first appear, which is N in nearly
        // every statement: checked by the name at that index, looked up only when not. (A
        // lookup by a formatted name per argument was a third of a callback's upsert.)
        let in_place = statement
            .parameter_name(number)
            .and_then(|name| name.strip_prefix('$'))
            .is_some_and(|digits| digits.parse() == Ok(number));
        let index = if in_place {
            number
        } else {
            let name = format!("${number}");
            statement
                .parameter_index(&name)?
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name))?
        };
        match value {
            Value::Integer(value) => statement.raw_bind_parameter(index, value)?,
            Value::Text(value) => statement.raw_bind_parameter(index, value)?,
            Value::Bool(value) => statement.raw_bind_parameter(index, value)?,
            Value::Blob(value) => statement.raw_bind_parameter(index, value)?,
        }
    }
    Ok(statement)
}

fn first_row(
    connection: &rusqlite::Connection,
    query: &Query,
) -> Result<Option<Record>, rusqlite::Error> {
    let mut statement = prepared(connection, query)?;
    let names: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
    // SQLite makes all of an `UPDATE … RETURNING`'s changes at the first step, so the rows
    // after the first need not be stepped through.
    let mut rows = statement.raw_query();
    let Some(row) = rows.next()? else { return Ok(None) };
    let values = (0..names.len()).map(|index| row.get(index)).collect::<Result<_, _>>()?;
    Ok(Some(Record::Sqlite { names, values }))
}

/// A row a write read back.
pub(super) enum Record {
    Any(AnyRow),
    Sqlite { names: Vec<String>, values: Vec<rusqlite::types::Value> },
}

/// Column names only: a row may hold sealed tokens.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = match self {
            Self::Any(row) => row.columns().iter().map(sqlx::Column::name).collect(),
            Self::Sqlite { names, .. } => names.iter().map(String::as_str).collect(),
        };
        f.debug_struct("Record").field("columns", &names).finish_non_exhaustive()
    }
}

/// A column's Rust type, as either backend gives it.
pub(super) trait Column: Sized + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> {
    fn from_sqlite(value: &rusqlite::types::Value) -> Option<Self>;
}

impl Column for i64 {
    fn from_sqlite(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Integer(value) => Some(*value),
            _ => None,
        }
    }
}

impl Column for String {
    fn from_sqlite(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Text(value) => Some(value.clone()),
            _ => None,
        }
    }
}

impl Column for Vec<u8> {
    fn from_sqlite(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Blob(value) => Some(value.clone()),
            _ => None,
        }
    }
}

impl Column for bool {
    fn from_sqlite(value: &rusqlite::types::Value) -> Option<Self> {
        i64::from_sqlite(value).map(|value| value != 0)
    }
}

impl<T: Column> Column for Option<T> {
    fn from_sqlite(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Null => Some(None),
            value => T::from_sqlite(value).map(Some),
        }
    }
}

/// Rows read by either path: [`AnyRow`] from the read pool, [`Record`] from a write.
pub(super) trait Columns {
    fn column<T: Column>(&self, name: &str) -> Result<T, sqlx::Error>;
}

impl Columns for AnyRow {
    fn column<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}

impl Columns for Record {
    fn column<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        match self {
            Self::Any(row) => row.try_get(name),
            Self::Sqlite { names, values } => {
                let index = names
                    .iter()
                    .position(|candidate| candidate == name)
                    .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_owned()))?;
                let value = &values[index];
                T::from_sqlite(value).ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: name.to_owned(),
                    source: format!(
                        "SQLite holds a {} there, not a {}",
                        value.data_type(),
                        std::any::type_name::<T>()
                    )
                    .into(),
                })
            }
        }
    }
}

impl Record {
    /// The column `name`, as `T`.
    pub(super) fn try_get<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.column(name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sqlite() -> rusqlite::Connection {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE t (n INTEGER, s TEXT, b BLOB)").unwrap();
        connection
    }

    #[tokio::test]
    async fn sqlite_binds_parameters_by_their_number_not_their_order_of_appearance() {
        let mut connection = sqlite();
        query("INSERT INTO t (s, n, b) VALUES ($3, $1, $2)")
            .bind(7)
            .bind(vec![1u8, 2])
            .bind("seven")
            .execute(&mut connection)
            .await
            .unwrap();
        let row = query("SELECT n, s, b FROM t WHERE n = $1 AND $2 IS NULL")
            .bind(7)
            .bind(None::<String>)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64>("n").unwrap(), 7);
        assert_eq!(row.try_get::<String>("s").unwrap(), "seven");
        assert_eq!(row.try_get::<Vec<u8>>("b").unwrap(), [1, 2]);
        assert!(row.try_get::<Option<i64>>("missing").is_err());
        let wrong = row.try_get::<i64>("s").unwrap_err().to_string();
        assert!(wrong.contains("Text") && wrong.contains("column s"), "{wrong}");
    }

    #[tokio::test]
    async fn a_parameter_left_unbound_or_an_argument_too_many_is_refused_not_null() {
        let mut connection = sqlite();
        let short = query("INSERT INTO t (n, s) VALUES ($1, $2)").bind(1).execute(&mut connection);
        assert!(short.await.is_err());
        let long = query("INSERT INTO t (n) VALUES ($1)").bind(1).bind(2).execute(&mut connection);
        assert!(long.await.is_err());
        // A gap in the numbering is a parameter count that matches but a name that does not.
        let gap = query("INSERT INTO t (n, s) VALUES ($1, $3)").bind(1).bind("x");
        assert!(gap.execute(&mut connection).await.is_err());
        let count = query("SELECT count(*) AS c FROM t").fetch_one(&mut connection).await.unwrap();
        assert_eq!(count.try_get::<i64>("c").unwrap(), 0);
    }

    #[test]
    fn a_query_shows_its_statement_but_not_its_arguments() {
        let shown = format!("{:?}", query("SELECT $1").bind("secret-digest"));
        assert!(shown.contains("SELECT $1") && !shown.contains("secret-digest"), "{shown}");
    }
}
