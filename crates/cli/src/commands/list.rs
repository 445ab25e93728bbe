//! `tether list`: a page of jobs.

use clap::Args;
use tether_producer::{JobId, ListQuery, Producer, SortDir, SortKey, Status};

use super::{CliResult, err};
use crate::output;

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Only jobs of this queue (repeatable; default: every queue).
    #[arg(long = "queue")]
    queues: Vec<String>,
    /// Only jobs in this status: pending, processing, success, failure, cancelled (default: any).
    #[arg(long)]
    status: Option<Status>,
    /// Only jobs of this type (default: any).
    #[arg(long = "type")]
    job_type: Option<String>,
    /// Only this owner's jobs (default: every owner's).
    #[arg(long)]
    owner: Option<String>,
    /// Only dead jobs (failed, attempts exhausted).
    #[arg(long)]
    dead: bool,
    /// Only jobs of this priority, 0-9 (default: any).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: Option<u8>,
    /// Only jobs of this fairness group (default: any).
    #[arg(long)]
    group: Option<String>,
    /// Jobs per page.
    #[arg(long, default_value_t = 25)]
    limit: usize,
    /// Start after this job id, the last of the previous page (default: the first page).
    #[arg(long)]
    marker: Option<JobId>,
    /// Order by this field.
    #[arg(long, value_enum, default_value = "created-at")]
    sort_key: SortKeyArg,
    /// Ascending or descending order.
    #[arg(long, value_enum, default_value = "desc")]
    sort_dir: SortDirArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SortKeyArg {
    CreatedAt,
    UpdatedAt,
    Status,
    Type,
    Id,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SortDirArg {
    Asc,
    Desc,
}

pub(crate) async fn run(args: ListArgs, producer: &Producer) -> CliResult {
    let query = ListQuery {
        queues: args.queues,
        status: args.status,
        job_type: args.job_type,
        owner: args.owner,
        dead_only: args.dead,
        priority: args.priority,
        group: args.group,
        sort_key: match args.sort_key {
            SortKeyArg::CreatedAt => SortKey::CreatedAt,
            SortKeyArg::UpdatedAt => SortKey::UpdatedAt,
            SortKeyArg::Status => SortKey::Status,
            SortKeyArg::Type => SortKey::Type,
            SortKeyArg::Id => SortKey::Id,
        },
        sort_dir: match args.sort_dir {
            SortDirArg::Asc => SortDir::Asc,
            SortDirArg::Desc => SortDir::Desc,
        },
        limit: args.limit.clamp(1, 1000),
        marker: args.marker,
    };
    let page = producer.list(query).await.map_err(err)?;
    output::page(&page, args.json);
    Ok(())
}
