#ifndef ROAM_POPULATE_H
#define ROAM_POPULATE_H
#include <node_api.h>

/* populate(view, offset, length): faults in the pages of view[offset, offset+length) for writing. */
napi_value roam_populate(napi_env env, napi_callback_info info);

#endif
