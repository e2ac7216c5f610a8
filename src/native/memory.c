// Controls over the server's resident memory that JavaScript cannot reach: LevelDB's mmap limit,
// malloc_trim and detaching a buffer (each described where it is defined).
//
// setMmapLimit: how many LevelDB table files the process may memory-map (LevelDB's default
// is 1000).
//
// LevelDB reads table files through mmap on 64-bit systems. Every page a read touches then
// counts in the process's resident memory for as long as the table stays open, so a disk tier
// of gigabytes shows up as gigabytes of RSS. With the limit at 0 LevelDB reads tables with
// pread: the same bytes come from the page cache, where the kernel accounts and reclaims them.
//
// The limit is LevelDB's own setting (EnvPosixTestHelper::SetReadOnlyMMapLimit), exported by
// the classic-level binding but not offered by its JavaScript API. It takes effect only if set
// before the process opens its first database.
#include <dlfcn.h>
#include <node_api.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define SET_MMAP_LIMIT "_ZN7leveldb18EnvPosixTestHelper20SetReadOnlyMMapLimitEi"

typedef void (*set_limit_fn)(int);

// setMmapLimit(bindingPath, limit): true when LevelDB's setting was found and set.
napi_value SetMmapLimit(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result;
  char path[4096];
  size_t len = 0;
  int32_t limit = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok ||
      len >= sizeof(path) - 1 ||
      napi_get_value_int32(env, argv[1], &limit) != napi_ok) {
    napi_throw_type_error(env, NULL, "setMmapLimit(bindingPath: string, limit: number)");
    return NULL;
  }
  // The binding is normally loaded already; dlopen then only returns its handle.
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  set_limit_fn set_limit = handle != NULL ? (set_limit_fn)dlsym(handle, SET_MMAP_LIMIT) : NULL;
  if (set_limit != NULL) set_limit(limit);
  napi_get_boolean(env, set_limit != NULL, &result);
  return result;
}

// mallocTrim(): gives free memory inside glibc's heaps back to the kernel; true if any was.
//
// Batch bodies are freed in the middle of malloc's heaps (the main one and the arena of the
// worker and LevelDB threads), and glibc returns only the free space at a heap's top, so
// freed bodies would stay resident as holes. malloc_trim(0) releases whole free pages
// anywhere in every arena (madvise). Elsewhere than glibc it does nothing.
napi_value MallocTrim(napi_env env, napi_callback_info info) {
  napi_value result;
  (void)info;
#ifdef __GLIBC__
  napi_get_boolean(env, malloc_trim(0) != 0, &result);
#else
  napi_get_boolean(env, false, &result);
#endif
  return result;
}

// detachBuffer(arrayBuffer): detaches it, which frees its memory now (when nothing else holds
// its backing store) instead of at a later garbage collection; true when it was detached.
// Every view of it then reads as empty. src/cache/body-release.ts says when that is safe.
napi_value DetachBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  bool is_ab = false;
  bool detached = false;
  bool ok = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && napi_is_arraybuffer(env, argv[0], &is_ab) == napi_ok && is_ab &&
      napi_is_detached_arraybuffer(env, argv[0], &detached) == napi_ok && !detached) {
    ok = napi_detach_arraybuffer(env, argv[0]) == napi_ok;
  }
  if (!ok) {
    // A buffer V8 marks as not detachable is refused with an exception: it simply stays.
    bool pending = false;
    napi_value ignored;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &ignored);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

// adjustExternalMemory(change): adds `change` (negative to subtract) to the external memory V8
// counts toward starting a major collection; returns the new total. V8 counts every
// ArrayBuffer's memory there and starts a collection whenever the total grows by ~64 MiB,
// on the guess that collecting frees some; the memory tier subtracts what it holds, which no
// collection can free while it holds it (memory-tier.ts).
napi_value AdjustExternal(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t change = 0;
  int64_t total = 0;
  napi_value result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) napi_get_value_int64(env, argv[0], &change);
  napi_adjust_external_memory(env, change, &total);
  napi_create_int64(env, total, &result);
  return result;
}
