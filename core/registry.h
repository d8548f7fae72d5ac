/* Lookup of compiled-in backends by name (core/registry.c). */
#ifndef RK_CORE_REGISTRY_H
#define RK_CORE_REGISTRY_H
#include "backend.h"

const rk_backend_iface *rk_backend_find(const char *name);
/* 1 if name is one of the backends this library knows, built or not. */
int rk_backend_is_known(const char *name);

#endif
