"""Tests of the shardfeed Python client (stdlib unittest, no pip packages).

Two groups:
- ``OfflineTests`` run against small fake servers started here (http.server on 127.0.0.1),
  which answer 503/409/garbage on cue: retry policy, error mapping, shutdown.
- ``ServerTests`` need a real shardfeed server with a registered dataset of JSONL records
  ``{id, label, text}`` whose ``id`` is the record number; test/python-client.test.ts starts
  one and passes SHARDFEED_URL and SHARDFEED_DATASET (SHARDFEED_NUM_RECORDS optional).
  Without SHARDFEED_URL they are skipped.

Run: PYTHONPATH=examples/python python3 -m unittest discover -s examples/python/tests -v
"""
from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shardfeed import Client, ShardfeedError, records_of  # noqa: E402
from shardfeed import torch_dataset  # noqa: E402
from shardfeed.client import _retry_after  # noqa: E402

URL = os.environ.get("SHARDFEED_URL")
DATASET = os.environ.get("SHARDFEED_DATASET", "train")

try:
    import pyarrow  # noqa: F401
    HAVE_PYARROW = True
except ImportError:
    HAVE_PYARROW = False

try:
    import torch  # noqa: F401
    from torch.utils.data import DataLoader
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def worker_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("shardfeed-worker")]


def non_daemon_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]


class FakeServer:
    """An HTTP/1.1 keep-alive server on 127.0.0.1 whose answers a test scripts.

    ``respond(handler, n)`` gets the handler and the 1-based request count and writes the
    answer (or nothing, to drop the connection). ``connections`` counts TCP connections,
    so tests can see keep-alive at work.
    """

    def __init__(self, respond: Callable[[http.server.BaseHTTPRequestHandler, int], None]) -> None:
        self.hits = 0
        self.connections = 0
        self.paths: List[str] = []
        self.headers: List[Dict[str, str]] = []
        self.release = threading.Event()  # lets handlers that block on it finish at teardown
        lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with lock:
                    fake.connections += 1

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with lock:
                    fake.hits += 1
                    n = fake.hits
                    fake.paths.append(self.path)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                try:
                    respond(self, n)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (iterator closed)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True, name="fake-server")
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def send(handler: http.server.BaseHTTPRequestHandler, status: int, body: Any,
         headers: Optional[Dict[str, str]] = None, content_type: str = "application/json") -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


def error_body(status: int, code: str) -> Dict[str, Any]:
    return {"statusCode": status, "code": code, "error": "x", "message": f"{code} from the fake"}


def fake_batch(path: str) -> Dict[str, Any]:
    """A json batch shaped like the server's, built from the request path."""
    parts = path.split("?")[0].split("/")
    rank, index = int(parts[4]), int(parts[6])
    return {"dataset": parts[2], "epoch": 0, "rank": rank, "index": index, "numBatches": 100,
            "indices": [index], "records": [{"id": index}]}


def fast_client(test: unittest.TestCase, url: str, **kw: Any) -> Client:
    """A client with a short backoff, closed when the test ends."""
    opts: Dict[str, Any] = {"retries": 5, "backoff": 0.01, "max_backoff": 0.05, "timeout": 5}
    opts.update(kw)
    client = Client(url, **opts)
    test.addCleanup(client.close)
    return client


