//! `tether list`: a page of jobs.

use clap::Args;
use tether_producer::{JobId, ListQuery, Producer, SortDir, SortKey, Status};

use super::{CliResult, err};
use crate::output;

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    #[arg(long = "queue")]
    queues: Vec<String>,
    #[arg(long)]
    status: Option<Status>,
    #[arg(long = "type")]
    job_type: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    /// Only dead jobs (failed, attempts exhausted).
    #[arg(long)]
    dead: bool,
    /// Only jobs of this priority.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: Option<u8>,
    /// Only jobs of this fairness group.
    #[arg(long)]
    group: Option<String>,
    #[arg(long, default_value_t = 25)]
    limit: usize,
    #[arg(long)]
    marker: Option<JobId>,
    #[arg(long, value_enum, default_value = "created-at")]
    sort_key: SortKeyArg,
    #[arg(long, value_enum, default_value = "desc")]
    sort_dir: SortDirArg,
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
