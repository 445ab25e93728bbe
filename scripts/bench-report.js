// Table helpers shared by the benchmark scripts' reports (bullmq-compare.js,
// redis-profile.js).
'use strict';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// Two decimals below 100, whole numbers with thousands separators above.
const fmt = (x) =>
  x === undefined || x === null || Number.isNaN(x)
    ? '-'
    : Math.abs(x) >= 100
      ? Math.round(x).toLocaleString('en-US')
      : x.toFixed(2);

// Rows of cells as aligned text: the first column left-aligned, the others right.
function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  '))
    .join('\n');
}

module.exports = { median, fmt, table };
