/* Minimal test harness: CHECK records a failure and goes on; rk_test_done prints the summary
 * line ctest logs and returns the exit code. */
#ifndef RK_TEST_H
#define RK_TEST_H
#include <math.h>
#include <stdio.h>

static int rk_test_passed, rk_test_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            rk_test_passed++;                                                   \
        } else {                                                                \
            rk_test_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

/* A call must return the given status and leave a message naming it on the context. */
#define CHECK_STATUS(call, want, ctx)                                           \
    do {                                                                        \
        rk_status got_ = (call);                                                \
        CHECK(got_ == (want), "%s returned %s, expected %s (%s)", #call,        \
              rk_status_name(got_), rk_status_name(want),                       \
              (ctx) ? rk_context_last_error(ctx) : "");                         \
    } while (0)

static inline int rk_test_done(const char *name) {
    printf("%s: %d passed, %d failed\n", name, rk_test_passed, rk_test_failed);
    return rk_test_failed ? 1 : 0;
}
#endif
