// hashFileBlocks: the SHA-256 of each 4 MiB block of a file (source-digest.ts), computed on
// libuv's thread pool while the JavaScript thread that indexes the file validates it. Hashing
// was a third of a JSONL indexing pass (~50 ms per 69 MiB); read here a second time from the
// page cache, the file costs the pool thread a copy, and the pass no longer waits for SHA-256.
// OpenSSL is Node's own (its symbols are exported to addons), so it uses the CPU's SHA
// instructions as node:crypto does.
#include <node_api.h>
#include <openssl/evp.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASH_BYTES 32

// Jobs running in the process, across its threads (the addon's statics are shared by every
// thread that loads it). One at a time: libuv's pool (4 threads) also serves the disk tier's
// reads, which must not queue behind several registrations' hashing, and on a small machine
// a second job would only share the cores. Callers hash on their own thread meanwhile.
#define MAX_RUNNING 1
static int running = 0;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref stop_ref;
  const int32_t* stop;  // non-zero: the caller gave up; stop at the next block
  int fd;
  size_t block_bytes;
  uint8_t* hashes;      // HASH_BYTES per block, grown as the file turns out longer
  size_t num_blocks;
  size_t capacity;
  int64_t bytes;
  int error;            // errno of a failed read or allocation, or ECANCELED
  int counted;          // still counted in `running` (until execute ends, or complete if it never ran)
} hash_job;

static void uncount(hash_job* job) {
  if (job->counted) {
    job->counted = 0;
    __atomic_fetch_sub(&running, 1, __ATOMIC_RELEASE);
  }
}

// Reads `length` bytes (fewer at the end of the file) at `at`; returns the bytes read or -errno.
static int64_t read_block(int fd, uint8_t* buf, size_t length, int64_t at) {
  size_t done = 0;
  while (done < length) {
    ssize_t got = pread(fd, buf + done, length - done, (off_t)(at + (int64_t)done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (got == 0) break;
    done += (size_t)got;
  }
  return (int64_t)done;
}

// Bytes read at a time: small enough to stay in the core's cache between pread's copy and the
// hash that reads it, and to be unmapped as soon as the job ends (malloc maps it on its own).
#define READ_BYTES (256 << 10)

// Appends the next block's hash slot; false when out of memory.
static int grow(hash_job* job) {
  if (job->num_blocks < job->capacity) return 1;
  size_t capacity = job->capacity == 0 ? 64 : job->capacity * 2;
  uint8_t* grown = realloc(job->hashes, capacity * HASH_BYTES);
  if (grown == NULL) return 0;
  job->hashes = grown;
  job->capacity = capacity;
  return 1;
}

static void execute(napi_env env, void* data) {
  (void)env;
  hash_job* job = (hash_job*)data;
  uint8_t* buf = malloc(READ_BYTES);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  int ended = 0;
  if (buf == NULL || ctx == NULL) job->error = ENOMEM;
  // One block per turn: its bytes in reads of READ_BYTES, then its hash.
  while (job->error == 0 && !ended) {
    if (__atomic_load_n(job->stop, __ATOMIC_RELAXED) != 0) {
      job->error = ECANCELED;
      break;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
      job->error = EIO;
      break;
    }
    size_t in_block = 0;
    while (in_block < job->block_bytes) {
      size_t want = job->block_bytes - in_block < READ_BYTES ? job->block_bytes - in_block : READ_BYTES;
      int64_t got = read_block(job->fd, buf, want, job->bytes + (int64_t)in_block);
      if (got < 0) {
        job->error = (int)-got;
        break;
      }
      if (got > 0 && EVP_DigestUpdate(ctx, buf, (size_t)got) != 1) {
        job->error = EIO;
        break;
      }
      in_block += (size_t)got;
      // A short read is the end of the file (read_block stops only there).
      if ((size_t)got < want) {
        ended = 1;
        break;
      }
    }
    if (job->error != 0 || in_block == 0) break;
    if (!grow(job)) {
      job->error = ENOMEM;
      break;
    }
    if (EVP_DigestFinal_ex(ctx, job->hashes + job->num_blocks * HASH_BYTES, NULL) != 1) {
      job->error = EIO;
      break;
    }
    job->num_blocks++;
    job->bytes += (int64_t)in_block;
  }
  EVP_MD_CTX_free(ctx);
  free(buf);
  uncount(job);
}

static void complete(napi_env env, napi_status status, void* data) {
  hash_job* job = (hash_job*)data;
  uncount(job);  // when the job was cancelled before it ran
  napi_value result;
  if (status == napi_ok && job->error == 0) {
    napi_value hashes, bytes;
    void* copy = NULL;
    napi_create_buffer_copy(env, job->num_blocks * HASH_BYTES, job->num_blocks > 0 ? job->hashes : (const void*)"", &copy, &hashes);
    napi_create_double(env, (double)job->bytes, &bytes);
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "hashes", hashes);
    napi_set_named_property(env, result, "bytes", bytes);
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    int err = status == napi_cancelled ? ECANCELED : job->error;
    napi_value message, code;
    napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &message);
    napi_create_int32(env, err, &code);
    napi_create_error(env, NULL, message, &result);
    napi_set_named_property(env, result, "errno", code);
    napi_reject_deferred(env, job->deferred, result);
  }
  napi_delete_reference(env, job->stop_ref);
  napi_delete_async_work(env, job->work);
  free(job->hashes);
  free(job);
}

