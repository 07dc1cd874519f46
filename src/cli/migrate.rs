//! `botora migrate`: the public schema, then every tenant `--jobs` at a
//! time, with a progress bar on a terminal and plain lines otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::db::{self, migrate};

pub(super) async fn run(
    config: &Config,
    tenant: Option<&str>,
    jobs: usize,
) -> anyhow::Result<ExitCode> {
    super::logging::init_plain();
    let started = Instant::now();
    let mut database = config.database.clone();
    database.pool_size = jobs.max(1) + 1;
    let pool = db::new_pool(&database)?;

    // Public first: the bookkeeping and the tenant tables live there.
    let applied = migrate::migrate_public(&pool).await?;
    println!("public: {}", describe(&applied));

    // Then the tenants that have something pending.
    let pending = migrate::pending_tenants(&pool, tenant).await?;
    if let Some(only) = tenant
        && pending.is_empty()
    {
        let exists = crate::tenant::store::get(&pool, only).await.is_ok();
        anyhow::ensure!(exists, "no tenant with schema {only:?}");
    }
    let bar = progress_bar(pending.len() as u64);
    let outcomes = migrate::migrate_tenants(&pool, pending, jobs, |outcome| {
        report(&bar, outcome);
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let migrated = outcomes.len() - failed;
    println!(
        "tenants: {migrated} migrated, {failed} failed, the rest up to date ({:.2}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn describe(applied: &[&str]) -> String {
    match applied {
        [] => "up to date".to_owned(),
        names => format!("applied {}", names.join(", ")),
    }
}

fn progress_bar(length: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() || length == 0 {
        return None;
    }
    let bar = ProgressBar::new(length);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} tenants {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

fn report(bar: &Option<ProgressBar>, outcome: &migrate::Outcome) {
    let line = match &outcome.result {
        Ok(applied) => format!("{}: {}", outcome.schema, describe(applied)),
        Err(error) => format!("FAILED {error}"),
    };
    match bar {
        Some(bar) => {
            if outcome.result.is_err() {
                bar.println(&line);
            }
            bar.inc(1);
        }
        None => println!("{line}"),
    }
}
