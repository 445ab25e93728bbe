// Helper of scripts/redis-profile.sh (see there). Two commands:
//
//   node redis-profile.js phase SLOWLOG_JSON CPU_US JOBS   one phase's split; prints JSON
//   node redis-profile.js report FILE...                   tables of the runs' JSON files
//
// SLOWLOG_JSON is `redis-cli --json SLOWLOG GET -1`: entries [id, time, µs, argv,
// client, name]. Commands run inside a script are logged too, with client "?:0";
// their time is already in their FCALL's, so only top-level entries are summed.
'use strict';
const { median, fmt, table } = require('./bench-report');
const fs = require('fs');

// Tether's scripts are the functions `tether_<library version>_<script>`.
const scriptName = (fn) => String(fn).replace(/^tether_[0-9a-zA-Z]*_/, '');

function category(argv) {
  const cmd = String(argv[0]).toUpperCase();
  if (cmd.startsWith('EVAL')) return ['scripts', cmd];
  if (cmd !== 'FCALL' && cmd !== 'FCALL_RO') return ['commands', cmd];
  const name = scriptName(argv[1]);
  for (const c of ['enqueue', 'claim', 'finish']) if (name.startsWith(c)) return [c, `FCALL ${name}`];
  return ['scripts', `FCALL ${name}`];
}

// The profiler's own reads (redis-cli) are not the workload's.
const OWN = new Set(['SLOWLOG', 'CONFIG', 'INFO']);

function phase(file, cpuUs, jobs) {
  const entries = JSON.parse(fs.readFileSync(file, 'utf8'));
  const split = { enqueue: 0, claim: 0, finish: 0, scripts: 0, commands: 0 };
  const calls = { enqueue: 0, claim: 0, finish: 0, scripts: 0, commands: 0 };
  // Commands inside a script are logged before the script's own entry (they end
  // first): each top-level entry owns the inner entries logged since the last one.
  const inners = { enqueue: 0, claim: 0, finish: 0, scripts: 0, commands: 0 };
  const byName = {};
  let inner = 0;
  let pending = 0;
  let topLevel = 0;
  entries.sort((a, b) => a[0] - b[0]);
  for (const [, , us, argv, client] of entries) {
    if (client === '?:0') {
      inner += 1;
      pending += 1;
      continue;
    }
    topLevel += 1;
    if (OWN.has(String(argv[0]).toUpperCase())) continue;
    const [cat, name] = category(argv);
    split[cat] += us;
    calls[cat] += 1;
    inners[cat] += pending;
    pending = 0;
    byName[name] = byName[name] || { us: 0, calls: 0 };
    byName[name].us += us;
    byName[name].calls += 1;
  }
  const logged = Object.values(split).reduce((a, b) => a + b, 0);
  const perJob = (x) => x / jobs;
  return {
    jobs,
    entries: entries.length,
    inner_commands_per_job: perJob(inner),
    top_level_entries_per_job: perJob(topLevel),
    inner_entries_per_job: {
      enqueue: perJob(inners.enqueue),
      claim: perJob(inners.claim),
      finish: perJob(inners.finish),
      other_scripts: perJob(inners.scripts),
      other_commands: perJob(inners.commands),
    },
    us_per_job: {
      enqueue: perJob(split.enqueue),
      claim: perJob(split.claim),
      finish: perJob(split.finish),
      other_scripts: perJob(split.scripts),
      other_commands: perJob(split.commands),
      outside_scripts: perJob(cpuUs - logged),
      total: perJob(cpuUs),
    },
    calls_per_job: {
      enqueue: perJob(calls.enqueue),
      claim: perJob(calls.claim),
      finish: perJob(calls.finish),
      other_scripts: perJob(calls.scripts),
      other_commands: perJob(calls.commands),
    },
    by_name: Object.fromEntries(
      Object.entries(byName)
        .sort((a, b) => b[1].us - a[1].us)
        .map(([k, v]) => [k, { us_per_job: perJob(v.us), calls: v.calls }]),
    ),
  };
}

const ROWS = [
  ['enqueue (enqueue FCALLs)', 'enqueue'],
  ['claim (claim FCALLs)', 'claim'],
  ['finish (finish FCALLs)', 'finish'],
  ['other FCALLs', 'other_scripts'],
  ['other commands (not FCALL)', 'other_commands'],
  ['outside scripts and commands', 'outside_scripts'],
  ['total (used_cpu delta)', 'total'],
];

