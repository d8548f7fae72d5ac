/* Reference outputs of a case, computed by the library: the double-precision reference
 * (core/reference.h) and the exact solver through the public rotation API on the CPU backend. */
#ifndef RK_VECGEN_REFS_H
#define RK_VECGEN_REFS_H

#include "tc_case.h"

/* Fills every ref_* array of c from its inputs. 0 on success; a message in err otherwise. */
int vg_refs_compute(tc_case *c, char *err, size_t err_len);

#endif
