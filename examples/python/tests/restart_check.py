#!/usr/bin/env python3
"""Reads a whole epoch of every rank, slowly, so a test can kill and restart the server
meanwhile; prints ``progress <n>`` after each batch and one ``SUMMARY {json}`` line at the end.

Driven by test/python-client.test.ts: it SIGKILLs the server after a few progress lines and
starts it again on the same port and directories. The summary lists, per batch, the rank,
the index and the record ids, so the test can check that each batch came exactly once, in
order, with the contents the restarted server serves.

    PYTHONPATH=examples/python python3 examples/python/tests/restart_check.py \\
        --url http://127.0.0.1:8080 --dataset train --sleep 0.05
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shardfeed import Client, ShardfeedError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("SHARDFEED_URL"))
    ap.add_argument("--dataset", default=os.environ.get("SHARDFEED_DATASET", "train"))
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds per batch (a slow trainer)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--prefetch", type=int, default=2)
    args = ap.parse_args()
    if not args.url:
        ap.error("--url or SHARDFEED_URL is required")

    # A generous budget: a restart takes a second or two, the backoff stays under 0.5 s.
    client = Client(args.url, retries=40, backoff=0.05, max_backoff=0.5, timeout=10)
    batches: List[Dict[str, Any]] = []
    summary: Dict[str, Any] = {"ok": False, "batches": batches}
    t0 = time.monotonic()
    try:
        d = client.wait_ready(args.dataset, timeout=30)
        for rank in range(d["numShards"]):
            for i, batch in client.iter_batches(args.dataset, rank, epoch=args.epoch,
                                                workers=args.workers, prefetch=args.prefetch):
                batches.append({"rank": rank, "index": i, "indices": batch["indices"],
                                "ids": [r["id"] for r in batch["records"]]})
                print(f"progress {len(batches)}", flush=True)
                time.sleep(args.sleep)
        summary["ok"] = True
    except ShardfeedError as exc:
        summary["error"] = str(exc)
    summary.update(requests=client.stats["requests"], retries=client.stats["retries"],
                   seconds=round(time.monotonic() - t0, 3))
    client.close()
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
