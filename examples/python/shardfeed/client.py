"""HTTP client for a shardfeed server (see /work/shared/API.md, "shardfeed HTTP API, version 1").

Only the standard library is needed for the ``json`` and ``ndjson`` formats; ``pyarrow`` is
imported lazily, and only when ``format='arrow'`` is asked for, so the module imports on a
bare Python.

Why ``http.client`` and not ``urllib.request``: urllib opens a new TCP connection per request,
while a trainer reads thousands of small batches; one keep-alive ``HTTPConnection`` per thread
saves a handshake per batch. ``http.client`` connections are not thread-safe, hence one per
thread (thread-local for direct calls, one owned by each ``iter_batches`` worker).
"""
from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import ssl
import threading
import time
from typing import Any, Dict, Generator, Iterable, List, Optional, Tuple
from urllib.parse import quote, urlsplit

__all__ = ["Client", "ShardfeedError", "FORMATS"]

#: format -> media type, as in the API's format table.
FORMATS: Dict[str, str] = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "arrow": "application/vnd.apache.arrow.stream",
}

# 503 is the server's "overloaded"; 502 and 504 come from a proxy in front of a server that
# is restarting, which is the same situation seen from the client.
_RETRY_STATUSES = frozenset({502, 503, 504})
# Errors that mean "the request did not get an answer", all safe to repeat because every
# request this client makes is an idempotent GET.
_CONNECTION_ERRORS: Tuple[type, ...] = (OSError, http.client.HTTPException)


