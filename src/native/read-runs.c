// readRuns: the reads of one batch's records, all in one call. A batch of 128 shuffled
// records is 128 small preads; through fs.readSync each costs ~2-3 us of binding and
// argument checks around ~0.5 us of kernel copy, which made the reads most of a build
// worker's time (src/sources/byte-ranges.ts). Here the loop runs in C.
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

// Each run is (file start, file end, buffer position), as doubles holding integers (the
// ReadPlan's layout). Returns 0, 1 when the file ended before a run did, or -errno.
static int64_t read_runs(int fd, uint8_t* buf, size_t length, const double* runs, size_t num_runs) {
  for (size_t r = 0; r < num_runs; r++) {
    double start = runs[3 * r], end = runs[3 * r + 1], at = runs[3 * r + 2];
    if (!(start >= 0 && end >= start && at >= 0 && end < 9007199254740992.0)) return -EINVAL;
    int64_t file_pos = (int64_t)start;
    int64_t file_end = (int64_t)end;
    int64_t buf_pos = (int64_t)at;
    if ((double)file_pos != start || (double)file_end != end || (double)buf_pos != at) return -EINVAL;
    if ((uint64_t)buf_pos + (uint64_t)(file_end - file_pos) > length) return -EINVAL;
    while (file_pos < file_end) {
      ssize_t got = pread(fd, buf + buf_pos, (size_t)(file_end - file_pos), (off_t)file_pos);
      if (got < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (got == 0) return 1;
      file_pos += got;
      buf_pos += got;
    }
  }
  return 0;
}

// readRuns(fd: number, buf: Uint8Array, runs: Float64Array, numRuns: number): boolean
// true when every run was read, false when the file ended first; throws on a read error.
napi_value ReadRuns(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_typedarray_type buf_type, runs_type;
  size_t buf_length = 0, runs_length = 0;
  void* buf = NULL;
  void* runs = NULL;
  int32_t fd = -1;
  int64_t num_runs = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[1], &buf_type, &buf_length, &buf, NULL, NULL) != napi_ok ||
      buf_type != napi_uint8_array ||
      napi_get_typedarray_info(env, argv[2], &runs_type, &runs_length, &runs, NULL, NULL) != napi_ok ||
      runs_type != napi_float64_array ||
      napi_get_value_int64(env, argv[3], &num_runs) != napi_ok ||
      num_runs < 0 || (uint64_t)num_runs * 3 > runs_length) {
    napi_throw_type_error(env, NULL, "readRuns(fd: number, buf: Uint8Array, runs: Float64Array, numRuns: number)");
    return NULL;
  }
  int64_t status = read_runs(fd, (uint8_t*)buf, buf_length, (const double*)runs, (size_t)num_runs);
  if (status == -EINVAL) {
    napi_throw_range_error(env, NULL, "readRuns: a run is not whole bytes within the file and the buffer");
    return NULL;
  }
  if (status < 0) {
    napi_value code, message, error;
    napi_create_string_utf8(env, strerror((int)-status), NAPI_AUTO_LENGTH, &message);
    napi_create_int32(env, (int32_t)-status, &code);
    napi_create_error(env, NULL, message, &error);
    napi_set_named_property(env, error, "errno", code);
    napi_throw(env, error);
    return NULL;
  }
  napi_value result;
  napi_get_boolean(env, status == 0, &result);
  return result;
}
