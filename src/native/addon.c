// The addon's entry point: what each file of it offers, on one exports object. Context-aware
// (NAPI_MODULE_INIT), so the indexing worker threads load it too.
#include <node_api.h>

napi_status register_memory(napi_env env, napi_value exports);
napi_status register_number_run(napi_env env, napi_value exports);
napi_status register_read_runs(napi_env env, napi_value exports);

NAPI_MODULE_INIT() {
  if (register_memory(env, exports) != napi_ok || register_number_run(env, exports) != napi_ok ||
      register_read_runs(env, exports) != napi_ok) {
    napi_throw_error(env, NULL, "shardfeed's native addon failed to initialise");
    return NULL;
  }
  return exports;
}
