"""Read a trminterp trace (v0-spec section 3) with the standard library and numpy.

    from trace_reader import load_trace
    states, rows = load_trace("runs/demo", latent="z_H", steps="s*.h*.H")
    states.shape          # (N, D), in the stored dtype (float32 or float16)
    rows["example"][0], rows["address"][0], rows["t"][0], rows["position"][0]

`run_dir` is a run dir (its trace.jsonl, or every shard under shards/ of a
sharded run) or a trace.jsonl path. Rows come in the layout order of
states.npy: by latent, then step in execution order, then example (trace order),
then position; for a sharded run, each step's rows of shard 0, 1, ... in turn,
which is the order of the unsharded trace. With states in states.npy, the rows
of the selected steps are contiguous slices located by the header's `blocks`:
no step record is parsed (the example records are skimmed for the example
order and halting steps). With inline states, the step records are decoded.

`verify=True` (default) checks each states.npy against the sha256 its header
pins, which reads the whole file once; `verify=False` skips that.

It makes the CLI's checks on what it reads: no symbolic link is followed (the
run dir, shards/, the shard folders, trace.jsonl, states.npy), every file is a
regular file (a FIFO or device is refused, never waited on), a header line is
at most 16 MiB and any other line at most 2^28 bytes, the header's blocks must
tile its rows in order and be steps of its schedule, and a non-finite state
is refused. Each refusal is a ValueError naming the file and the problem.

Command line: `python3 trace_reader.py RUN [--latent z_H] [--steps SEL] [--out x.npy]`
prints the shape and the first rows' table, and saves the array with --out.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import stat

import numpy as np

__all__ = ["load_trace", "read_headers", "parse_selector"]

_SHARD = re.compile(r"^(\d+)-of-(\d+)$")
_ADDR = re.compile(r"^s(\d+)\.h(\d+)\.(?:l(\d+)|(H))$")


def _address(text: str):
    m = _ADDR.match(text)
    if not m:
        raise ValueError(f"bad step address {text!r}")
    return int(m[1]), int(m[2]), "H" if m[4] else int(m[3])


def _range(body: str, whole: str):
    if body == "*":
        return None
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", body)
    if not m:
        raise ValueError(f"unknown step selector {whole!r}")
    lo = int(m[1])
    hi = lo if m[2] is None else int(m[2])
    return lo, hi


def parse_selector(text: str | None):
    """A predicate over addresses (sup, h, l) for a step selector (v0-spec section 2)."""
    if text is None or text.strip() == "all":
        return lambda a: True
    terms = []
    for term in text.split(","):
        parts = term.strip().split(".")
        if len(parts) != 3:
            raise ValueError(f"unknown step selector {text!r}")
        s, h, l = parts
        sr = None if s == "*" else _range(s[1:], text) if s.startswith("s") else _bad(text)
        hr = None if h == "*" else _range(h[1:], text) if h.startswith("h") else _bad(text)
        if l == "*":
            lr = ("any", None)
        elif l == "H":
            lr = ("H", None)
        elif l.startswith("l"):
            lr = ("L", _range(l[1:], text))
        else:
            _bad(text)
        terms.append((sr, hr, lr))

    def inside(r, v):
        return r is None or r[0] <= v <= r[1]

    def match(a):
        sup, h, l = a
        for sr, hr, (kind, lr) in terms:
            if not (inside(sr, sup) and inside(hr, h)):
                continue
            if kind == "any" or (kind == "H" and l == "H") or (kind == "L" and l != "H" and inside(lr, l)):
                return True
        return False

    return match


def _bad(text):
    raise ValueError(f"unknown step selector {text!r}")


MAX_HEADER_BYTES = 1 << 24
MAX_LINE_BYTES = 1 << 28


def _check_path(path: str, root: str | None = None):
    """Refuse a symbolic link at `path` or at any component below `root`."""
    parts = [path]
    if root is not None:
        rel = os.path.relpath(path, root)
        at = root
        parts = [root]
        for c in rel.split(os.sep):
            if c in ("", "."):
                continue
            at = os.path.join(at, c)
            parts.append(at)
    for p in parts:
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise ValueError(f"{p} is a symbolic link; trace_reader follows none: use the real path")


def _open_regular(path: str, root: str | None = None):
    """Open a regular file for reading: no link, and never a FIFO or device
    (opened without blocking, then checked on the descriptor)."""
    _check_path(path, root)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        if e.errno == getattr(__import__("errno"), "ELOOP", -1):
            raise ValueError(f"{path} is a symbolic link; trace_reader follows none: use the real path") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ValueError(f"{path} is not a regular file (a folder, pipe, socket or device); pass a trace")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _line(f, cap: int, path: str, what: str) -> bytes:
    line = f.readline(cap + 1)
    if len(line) > cap:
        raise ValueError(f"{path}: the {what} line is longer than {cap} bytes; this is not a trace trminterp writes")
    return line


def _lines(f, path: str):
    while True:
        line = _line(f, MAX_LINE_BYTES, path, "record")
        if not line:
            return
        yield line


def _first_line(path: str, root: str | None = None) -> dict:
    with _open_regular(path, root) as f:
        line = _line(f, MAX_HEADER_BYTES, path, "header")
    try:
        h = json.loads(line)
    except ValueError:
        raise ValueError(f"{path}: the header is not JSON; re-run trace") from None
    if not isinstance(h, dict) or h.get("kind") != "header":
        raise ValueError(f"{path}: the first line is not a trace header; re-run trace")
    _check_blocks(h, path)
    return h


def _check_blocks(h: dict, path: str):
    """The header's blocks tile its rows in order, each a step of the schedule
    holding whole examples, as the CLI checks (a header whose blocks were
    swapped would otherwise label one step's states with another's address)."""
    sched = h["model"]["schedule"]
    npos = len(h["record"]["positions"])
    row = 0
    for b in h["blocks"]:
        sup, hh, l = _address(b["address"])
        if (
            b["row"] != row or b["rows"] < 0 or npos == 0 or b["rows"] % npos
            or sup >= sched["halt_max_steps"] or hh >= sched["H_cycles"]
            or (l != "H" and l >= sched["L_cycles"]) or (l == "H") != (b["latent"] == "z_H")
        ):
            raise ValueError(f"{path}: header block {b['address']} (rows {b['row']}..{b['row'] + b['rows']}, "
                             f"{b['latent']}) does not follow the blocks before it at row {row} as a step of the "
                             f"schedule; the trace was edited or is corrupt: re-run trace")
        row += b["rows"]
    if row != h["rows"]:
        raise ValueError(f"{path}: the header's blocks hold {row} rows, not {h['rows']}; re-run trace")


def read_headers(run_dir: str):
    """[(folder, header)] of a run: its trace.jsonl, or each shard's in shard order."""
    if run_dir.endswith(".jsonl"):
        return [(os.path.dirname(run_dir) or ".", _first_line(run_dir))]
    _check_path(run_dir)
    single = os.path.join(run_dir, "trace.jsonl")
    shards = os.path.join(run_dir, "shards")
    _check_path(shards, run_dir)
    names = sorted(n for n in os.listdir(shards) if _SHARD.match(n)) if os.path.isdir(shards) else []
    if os.path.lexists(single):
        if names:
            raise ValueError(f"{run_dir} holds both trace.jsonl and shards/")
        return [(run_dir, _first_line(single, run_dir))]
    if not names:
        raise FileNotFoundError(f"no trace.jsonl in {run_dir}")
    counts = {_SHARD.match(n)[2] for n in names}
    if len(counts) != 1:
        raise ValueError(f"{run_dir} holds shards of different counts: {sorted(counts)}")
    n = int(counts.pop())
    out = []
    for i in range(n):
        d = os.path.join(shards, f"{i}-of-{n}")
        _check_path(os.path.join(d, "trace.jsonl"), run_dir)
        if not os.path.lexists(os.path.join(d, "trace.jsonl")):
            raise FileNotFoundError(f"{run_dir} lacks shard {i}-of-{n} (no trace.jsonl)")
        h = _first_line(os.path.join(d, "trace.jsonl"), run_dir)
        if not h.get("shard") or h["shard"]["index"] != i or h["shard"]["count"] != n:
            raise ValueError(f"{d}/trace.jsonl is not shard {i}-of-{n}")
        out.append((d, h))
    return out


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with _open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _examples(trace_path: str):
    """[(id, halt_step)] from the example records, skimming the other lines."""
    out = []
    with _open_regular(trace_path) as f:
        _line(f, MAX_HEADER_BYTES, trace_path, "header")
        for line in _lines(f, trace_path):
            if line.startswith(b'{"kind":"example"'):
                r = json.loads(line)
                out.append((r["example"], r["halt_step"]))
    return out


