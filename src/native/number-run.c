// skipNumberRun: the syntax check of a feature vector's numbers, the hot loop of indexing a
// JSONL file of vectors (src/codecs/number-run.ts has the JavaScript twin, and why). The same
// loop as there, without a bounds-checked typed-array load per byte, and on x86-64 a check of
// 64 bytes at a time in front of it (skip_proven_blocks).
#include <node_api.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

#if defined(__SSE2__)
// Blocks of 64 bytes at a time, for the long runs of feature vectors. The byte loop above
// branches at every number's end and runs at ~1.6 ns a byte; this classifies 64 bytes into
// bit masks (one bit a byte) and checks the grammar on the masks:
// - every byte is a digit, one of `-+.eE,` or a space;
// - each byte may follow the one before it (a `-` only starts a number or follows an `e`,
//   a `.` or `e` or `,` follows a digit, a space follows a `,` or a space, and so on), and
//   a number's leading zero is not followed by a digit;
// - within a number (between separators) there is at most one `.` and one `e`, and no `.`
//   after the `e`: adding the marks of the `.`s to the mask of the number bytes carries each
//   through to the number's end, so a second mark in that stretch stays set in the sum.
// Anything else (tabs, a space before a comma, the run's end, a malformed number) stops the
// blocks. They prove only what the byte loop would also accept, so the byte loop then goes on
// from the start of the last number a proven block began, and has the last word on where the
// run ends or why it is malformed.

typedef struct { uint64_t d, z, m, p, t, e, c, s; } byte_classes;

static inline uint64_t bits16(__m128i v, int shift) {
  return (uint64_t)(uint16_t)_mm_movemask_epi8(v) << shift;
}

static inline void classify(const uint8_t* b, byte_classes* k) {
  const __m128i zero = _mm_set1_epi8('0');
  const __m128i nine = _mm_set1_epi8(9);
  k->d = k->z = k->m = k->p = k->t = k->e = k->c = k->s = 0;
  for (int i = 0; i < 4; i++) {
    __m128i x = _mm_loadu_si128((const __m128i*)(b + 16 * i));
    __m128i off = _mm_sub_epi8(x, zero);
    int sh = 16 * i;
    k->d |= bits16(_mm_cmpeq_epi8(_mm_min_epu8(off, nine), off), sh);
    k->z |= bits16(_mm_cmpeq_epi8(x, zero), sh);
    k->m |= bits16(_mm_cmpeq_epi8(x, _mm_set1_epi8('-')), sh);
    k->p |= bits16(_mm_cmpeq_epi8(x, _mm_set1_epi8('+')), sh);
    k->t |= bits16(_mm_cmpeq_epi8(x, _mm_set1_epi8('.')), sh);
    k->e |= bits16(_mm_cmpeq_epi8(_mm_or_si128(x, _mm_set1_epi8(0x20)), _mm_set1_epi8('e')), sh);
    k->c |= bits16(_mm_cmpeq_epi8(x, _mm_set1_epi8(',')), sh);
    k->s |= bits16(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')), sh);
  }
}

// a + b + carry_in, with the carry out of bit 63 in *carry_out.
static inline uint64_t add_carry(uint64_t a, uint64_t b, uint64_t carry_in, uint64_t* carry_out) {
  uint64_t sum;
  int c1 = __builtin_add_overflow(a, b, &sum);
  int c2 = __builtin_add_overflow(sum, carry_in, &sum);
  *carry_out = (uint64_t)(c1 | c2);
  return sum;
}

// From p, the first byte of a number: where the byte loop must go on, the first byte of a
// number (p itself when no block could be proven).
static int64_t skip_proven_blocks(const uint8_t* b, int64_t p, int64_t end) {
  int64_t resume = p;
  // The classes of the byte before the block (bit 0 of the shifted masks). The run starts as
  // if after a comma.
  uint64_t pd = 0, pe = 0, pc = 1, ps = 0, p_zero = 0, p_sign = 0;
  uint64_t carry_t = 0, carry_e = 0;
  while (end - p >= 64) {
    byte_classes k;
    classify(b + p, &k);
    uint64_t sep = k.c | k.s;
    if ((k.d | k.m | k.p | k.t | k.e | sep) != ~(uint64_t)0) break;
    // Whether each byte's predecessor is a digit, an `e`, a separator. What may follow a byte
    // is implied: after a `-`, `+` or `.` only a digit has a predecessor it allows, and so on.
    uint64_t bd = (k.d << 1) | pd, be = (k.e << 1) | pe, bsep = (k.c << 1) | pc | (k.s << 1) | ps;
    uint64_t bad = (k.m & ~(bsep | be)) | (k.p & ~be) | ((k.t | k.e | k.c) & ~bd) | (k.s & ~bsep);
    // A number's own sign, and a zero that starts its integer part.
    uint64_t sign = k.m & bsep;
    uint64_t lead_zero = k.z & (bsep | (sign << 1) | p_sign);
    bad |= k.d & ((lead_zero << 1) | p_zero);
    uint64_t in_number = ~sep, carry_t_out, carry_e_out;
    uint64_t dots = add_carry(in_number, k.t, carry_t, &carry_t_out);
    uint64_t exps = add_carry(in_number, k.e, carry_e, &carry_e_out);
    bad |= (dots & k.t) | (exps & k.e) | (k.t & (exps ^ in_number));
    if (bad != 0) break;
    uint64_t starts = (k.d | k.m) & bsep;
    if (starts != 0) resume = p + 63 - __builtin_clzll(starts);
    pd = k.d >> 63;
    pe = k.e >> 63;
    pc = k.c >> 63;
    ps = k.s >> 63;
    p_zero = lead_zero >> 63;
    p_sign = sign >> 63;
    carry_t = carry_t_out;
    carry_e = carry_e_out;
    p += 64;
  }
  return resume;
}
#endif

// A number at p, then as long as a comma (blanks around it allowed) is followed by another
// number, that one too: the end of the last number, or -1 if one is malformed.
static int64_t skip_number_run(const uint8_t* b, int64_t p, int64_t end) {
#if defined(__SSE2__)
  if (end - p >= 128 && (b[p] == '-' || is_digit(b[p]))) p = skip_proven_blocks(b, p, end);
#endif
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
napi_value SkipNumberRun(napi_env env, napi_callback_info info) {
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