// Each row is the sum over both phases: the enqueue phase and the drain.
const sum = (run, key) => run.enqueue.us_per_job[key] + run.drain.us_per_job[key];
const calls = (run, key) =>
  key in run.enqueue.calls_per_job ? run.enqueue.calls_per_job[key] + run.drain.calls_per_job[key] : undefined;

// The slowlog's cost, taken out as an estimate: the slowlog-off pass of the same
// workload gives its total (on − off), spread evenly over the entries logged. An
// inner command's entry is logged within its script's duration; a top-level
// command's entry after its duration, i.e. in the outside time.
function corrected(run, key) {
  if (run.off_total_us_per_job === undefined) return undefined;
  const phases = [run.enqueue, run.drain];
  const entries = phases.reduce((a, p) => a + p.entries / p.jobs, 0);
  const perEntry = (sum(run, 'total') - run.off_total_us_per_job) / entries;
  if (key === 'total') return run.off_total_us_per_job;
  const logged =
    key === 'outside_scripts'
      ? phases.reduce((a, p) => a + p.top_level_entries_per_job, 0)
      : phases.reduce((a, p) => a + p.inner_entries_per_job[key], 0);
  return sum(run, key) - perEntry * logged;
}

function report(files) {
  const runs = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
  const r0 = runs[0];
  console.log(
    `${r0.binary}: ${r0.jobs.toLocaleString('en-US')} noop jobs (\`enqueue --count\`), then one worker at ` +
      `concurrency ${r0.concurrency}. Redis time per job in µs: slowlog durations of top-level ` +
      `commands (a script's inner commands are in its duration); outside = used_cpu − logged. ` +
      `"est. without slowlog" takes out the slowlog's own cost (slowlog on − off, spread evenly over its entries).\n`,
  );
  runs.forEach((run, i) => {
    const rows = [['run ' + (i + 1), 'µs/job', 'est. without slowlog', 'enqueue phase', 'drain phase', 'calls/job']];
    for (const [label, key] of ROWS) {
      rows.push([
        label,
        fmt(sum(run, key)),
        fmt(corrected(run, key)),
        fmt(run.enqueue.us_per_job[key]),
        fmt(run.drain.us_per_job[key]),
        calls(run, key) === undefined ? '-' : calls(run, key).toFixed(3),
      ]);
    }
    console.log(table(rows));
    const top = Object.entries({ ...prefixed('enqueue: ', run.enqueue.by_name), ...prefixed('drain: ', run.drain.by_name) })
      .sort((a, b) => b[1].us_per_job - a[1].us_per_job)
      .slice(0, 10)
      .map(([k, v]) => `${k} ${fmt(v.us_per_job)} (${v.calls} calls)`);
    console.log('  µs/job by name: ' + top.join('; '));
    console.log(
      `  slowlog entries: enqueue ${run.enqueue.entries}, drain ${run.drain.entries} (max-len ${run.slowlog_max_len}, ` +
        `not overflowed); commands inside scripts per job: ` +
        fmt(run.enqueue.inner_commands_per_job + run.drain.inner_commands_per_job),
    );
    console.log(
      `  slowlog off, same workload: total ${fmt(run.off_total_us_per_job)} µs/job ` +
        `(the slowlog's cost ≈ ${fmt(sum(run, 'total') - run.off_total_us_per_job)} µs/job)\n`,
    );
  });
  if (runs.length > 1) {
    const rows = [['median of ' + runs.length + ' runs', 'µs/job', 'per run', 'est. without slowlog', 'per run']];
    for (const [label, key] of ROWS) {
      const xs = runs.map((r) => sum(r, key));
      const ys = runs.map((r) => corrected(r, key));
      rows.push([label, fmt(median(xs)), xs.map(fmt).join(' / '), fmt(median(ys)), ys.map(fmt).join(' / ')]);
    }
    console.log(table(rows));
  }
}

function prefixed(prefix, obj) {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [prefix + k, v]));
}

const [command, ...args] = process.argv.slice(2);
if (command === 'phase') {
  console.log(JSON.stringify(phase(args[0], Number(args[1]), Number(args[2]))));
} else if (command === 'report') {
  report(args);
} else {
  console.error('usage: redis-profile.js phase SLOWLOG_JSON CPU_US JOBS | report FILE...');
  process.exit(2);
}