class OfflineTests(unittest.TestCase):
    """Retry policy, errors and shutdown against scripted fake servers."""

    def serve(self, respond: Callable[[http.server.BaseHTTPRequestHandler, int], None]) -> FakeServer:
        fake = FakeServer(respond)
        self.addCleanup(fake.stop)
        return fake

    def test_503_with_retry_after_is_retried_then_answered(self) -> None:
        def respond(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
            if n <= 2:
                send(h, 503, error_body(503, "OVERLOADED"), {"Retry-After": "0"})
            else:
                send(h, 200, fake_batch(h.path))
        fake = self.serve(respond)
        # Backoff is huge, so only an honoured Retry-After: 0 finishes quickly.
        client = fast_client(self, fake.url, retries=3, backoff=30, max_backoff=30)
        t0 = time.monotonic()
        body = client.batch("ds", 1, 7)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(body["index"], 7)
        self.assertEqual(fake.hits, 3)
        self.assertEqual(client.stats["retries"], 2)
        self.assertEqual(fake.connections, 1, "the 503s must not cost a new connection each")

    def test_503_without_retry_after_backs_off_and_gives_up_with_the_error(self) -> None:
        fake = self.serve(lambda h, n: send(h, 503, error_body(503, "OVERLOADED")))
        client = fast_client(self, fake.url, retries=3)
        with self.assertRaises(ShardfeedError) as cm:
            client.batch("ds", 0, 0)
        self.assertEqual((cm.exception.status, cm.exception.code), (503, "OVERLOADED"))
        self.assertEqual(fake.hits, 4)  # first try + 3 retries

    def test_409_not_ready_is_retried_other_409s_are_not(self) -> None:
        def respond(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
            if "notready" in h.path and n == 1:
                send(h, 409, error_body(409, "DATASET_NOT_READY"), {"Retry-After": "0"})
            elif "conflict" in h.path:
                send(h, 409, error_body(409, "SOURCE_CHANGED"))
            else:
                send(h, 200, {"rank": 0, "numBatches": 3, "numRecords": 20})
        fake = self.serve(respond)
        client = fast_client(self, fake.url)
        self.assertEqual(client.shard("notready", 0)["numBatches"], 3)
        self.assertEqual(fake.hits, 2)
        with self.assertRaises(ShardfeedError) as cm:
            client.shard("conflict", 0)
        self.assertEqual(cm.exception.code, "SOURCE_CHANGED")
        self.assertEqual(fake.hits, 3, "a 409 other than DATASET_NOT_READY is not retried")

    def test_4xx_raise_at_once_with_code_and_message(self) -> None:
        fake = self.serve(lambda h, n: send(h, 404, error_body(404, "BATCH_OUT_OF_RANGE")))
        client = fast_client(self, fake.url)
        with self.assertRaises(ShardfeedError) as cm:
            client.batch("ds", 0, 99)
        e = cm.exception
        self.assertEqual((e.status, e.code, fake.hits), (404, "BATCH_OUT_OF_RANGE", 1))
        self.assertIn("from the fake", e.message)

    def test_non_json_error_body_still_gives_a_code(self) -> None:
        fake = self.serve(lambda h, n: send(h, 400, b"bad", content_type="text/plain"))
        with self.assertRaises(ShardfeedError) as cm:
            fast_client(self, fake.url).describe("ds")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "HTTP_400"))

    def test_dropped_connection_and_truncated_body_are_retried(self) -> None:
        def respond(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
            if n == 1:  # close without a word
                h.close_connection = True
            elif n == 2:  # promise 1000 bytes, send 10, close (a server killed mid-answer)
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", "1000")
                h.end_headers()
                h.wfile.write(b'{"index": ')
                h.close_connection = True
            else:
                send(h, 200, fake_batch(h.path))
        fake = self.serve(respond)
        client = fast_client(self, fake.url)
        self.assertEqual(client.batch("ds", 0, 4)["records"], [{"id": 4}])
        self.assertEqual(fake.hits, 3)
        self.assertEqual(client.stats["retries"], 2)

    def test_refused_connections_exhaust_the_budget(self) -> None:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = fast_client(self, f"http://127.0.0.1:{port}", retries=2)
        with self.assertRaises(ShardfeedError) as cm:
            client.describe("ds")
        self.assertEqual((cm.exception.status, cm.exception.code), (None, "UNAVAILABLE"))
        self.assertEqual(client.stats["requests"], 3)

    def test_token_accept_and_url_prefix(self) -> None:
        fake = self.serve(lambda h, n: send(h, 200, b'{"index":0,"record":{"id":0}}\n',
                                            content_type="application/x-ndjson"))
        client = fast_client(self, fake.url + "/feed/", token="s3cret")
        lines = client.batch("my.set", 2, 5, epoch=3, format="ndjson")
        self.assertEqual(lines, [{"index": 0, "record": {"id": 0}}])
        self.assertEqual(fake.paths[0], "/feed/datasets/my.set/shards/2/batches/5?epoch=3&format=ndjson")
        self.assertEqual(fake.headers[0]["authorization"], "Bearer s3cret")
        self.assertEqual(fake.headers[0]["accept"], "application/x-ndjson")

    def test_retry_after_parsing(self) -> None:
        self.assertEqual(_retry_after("2"), 2.0)
        self.assertEqual(_retry_after(" 0 "), 0.0)
        self.assertIsNone(_retry_after(None))
        self.assertIsNone(_retry_after("soon"))
        date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
        after = _retry_after(date)
        self.assertIsNotNone(after)
        self.assertTrue(25 <= (after or 0) <= 31, after)

    def test_bad_arguments(self) -> None:
        with self.assertRaises(ValueError):
            Client("ftp://x")
        client = Client("http://127.0.0.1:9")
        with self.assertRaises(ValueError):
            client.batch("ds", 0, 0, format="xml")
        with self.assertRaises(ValueError):
            client.iter_indices("ds", 0, [0], workers=0)
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            with self.assertRaisesRegex(ImportError, "pyarrow"):
                client.batch("ds", 0, 0, format="arrow")

    @unittest.skipUnless(HAVE_PYARROW, "pyarrow not installed: skipping the arrow decoding test")
    def test_arrow_batch_decodes_to_a_table(self) -> None:  # pragma: no cover - needs pyarrow
        import pyarrow as pa
        import pyarrow.ipc

        table = pa.table({"id": pa.array([3, 1], pa.int64()), "__index": pa.array([3, 1], pa.int64())})
        sink = pa.BufferOutputStream()
        with pyarrow.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        fake = self.serve(lambda h, n: send(h, 200, data, content_type="application/vnd.apache.arrow.stream"))
        got = fast_client(self, fake.url).batch("ds", 0, 0, format="arrow")
        self.assertTrue(got.equals(table))
        self.assertEqual(fake.headers[0]["accept"], "application/vnd.apache.arrow.stream")

    def test_an_error_mid_iteration_arrives_in_order(self) -> None:
        def respond(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
            if "/batches/3?" in h.path:
                send(h, 404, error_body(404, "BATCH_OUT_OF_RANGE"))
            else:
                send(h, 200, fake_batch(h.path))
        fake = self.serve(respond)
        got: List[int] = []
        with self.assertRaises(ShardfeedError) as cm:
            for i, _ in fast_client(self, fake.url).iter_indices("ds", 0, range(8), workers=4, prefetch=4):
                got.append(i)
        self.assertEqual(got, [0, 1, 2])
        self.assertEqual(cm.exception.code, "BATCH_OUT_OF_RANGE")
        self.assertEqual(worker_threads(), [])

    def test_close_aborts_requests_in_flight(self) -> None:
        fake: Optional[FakeServer] = None

        def respond(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
            if "/batches/0?" not in h.path:
                assert fake is not None
                fake.release.wait(10)  # a server that hangs
            send(h, 200, fake_batch(h.path))
        fake = self.serve(respond)
        gen = fast_client(self, fake.url, timeout=30).iter_indices("ds", 0, range(10), workers=3, prefetch=3)
        self.assertEqual(next(gen)[0], 0)
        time.sleep(0.2)  # let the workers block on the hanging requests
        t0 = time.monotonic()
        gen.close()
        self.assertLess(time.monotonic() - t0, 2.0, "close() must not wait for the 30 s timeout")
        self.assertEqual(worker_threads(), [])
        self.assertEqual(non_daemon_threads(), [])

    def test_torch_helpers_without_torch(self) -> None:
        self.assertEqual(torch_dataset.worker_indices(0, 7, 0, 2), [0, 2, 4, 6])
        self.assertEqual(torch_dataset.worker_indices(3, 10, 1, 3), [4, 7])
        both = torch_dataset.worker_indices(5, 12, 0, 2) + torch_dataset.worker_indices(5, 12, 1, 2)
        self.assertEqual(sorted(both), list(range(5, 12)))

        class Dist:
            def is_available(self) -> bool:
                return True

            def is_initialized(self) -> bool:
                return True

            def get_rank(self) -> int:
                return 2

            def get_world_size(self) -> int:
                return 3
        self.assertEqual(torch_dataset.resolve_rank_world(dist=Dist()), (2, 3))
        self.assertEqual(torch_dataset.resolve_rank_world(1, 4, dist=Dist()), (1, 4))
        torch_dataset.check_world({"name": "d", "numShards": 3}, 2, 3)
        with self.assertRaisesRegex(ValueError, "numShards=3, but the world size is 2"):
            torch_dataset.check_world({"name": "d", "numShards": 3}, 0, 2)
        with self.assertRaises(ValueError):
            torch_dataset.check_world({"name": "d", "numShards": 3}, 3, 3)
        if not HAVE_TORCH:
            with self.assertRaisesRegex(ImportError, "PyTorch"):
                getattr(torch_dataset, "ShardfeedIterableDataset")


@unittest.skipUnless(URL, "SHARDFEED_URL not set: no shardfeed server to test against")
class ServerTests(unittest.TestCase):
    """Against a real server: coverage of an epoch, resume, errors, retry through a flaky
    proxy, thread shutdown, and the torch dataset."""

    client: Client
    desc: Dict[str, Any]
    n_records: int

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = Client(URL or "", retries=4, backoff=0.05, max_backoff=0.5, timeout=10)
        cls.desc = cls.client.wait_ready(DATASET, timeout=30)
        cls.n_records = int(os.environ.get("SHARDFEED_NUM_RECORDS", cls.desc["numRecords"]))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()

    def epoch(self, client: Client, epoch: int, fmt: str, **kw: Any) -> Dict[int, List[Tuple[int, Any]]]:
        """{rank: [(i, batch), ...]} of a whole epoch."""
        return {r: list(client.iter_batches(DATASET, r, epoch=epoch, format=fmt, **kw))
                for r in range(self.desc["numShards"])}

    @staticmethod
    def ids(fmt: str, batch: Any) -> Tuple[List[int], List[int]]:
        """(indices, record ids) of a batch; they must agree (a record's id is its number)."""
        if fmt == "json":
            return batch["indices"], [r["id"] for r in batch["records"]]
        return [line["index"] for line in batch], [r["id"] for r in records_of(fmt, batch)]

    def test_describe_and_shard(self) -> None:
        d = self.desc
        self.assertEqual((d["name"], d["status"]), (DATASET, "ready"))
        self.assertEqual(d["numRecords"], self.n_records)
        shards = [self.client.shard(DATASET, r) for r in range(d["numShards"])]
        self.assertEqual([s["rank"] for s in shards], list(range(d["numShards"])))
        self.assertEqual([s["numBatches"] for s in shards], d["batchesPerShard"])
        self.assertEqual(sum(s["numRecords"] for s in shards), self.n_records)

    def test_every_record_once_per_epoch_for_all_ranks_json_and_ndjson(self) -> None:
        b = self.desc["batchSize"]
        orders = {}
        for fmt in ("json", "ndjson"):
            for epoch in (0, 1):
                with self.subTest(fmt=fmt, epoch=epoch):
                    seen: List[int] = []
                    for r, batches in self.epoch(self.client, epoch, fmt).items():
                        n = self.desc["batchesPerShard"][r]
                        self.assertEqual([i for i, _ in batches], list(range(n)))
                        for i, batch in batches:
                            indices, ids = self.ids(fmt, batch)
                            self.assertEqual(indices, ids)
                            if i < n - 1:
                                self.assertEqual(len(ids), b)
                            else:
                                self.assertTrue(1 <= len(ids) <= b)
                            if fmt == "json":
                                self.assertEqual((batch["rank"], batch["index"], batch["epoch"]), (r, i, epoch))
                            seen.extend(ids)
                    self.assertEqual(len(seen), self.n_records, "some record twice or missing")
                    self.assertEqual(set(seen), set(range(self.n_records)))
                    orders[(fmt, epoch)] = seen
        self.assertEqual(orders[("json", 0)], orders[("ndjson", 0)], "formats disagree")
        if self.desc["shuffle"]:
            self.assertNotEqual(orders[("json", 0)], orders[("json", 1)], "epochs share an order")

    def test_resume_from_start_yields_exactly_the_rest(self) -> None:
        full = list(self.client.iter_batches(DATASET, 0, epoch=2))
        n = len(full)
        for k in (0, 1, n // 2, n - 1, n):
            with self.subTest(start=k):
                rest = list(self.client.iter_batches(DATASET, 0, epoch=2, start=k, workers=3, prefetch=2))
                self.assertEqual([i for i, _ in rest], list(range(k, n)))
                self.assertEqual(rest, full[k:])

    def test_out_of_range_errors(self) -> None:
        n0 = self.desc["batchesPerShard"][0]
        with self.assertRaises(ShardfeedError) as cm:
            self.client.batch(DATASET, 0, n0)
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "BATCH_OUT_OF_RANGE"))
        with self.assertRaises(ShardfeedError) as cm:
            list(self.client.iter_indices(DATASET, 0, [0, n0 + 5]))
        self.assertEqual(cm.exception.code, "BATCH_OUT_OF_RANGE")
        with self.assertRaises(ShardfeedError) as cm:
            self.client.shard(DATASET, self.desc["numShards"])
        self.assertEqual(cm.exception.code, "SHARD_NOT_FOUND")
        with self.assertRaises(ShardfeedError) as cm:
            self.client.describe("no-such-dataset")
        self.assertEqual(cm.exception.code, "DATASET_NOT_FOUND")

    def proxy(self, fault: Callable[[int], Optional[str]]) -> FakeServer:
        """A proxy to the real server; ``fault(n)`` returns '503', 'drop' or None for the
        n-th request."""
        upstream = URL or ""
        local = threading.local()
        conns: List[http.client.HTTPConnection] = []

        def respond(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
            what = fault(n)
            if what == "503":
                send(h, 503, error_body(503, "OVERLOADED"), {"Retry-After": "0"})
                return
            if what == "drop":
                h.close_connection = True
                return
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(upstream.split("//")[1], timeout=10)
                conns.append(conn)
            conn.request("GET", h.path, headers={"Accept": h.headers.get("Accept", "*/*")})
            res = conn.getresponse()
            data = res.read()
            keep = {k: v for k, v in res.getheaders() if k.lower() in ("etag", "retry-after", "link", "x-cache")}
            send(h, res.status, data, keep, res.getheader("Content-Type") or "application/json")
        fake = FakeServer(respond)
        self.addCleanup(lambda: [c.close() for c in conns])
        self.addCleanup(fake.stop)
        return fake

    def test_a_flaky_proxy_changes_nothing(self) -> None:
        expected = self.epoch(self.client, 3, "json")
        faults = self.proxy(lambda n: "503" if n % 3 == 0 else "drop" if n % 7 == 0 else None)
        client = Client(faults.url, retries=6, backoff=0.01, max_backoff=0.05, timeout=10)
        self.addCleanup(client.close)
        got = self.epoch(client, 3, "json", workers=4, prefetch=4)
        self.assertEqual(got, expected)
        self.assertGreater(client.stats["retries"], 3)

    def test_keep_alive_one_connection_per_worker(self) -> None:
        clean = self.proxy(lambda n: None)
        client = Client(clean.url)
        self.addCleanup(client.close)
        batches = list(client.iter_batches(DATASET, 0, workers=2, prefetch=4))
        self.assertEqual(len(batches), self.desc["batchesPerShard"][0])
        # one for the shard() call on this thread, one per worker
        self.assertLessEqual(clean.connections, 3)

    def test_early_close_leaves_no_threads(self) -> None:
        before = set(threading.enumerate())
        gen = self.client.iter_batches(DATASET, 1, workers=4, prefetch=4)
        self.assertEqual(next(gen)[0], 0)
        self.assertEqual(len(worker_threads()), min(4, self.desc["batchesPerShard"][1]))
        gen.close()
        self.assertEqual(worker_threads(), [])
        for i, _ in self.client.iter_batches(DATASET, 2, workers=4):
            if i == 1:
                break  # a for loop left early: CPython closes the generator when it is freed
        deadline = time.monotonic() + 5
        while worker_threads() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(worker_threads(), [])
        self.assertEqual(non_daemon_threads(), [])
        self.assertLessEqual(set(threading.enumerate()), before | {threading.current_thread()})

    @unittest.skipUnless(HAVE_TORCH, "torch not installed: skipping the IterableDataset test")
    def test_torch_iterable_dataset(self) -> None:  # pragma: no cover - needs torch
        world = self.desc["numShards"]
        with self.assertRaisesRegex(ValueError, "world size"):
            torch_dataset.ShardfeedIterableDataset(URL, DATASET, rank=0, world_size=world + 1)
        seen: List[int] = []
        for rank in range(world):
            ds = torch_dataset.ShardfeedIterableDataset(URL, DATASET, rank=rank, world_size=world)
            ds.set_epoch(1)
            self.assertEqual(len(ds), self.desc["batchesPerShard"][rank])
            direct = [b["records"] for _, b in self.client.iter_batches(DATASET, rank, epoch=1)]
            loaded = list(DataLoader(ds, batch_size=None, num_workers=2))
            self.assertEqual(loaded, direct)  # in-order round robin over the 2 workers
            seen.extend(r["id"] for batch in loaded for r in batch)
            ds.set_epoch(1, start=1)  # resume: worker k of K reads start+k, start+k+K, ...
            self.assertEqual(list(DataLoader(ds, batch_size=None, num_workers=2)), direct[1:])
            ds.close()
        self.assertEqual(sorted(seen), list(range(self.n_records)))


if not HAVE_TORCH:
    print("torch not installed: skipping the IterableDataset test", file=sys.stderr)

if __name__ == "__main__":
    unittest.main()
