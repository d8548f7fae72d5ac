/* rk-conformance: every op of every backend compiled in (and present) on every shared test
 * vector case and storage dtype, compared with the stored double-precision references.
 * A backend without a device is SKIPPED (never passed); RK_ERR_UNSUPPORTED is reported as
 * UNSUPPORTED. Exit status: 1 on any failure, 0 otherwise (or --skip-code when nothing ran). */
#define _POSIX_C_SOURCE 200809L
#include "conf_ops.h"
#include "conf_report.h"
#include "tc_case.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef RK_CONF_VECTORS_DIR
#define RK_CONF_VECTORS_DIR "tests/vectors/cases"
#endif

typedef struct conf_options {
    const char *backend, *vectors, *only_case, *only_dtype;
    int json, skip_code;
} conf_options;

static int conf_cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Case directories under root (those holding a manifest.json), sorted by name. */
static int conf_list_cases(const char *root, char ***names, int *count) {
    DIR *dir = opendir(root);
    if (!dir) return 1;
    struct dirent *e;
    int n = 0, cap = 16;
    char **list = malloc(sizeof(char *) * (size_t)cap);
    while (list && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[2048];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s/manifest.json", root, e->d_name);
        if (stat(path, &sb) != 0) continue;
        if (n == cap) {
            char **grown = realloc(list, sizeof(char *) * (size_t)(cap *= 2));
            if (!grown) break;
            list = grown;
        }
        list[n++] = strdup(e->d_name);
    }
    closedir(dir);
    if (!list) return 1;
    qsort(list, (size_t)n, sizeof(char *), conf_cmp_names);
    *names = list;
    *count = n;
    return 0;
}

static void conf_skip_row(conf_report *rep, const char *backend, conf_outcome o, const char *fmt,
                          const char *a, const char *b) {
    conf_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.backend, sizeof r.backend, "%s", backend);
    snprintf(r.case_name, sizeof r.case_name, "*");
    snprintf(r.dtype, sizeof r.dtype, "*");
    snprintf(r.op, sizeof r.op, "*");
    snprintf(r.metric, sizeof r.metric, "-");
    r.value = NAN;
    r.outcome = o;
    snprintf(r.note, sizeof r.note, fmt, a, b);
    conf_report_add(rep, &r);
}

static void conf_run_backend(conf_report *rep, const char *name, const tc_case *cases, int n_cases,
                             const conf_options *opt) {
    size_t devices = 0;
    rk_status st = rk_device_count(name, &devices);
    if (st == RK_ERR_INVALID_ARG) { /* a name no RotateK build knows: a usage error */
        conf_skip_row(rep, name, CONF_FAIL, "unknown backend: %s (%s)", rk_status_name(st), rk_status_string(st));
        return;
    }
    if (st != RK_OK || devices == 0) {
        conf_skip_row(rep, name, CONF_SKIP, "not available: %s (%s)", rk_status_name(st), rk_status_string(st));
        return;
    }
    rk_context *ctx = NULL;
    st = rk_context_create(name, 0, NULL, &ctx);
    if (st != RK_OK) {
        conf_skip_row(rep, name, st == RK_ERR_BACKEND_UNAVAILABLE ? CONF_SKIP : CONF_FAIL,
                      "rk_context_create: %s (%s)", rk_status_name(st), rk_status_string(st));
        return;
    }
    static const rk_dtype dtypes[] = {RK_F32, RK_F16, RK_BF16};
    for (int k = 0; k < n_cases; k++)
        for (int i = 0; i < 3; i++) {
            if (opt->only_dtype && strcmp(opt->only_dtype, rk_dtype_name(dtypes[i])) != 0) continue;
            conf_run_case(rep, ctx, name, &cases[k], dtypes[i]);
        }
    rk_context_destroy(ctx);
}

static void conf_usage(void) {
    fprintf(stderr,
            "usage: rk-conformance [--backend NAME] [--vectors DIR] [--case NAME] [--dtype f32|f16|bf16]\n"
            "                      [--json] [--skip-code N]\n"
            "  --backend NAME  only this backend (default: every backend compiled in)\n"
            "  --vectors DIR   test vector cases (default %s)\n"
            "  --json          machine-readable results on stdout instead of the table\n"
            "  --skip-code N   exit status when nothing ran because no backend had a device (default 0)\n",
            RK_CONF_VECTORS_DIR);
}

int main(int argc, char **argv) {
    conf_options opt = {NULL, RK_CONF_VECTORS_DIR, NULL, NULL, 0, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) opt.backend = argv[++i];
        else if (strcmp(argv[i], "--vectors") == 0 && i + 1 < argc) opt.vectors = argv[++i];
        else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) opt.only_case = argv[++i];
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) opt.only_dtype = argv[++i];
        else if (strcmp(argv[i], "--json") == 0) opt.json = 1;
        else if (strcmp(argv[i], "--skip-code") == 0 && i + 1 < argc) opt.skip_code = atoi(argv[++i]);
        else { conf_usage(); return 2; }
    }
    char **names = NULL;
    int n_names = 0;
    if (conf_list_cases(opt.vectors, &names, &n_names) || n_names == 0) {
        fprintf(stderr, "rk-conformance: no test vector cases under %s\n", opt.vectors);
        return 2;
    }
    tc_case *cases = calloc((size_t)n_names, sizeof *cases);
    int n_cases = 0, bad = 0;
    for (int i = 0; cases && i < n_names; i++) {
        if (opt.only_case && strcmp(opt.only_case, names[i]) != 0) continue;
        char dir[2048], err[512];
        snprintf(dir, sizeof dir, "%s/%s", opt.vectors, names[i]);
        if (tc_case_load(dir, &cases[n_cases], err, sizeof err)) {
            fprintf(stderr, "rk-conformance: %s\n", err);
            bad = 1;
        } else {
            n_cases++;
        }
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    if (!cases || bad || n_cases == 0) {
        if (n_cases == 0 && !bad) fprintf(stderr, "rk-conformance: no case named %s\n", opt.only_case);
        free(cases);
        return 2;
    }

    conf_report rep = {NULL, 0, 0};
    if (opt.backend) {
        conf_run_backend(&rep, opt.backend, cases, n_cases, &opt);
    } else {
        for (size_t i = 0; i < rk_backend_count(); i++)
            conf_run_backend(&rep, rk_backend_name(i), cases, n_cases, &opt);
    }
    if (opt.json) conf_report_json(&rep, stdout);
    else conf_report_table(&rep, stdout);

    size_t failed = conf_report_count(&rep, CONF_FAIL), passed = conf_report_count(&rep, CONF_PASS);
    size_t skipped = conf_report_count(&rep, CONF_SKIP);
    for (int k = 0; k < n_cases; k++) tc_case_free(&cases[k]);
    free(cases);
    conf_report_free(&rep);
    if (failed) return 1;
    return passed == 0 && skipped > 0 ? opt.skip_code : 0;
}