class ShardfeedError(Exception):
    """An answer the caller must act on (a 4xx other than 409 DATASET_NOT_READY), or a
    retryable failure that outlasted the retry budget.

    ``status`` is the HTTP status, or ``None`` when no answer came at all (connection
    failures); ``code`` is the API's stable error code (``BATCH_OUT_OF_RANGE`` ...), or
    ``UNAVAILABLE`` for connection failures.
    """

    def __init__(self, status: Optional[int], code: str, message: str) -> None:
        super().__init__(f"{status if status is not None else 'no answer'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _Stopped(Exception):
    """Raised inside a worker when its iterator was closed; never reaches the user."""


class _Transport:
    """One keep-alive connection. Not thread-safe: each thread uses its own."""

    def __init__(self, scheme: str, host: str, port: Optional[int], timeout: float) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None
        self.served = 0  # answers read on the current socket (0: the socket is fresh)
        self.aborted = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
            self.served = 0
        return self._conn

    def request(self, path: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        conn = self._connection()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            # read() raises IncompleteRead when the body is cut short (server killed
            # mid-answer), so a truncated batch is never returned as a good one.
            body = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.close()
            else:
                self.served += 1
            return resp.status, hdrs, body
        except BaseException:
            # A connection in an unknown state cannot be reused (CannotSendRequest etc.).
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self.served = 0
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """Called from another thread to unblock a request in progress (iterator closed):
        shutting the socket down makes a blocked recv() return at once instead of after
        ``timeout`` seconds."""
        self.aborted = True
        conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from(status: int, body: bytes) -> ShardfeedError:
    code, message = f"HTTP_{status}", body[:200].decode("utf-8", "replace")
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            code = str(parsed.get("code", code))
            message = str(parsed.get("message", message))
    except ValueError:
        pass
    return ShardfeedError(status, code, message)


def _decode(fmt: str, body: bytes) -> Any:
    if fmt == "json":
        return json.loads(body)
    if fmt == "ndjson":
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    pa = _pyarrow()
    import pyarrow.ipc  # noqa: F401  (submodule)

    return pa.ipc.open_stream(body).read_all()


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("format='arrow' needs pyarrow (pip install pyarrow); "
                          "json and ndjson work without it") from exc
    return pyarrow


class Client:
    """Reads descriptors and batches, retrying what a restart or overload makes transient.

    Retried (up to ``retries`` times, exponential backoff with jitter from ``backoff`` up to
    ``max_backoff`` seconds, or exactly the server's ``Retry-After`` when it sends one):
    connection errors (refused, reset, timed out, closed mid-answer), 502/503/504, and
    409 ``DATASET_NOT_READY``. Any other error status raises :class:`ShardfeedError` at once:
    a 404 or 400 will not get better by asking again.
    """

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 30,
                 retries: int = 8, backoff: float = 0.2, max_backoff: float = 5.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._local = threading.local()
        self._lock = threading.Lock()
        self._transports: List[_Transport] = []
        #: counters for logs and tests: requests sent, retries made (all threads).
        self.stats: Dict[str, int] = {"requests": 0, "retries": 0}

    # -- plumbing -------------------------------------------------------------------------

    def _new_transport(self) -> _Transport:
        t = _Transport(self._scheme, self._host, self._port, self.timeout)
        with self._lock:
            self._transports.append(t)
        return t

    def _release(self, t: _Transport) -> None:
        t.close()
        with self._lock:
            if t in self._transports:
                self._transports.remove(t)

    def _thread_transport(self) -> _Transport:
        t = getattr(self._local, "transport", None)
        if t is None:
            t = self._local.transport = self._new_transport()
        return t

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def close(self) -> None:
        """Closes every connection this client opened."""
        with self._lock:
            transports, self._transports = self._transports, []
        for t in transports:
            t.close()
        self._local = threading.local()

    def __del__(self) -> None:
        # Connections are per thread and easy to forget (a Dataset holds its client for
        # life); closing them here keeps sockets from lingering until the process ends.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown, half-built object
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sleep(self, seconds: float, stop: Optional[threading.Event]) -> None:
        if stop is None:
            time.sleep(seconds)
        elif stop.wait(seconds):
            raise _Stopped()

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            # The server knows when it will be ready; a little jitter keeps many workers
            # told the same Retry-After from arriving in the same millisecond.
            return retry_after * random.uniform(1.0, 1.1)
        cap = min(self.max_backoff, self.backoff * (2 ** attempt))
        return random.uniform(cap / 2, cap)

    def _get(self, path: str, fmt: str = "json", transport: Optional[_Transport] = None,
             stop: Optional[threading.Event] = None) -> Any:
        """GET ``path`` with retries and returns the decoded body."""
        t = transport or self._thread_transport()
        headers = {"Accept": FORMATS[fmt], "User-Agent": "shardfeed-python/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        attempt = 0
        while True:
            if stop is not None and stop.is_set():
                raise _Stopped()
            reused = t.served > 0
            self._count("requests")
            try:
                status, hdrs, body = t.request(self._prefix + path, headers)
            except _CONNECTION_ERRORS as exc:
                if stop is not None and stop.is_set():
                    raise _Stopped() from exc
                if isinstance(exc, ssl.SSLCertVerificationError):
                    raise  # a bad certificate stays bad
                if reused and isinstance(exc, (ConnectionError, http.client.RemoteDisconnected)):
                    # The server closed an idle keep-alive socket: not a failure, just
                    # reconnect at once (the budget is for real outages).
                    continue
                if attempt >= self.retries:
                    raise ShardfeedError(None, "UNAVAILABLE", f"GET {path}: {exc!r} "
                                         f"(after {attempt} retries)") from exc
                self._count("retries")
                self._sleep(self._delay(attempt, None), stop)
                attempt += 1
                continue
            if 200 <= status < 300:
                return _decode(fmt, body)
            err = _error_from(status, body)
            retryable = status in _RETRY_STATUSES or (status == 409 and err.code == "DATASET_NOT_READY")
            if not retryable or attempt >= self.retries:
                raise err
            self._count("retries")
            self._sleep(self._delay(attempt, _retry_after(hdrs.get("retry-after"))), stop)
            attempt += 1

    def _batch_path(self, name: str, rank: int, i: int, epoch: int, fmt: str) -> str:
        return (f"/datasets/{quote(name, safe='')}/shards/{int(rank)}/batches/{int(i)}"
                f"?epoch={int(epoch)}&format={fmt}")

    @staticmethod
    def _check_format(fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
        if fmt == "arrow":
            _pyarrow()  # fail before any request, with the install hint

    # -- API ------------------------------------------------------------------------------

    def describe(self, name: str) -> Dict[str, Any]:
        """The dataset's descriptor (``status``, ``numShards``, ``batchesPerShard`` ...)."""
        return self._get(f"/datasets/{quote(name, safe='')}")

    def wait_ready(self, name: str, timeout: float = 600, poll: float = 0.5) -> Dict[str, Any]:
        """Polls the descriptor until the dataset is no longer indexing; raises
        :class:`ShardfeedError` if indexing failed, TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.describe(name)
            if d.get("status") == "ready":
                return d
            if d.get("status") == "failed":
                raise ShardfeedError(None, "DATASET_FAILED", str(d.get("error", "indexing failed")))
            if time.monotonic() > deadline:
                raise TimeoutError(f"dataset {name!r} still {d.get('status')} after {timeout} s")
            time.sleep(poll)

    def shard(self, name: str, rank: int) -> Dict[str, Any]:
        """``{"rank", "numBatches", "numRecords"}`` of one rank."""
        return self._get(f"/datasets/{quote(name, safe='')}/shards/{int(rank)}")

    def batch(self, name: str, rank: int, i: int, epoch: int = 0, format: str = "json") -> Any:
        """Batch ``i`` of ``rank`` in ``epoch``: the body dict (json), a list of
        ``{"index", "record"}`` (ndjson), or a ``pyarrow.Table`` (arrow)."""
        self._check_format(format)
        return self._get(self._batch_path(name, rank, i, epoch, format), format)

    def iter_batches(self, name: str, rank: int, epoch: int = 0, start: int = 0,
                     format: str = "json", workers: int = 4,
                     prefetch: int = 8) -> Generator[Tuple[int, Any], None, None]:
        """Yields ``(i, batch)`` for ``i = start .. numBatches-1`` of ``rank``, in order.

        Resume after a crash by passing the epoch and the first index not yet consumed as
        ``start``. See :meth:`iter_indices` for the threading and shutdown behaviour.
        """
        if start < 0:
            raise ValueError("start must be >= 0")
        self._check_format(format)
        n = int(self.shard(name, rank)["numBatches"])
        return self.iter_indices(name, rank, range(start, n), epoch=epoch, format=format,
                                 workers=workers, prefetch=prefetch)

    def iter_indices(self, name: str, rank: int, indices: Iterable[int], epoch: int = 0,
                     format: str = "json", workers: int = 4,
                     prefetch: int = 8) -> Generator[Tuple[int, Any], None, None]:
        """Yields ``(i, batch)`` for the given batch indices, in the order given.

        ``workers`` threads fetch ahead, each on its own keep-alive connection; at most
        ``prefetch`` batches are fetched but not yet consumed (bounded memory). Every index
        is yielded exactly once: retries repeat a GET, never a yield, and answers are
        reordered by index. An error that is not retryable (or outlasts the retries) is
        raised when the consumer reaches that index, so the batches before it are still
        delivered. Closing the generator (``break`` in a for loop, ``close()``, garbage
        collection) stops and joins the threads, aborting requests in flight.
        """
        if workers < 1 or prefetch < 1:
            raise ValueError("workers and prefetch must be >= 1")
        self._check_format(format)
        return self._iterate(name, rank, list(indices), epoch, format, workers, prefetch)

    def _iterate(self, name: str, rank: int, indices: List[int], epoch: int, fmt: str,
                 workers: int, prefetch: int) -> Generator[Tuple[int, Any], None, None]:
        # Generator body: nothing (no thread) starts before the first next().
        if not indices:
            return
        stop = threading.Event()
        cond = threading.Condition()
        permits = threading.Semaphore(prefetch)  # one per claimed-but-unconsumed batch
        results: Dict[int, Tuple[bool, Any]] = {}  # position -> (ok, batch or exception)
        # next: the next position to claim; end: claims stop there (moved down to just past
        # a failed position, so the batches before it still arrive and the error is raised
        # in order).
        claim = {"next": 0, "end": len(indices)}
        transports = [self._new_transport() for _ in range(min(workers, len(indices)))]

        def work(t: _Transport) -> None:
            while not stop.is_set():
                if not permits.acquire(timeout=0.1):
                    continue
                with cond:
                    pos = claim["next"]
                    if pos >= claim["end"] or stop.is_set():
                        permits.release()
                        return
                    claim["next"] = pos + 1
                try:
                    i = indices[pos]
                    item: Tuple[bool, Any] = (True, self._get(self._batch_path(name, rank, i, epoch, fmt), fmt, t, stop))
                except _Stopped:
                    return
                except BaseException as exc:  # delivered in order to the consumer
                    item = (False, exc)
                with cond:
                    results[pos] = item
                    if not item[0]:
                        claim["end"] = min(claim["end"], pos + 1)
                    cond.notify_all()

        threads = [threading.Thread(target=work, args=(t,), daemon=True,
                                    name=f"shardfeed-worker-{k}") for k, t in enumerate(transports)]
        for th in threads:
            th.start()
        try:
            for pos, i in enumerate(indices):
                with cond:
                    while pos not in results:
                        if not any(th.is_alive() for th in threads):
                            raise RuntimeError(f"shardfeed workers exited before batch {i}")
                        cond.wait(0.5)
                    ok, value = results.pop(pos)
                if not ok:
                    raise value
                permits.release()
                yield i, value
        finally:
            stop.set()
            for t in transports:
                t.abort()
            for th in threads:
                th.join(timeout=self.timeout + 1)
            for t in transports:
                self._release(t)


def records_of(fmt: str, batch: Any) -> Any:
    """The records of a decoded batch: the ``records`` list (json), the ``record`` of every
    line (ndjson), or the table itself (arrow)."""
    if fmt == "json":
        return batch["records"]
    if fmt == "ndjson":
        return [line["record"] for line in batch]
    return batch

