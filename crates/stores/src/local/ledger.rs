use super::{World, db_err};
use crate::{Ledger, NewEntry, StoreError};
use async_trait::async_trait;
use lifecycle::ledger::Head;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// The ledger kept in the embedded world. An append is one IMMEDIATE transaction that
/// checks the head, so concurrent writers (tasks or processes) cannot fork the chain.
#[derive(Debug, Clone)]
pub struct LocalLedger {
    world: World,
}

impl LocalLedger {
    /// The ledger in `world`.
    pub fn new(world: World) -> Self {
        Self { world }
    }
}

fn read_head(conn: &rusqlite::Connection, chain: &str) -> Result<Option<Head>, StoreError> {
    conn.query_row(
        "SELECT seq, hash FROM ledger_heads WHERE chain = ?1",
        params![chain],
        |r| {
            Ok(Head {
                seq: r.get::<_, i64>(0)? as u64,
                hash: r.get(1)?,
            })
        },
    )
    .optional()
    .map_err(|e| db_err("ledger head", e))
}

#[async_trait]
impl Ledger for LocalLedger {
    async fn head(&self, chain: &str) -> Result<Option<Head>, StoreError> {
        read_head(&self.world.conn(), chain)
    }

    async fn append(
        &self,
        chain: &str,
        expected: Option<&Head>,
        entry: NewEntry<'_>,
    ) -> Result<(), StoreError> {
        let mut conn = self.world.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err("ledger append", e))?;
        let head = read_head(&tx, chain)?;
        if head.as_ref() != expected {
            return Err(StoreError::Conflict(chain.to_owned()));
        }
        let (next, _) = Head::next(head.as_ref());
        if entry.seq != next {
            return Err(StoreError::Conflict(chain.to_owned()));
        }
        if let Some(req) = entry.unique_request {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO ledger_requests (chain, request_id, seq) VALUES (?1, ?2, ?3)",
                    params![chain, req, entry.seq as i64],
                )
                .map_err(|e| db_err("ledger append", e))?;
            if inserted == 0 {
                return Err(StoreError::Duplicate(req.to_owned()));
            }
        }
        tx.execute(
            "INSERT INTO ledger_entries (chain, seq, entry_hash, body) VALUES (?1, ?2, ?3, ?4)",
            params![chain, entry.seq as i64, entry.entry_hash, entry.json],
        )
        .map_err(|e| db_err("ledger append", e))?;
        tx.execute(
            "INSERT INTO ledger_heads (chain, seq, hash) VALUES (?1, ?2, ?3)
             ON CONFLICT (chain) DO UPDATE SET seq = ?2, hash = ?3",
            params![chain, entry.seq as i64, entry.entry_hash],
        )
        .map_err(|e| db_err("ledger append", e))?;
        tx.commit().map_err(|e| db_err("ledger append", e))
    }

    async fn find_request(
        &self,
        chain: &str,
        request_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.world
            .conn()
            .query_row(
                "SELECT e.body FROM ledger_requests r JOIN ledger_entries e ON e.chain = r.chain AND e.seq = r.seq
                 WHERE r.chain = ?1 AND r.request_id = ?2",
                params![chain, request_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("ledger find", e))
    }

    async fn entries(
        &self,
        chain: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let conn = self.world.conn();
        let mut st = conn
            .prepare_cached("SELECT seq, body FROM ledger_entries WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3")
            .map_err(|e| db_err("ledger read", e))?;
        let rows = st
            .query_map(params![chain, from_seq as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })
            .map_err(|e| db_err("ledger read", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_err("ledger read", e))
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.world.conn();
        let mut st = conn
            .prepare("SELECT chain FROM ledger_heads ORDER BY chain")
            .map_err(|e| db_err("ledger chains", e))?;
        let rows = st
            .query_map([], |r| r.get(0))
            .map_err(|e| db_err("ledger chains", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_err("ledger chains", e))
    }
}
