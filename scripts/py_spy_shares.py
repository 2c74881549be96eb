#!/usr/bin/env python
"""Where a Tidegate worker's time goes, from py-spy's collapsed stacks (`bench_faust.py --profile`).

    .venv/bin/python scripts/py_spy_shares.py DIR_OR_FILE ... [--top 5]

Sorts each sample into one share by the frames on its stack (root to leaf): Tidegate's
stage work (the core's rules and routing, the state store, decoding and encoding),
sending a batch's outputs, the transactions (commit timer: changelog, offsets, commit,
begin), Faust's per-message consume path (fetch delivery, conductor, stream iteration,
events, acks, sensors), the consumer thread (aiokafka fetches), the rest of the event
loop. Samples waiting in epoll are counted apart (py-spy takes them as active) and left
out of the shares. Prints each share with its top leaf frames.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

WAIT = "waiting in epoll (left out)"

# (share, frame pattern): the rootmost frame matching one of these sets the share; the
# stage work is then refined by the deeper frames (SUB), deepest match first
TOP: list[tuple[str, re.Pattern[str]]] = [
    ("consumer thread (aiokafka fetch, in Faust's thread)", re.compile(r"^WorkerThread\.run ")),
    (
        "transactions (commit timer: changelog, offsets, commit, begin)",
        re.compile(
            r"^(ExactlyOnce\.(commit|_commit_one|on_)|Consumer\.commit|.*Transaction"
            r"|Sender\._(do_|maybe_do_transactional|find_coordinator))"
        ),
    ),
    ("sending outputs (aiokafka's sender task)", re.compile(r"^Sender\._send_produce_req ")),
    ("stage work", re.compile(r"^register\.<locals>\.run_batch ")),
]
SUB: list[tuple[str, re.Pattern[str]]] = [
    ("sending outputs (send_batch, in the stage)", re.compile(r"(publish|send_all) ")),
    ("Faust per-message consume path", re.compile(r"^Event\.ack |faust/")),
    ("Tidegate stage work: state store", re.compile(r"streams/faust_store\.py")),
    (
        "Tidegate stage work: rules, routing, decode/encode",
        re.compile(r"streams/(core/|routing|hops|topics|agents)"),
    ),
]
# mode/worker.py and mode/threads.py are the roots of every stack: not Faust's work
FAUST = (
    "Faust per-message consume path",
    re.compile(r"\((faust/|mode/(services|utils)|streams/app\.py)"),
)
AIOKAFKA = ("aiokafka client (producer sender, connections)", re.compile(r"aiokafka/"))
LOOP = "event loop and the rest"


def share_of(frames: list[str]) -> str:
    if frames and frames[-1].startswith("EpollSelector.select "):
        return WAIT
    for name, pattern in TOP:
        for depth, frame in enumerate(frames):
            if pattern.search(frame):
                if name != "stage work":
                    return name
                for sub, sub_pattern in SUB:
                    if any(sub_pattern.search(f) for f in frames[depth + 1 :]):
                        return sub
                return "Tidegate stage work: rules, routing, decode/encode"
    for name, pattern in (FAUST, AIOKAFKA):
        if any(pattern.search(f) for f in frames):
            return name
    return LOOP


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    files = [f for p in args.paths for f in (sorted(p.glob("*-w*.txt")) if p.is_dir() else [p])]
    shares: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = defaultdict(Counter)
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = [f.strip() for f in stack.split(";") if f.strip()]
            name = share_of(frames)
            shares[name] += int(count)
            leaves[name][frames[-1] if frames else "?"] += int(count)
    active = sum(n for name, n in shares.items() if name != WAIT)
    print(f"{len(files)} profiles, {active} active samples (+{shares[WAIT]} in epoll)")
    for name, n in shares.most_common():
        if name == WAIT:
            continue
        print(f"{n / active:6.1%}  {name}")
        for leaf, m in leaves[name].most_common(args.top):
            print(f"          {m / active:5.1%}  {leaf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
