#!/usr/bin/env python3
"""A stand-in training loop: reads one rank's batches for a few epochs and prints the rate.

    PYTHONPATH=examples/python python3 examples/python/train_loop.py \\
        --url http://127.0.0.1:8080 --dataset reviews-train --rank 0 --epochs 2

Stops cleanly on Ctrl-C (the fetch threads are joined). ``--start`` resumes mid-epoch:
the first epoch begins at that batch, the next ones at 0.
"""
from __future__ import annotations

import argparse
import sys
import time

from shardfeed import Client, ShardfeedError, records_of


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--first-epoch", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="batch to resume from in the first epoch")
    ap.add_argument("--format", default="json", choices=["json", "ndjson", "arrow"])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--prefetch", type=int, default=8)
    ap.add_argument("--token", default=None)
    args = ap.parse_args(argv)

    with Client(args.url, token=args.token) as client:
        try:
            d = client.wait_ready(args.dataset)
        except ShardfeedError as exc:
            print(f"cannot use dataset {args.dataset!r}: {exc}", file=sys.stderr)
            return 2
        print(f"{d['name']}: {d['numRecords']} records, {d['numShards']} shards, "
              f"batch {d['batchSize']}, rank {args.rank}")
        for epoch in range(args.first_epoch, args.first_epoch + args.epochs):
            start = args.start if epoch == args.first_epoch else 0
            t0 = time.perf_counter()
            batches = records = 0
            try:
                for i, batch in client.iter_batches(args.dataset, args.rank, epoch=epoch, start=start,
                                                    format=args.format, workers=args.workers,
                                                    prefetch=args.prefetch):
                    recs = records_of(args.format, batch)
                    batches += 1
                    records += len(recs) if not hasattr(recs, "num_rows") else recs.num_rows
                    # a real loop: forward/backward here, checkpoint (epoch, i + 1) now and then
            except KeyboardInterrupt:
                print(f"interrupted in epoch {epoch}; resume with --first-epoch {epoch} --start {start + batches}")
                return 130
            dt = time.perf_counter() - t0
            print(f"epoch {epoch}: {batches} batches, {records} records in {dt:.2f} s "
                  f"({batches / dt if dt else 0:.1f} batches/s, {records / dt if dt else 0:.0f} records/s)")
        print(f"requests {client.stats['requests']}, retries {client.stats['retries']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
