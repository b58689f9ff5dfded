//! Idempotent schema migrations for the `default` SQLite database.
//!
//! Every statement is `IF NOT EXISTS`, and applied versions are recorded in
//! `rs_schema`, so running [`migrate`] from many instances at once (Spin
//! starts instances on demand) is safe.

use ragspin_core::{Result, Sql, SqlValue};

/// `(version, statements)`; append, never edit a released migration.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS rs_indexes (
            name TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            active_version INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS rs_versions (
            index_name TEXT NOT NULL,
            version INTEGER NOT NULL,
            settings TEXT NOT NULL,
            state TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (index_name, version)
        )",
            "CREATE TABLE IF NOT EXISTS rs_sources (
            index_name TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            filename TEXT NOT NULL,
            content_type TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            metadata TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            content BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (index_name, doc_id)
        )",
            "CREATE TABLE IF NOT EXISTS rs_documents (
            index_name TEXT NOT NULL,
            version INTEGER NOT NULL,
            doc_id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            chunk_count INTEGER NOT NULL,
            embedded INTEGER NOT NULL,
            indexed_at INTEGER NOT NULL,
            PRIMARY KEY (index_name, version, doc_id)
        )",
            "CREATE TABLE IF NOT EXISTS rs_jobs (
            index_name TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            stage TEXT NOT NULL,
            embedded INTEGER NOT NULL,
            total INTEGER NOT NULL,
            error TEXT,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (index_name, doc_id)
        )",
            "CREATE TABLE IF NOT EXISTS rs_chunks (
            id INTEGER PRIMARY KEY,
            index_name TEXT NOT NULL,
            version INTEGER NOT NULL,
            doc_id TEXT NOT NULL,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            heading TEXT NOT NULL,
            heading_path TEXT NOT NULL,
            page INTEGER,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            token_count INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            metadata TEXT NOT NULL,
            vector BLOB
        )",
            "CREATE INDEX IF NOT EXISTS rs_chunks_by_doc ON rs_chunks (index_name, version, doc_id)",
            "CREATE VIRTUAL TABLE IF NOT EXISTS rs_chunks_fts USING fts5 (
            text, heading, content = 'rs_chunks', content_rowid = 'id'
        )",
            "CREATE TRIGGER IF NOT EXISTS rs_chunks_fts_insert AFTER INSERT ON rs_chunks BEGIN
            INSERT INTO rs_chunks_fts (rowid, text, heading) VALUES (new.id, new.text, new.heading);
        END",
            "CREATE TRIGGER IF NOT EXISTS rs_chunks_fts_delete AFTER DELETE ON rs_chunks BEGIN
            INSERT INTO rs_chunks_fts (rs_chunks_fts, rowid, text, heading)
                VALUES ('delete', old.id, old.text, old.heading);
        END",
            "CREATE TABLE IF NOT EXISTS rs_embedding_cache (
            model TEXT NOT NULL,
            dimensions INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            vector BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (model, dimensions, content_hash)
        ) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS rs_vector_blocks (
            index_name TEXT NOT NULL,
            version INTEGER NOT NULL,
            block INTEGER NOT NULL,
            dimensions INTEGER NOT NULL,
            ids BLOB NOT NULL,
            bits BLOB NOT NULL,
            codes BLOB NOT NULL,
            scales BLOB NOT NULL,
            PRIMARY KEY (index_name, version, block)
        )",
        ],
    ),
    (
        2,
        // Per-term row counts, to leave terms in most rows out of BM25
        // queries (`search::COMMON_TERM_SHARE`).
        &[
            "CREATE VIRTUAL TABLE IF NOT EXISTS rs_chunks_vocab USING fts5vocab (rs_chunks_fts, 'row')",
        ],
    ),
    (
        3,
        // The embedding cache as a rowid table: keyed WITHOUT ROWID, its
        // 1-6 KB rows (3 per page) went into random pages of the key
        // b-tree, and caching one 256-vector batch took 13-50 ms (50,000
        // rows: 6.5 s vs 1.7 s with rows appended and a key index).
        &[
            "CREATE TABLE IF NOT EXISTS rs_embeddings (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            dimensions INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            vector BLOB NOT NULL,
            created_at INTEGER NOT NULL
        )",
            "CREATE UNIQUE INDEX IF NOT EXISTS rs_embeddings_key
            ON rs_embeddings (model, dimensions, content_hash)",
            "INSERT OR IGNORE INTO rs_embeddings (model, dimensions, content_hash, vector, created_at)
            SELECT model, dimensions, content_hash, vector, created_at FROM rs_embedding_cache",
            "DROP TABLE rs_embedding_cache",
        ],
    ),
    (
        4,
        // Inverted lists over the vector blocks (see `lists`): one row of
        // centroids per partitioned version.
        &["CREATE TABLE IF NOT EXISTS rs_vector_lists (
            index_name TEXT NOT NULL,
            version INTEGER NOT NULL,
            dimensions INTEGER NOT NULL,
            trained INTEGER NOT NULL,
            centroids BLOB NOT NULL,
            PRIMARY KEY (index_name, version)
        )"],
    ),
    (
        5,
        // A document's FTS rows are written by one `INSERT ... SELECT` after
        // its chunk rows (see `IndexService::commit_document`) instead of by
        // a trigger per chunk row.
        //
        // `rs_meta` holds a random id per database: instance caches of
        // database-wide statistics (`search::term_stats`) are keyed by it, so
        // two databases with the same FTS layout never share entries.
        &[
            "DROP TRIGGER IF EXISTS rs_chunks_fts_insert",
            "CREATE TABLE IF NOT EXISTS rs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT OR IGNORE INTO rs_meta (key, value) VALUES ('database_id', lower(hex(randomblob(16))))",
        ],
    ),
    (
        6,
        // Full vectors leave `rs_chunks` for a table of their own, stored as
        // `f16` from now on (see `vectors`): a query rescoring 200 candidates
        // read two pages per chunk row (text and a 6 KB vector overflow);
        // a 3 KB vector row fits one page. Existing vectors move as they are
        // (`f32`; a row's length tells which). A chunk's vector row goes
        // with it (the trigger), whichever path deletes the chunk.
        &[
            "CREATE TABLE IF NOT EXISTS rs_chunk_vectors (id INTEGER PRIMARY KEY, vector BLOB NOT NULL)",
            "INSERT OR IGNORE INTO rs_chunk_vectors (id, vector)
            SELECT id, vector FROM rs_chunks WHERE vector IS NOT NULL",
            "UPDATE rs_chunks SET vector = NULL WHERE vector IS NOT NULL",
            "CREATE TRIGGER IF NOT EXISTS rs_chunk_vectors_delete AFTER DELETE ON rs_chunks BEGIN
            DELETE FROM rs_chunk_vectors WHERE id = old.id;
        END",
        ],
    ),
    (
        7,
        // The embedding cache found by an 8-byte key: the first 8 bytes of
        // the chunk's SHA-256 (`hash8`), in a plain index, instead of the
        // unique index on (model, dimensions, 64-character hex hash). Each
        // batch inserts random keys, so it dirtied most pages of that index
        // (≈ 100 bytes an entry): with 50,000 cached vectors, caching was
        // 0.9 s of a 3.6 s CSV ingest. Lookups still match model,
        // dimensions and the whole hash. New rows hold their vector as
        // `f16` (`format` 1), as the chunks store it: half the bytes; rows
        // from before keep their `f32` (`format` 0).
        &[
            "ALTER TABLE rs_embeddings ADD COLUMN hash8 BLOB",
            "ALTER TABLE rs_embeddings ADD COLUMN format INTEGER NOT NULL DEFAULT 0",
            "UPDATE rs_embeddings SET hash8 = unhex(substr(content_hash, 1, 16))",
            "DROP INDEX IF EXISTS rs_embeddings_key",
            "CREATE INDEX IF NOT EXISTS rs_embeddings_by_hash8 ON rs_embeddings (hash8)",
        ],
    ),
];

