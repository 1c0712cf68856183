//! Benchmarks that print a table comparing against a peer in the same run. They measure;
//! they never assert on time. Each benchmark is a module of its own; what they share is
//! in [`crate::fixtures`].

pub mod backup;
pub mod clone;
pub mod cloudwatch;
pub mod distributed;
pub mod erase;
pub mod ledger;
pub mod migrate;
pub mod pgvector;
pub mod redis;
pub mod s3copy;
pub mod s3vectors;

use super::Ctx;
use anyhow::Result;
use clap::Subcommand;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Erase a tenant of N S3 objects (a third with 3 versions) and N DynamoDB items on an
    /// S3/DynamoDB API endpoint (moto), against the aws CLI removing an equal tenant.
    Erase {
        /// API endpoint (moto's URL).
        #[arg(long, env = "MOTO_URL")]
        endpoint: String,
        /// Objects per tenant.
        #[arg(long, default_value_t = 20_000)]
        objects: usize,
        /// DynamoDB items per tenant.
        #[arg(long, default_value_t = 20_000)]
        items: usize,
        /// The aws CLI to compare with.
        #[arg(long, default_value = ".venv/bin/aws")]
        aws_cli: String,
        /// Concurrent DeleteObjects / BatchWriteItem calls.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Migration figures: bulk copy rate against the database's own copy, write pause at
    /// the flip and rollback time under a live workload, dual-write overhead.
    Migrate {
        /// Records per bulk copy.
        #[arg(long, default_value_t = 50_000)]
        records: usize,
        /// Flips and rollbacks measured.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Also measure a PostgreSQL copy (connection string).
        #[arg(long, env = "TENANT_PG_URL")]
        pg_url: Option<String>,
        /// Also measure a DynamoDB copy on this endpoint (moto's URL).
        #[arg(long)]
        dynamodb_endpoint: Option<String>,
        /// Items of the DynamoDB copy.
        #[arg(long, default_value_t = 5_000)]
        dynamodb_items: usize,
    },
    /// Clone one tenant's PostgreSQL rows with five anonymised columns, against the same
    /// clone with no rules and `INSERT ... SELECT` (plain and with `md5()`); the PII scan's rate.
    Clone {
        /// Connection string of the PostgreSQL server.
        #[arg(
            long,
            env = "TENANT_PG_URL",
            default_value = "host=127.0.0.1 user=postgres dbname=test"
        )]
        pg_url: String,
        /// Rows of the tenant.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
    /// Back up one tenant of N PostgreSQL rows and M S3 objects (moto) and restore it,
    /// against `psql COPY | zstd` and `rclone copy` to a crypt remote in the same run.
    Backup {
        /// Connection string of the PostgreSQL server.
        #[arg(
            long,
            env = "TENANT_PG_URL",
            default_value = "host=127.0.0.1 user=postgres dbname=test"
        )]
        pg_url: String,
        /// API endpoint (moto's URL).
        #[arg(long, env = "MOTO_URL")]
        endpoint: String,
        /// Rows of the tenant.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Objects of the tenant.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Rows changed before the incremental backup (the point-in-time replay).
        #[arg(long, default_value_t = 10_000)]
        changes: usize,
        /// S3 requests in flight, for every tool.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Erase one tenant's S3 prefix on moto with the Distributed Map machine (N parallel
    /// map workers) against the inline erasure's single loop.
    DistributedErase {
        /// API endpoint (moto's URL); ignored with `--fresh-moto`.
        #[arg(long, env = "MOTO_URL", required_unless_present = "fresh_moto")]
        endpoint: Option<String>,
        /// Objects of the tenant.
        #[arg(long, default_value_t = 200_000)]
        objects: usize,
        /// Child executions at once (the map's MaxConcurrency).
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Start a moto process of the bench's own for each row, with the tenant's objects
        /// seeded inside it (scripts/moto_server.py `--seed`), and stop it after the row,
        /// so only one tenant's objects are ever held and each row starts on an empty
        /// process.
        #[arg(long)]
        fresh_moto: bool,
        /// Stop the single loop after this many seconds and report what it erased by then
        /// (on moto its version listing copies the whole bucket per page, so 200,000
        /// objects take hours); the ratio is then a lower bound.
        #[arg(long)]
        loop_cap_secs: Option<u64>,
    },
    /// Bulk copy of one tenant's S3 prefix by the migration's sync, `rclone copy` and
    /// `aws s3 sync`, on an endpoint (moto's URL).
    S3Copy {
        /// The S3 endpoint.
        #[arg(long)]
        endpoint: String,
        /// Objects under the prefix.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Requests in flight, for every tool.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// The aws CLI to compare with.
        #[arg(long, default_value = ".venv/bin/aws")]
        aws_cli: String,
        /// The rclone binary to compare with.
        #[arg(long, default_value = "rclone")]
        rclone: String,
    },
    /// Erase one tenant's log streams on a CloudWatch Logs endpoint (moto), against the
    /// aws CLI making the same calls.
    CloudwatchErase {
        /// API endpoint (moto's URL).
        #[arg(long, env = "MOTO_URL")]
        endpoint: String,
        /// Streams of the tenant.
        #[arg(long, default_value_t = 50)]
        streams: usize,
        /// Events per stream.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// The aws CLI to compare with.
        #[arg(long, default_value = ".venv/bin/aws")]
        aws_cli: String,
    },
    /// Copy and erase one tenant's vectors in PostgreSQL with pgvector, against
    /// `INSERT ... SELECT` and `DELETE ... WHERE` in the same database.
    Pgvector {
        /// Connection string of a server with pgvector (scripts/pgvector prints one).
        #[arg(long, env = "TENANT_PGVECTOR_URL")]
        url: String,
        /// Vectors of the tenant.
        #[arg(long, default_value_t = 100_000)]
        vectors: usize,
        /// Their dimension.
        #[arg(long, default_value_t = 768)]
        dimension: u32,
        /// Keep an HNSW index on every table (copies pay for index inserts on both sides).
        #[arg(long)]
        hnsw: bool,
        /// Records per scan page and per batch write.
        #[arg(long, default_value_t = 1000)]
        page: usize,
    },
    /// Erase one tenant's keys from a Redis database shared with other tenants, against
    /// `redis-cli --scan --pattern ... | xargs redis-cli unlink`.
    RedisErase {
        /// Server URL, without a database number.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        url: String,
        /// An empty logical database to use (flushed at the end).
        #[arg(long, default_value_t = 15)]
        db: u8,
        /// Keys of the erased tenant.
        #[arg(long, default_value_t = 1_000_000)]
        tenant_keys: usize,
        /// Keys in the database, every tenant included.
        #[arg(long, default_value_t = 3_000_000)]
        total_keys: usize,
        /// SCAN COUNT of the product.
        #[arg(long, default_value_t = 1000)]
        scan_count: usize,
        /// UNLINK batches in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Put and erase one tenant's vectors on an S3 Vectors endpoint (moto), against the
    /// aws CLI making the same calls with the same batch sizes.
    S3vectors {
        /// API endpoint (moto's URL).
        #[arg(long, env = "MOTO_URL")]
        endpoint: String,
        /// Vectors of the tenant.
        #[arg(long, default_value_t = 5_000)]
        vectors: usize,
        /// Their dimension.
        #[arg(long, default_value_t = 256)]
        dimension: u32,
        /// Vectors per PutVectors and keys per DeleteVectors (at most 500).
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// The aws CLI to compare with.
        #[arg(long, default_value = ".venv/bin/aws")]
        aws_cli: String,
    },
    /// Verify a ledger of N entries on one thread and on every core, against
    /// `openssl speed ecdsap256` measured in the same run.
    LedgerVerify {
        /// Entries.
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
    },
    /// Verify one certificate's receipt against a checkpoint of a tree of N entries.
    Receipt {
        /// Entries in the tree.
        #[arg(long, default_value_t = 1_000_000)]
        size: u64,
    },
    /// Appends with the Merkle tree kept, against appends without it.
    LedgerAppend {
        /// Embedded appends.
        #[arg(long, default_value_t = 4_000)]
        entries: usize,
        /// Also on DynamoDB at this endpoint (moto's URL).
        #[arg(long)]
        dynamodb_endpoint: Option<String>,
        /// DynamoDB appends.
        #[arg(long, default_value_t = 600)]
        dynamodb_entries: usize,
    },
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCmd, ctx: &Ctx) -> Result<()> {
    let data_dir = ctx.data_dir.as_path();
    match cmd {
        BenchCmd::LedgerVerify { entries } => ledger::verify(entries, data_dir).await,
        BenchCmd::Receipt { size } => ledger::receipt(size, data_dir).await,
        BenchCmd::LedgerAppend {
            entries,
            dynamodb_endpoint,
            dynamodb_entries,
        } => {
            let ddb = dynamodb_endpoint.as_deref().map(|e| (e, dynamodb_entries));
            ledger::append(entries, ddb, data_dir).await
        }
        BenchCmd::Migrate {
            records,
            trials,
            pg_url,
            dynamodb_endpoint,
            dynamodb_items,
        } => {
            let ddb = dynamodb_endpoint.as_deref().map(|e| (e, dynamodb_items));
            migrate::run(data_dir, records, trials, pg_url.as_deref(), ddb).await
        }
        BenchCmd::Backup {
            pg_url,
            endpoint,
            rows,
            objects,
            changes,
            concurrency,
        } => {
            backup::run(
                data_dir,
                backup::Plan {
                    pg_url,
                    endpoint,
                    rows,
                    objects,
                    changes,
                    concurrency,
                },
            )
            .await
        }
        BenchCmd::Clone { pg_url, rows } => {
            clone::run(data_dir, clone::Plan { url: pg_url, rows }).await
        }
        BenchCmd::DistributedErase {
            endpoint,
            objects,
            workers,
            fresh_moto,
            loop_cap_secs,
        } => {
            let cap = loop_cap_secs.map(std::time::Duration::from_secs);
            let moto = match endpoint {
                Some(url) if !fresh_moto => distributed::Moto::Shared(url),
                _ => distributed::Moto::Fresh,
            };
            distributed::run(moto, objects, workers, cap).await
        }
        BenchCmd::S3Copy {
            endpoint,
            objects,
            concurrency,
            aws_cli,
            rclone,
        } => {
            let o = s3copy::S3CopyOptions {
                objects,
                concurrency,
                aws_cli,
                rclone,
            };
            s3copy::run(data_dir, &endpoint, o).await
        }
        BenchCmd::Erase {
            endpoint,
            objects,
            items,
            aws_cli,
            concurrency,
        } => erase::run(&endpoint, objects, items, &aws_cli, concurrency).await,
        BenchCmd::CloudwatchErase {
            endpoint,
            streams,
            events,
            aws_cli,
        } => cloudwatch::run(&endpoint, streams, events, &aws_cli).await,
        BenchCmd::Pgvector {
            url,
            vectors,
            dimension,
            hnsw,
            page,
        } => {
            pgvector::run(pgvector::Plan {
                url,
                vectors,
                dimension,
                hnsw,
                page,
            })
            .await
        }
        BenchCmd::S3vectors {
            endpoint,
            vectors,
            dimension,
            batch,
            aws_cli,
        } => {
            s3vectors::run(s3vectors::Plan {
                endpoint,
                vectors,
                dimension,
                batch,
                aws_cli,
            })
            .await
        }
        BenchCmd::RedisErase {
            url,
            db,
            tenant_keys,
            total_keys,
            scan_count,
            concurrency,
        } => {
            redis::run(redis::Plan {
                url,
                db,
                tenant_keys,
                total_keys,
                scan_count,
                concurrency,
            })
            .await
        }
    }
}
