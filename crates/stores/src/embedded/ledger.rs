use super::{World, db_err};
use async_trait::async_trait;
use lifecycle::erasure::SystemProgress;
use lifecycle::ledger::{Head, StoredEntry, leaf_of_value};
use lifecycle::tree::{Frontier, Hash, NodeId};
use ports::Contended;
use ports::{Claim, Ledger, NewEntry, RequestLog, StoreError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// The ledger kept in the embedded world. An append is one IMMEDIATE transaction that
/// checks the head, stores the entry and the Merkle nodes it completes and moves the head,
/// so concurrent writers (tasks or processes) cannot fork the chain or its tree.
#[derive(Debug, Clone)]
pub struct LocalLedger {
    world: World,
    tree: bool,
}

impl LocalLedger {
    /// The ledger in `world`.
    pub fn new(world: World) -> Self {
        Self { world, tree: true }
    }

    /// The same ledger without Merkle tree maintenance: only for the benchmark that
    /// prices the tree. Its chains cannot be checkpointed.
    pub fn without_tree(world: World) -> Self {
        Self { world, tree: false }
    }
}

fn read_head(conn: &rusqlite::Connection, chain: &str) -> Result<Option<Head>, StoreError> {
    let row: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT seq, hash, frontier FROM ledger_heads WHERE chain = ?1",
            params![chain],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| db_err("ledger head", e))?;
    row.map(|(seq, hash, frontier)| {
        let frontier: Vec<String> = serde_json::from_str(&frontier)
            .map_err(|e| StoreError::Corrupt(format!("frontier of chain {chain}: {e}")))?;
        Ok(Head {
            seq: seq as u64,
            hash,
            frontier,
        })
    })
    .transpose()
}

/// Rebuilds the tree of a chain written before the tree existed, inside the append's
/// transaction: every entry's leaf, every complete node.
fn rebuild(tx: &rusqlite::Connection, chain: &str) -> Result<Frontier, StoreError> {
    let mut st = tx
        .prepare("SELECT body FROM ledger_entries WHERE chain = ?1 ORDER BY seq")
        .map_err(|e| db_err("ledger rebuild", e))?;
    let bodies = st
        .query_map(params![chain], |r| r.get::<_, String>(0))
        .map_err(|e| db_err("ledger rebuild", e))?;
    let mut f = Frontier::default();
    for body in bodies {
        let body = body.map_err(|e| db_err("ledger rebuild", e))?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("ledger entry of {chain}: {e}")))?;
        let leaf = leaf_of_value(&v["certificate"])
            .map_err(|e| StoreError::Corrupt(format!("ledger entry of {chain}: {e}")))?;
        store_nodes(tx, chain, &f.push(leaf))?;
    }
    Ok(f)
}