// hashFileBlocks(fd: number, blockBytes: number, stop: Int32Array): Promise<{ hashes: Buffer, bytes: number }> | null
// Hashes the file from offset 0 to its end, block by block; null when another job runs. The
// caller keeps `fd` open until the promise settles; setting stop[0] to non-zero makes it
// reject (errno ECANCELED) soon.
napi_value HashFileBlocks(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  int64_t block_bytes = 0;
  napi_typedarray_type stop_type;
  size_t stop_length = 0;
  void* stop = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_value_int64(env, argv[1], &block_bytes) != napi_ok || block_bytes <= 0 || block_bytes > (1 << 30) ||
      napi_get_typedarray_info(env, argv[2], &stop_type, &stop_length, &stop, NULL, NULL) != napi_ok ||
      stop_type != napi_int32_array || stop_length < 1) {
    napi_throw_type_error(env, NULL, "hashFileBlocks(fd: number, blockBytes: number, stop: Int32Array)");
    return NULL;
  }
  if (__atomic_fetch_add(&running, 1, __ATOMIC_ACQUIRE) >= MAX_RUNNING) {
    __atomic_fetch_sub(&running, 1, __ATOMIC_RELEASE);
    napi_value none;
    napi_get_null(env, &none);
    return none;
  }
  hash_job* job = calloc(1, sizeof *job);
  if (job == NULL) {
    __atomic_fetch_sub(&running, 1, __ATOMIC_RELEASE);
    napi_throw_error(env, NULL, "hashFileBlocks: out of memory");
    return NULL;
  }
  job->counted = 1;
  job->fd = fd;
  job->block_bytes = (size_t)block_bytes;
  job->stop = (const int32_t*)stop;
  napi_value promise, name;
  // The reference keeps the stop flag's memory alive while the pool thread reads it.
  if (napi_create_reference(env, argv[2], 1, &job->stop_ref) != napi_ok ||
      napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "shardfeed.hashFileBlocks", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    // Nothing was queued: the promise, if made, is left unresolved and unreachable.
    if (job->work != NULL) napi_delete_async_work(env, job->work);
    if (job->stop_ref != NULL) napi_delete_reference(env, job->stop_ref);
    uncount(job);
    free(job);
    napi_throw_error(env, NULL, "hashFileBlocks: could not start");
    return NULL;
  }
  return promise;
}
