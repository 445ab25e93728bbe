// Helper of scripts/bullmq-compare.sh (see there). Two commands:
//
//   node bullmq-compare.js bullmq PORT JOBS   one BullMQ run on the Redis at 127.0.0.1:PORT;
//                                             prints one JSON object
//   node bullmq-compare.js report FILE...     the per-run and median tables of the
//                                             runs' JSON files (`{bullmq, tether}` each)
'use strict';
const { median, fmt, table } = require('./bench-report');

const CHUNK = 1000;
const CONCURRENCY = 100;
const DRAIN_TIMEOUT_MS = 600_000;

// Memory, CPU and the sum of every command's calls (commands inside scripts
// included, as in Tether's `redis_cmds_per_job`), from one INFO call.
async function snapshot(redis) {
  const text = await redis.info('memory', 'cpu', 'commandstats');
  const field = (name) => Number((text.match(new RegExp(`^${name}:([0-9.]+)`, 'm')) || [])[1]);
  let calls = 0;
  for (const m of text.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) calls += Number(m[1]);
  return {
    memory: field('used_memory'),
    cpu_s: field('used_cpu_user') + field('used_cpu_sys'),
    calls,
  };
}

// `later - earlier`; the earlier snapshot's own INFO call is taken out.
function cost(earlier, later) {
  return {
    memory: later.memory - earlier.memory,
    cpu_s: later.cpu_s - earlier.cpu_s,
    calls: later.calls - earlier.calls - 1,
  };
}

async function bullmq(port, jobs) {
  const { Queue, Worker } = require('bullmq');
  const IORedis = require('ioredis');
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const probe = new IORedis(connection);
  const queue = new Queue('bench', { connection });
  await queue.waitUntilReady();

  // Enqueue: addBulk in chunks of 1,000, one after the other (as Tether's bench
  // does with enqueue_many). BullMQ's default job options: completed and failed
  // jobs are kept (no removeOnComplete), as Tether keeps finished records for
  // their retention period.
  const chunk = Array.from({ length: CHUNK }, () => ({ name: 'noop', data: {} }));
  const beforeEnqueue = await snapshot(probe);
  let t = process.hrtime.bigint();
  for (let done = 0; done < jobs; done += CHUNK) {
    await queue.addBulk(chunk.slice(0, Math.min(CHUNK, jobs - done)));
  }
  const enqueueSecs = Number(process.hrtime.bigint() - t) / 1e9;
  const afterEnqueue = await snapshot(probe);
  const enqueue = cost(beforeEnqueue, afterEnqueue);

  // Drain: one Worker at concurrency 100 with a no-op processor. The steady rate
  // runs from the first to the last completion, as Tether's backlog figure does.
  let completed = 0;
  let failed = 0;
  let first = null;
  let last = null;
  // autorun off: the listeners are in place before the first job can complete.
  const worker = new Worker('bench', async () => {}, {
    connection,
    concurrency: CONCURRENCY,
    autorun: false,
  });
  const finished = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`drain timed out: ${completed} of ${jobs} completed`)),
      DRAIN_TIMEOUT_MS,
    );
    const count = () => {
      const now = process.hrtime.bigint();
      if (first === null) first = now;
      last = now;
      if (completed + failed === jobs) {
        clearTimeout(timer);
        resolve();
      }
    };
    worker.on('completed', () => {
      completed += 1;
      count();
    });
    worker.on('failed', () => {
      failed += 1;
      count();
    });
  });
  const startDrain = process.hrtime.bigint();
  const running = worker.run();
  await finished;
  const afterDrain = await snapshot(probe);
  const drain = cost(afterEnqueue, afterDrain);
  await worker.close();
  await running;
  const counts = await queue.getJobCounts('completed', 'failed', 'wait', 'active');
  await queue.close();
  await probe.quit();

  const drainSteadySecs = Number(last - first) / 1e9;
  const drainWallSecs = Number(last - startDrain) / 1e9;
  return {
    version: require('bullmq/package.json').version,
    jobs,
    concurrency: CONCURRENCY,
    retention: 'BullMQ defaults: completed jobs kept (no removeOnComplete)',
    verified: counts.completed === jobs && failed === 0,
    counts,
    bulk_enqueue_jobs_per_s: jobs / enqueueSecs,
    bytes_per_pending_job: enqueue.memory / jobs,
    drain_jobs_per_s: (jobs - 1) / drainSteadySecs,
    drain_wall_jobs_per_s: jobs / drainWallSecs,
    cpu_us_per_job_enqueue: (enqueue.cpu_s * 1e6) / jobs,
    cpu_us_per_job_drain: (drain.cpu_s * 1e6) / jobs,
    cpu_us_per_job: ((enqueue.cpu_s + drain.cpu_s) * 1e6) / jobs,
    cmds_per_job_enqueue: enqueue.calls / jobs,
    cmds_per_job_drain: drain.calls / jobs,
    cmds_per_job: (enqueue.calls + drain.calls) / jobs,
  };
}