/// `(table, column)` of an `ALTER TABLE t ADD COLUMN c ...` statement:
/// SQLite has no `IF NOT EXISTS` for columns, so a migration applied again
/// (a database whose `rs_schema` lost rows) skips a column it has.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = statement.split_whitespace().take(6).collect();
    match words.as_slice() {
        [alter, table_kw, table, add, column_kw, column]
            if alter.eq_ignore_ascii_case("ALTER")
                && table_kw.eq_ignore_ascii_case("TABLE")
                && add.eq_ignore_ascii_case("ADD")
                && column_kw.eq_ignore_ascii_case("COLUMN") =>
        {
            Some((table, column))
        }
        _ => None,
    }
}

async fn has_column<S: Sql>(sql: &S, table: &str, column: &str) -> Result<bool> {
    let rows = sql
        .query(
            "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
            &[
                SqlValue::Text(table.to_owned()),
                SqlValue::Text(column.to_owned()),
            ],
        )
        .await?;
    Ok(!rows.rows.is_empty())
}

/// The newest schema version.
pub const SCHEMA_VERSION: i64 = 7;

/// Brings the database to [`SCHEMA_VERSION`]; a no-op when it is there.
pub async fn migrate<S: Sql>(sql: &S) -> Result<()> {
    let version = "SELECT COALESCE(MAX(version), 0) FROM rs_schema";
    // One statement on the usual path (an up-to-date database); only a
    // database without `rs_schema` gets its page size and the table.
    let rows = match sql.query(version, &[]).await {
        Ok(rows) => rows,
        Err(_) => {
            // Best effort: a database that does not take it keeps its page size.
            let _ = sql
                .execute(ragspin_core::ports::NEW_DATABASE_PAGE_SIZE, &[])
                .await;
            sql.execute(
                "CREATE TABLE IF NOT EXISTS rs_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                &[],
            )
            .await?;
            sql.query(version, &[]).await?
        }
    };
    let current = match rows.rows.first().and_then(|r| r.0.first()) {
        Some(SqlValue::Integer(v)) => *v,
        _ => 0,
    };
    if current < SCHEMA_VERSION {
        // Write-ahead logging, so readers are not blocked while a document
        // is written (the mode is stored in the file). Databases that do
        // not support it (in memory, remote libSQL) keep theirs.
        let _ = sql.query("PRAGMA journal_mode=WAL", &[]).await;
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        // One transaction per version, the version re-read inside it: an
        // instance that waited for another's migration skips it, and a
        // failure leaves the previous schema whole.
        sql.execute("BEGIN IMMEDIATE", &[]).await?;
        let applied = async {
            let rows = sql
                .query(
                    "SELECT 1 FROM rs_schema WHERE version = ?1",
                    &[SqlValue::Integer(*version)],
                )
                .await?;
            if !rows.rows.is_empty() {
                return Ok(());
            }
            for statement in *statements {
                if let Some((table, column)) = added_column(statement)
                    && has_column(sql, table, column).await?
                {
                    continue;
                }
                sql.execute(statement, &[]).await?;
            }
            sql.execute(
                "INSERT INTO rs_schema (version, applied_at) VALUES (?1, strftime('%s','now'))",
                &[SqlValue::Integer(*version)],
            )
            .await
            .map(|_| ())
        }
        .await;
        match applied {
            Ok(()) => {
                sql.execute("COMMIT", &[]).await?;
            }
            Err(e) => {
                let _ = sql.execute("ROLLBACK", &[]).await;
                return Err(e);
            }
        }
    }
    Ok(())
}
