//! The consistency check, walked in bounded steps (`lua/consistency.lua`).

use std::collections::BTreeMap;

use crate::keys::QueueKeys;
use crate::tree::parse_kid;
use crate::{SCRIPTS, Store, StoreError};

/// Jobs checked per step: each costs a handful of point lookups, so a step stays
/// around a millisecond of Redis time.
const JOBS_PER_STEP: usize = 150;
/// Index members or stream entries checked per step (one lookup each).
const MEMBERS_PER_STEP: usize = 250;
/// Jobs of `waiting` per step (an `HSCAN` hint): each comes with its input, which may
/// be large.
const WAITING_PER_STEP: usize = 32;
/// Walks tried when the counters change under a walk (workers running).
const WALKS: usize = 3;

type Step = (
    String,
    String,
    Vec<String>,
    u64,
    u64,
    u64,
    i64,
    i64,
    i64,
    Vec<String>,
    Vec<String>,
);

/// A walk's findings: problems, final records by status, the stored counts at the first
/// and the last step, the tree links to follow into other slots, and the jobs
/// `mend.lua` puts back.
type Walk = (
    Vec<String>,
    [u64; 3],
    [i64; 3],
    [i64; 3],
    Vec<String>,
    Vec<String>,
);

/// What [`Store::mend`] put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mended {
    /// Pending jobs whose stream entry was gone, made ready again.
    pub readied: u64,
    /// Jobs that had left the stream without entering the queue's index, indexed.
    pub indexed: u64,
}