// The figures: [label, Tether key, BullMQ key, "higher" or "lower" is better, target].
const FIGURES = [
  ['drain a prefilled backlog, jobs/s', 'backlog_large_jobs_per_s', 'drain_jobs_per_s', '>= 2x'],
  ['Redis CPU/job end to end, µs', 'redis_cpu_us_per_job', 'cpu_us_per_job', '<= 0.4x'],
  ['Redis CPU/job drain only, µs', 'backlog_cpu_us_per_job_large', 'cpu_us_per_job_drain', ''],
  ['Redis bytes/pending job', 'redis_bytes_per_pending_job', 'bytes_per_pending_job', '<= 0.65x, <= 150 B'],
  ['bulk enqueue, jobs/s', 'bulk_enqueue_jobs_per_s', 'bulk_enqueue_jobs_per_s', '>= 3x'],
  ['Redis commands/job', 'redis_cmds_per_job', 'cmds_per_job', '<= 8'],
];

function report(files) {
  const runs = files.map((f) => JSON.parse(require('fs').readFileSync(f, 'utf8')));
  const b0 = runs[0].bullmq;
  console.log(
    `BullMQ ${b0.version}: ${b0.jobs.toLocaleString('en-US')} no-op jobs, addBulk chunks of ${CHUNK.toLocaleString('en-US')}, ` +
      `1 Worker at concurrency ${b0.concurrency}; ${b0.retention}.`,
  );
  console.log('Tether: `tether bench --json` in the same run (ratio = Tether ÷ BullMQ).\n');
  runs.forEach((run, i) => {
    const { bullmq: b, tether: t } = run;
    console.log(
      `run ${i + 1}: BullMQ verified=${b.verified}, Tether verified=${t.verified}; ` +
        `BullMQ split: enqueue ${fmt(b.cpu_us_per_job_enqueue)} µs + drain ${fmt(b.cpu_us_per_job_drain)} µs, ` +
        `${fmt(b.cmds_per_job_enqueue)} + ${fmt(b.cmds_per_job_drain)} commands; ` +
        `drain wall (worker start to last) ${fmt(b.drain_wall_jobs_per_s)} jobs/s`,
    );
    const rows = [['figure', 'Tether', 'BullMQ', 'ratio', 'target']];
    for (const [label, tk, bk, target] of FIGURES) {
      rows.push([label, fmt(t[tk]), fmt(b[bk]), fmt(t[tk] / b[bk]) + 'x', target]);
    }
    console.log(table(rows) + '\n');
  });
  const rows = [['median of ' + runs.length + ' runs', 'Tether', 'BullMQ', 'ratio', 'ratios per run', 'target']];
  for (const [label, tk, bk, target] of FIGURES) {
    const ratios = runs.map((r) => r.tether[tk] / r.bullmq[bk]);
    rows.push([
      label,
      fmt(median(runs.map((r) => r.tether[tk]))),
      fmt(median(runs.map((r) => r.bullmq[bk]))),
      fmt(median(ratios)) + 'x',
      ratios.map(fmt).join(' / '),
      target,
    ]);
  }
  console.log(table(rows));
  if (!runs.every((r) => r.bullmq.verified && r.tether.verified)) {
    console.log('\nWARNING: a run did not complete every job (see verified above)');
    process.exitCode = 1;
  }
}

const [command, ...args] = process.argv.slice(2);
if (command === 'bullmq') {
  bullmq(Number(args[0]), Number(args[1]))
    .then((out) => console.log(JSON.stringify(out)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
} else if (command === 'report') {
  report(args);
} else {
  console.error('usage: bullmq-compare.js bullmq PORT JOBS | report FILE...');
  process.exit(2);
}
