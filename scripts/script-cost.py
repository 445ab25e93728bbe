#!/usr/bin/env python3
"""Redis's instructions per job in each of the three scripts of a job's life, in batches of
a fixed size, so two versions compare to the instruction:

  scripts/script-cost.py TETHER_BINARY [JOBS=2000] [BATCH=20]
  TREE=/path/to/a/checkout scripts/script-cost.py TETHER_BINARY ...

On a private redis-server under valgrind's callgrind (loopback, a free port; callgrind
counts instructions, which do not depend on the machine's load): `tether enqueue` makes
the queue and loads the binary's function library; then JOBS plain no-op jobs are
enqueued in calls of 1,000 (`enqueue`), leased in claims of BATCH (`claim`) and finished
as successes in calls of BATCH (`finish`), each phase counted on its own. A worker's
own batches vary with timing (scripts/redis-cost.sh measures those); these do not.
TREE: load the scripts of that checkout's crates/store/lua instead of the binary's (to
measure a change before building it). REDIS_SERVER: the redis-server to run (one built
with symbols gives callgrind_annotate a profile by function). Needs valgrind.
"""
import glob
import os
import re
import socket
import subprocess
import sys
import tempfile
import time


class Redis:
    """The few RESP2 requests this needs, over one loopback connection."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return int(rest) if kind == b":" else rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 16)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def main():
    args = [a for a in sys.argv[1:]]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    binary = args[0]
    jobs = int(args[1]) if len(args) > 1 else 2000
    batch = int(args[2]) if len(args) > 2 else 20
    server = os.environ.get("REDIS_SERVER", "redis-server")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    work = tempfile.mkdtemp(prefix="tether-script-cost-")
    redis = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.%p.out", server,
         "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return measure(binary, jobs, batch, port, redis, work)
    finally:
        redis.kill()
        redis.wait()
        for f in glob.glob(f"{work}/*"):
            os.remove(f)
        os.rmdir(work)


def measure(binary, jobs, batch, port, redis, work):
    r = None
    for _ in range(300):
        try:
            r = Redis(port)
            r("PING")
            break
        except OSError:
            time.sleep(0.2)
    url = f"redis://127.0.0.1:{port}"

    def zero():
        subprocess.run(["callgrind_control", "-z", str(redis.pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def total():
        subprocess.run(["callgrind_control", "-d", str(redis.pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        newest = max(glob.glob(f"{work}/cg.*.out*"), key=os.path.getmtime)
        with open(newest) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise RuntimeError("no totals in " + newest)

    subprocess.run([binary, "enqueue", "--redis", url, "--type", "noop", "--count", "1"],
                   stdout=subprocess.DEVNULL, check=True)
    names = [n.decode() for n in re.findall(rb"tether_[0-9a-f]+_\w+", b" ".join(
        flatten(r("FUNCTION", "LIST"))))]
    tree = os.environ.get("TREE")
    if tree:
        names = load_tree(r, tree)

    def function(script):
        return next(n for n in names if n.endswith("_" + script))

    prefix = "tether:{default}:"
    keys = [prefix + k for k in ("stream", "delayed", "leases", "jobs", "done", "dead", "counts")]
    claims = [0]

    def claim(count):
        claims[0] += 1
        claim_id = "%08x" % claims[0]
        reply = r("FCALL", function("claim"), len(keys), *keys, prefix, count, "cost-worker",
                  600000, claim_id, 3600000)
        leases, i = [], 4
        while i < len(reply):
            if isinstance(reply[i], bytes):  # a fresh job's row: its id, then `epoch ...`
                job_id, epoch = reply[i], reply[i + 1].split(b" ", 1)[0]
                n = 1
            else:  # its count of values, then the values (older versions: 6 or 12)
                n = int(reply[i])
                job_id, epoch = reply[i + 1], reply[i + 2]
            leases.append((job_id, epoch + b"." + claim_id.encode()))
            i += 1 + n
        return leases

    def finish(leases):
        outcome = [x for (job_id, token) in leases for x in (job_id, token, "success", b"\xc0")]
        r("FCALL", function("finish"), len(keys), *keys, prefix, 3600000, *outcome)

    finish(claim(100))  # the job the CLI enqueued: every script has run once
    zero()
    for first in range(0, jobs, 1000):
        plain = []
        for _ in range(first, min(jobs, first + 1000)):
            plain += [os.urandom(16), "", "4", "type", "noop", "in", b"\xc0"]
        r("FCALL", function("enqueue"), len(keys), *keys, prefix, 0, 0, *plain)
    enqueue = total()
    zero()
    leases = []
    while True:
        got = claim(batch)
        if not got:
            break
        leases += got
    claimed = total()
    zero()
    for first in range(0, len(leases), batch):
        finish(leases[first:first + batch])
    finished = total()
    done = int(r("HGET", prefix + "counts", "success"))
    if len(leases) != jobs or done != jobs + 1:
        print(f"expected {jobs} jobs leased and finished, got {len(leases)} and {done - 1}")
        return 1
    print(f"{tree or binary}: instructions per job: enqueue {enqueue // jobs}, "
          f"claim {claimed // jobs}, finish {finished // jobs} "
          f"(total {(enqueue + claimed + finished) // jobs}; {jobs} jobs, batches of {batch})")
    return 0


def flatten(reply):
    if isinstance(reply, list):
        return [x for item in reply for x in flatten(item)]
    return [reply if isinstance(reply, bytes) else str(reply).encode()]


def load_tree(r, tree):
    """Loads the checkout's scripts as src/scripts.rs assembles them, as `tether_tree`."""
    lua = os.path.join(tree, "crates/store/lua")
    with open(os.path.join(tree, "crates/store/src/scripts.rs")) as f:
        listed = f.read().split("scripts!(\n", 1)[1].split(");", 1)[0]
    scripts = re.findall(r"^\s+(\w+),", listed, re.M)
    library = "#!lua name=tether_tree\n"
    for prelude in ("numbers.lua", "common.lua", "flow.lua", "tasks.lua"):
        if not os.path.exists(os.path.join(lua, prelude)):
            continue  # (an older checkout: numbers.lua came later)
        with open(os.path.join(lua, prelude)) as f:
            library += f.read()
    library += "local function begin(keys, args) begin_common(keys, args) begin_flow() end\n"
    for script in scripts:
        with open(os.path.join(lua, script + ".lua")) as f:
            body = f.read()
        library += (f"redis.register_function('tether_tree_{script}', function(keys, args)\n"
                    f"begin(keys, args)\n{body}\nend)\n")
    r("FUNCTION", "LOAD", "REPLACE", library)
    return ["tether_tree_" + s for s in scripts]


if __name__ == "__main__":
    sys.exit(main())