def load_trace(run_dir: str, latent: str = "z_H", steps: str | None = None, verify: bool = True):
    """The states of `latent` at the steps `steps` selects, and their row table.

    Returns (states, rows): states is a [N, D] array in the stored dtype
    (a memory-mapped slice is copied out); rows is a numpy structured array of
    N entries with fields example (str), address (str), t (int32) and
    position (int32).
    """
    if latent not in ("z_H", "z_L"):
        raise ValueError(f"latent must be z_H or z_L, got {latent!r}")
    parts = read_headers(run_dir)
    h0 = parts[0][1]
    D, dtype = h0["state_dim"], np.dtype("<f2" if h0["dtype"] == "float16" else "<f4")
    sched = h0["model"]["schedule"]
    positions = np.asarray(h0["record"]["positions"], dtype=np.int32)
    npos = len(positions)
    match = parse_selector(steps)
    keep = [k for k, b in enumerate(h0["blocks"]) if b["latent"] == latent and match(_address(b["address"]))]
    for d, h in parts:
        if [b["address"] for b in h["blocks"]] != [b["address"] for b in h0["blocks"]]:
            raise ValueError(f"{d}: its blocks differ from the first shard's; the shards were traced with different settings")

    def t_of(address):
        sup, h, l = _address(address)
        per = sched["L_cycles"] + 1
        return sup * sched["H_cycles"] * per + h * per + (sched["L_cycles"] if l == "H" else l)

    # Per part: the states of the kept blocks, and the examples running in each.
    chunks = {}
    ids = {}
    for p, (d, h) in enumerate(parts):
        trace_path = os.path.join(d, "trace.jsonl")
        ex = _examples(trace_path)
        for k in keep:
            sup = _address(h["blocks"][k]["address"])[0]
            ids[p, k] = [e for e, halt in ex if halt >= sup]
            if len(ids[p, k]) * npos != h["blocks"][k]["rows"]:
                raise ValueError(f"{trace_path}: block {h['blocks'][k]['address']} holds "
                                 f"{h['blocks'][k]['rows']} rows, not {len(ids[p, k])} examples x {npos} positions")
        if h["states"] == "npy":
            path = os.path.join(d, "states.npy")
            _open_regular(path, d).close()
            if verify and _sha256(path) != h["states_npy"]["sha256"]:
                raise ValueError(f"{path} is not the states.npy its trace.jsonl pins (sha256 differs)")
            arr = np.load(path, mmap_mode="r")
            if arr.dtype != dtype or arr.shape != (h["rows"], D):
                raise ValueError(f"{path} holds {arr.dtype} {arr.shape}, not {dtype} {(h['rows'], D)}")
            for k in keep:
                b = h["blocks"][k]
                chunks[p, k] = np.array(arr[b["row"]:b["row"] + b["rows"]])
            del arr
        else:
            for k in keep:
                chunks[p, k] = np.empty((h["blocks"][k]["rows"], D), dtype=dtype)
            want = {h["blocks"][k]["address"]: k for k in keep}
            with _open_regular(trace_path) as f:
                _line(f, MAX_HEADER_BYTES, trace_path, "header")
                for line in _lines(f, trace_path):
                    if not line.startswith(b'{"kind":"step"'):
                        continue
                    r = json.loads(line)
                    k = want.get(r["address"])
                    if k is None:
                        continue
                    at = r["row"] - h["blocks"][k]["row"]
                    data = np.frombuffer(base64.b64decode(r["data"]), dtype=dtype).reshape(r["rows"], D)
                    chunks[p, k][at:at + r["rows"]] = data
    order = [(p, k) for k in keep for p in range(len(parts))]
    for o in order:
        bad = np.flatnonzero(~np.isfinite(chunks[o]).all(axis=1))
        if bad.size:
            p, k = o
            r = int(bad[0])
            raise ValueError(f"{parts[p][0]}: the states of {ids[o][r // npos]} at {parts[p][1]['blocks'][k]['address']} "
                             f"({latent}) are not finite; the model diverged or the trace is corrupt")
    states = np.concatenate([chunks[o] for o in order]) if order else np.empty((0, D), dtype=dtype)
    n = states.shape[0]
    width = max([len(e) for o in order for e in ids[o]] + [1])
    rows = np.empty(n, dtype=[("example", f"U{width}"), ("address", "U16"), ("t", "<i4"), ("position", "<i4")])
    at = 0
    for p, k in order:
        m = len(ids[p, k]) * npos
        address = parts[p][1]["blocks"][k]["address"]
        rows["example"][at:at + m] = np.repeat(np.asarray(ids[p, k], dtype=f"U{width}"), npos)
        rows["address"][at:at + m] = address
        rows["t"][at:at + m] = t_of(address)
        rows["position"][at:at + m] = np.tile(positions, len(ids[p, k]))
        at += m
    return states, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--latent", default="z_H", choices=["z_H", "z_L"])
    ap.add_argument("--steps", default=None, help="step selector (default all)")
    ap.add_argument("--out", default=None, help="save the states here (.npy)")
    ap.add_argument("--no-verify", action="store_true", help="skip the sha256 check of states.npy")
    ap.add_argument("--seed", type=int, default=0, help="unused (reading is deterministic); kept for uniformity")
    a = ap.parse_args(argv)
    states, rows = load_trace(a.run_dir, a.latent, a.steps, verify=not a.no_verify)
    print(f"{a.latent} at {a.steps or 'all'}: {states.shape[0]} rows x {states.shape[1]} ({states.dtype})")
    for r in rows[:3]:
        print(f"  {r['example']} {r['address']} t={r['t']} position={r['position']}")
    if a.out:
        np.save(a.out, states)


if __name__ == "__main__":
    main()
