/* rk-accuracy: compare Key pruning methods against dense attention on captured Q, K, V.
 *
 *   rk-accuracy DIR [options]      DIR holds q.npy, k.npy, v.npy as [seq][layer][head][token][d]
 *                                  (or [layer][head][token][d], or [head][token][d])
 * Prints a markdown report (or writes it with --md FILE) and, with --json FILE, every number per
 * layer and head. bench/accuracy/plot_accuracy.py turns the JSON into PNG plots. */
#include "sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr,
            "usage: rk-accuracy DIR [options]\n"
            "  --name NAME         data set name in the report (default: DIR)\n"
            "  --rope-base B       apply RoPE (rotate-half, theta_i = B^(-2i/d)) to Q and K first\n"
            "  --dtype f16|bf16|f32  cache storage (default f16)\n"
            "  --backend NAME      library backend (default cpu)\n"
            "  --threads N         backend threads (default 2)\n"
            "  --ratios LIST       Key keep ratios (default 0.25,0.375,0.5,0.75)\n"
            "  --budgets LIST      KV-cache budgets for token vs joint pruning\n"
            "                      (default 0.15,0.25,0.35,0.45,0.55,0.625)\n"
            "  --methods LIST      channel methods (default: all)\n"
            "  --max-seqs N        use the first N sequences only\n"
            "  --span-begin N --span-tail N  tokens kept full width at each end (default 1, 1)\n"
            "  --topk K --window W --pool P  metric and SnapKV settings (default 8, all, 7)\n"
            "  --md FILE --json FILE         outputs (markdown goes to stdout otherwise)\n");
}

static int parse_list(const char *s, double *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        out[n] = strtod(s, &end);
        if (end == s) return -1;
        n++;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int load_dir(const char *dir, const char *name, acc_npy *a) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    if (acc_npy_load(path, a, err, sizeof err) != 0) {
        fprintf(stderr, "rk-accuracy: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        usage();
        return 2;
    }
    acc_study_config sc;
    acc_study_config_init(&sc);
    sc.data_dir = argv[1];
    sc.name = argv[1];
    const char *backend = "cpu", *md_path = NULL, *json_path = NULL;
    int threads = 2, max_seqs = 0;
    char methods_arg[512] = "";
    acc_options opt;
    acc_options_init(&opt, NULL);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--name")) sc.name = v;
        else if (!strcmp(a, "--rope-base")) sc.rope_base = atof(v);
        else if (!strcmp(a, "--dtype"))
            opt.dtype = !strcmp(v, "f32") ? RK_F32 : !strcmp(v, "bf16") ? RK_BF16 : RK_F16;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--ratios")) sc.n_ratios = parse_list(v, sc.ratios, ACC_MAX_POINTS);
        else if (!strcmp(a, "--budgets")) sc.n_budgets = parse_list(v, sc.budgets, ACC_MAX_POINTS);
        else if (!strcmp(a, "--methods")) snprintf(methods_arg, sizeof methods_arg, "%s", v);
        else if (!strcmp(a, "--max-seqs")) max_seqs = atoi(v);
        else if (!strcmp(a, "--span-begin")) opt.span_begin = atoi(v);
        else if (!strcmp(a, "--span-tail")) opt.span_tail = atoi(v);
        else if (!strcmp(a, "--topk")) opt.topk = atoi(v);
        else if (!strcmp(a, "--window")) opt.window = atoi(v);
        else if (!strcmp(a, "--pool")) opt.pool = atoi(v);
        else if (!strcmp(a, "--md")) md_path = v;
        else if (!strcmp(a, "--json")) json_path = v;
        else {
            usage();
            return 2;
        }
    }
    if (sc.n_ratios < 1 || sc.n_budgets < 0) {
        fprintf(stderr, "rk-accuracy: bad --ratios or --budgets\n");
        return 2;
    }
    if (methods_arg[0]) {
        memset(sc.use, 0, sizeof sc.use);
        for (char *tok = strtok(methods_arg, ","); tok; tok = strtok(NULL, ",")) {
            int m = acc_method_from_name(tok);
            if (m < 0) {
                fprintf(stderr, "rk-accuracy: unknown method '%s'\n", tok);
                return 2;
            }
            sc.use[m] = 1;
        }
    }

    acc_npy q, k, v;
    if (load_dir(sc.data_dir, "q", &q) || load_dir(sc.data_dir, "k", &k) ||
        load_dir(sc.data_dir, "v", &v))
        return 1;
    acc_dataset ds;
    if (acc_dataset_view(&q, &k, &v, max_seqs, &ds) != 0) {
        fprintf(stderr, "rk-accuracy: q, k, v must be [seq][layer][head][token][d] with matching "
                        "extents\n");
        return 1;
    }

    rk_context_options co;
    rk_context_options_init(&co);
    co.n_threads = threads;
    rk_context *ctx = NULL;
    rk_status st = rk_context_create(backend, 0, &co, &ctx);
    if (st != RK_OK) {
        fprintf(stderr, "rk-accuracy: backend %s: %s\n", backend, rk_status_string(st));
        return 1;
    }
    opt.ctx = ctx;
    /* The command as the report records it: what shapes the numbers, not where they go. */
    char cmd[4096] = "rk-accuracy";
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--md") || !strcmp(argv[i], "--json")) && i + 1 < argc) {
            i++;
            continue;
        }
        int quote = strchr(argv[i], ' ') != NULL;
        strncat(cmd, quote ? " '" : " ", sizeof cmd - strlen(cmd) - 1);
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 1);
        if (quote) strncat(cmd, "'", sizeof cmd - strlen(cmd) - 1);
    }
    sc.command = cmd;
    sc.backend = backend;

    acc_study study;
    int rc = acc_study_run(&sc, &opt, &ds, &study);
    if (rc == 0) {
        FILE *md = md_path ? fopen(md_path, "w") : stdout;
        if (!md) {
            fprintf(stderr, "rk-accuracy: cannot write %s\n", md_path);
            rc = 1;
        } else {
            acc_report_markdown(&study, md);
            if (md != stdout) fclose(md);
        }
        if (json_path) {
            FILE *js = fopen(json_path, "w");
            if (!js) {
                fprintf(stderr, "rk-accuracy: cannot write %s\n", json_path);
                rc = 1;
            } else {
                acc_report_json(&study, js);
                fclose(js);
            }
        }
    }
    acc_study_free(&study);
    rk_context_destroy(ctx);
    acc_npy_free(&q);
    acc_npy_free(&k);
    acc_npy_free(&v);
    return rc;
}
