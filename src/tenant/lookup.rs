//! Domain lookups in batches: hosts that miss the cache while earlier
//! queries are out wait for the next one, which asks for all of them at
//! once (`WHERE domain = ANY($1)`).
//!
//! Names no domain has never get here while the domain directory
//! ([`super::directory`]) is trusted. While it is not (the LISTEN
//! connection is down), a flood of new names costs the database a few
//! queries for many names instead of a query per name; at a trickle, every
//! batch holds one host and costs what a single lookup would.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{TENANT_COLUMNS, Tenant};
use crate::db::DbError;

/// Most hosts asked for in one query.
const MAX_BATCH: usize = 256;

/// Most batch queries out at once; the others' hosts gather meanwhile.
const MAX_QUERIES: usize = 4;

/// Hosts waiting for the batcher; past this, askers wait to send.
const QUEUE: usize = 4096;

/// One host's answer: its tenant, none, or the query's failure.
type Answer = Result<Option<Tenant>, Arc<DbError>>;

struct Ask {
    host: String,
    reply: oneshot::Sender<Answer>,
}

/// The handle of the batcher task, started on first use.
pub struct Lookups {
    pool: Pool,
    sender: OnceLock<mpsc::Sender<Ask>>,
}

impl Lookups {
    /// Lookups on `pool`. The task starts with the first lookup, inside the
    /// runtime that makes it.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            sender: OnceLock::new(),
        }
    }

    /// The tenant owning `host` (already normalised), or `None`.
    pub async fn find(&self, host: &str) -> Result<Option<Tenant>, DbError> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(run(self.pool.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            host: host.to_owned(),
            reply,
        };
        if sender.send(ask).await.is_err() {
            return Err(DbError::Stopped);
        }
        match answer.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(shared)) => Err(DbError::Shared(shared)),
            Err(_) => Err(DbError::Stopped),
        }
    }
}

/// Gathers what is waiting into a batch, as soon as a query slot is free.
async fn run(pool: Pool, mut receiver: mpsc::Receiver<Ask>) {
    let slots = Arc::new(Semaphore::new(MAX_QUERIES));
    while let Some(first) = receiver.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Runs one batch's query and answers every asker.
async fn answer(pool: &Pool, batch: Vec<Ask>) {
    let hosts: Vec<&str> = batch.iter().map(|ask| ask.host.as_str()).collect();
    match query_hosts(pool, &hosts).await {
        Ok(found) => {
            // One host may be asked for twice (the cache is bypassed while
            // LISTEN is down), so answers are cloned, not taken.
            for ask in batch {
                let tenant = found.get(&ask.host).cloned();
                let _ = ask.reply.send(Ok(tenant));
            }
        }
        Err(error) => {
            let shared = Arc::new(error);
            for ask in batch {
                let _ = ask.reply.send(Err(Arc::clone(&shared)));
            }
        }
    }
}

/// The tenants owning any of `hosts`, by host, straight from the database.
pub async fn query_hosts(pool: &Pool, hosts: &[&str]) -> Result<HashMap<String, Tenant>, DbError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {TENANT_COLUMNS}, d.domain::text FROM public.tenants_domain d \
             JOIN public.tenants_client c ON c.id = d.tenant_id WHERE d.domain = ANY($1)"
        )
    });
    let conn = pool.get().await?;
    let statement = conn.prepare_cached(&SQL).await?;
    let rows = conn.query(&statement, &[&hosts]).await?;
    let domain_column = statement.columns().len() - 1;
    Ok(rows
        .iter()
        .map(|row| (row.get(domain_column), Tenant::from_row(row)))
        .collect())
}
