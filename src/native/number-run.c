// skipNumberRun: the syntax check of a feature vector's numbers, the hot loop of indexing a
// JSONL file of vectors (src/codecs/number-run.ts has the JavaScript twin, and why). The same
// loop as there, without a bounds-checked typed-array load per byte.
#include <node_api.h>
#include <stdint.h>

static inline int is_digit(uint8_t c) { return (uint8_t)(c - '0') <= 9; }
static inline int is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at p, within [p, end): its end, or -1.
static int64_t skip_number(const uint8_t* b, int64_t p, int64_t end) {
  if (p < end && b[p] == '-') p++;
  if (p >= end) return -1;
  if (b[p] == '0') {
    p++;
  } else if (b[p] >= '1' && b[p] <= '9') {
    p++;
    while (p < end && is_digit(b[p])) p++;
  } else {
    return -1;
  }
  if (p < end && b[p] == '.') {
    p++;
    if (p >= end || !is_digit(b[p])) return -1;
    while (p < end && is_digit(b[p])) p++;
  }
  if (p < end && (b[p] | 0x20) == 'e') {
    p++;
    if (p < end && (b[p] == '+' || b[p] == '-')) p++;
    if (p >= end || !is_digit(b[p])) return -1;
    while (p < end && is_digit(b[p])) p++;
  }
  return p;
}

// A number at p, then as long as a comma (blanks around it allowed) is followed by another
// number, that one too: the end of the last number, or -1 if one is malformed.
static int64_t skip_number_run(const uint8_t* b, int64_t p, int64_t end) {
  p = skip_number(b, p, end);
  while (p >= 0) {
    int64_t q = p;
    while (q < end && is_blank(b[q])) q++;
    if (q >= end || b[q] != ',') break;
    q++;
    while (q < end && is_blank(b[q])) q++;
    if (q >= end || !(b[q] == '-' || is_digit(b[q]))) break;
    p = skip_number(b, q, end);
  }
  return p;
}

// skipNumberRun(bytes: Uint8Array, p: number, end: number): number
static napi_value SkipNumberRun(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_value result;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = NULL;
  int64_t p = 0;
  int64_t end = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array ||
      napi_get_value_int64(env, argv[1], &p) != napi_ok ||
      napi_get_value_int64(env, argv[2], &end) != napi_ok ||
      p < 0 || end < p || (uint64_t)end > length) {
    napi_throw_type_error(env, NULL, "skipNumberRun(bytes: Uint8Array, p: number, end: number)");
    return NULL;
  }
  napi_create_int64(env, skip_number_run((const uint8_t*)data, p, end), &result);
  return result;
}

napi_status register_number_run(napi_env env, napi_value exports) {
  napi_value fn;
  napi_status status = napi_create_function(env, "skipNumberRun", NAPI_AUTO_LENGTH, SkipNumberRun, NULL, &fn);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, "skipNumberRun", fn);
}
