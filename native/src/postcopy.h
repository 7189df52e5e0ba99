#ifndef ROAM_POSTCOPY_H
#define ROAM_POSTCOPY_H
#include <node_api.h>

/* probeLazyRestore() -> { ok, reason? }: whether userfaultfd missing mode works here. */
napi_value roam_probe_lazy_restore(napi_env env, napi_callback_info info);

/* lazyRestore(view, missing, socketFd, ticket, onEnd): serves the guest's missing pages (postcopy.c). */
napi_value roam_lazy_restore(napi_env env, napi_callback_info info);

#endif
