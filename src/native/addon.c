// The addon's entry point: every function the C files here offer, on one exports object, from
// one table. Context-aware (NAPI_MODULE_INIT), so the indexing and build threads load it too.
#include <node_api.h>

napi_value SetMmapLimit(napi_env env, napi_callback_info info);
napi_value MallocTrim(napi_env env, napi_callback_info info);
napi_value DetachBuffer(napi_env env, napi_callback_info info);
napi_value AdjustExternal(napi_env env, napi_callback_info info);
napi_value SkipNumberRun(napi_env env, napi_callback_info info);
napi_value ReadRuns(napi_env env, napi_callback_info info);
napi_value HashFileBlocks(napi_env env, napi_callback_info info);

// Writable, enumerable and configurable, like a property set by assignment.
#define METHOD(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_writable | napi_enumerable | napi_configurable, NULL }

NAPI_MODULE_INIT() {
  const napi_property_descriptor methods[] = {
    METHOD("setMmapLimit", SetMmapLimit),
    METHOD("mallocTrim", MallocTrim),
    METHOD("detachBuffer", DetachBuffer),
    METHOD("adjustExternalMemory", AdjustExternal),
    METHOD("skipNumberRun", SkipNumberRun),
    METHOD("readRuns", ReadRuns),
    METHOD("hashFileBlocks", HashFileBlocks)
  };
  if (napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods) != napi_ok) {
    napi_throw_error(env, NULL, "shardfeed's native addon failed to initialise");
    return NULL;
  }
  return exports;
}