impl Store {
    /// Checks that the queue's records, stream, indexes and counters agree (read-only).
    /// Returns the violations found; empty means consistent.
    ///
    /// It walks the queue in bounded steps (a few hundred jobs per script call, each
    /// well under 10 ms of Redis time), so it can run on a large queue in production
    /// without blocking other clients. Each step is atomic over the jobs it covers.
    /// The retained counts are compared with the records over the whole walk; when
    /// workers change the counts during a walk, the walk is repeated (up to three
    /// times) and the counts are left unchecked if they never hold still.
    ///
    /// Task trees are checked across queues (each queue may live on another node): a
    /// child of this queue whose parent exists is on its parent's list, and every child
    /// on the list of a parent of this queue names that parent, or is gone with its
    /// index entry (expired, or not enqueued yet).
    pub async fn check_consistency(&self, queue: &str) -> Result<Vec<String>, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let mut problems = Vec::new();
        for walk in 1..=WALKS {
            let (found, finals, before, after, links, _) = self.walk(queue).await?;
            problems = found;
            problems.extend(self.check_links(queue, &links).await?);
            if before == after {
                for ((status, records), stored) in ["success", "failure", "cancelled"]
                    .iter()
                    .zip(finals)
                    .zip(after)
                {
                    if stored != records as i64 {
                        problems.push(format!(
                            "counts.{status} is {stored}, records say {records}"
                        ));
                    }
                }
                return Ok(problems);
            }
            tracing::debug!(%queue, walk, "counts changed during the consistency walk");
        }
        tracing::warn!(%queue, "the queue kept changing: its counts were not checked");
        Ok(problems)
    }

    /// Puts back what a process of an older layout left behind beside this layout's
    /// records (docs/OPERATIONS.md, upgrading the layout), as the consistency check
    /// finds it: a pending job whose stream entry an older worker trimmed (it would
    /// never be claimed) is made ready again; a job that left the stream without
    /// entering the queue's index (an older cancel) is indexed. Each job is checked
    /// again as it is mended, so a walk's stale reading changes nothing; a consistent
    /// queue is left as it is. `tether check --repair` runs it.
    ///
    /// ```no_run
    /// # async fn mend(store: &tether_store::Store) -> Result<(), tether_store::StoreError> {
    /// let mended = store.mend("default").await?;
    /// println!("{} jobs ready again, {} indexed", mended.readied, mended.indexed);
    /// # Ok(()) }
    /// ```
    pub async fn mend(&self, queue: &str) -> Result<Mended, StoreError> {
        tether_model::validate_queue_name(queue)?;
        let (.., mendable) = self.walk(queue).await?;
        let keys = QueueKeys::new(queue);
        let mut mended = Mended::default();
        for ids in mendable.chunks(JOBS_PER_STEP) {
            let (readied, indexed): (u64, u64) = self
                .idempotent(|| async {
                    let mut inv = Self::invocation(&SCRIPTS.mend, &keys);
                    for id in ids {
                        inv.arg(id);
                    }
                    Ok(inv.invoke_async(&mut self.conn()).await?)
                })
                .await?;
            mended.readied += readied;
            mended.indexed += indexed;
        }
        Ok(mended)
    }

    /// One walk: the problems, the final records by status, the stored counts at
    /// the first and the last step, the links and the jobs to mend.
    async fn walk(&self, queue: &str) -> Result<Walk, StoreError> {
        let keys = QueueKeys::new(queue);
        let mut problems = Vec::new();
        let mut links = Vec::new();
        let mut mendable = Vec::new();
        let mut finals = [0u64; 3];
        let mut first = None;
        let mut last = [0i64; 3];
        let (mut phase, mut cursor) = ("jobs".to_owned(), String::new());
        while !phase.is_empty() {
            // (The records phase checks, like the jobs phase, each job it finds.)
            let n = match phase.as_str() {
                "jobs" | "records" => JOBS_PER_STEP,
                "waiting" => WAITING_PER_STEP,
                _ => MEMBERS_PER_STEP,
            };
            let step: Step = self
                .idempotent(|| async {
                    let mut inv = Self::invocation(&SCRIPTS.consistency, &keys);
                    inv.arg(&phase).arg(&cursor).arg(n);
                    Ok(inv.invoke_async(&mut self.conn()).await?)
                })
                .await?;
            let (next, next_cursor, found, success, failure, cancelled, cs, cf, cc, tree, mend) =
                step;
            // A SCAN may return a record twice: each problem is told once.
            for problem in found {
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
            links.extend(tree);
            mendable.extend(mend);
            for (total, n) in finals.iter_mut().zip([success, failure, cancelled]) {
                *total += n;
            }
            last = [cs, cf, cc];
            first.get_or_insert(last);
            (phase, cursor) = (next, next_cursor);
        }
        // (A record the SCAN returned twice names its links twice.)
        links.sort();
        links.dedup();
        mendable.sort();
        mendable.dedup();
        Ok((
            problems,
            finals,
            first.unwrap_or(last),
            last,
            links,
            mendable,
        ))
    }

    /// Follows the tree links of `queue` that lead into other slots, in pipelines of at
    /// most `MEMBERS_PER_STEP` point reads, each to one queue (one slot).
    async fn check_links(&self, queue: &str, links: &[String]) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        // Children whose parent is in another queue, by that queue.
        let mut by_parent_queue: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        let mut parents = Vec::new();
        for link in links {
            let mut words = link.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("c"), Some(id), Some(parent), Some(parent_queue)) => {
                    if tether_model::validate_queue_name(parent_queue).is_ok() {
                        by_parent_queue
                            .entry(parent_queue)
                            .or_default()
                            .push((id, parent));
                    } else {
                        problems.push(format!("child {id} names an invalid parent queue"));
                    }
                }
                (Some("p"), Some(id), None, None) => parents.push(id),
                _ => return Err(StoreError::Reply(format!("unknown tree link {link:?}"))),
            }
        }
        for (parent_queue, children) in by_parent_queue {
            let keys = QueueKeys::new(parent_queue);
            for chunk in children.chunks(MEMBERS_PER_STEP) {
                let mut pipe = redis::pipe();
                for (id, parent) in chunk {
                    // The list first: a parent's list goes only with its record.
                    pipe.cmd("ZSCORE")
                        .arg(keys.kids(parent))
                        .arg(format!("{id} {queue}"))
                        .cmd("EXISTS")
                        .arg(keys.job(parent));
                }
                let rows: Vec<(Option<f64>, bool)> = self
                    .idempotent(|| async { Ok(pipe.query_async(&mut self.conn()).await?) })
                    .await?;
                for ((id, parent), (listed, exists)) in chunk.iter().zip(rows) {
                    if listed.is_none() && exists {
                        problems.push(format!(
                            "child {id} is missing from the list of its parent {parent} (queue {parent_queue})"
                        ));
                    }
                }
            }
        }
        let keys = QueueKeys::new(queue);
        for parent in parents {
            let mut start = 0;
            loop {
                let members: Vec<String> = self
                    .idempotent(|| async {
                        Ok(redis::cmd("ZRANGE")
                            .arg(keys.kids(parent))
                            .arg(start)
                            .arg(start + MEMBERS_PER_STEP - 1)
                            .query_async(&mut self.conn())
                            .await?)
                    })
                    .await?;
                problems.extend(self.check_kids(queue, parent, &members).await?);
                if members.len() < MEMBERS_PER_STEP {
                    break;
                }
                start += MEMBERS_PER_STEP;
            }
        }
        Ok(problems)
    }

    /// Reads each listed child of `parent` in its own queue: it names the parent, or its
    /// record is gone with its index entry.
    async fn check_kids(
        &self,
        queue: &str,
        parent: &str,
        members: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let mut by_queue: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for member in members {
            match parse_kid(member) {
                Some((id, q)) if tether_model::validate_queue_name(q).is_ok() => {
                    by_queue.entry(q).or_default().push(id.to_string());
                }
                _ => problems.push(format!("parent {parent} lists {member:?}, not a child")),
            }
        }
        for (child_queue, ids) in by_queue {
            let keys = QueueKeys::new(child_queue);
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET")
                    .arg(keys.job(id))
                    .arg(&["st", "par", "pq"])
                    .cmd("ZSCORE")
                    .arg(keys.jobs())
                    .arg(id);
            }
            type Row = (
                (Option<String>, Option<String>, Option<String>),
                Option<f64>,
            );
            let rows: Vec<Row> = self
                .idempotent(|| async { Ok(pipe.query_async(&mut self.conn()).await?) })
                .await?;
            for (id, ((st, par, pq), indexed)) in ids.iter().zip(rows) {
                let named = par.as_deref() == Some(parent) && pq.as_deref() == Some(queue);
                if st.is_none() && indexed.is_some() {
                    problems.push(format!(
                        "child {id} (queue {child_queue}) of parent {parent} is indexed but has no record"
                    ));
                } else if st.is_some() && !named {
                    problems.push(format!(
                        "child {id} (queue {child_queue}) on the list of parent {parent} names parent {} (queue {})",
                        par.as_deref().unwrap_or("none"),
                        pq.as_deref().unwrap_or("none")
                    ));
                }
            }
        }
        Ok(problems)
    }
}
