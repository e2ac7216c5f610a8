// Sets how many LevelDB table files the process may memory-map (LevelDB's default is 1000).
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

#define SET_MMAP_LIMIT "_ZN7leveldb18EnvPosixTestHelper20SetReadOnlyMMapLimitEi"

typedef void (*set_limit_fn)(int);

// setMmapLimit(bindingPath, limit): true when LevelDB's setting was found and set.
static napi_value SetMmapLimit(napi_env env, napi_callback_info info) {
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

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "setMmapLimit", NAPI_AUTO_LENGTH, SetMmapLimit, NULL, &fn);
  napi_set_named_property(env, exports, "setMmapLimit", fn);
  return exports;
}