fn store_nodes(
    tx: &rusqlite::Connection,
    chain: &str,
    nodes: &[(NodeId, Hash)],
) -> Result<(), StoreError> {
    let mut st = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO ledger_nodes (chain, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(|e| db_err("ledger nodes", e))?;
    for (id, h) in nodes {
        st.execute(params![chain, id.level, id.index as i64, &h[..]])
            .map_err(|e| db_err("ledger nodes", e))?;
    }
    Ok(())
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
            return Err(StoreError::conflict(
                Contended::LedgerHead {
                    chain: chain.to_owned(),
                    expected: expected.map(|h| h.seq),
                },
                "the head moved",
            ));
        }
        let (next, _) = Head::next(head.as_ref());
        if entry.seq != next {
            return Err(StoreError::conflict(
                Contended::LedgerHead {
                    chain: chain.to_owned(),
                    expected: expected.map(|h| h.seq),
                },
                format!("entry seq {} is not the next seq {next}", entry.seq),
            ));
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
        let frontier = if self.tree {
            let mut f = match &head {
                None => Frontier::default(),
                Some(h) => match h.tree() {
                    Some(f) => f,
                    None => rebuild(&tx, chain)?,
                },
            };
            // rebuild() read the new entry too when the tree was missing.
            if f.size() == entry.seq {
                store_nodes(&tx, chain, &f.push(entry.leaf))?;
            }
            f.hashes().iter().map(hex::encode).collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        let frontier = serde_json::to_string(&frontier)
            .map_err(|e| StoreError::Corrupt(format!("frontier: {e}")))?;
        tx.execute(
            "INSERT INTO ledger_heads (chain, seq, hash, frontier) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (chain) DO UPDATE SET seq = ?2, hash = ?3, frontier = ?4",
            params![chain, entry.seq as i64, entry.entry_hash, frontier],
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
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let conn = self.world.conn();
        let mut st = conn
            .prepare_cached("SELECT seq, entry_hash, body FROM ledger_entries WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3")
            .map_err(|e| db_err("ledger read", e))?;
        let rows = st
            .query_map(params![chain, from_seq as i64, limit as i64], |r| {
                Ok(StoredEntry {
                    seq: r.get::<_, i64>(0)? as u64,
                    entry_hash: r.get(1)?,
                    json: r.get(2)?,
                })
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

    async fn tree_nodes(
        &self,
        chain: &str,
        ids: &[NodeId],
    ) -> Result<Vec<Option<Hash>>, StoreError> {
        let conn = self.world.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT hash FROM ledger_nodes WHERE chain = ?1 AND level = ?2 AND idx = ?3",
            )
            .map_err(|e| db_err("ledger nodes", e))?;
        ids.iter()
            .map(|id| {
                let h: Option<Vec<u8>> = st
                    .query_row(params![chain, id.level, id.index as i64], |r| r.get(0))
                    .optional()
                    .map_err(|e| db_err("ledger nodes", e))?;
                Ok(h.and_then(|b| b.try_into().ok()))
            })
            .collect()
    }
}

#[async_trait]
impl RequestLog for LocalLedger {
    async fn claim(
        &self,
        request_id: &str,
        digest: &str,
        reason: &str,
        at: &str,
    ) -> Result<Claim, StoreError> {
        let mut conn = self.world.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err("request claim", e))?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO request_claims (request_id, digest, reason, claimed_at) VALUES (?1, ?2, ?3, ?4)",
                params![request_id, digest, reason, at],
            )
            .map_err(|e| db_err("request claim", e))?;
        let out = if inserted == 1 {
            Claim::New
        } else {
            let held: String = tx
                .query_row(
                    "SELECT digest FROM request_claims WHERE request_id = ?1",
                    params![request_id],
                    |r| r.get(0),
                )
                .map_err(|e| db_err("request claim", e))?;
            if held == digest {
                Claim::Same
            } else {
                Claim::Other(held)
            }
        };
        tx.commit().map_err(|e| db_err("request claim", e))?;
        Ok(out)
    }

    async fn record_pass(
        &self,
        request_id: &str,
        system: &str,
        found: Option<u64>,
        erased: u64,
        done: bool,
    ) -> Result<SystemProgress, StoreError> {
        let conn = self.world.conn();
        conn.execute(
            "INSERT INTO request_progress (request_id, system, found, erased, done) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (request_id, system) DO UPDATE SET
               found = COALESCE(found, excluded.found), erased = erased + excluded.erased, done = excluded.done",
            params![request_id, system, found.map(|n| n as i64), erased as i64, done],
        )
        .map_err(|e| db_err("request progress", e))?;
        conn.query_row(
            "SELECT system, found, erased, done FROM request_progress WHERE request_id = ?1 AND system = ?2",
            params![request_id, system],
            progress_row,
        )
        .map_err(|e| db_err("request progress", e))
    }

    async fn progress(&self, request_id: &str) -> Result<Vec<SystemProgress>, StoreError> {
        let conn = self.world.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT system, found, erased, done FROM request_progress WHERE request_id = ?1 ORDER BY system",
            )
            .map_err(|e| db_err("request progress", e))?;
        let rows = st
            .query_map(params![request_id], progress_row)
            .map_err(|e| db_err("request progress", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_err("request progress", e))
    }
}

fn progress_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SystemProgress> {
    Ok(SystemProgress {
        system: r.get(0)?,
        records_found: r.get::<_, Option<i64>>(1)?.map(|n| n.max(0) as u64),
        records_erased: r.get::<_, i64>(2)?.max(0) as u64,
        done: r.get(3)?,
    })
}
