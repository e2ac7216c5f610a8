// When a JSONL pass takes a second thread (jsonl.ts), in a module of its own: the indexing
// threads' owner (index-worker.ts) decides before the pass whether to start one, and must not
// load the whole JSONL reader into the server's thread to learn it (~10 ms of a first
// registration, and memory kept for nothing).

// Below this size a worker costs more than it saves: it takes 50-110 ms to start, on a core
// the pass needs, and one thread runs the pass at ~500-600 MiB/s. Measured through the server
// (indexing thread ready): the bench's 69 MiB file in ~135 ms of pass on one thread and ~165
// with the worker; 206 MiB in 368-382 ms of registration on one thread, 342-347 ms on two.
export const CHUNK_WORKER_MIN_BYTES = 128 << 20
