/* A downstream program: built against the installed header and library only. */
#include <rotatek.h>
#include <stdio.h>

int main(void) {
    if (rk_version() != RK_VERSION_NUMBER) {
        fprintf(stderr, "header %d vs library %u\n", RK_VERSION_NUMBER, rk_version());
        return 1;
    }
    rk_context *ctx = NULL;
    rk_status st = rk_context_create("cpu", 0, NULL, &ctx);
    printf("rotatek %s, %zu backends, cpu context: %s\n", rk_version_string(), rk_backend_count(),
           rk_status_name(st));
    rk_context_destroy(ctx);
    return st == RK_OK ? 0 : 1;
}
