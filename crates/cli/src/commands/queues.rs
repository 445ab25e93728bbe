//! The commands on queues and workers: `check`, `workers` (`stats` is in `output`).

use tether_producer::Producer;

use super::{CliResult, err};
use crate::output;

/// Walks each queue (every registered one by default); fails when anything disagrees.
/// With `repair`, first puts back what an older layout's process left behind.
pub(crate) async fn check(queues: Vec<String>, repair: bool, producer: &Producer) -> CliResult {
    let queues = if queues.is_empty() {
        producer.queues().await.map_err(err)?
    } else {
        queues
    };
    let mut problems = 0;
    for queue in &queues {
        if repair {
            let mended = producer.mend(queue).await.map_err(err)?;
            if mended != Default::default() {
                println!(
                    "{queue}: repaired: {} pending jobs made ready again, {} jobs indexed",
                    mended.readied, mended.indexed
                );
            }
        }
        let found = producer.check_consistency(queue).await.map_err(err)?;
        println!(
            "{queue}: {}",
            if found.is_empty() {
                "consistent".to_owned()
            } else {
                format!("{} problems", found.len())
            }
        );
        for p in &found {
            println!("  {p}");
        }
        problems += found.len();
    }
    if problems > 0 {
        Err(format!("{problems} problems found"))
    } else {
        Ok(())
    }
}

pub(crate) async fn workers(json: bool, producer: &Producer) -> CliResult {
    let workers = producer.workers().await.map_err(err)?;
    output::workers(&workers, json);
    Ok(())
}
