/* Markdown and JSON views of an acc_study. */
#include "sweep.h"

#include <math.h>
#include <string.h>

static const acc_method acc_channel_methods[] = {
    ACC_ROTATEK_QW, ACC_ROTATEK_QW_FAST, ACC_ROTATEK_PLAIN, ACC_ROTATEK_PLAIN_FAST,
    ACC_THINK,      ACC_SPARK,           ACC_RANDOM};
#define ACC_N_CHANNEL (int)(sizeof acc_channel_methods / sizeof acc_channel_methods[0])

static void acc_cell(FILE *out, double x, const char *fmt) {
    if (isnan(x)) fputs(" — |", out);
    else {
        fputc(' ', out);
        fprintf(out, fmt, x);
        fputs(" |", out);
    }
}

static const char *acc_dtype_label(rk_dtype t) { return rk_dtype_name(t); }

/* One table: rows = channel methods, columns = Key ratios. */
static void acc_md_channel_table(const acc_study *s, FILE *out, acc_field f, const char *fmt,
                                 int layer) {
    const acc_study_config *c = &s->cfg;
    fputs("| method |", out);
    for (int i = 0; i < c->n_ratios; i++) fprintf(out, " %g%% |", 100 * c->ratios[i]);
    fputs("\n|---|", out);
    for (int i = 0; i < c->n_ratios; i++) fputs("---:|", out);
    fputc('\n', out);
    for (int mi = 0; mi < ACC_N_CHANNEL; mi++) {
        acc_method m = acc_channel_methods[mi];
        if (!c->use[m]) continue;
        fprintf(out, "| %s |", acc_method_name(m));
        for (int i = 0; i < c->n_ratios; i++) {
            const acc_point *p = acc_study_find(s, m, c->ratios[i], 0);
            acc_cell(out, p ? acc_point_mean(s, p, f, layer) : NAN, fmt);
        }
        fputc('\n', out);
    }
}

void acc_report_markdown(const acc_study *s, FILE *out) {
    const acc_study_config *c = &s->cfg;
    const acc_dataset *ds = &s->ds;
    const acc_point *dense = &s->points[0];
    fprintf(out, "# Key pruning accuracy: %s\n\n", c->name);
    fprintf(out, "Command: `%s`\n\n", c->command ? c->command : "");
    fprintf(out,
            "Data: %d sequence(s) × %d layer(s) × %d heads, %d tokens, d = %d, dv = %d. Pruned span: "
            "tokens [%d, %d) (%d tokens); the others stay full width. Every query position is "
            "scored as a decode query over all keys; backend `%s`, cache storage %s. RoPE added "
            "by rk-accuracy: %s.\n\n",
            ds->S, ds->L, ds->H, ds->T, ds->d, ds->dv, s->opt.span_begin,
            ds->T - s->opt.span_tail, s->span_len, c->backend, acc_dtype_label(s->opt.dtype),
            c->rope_base > 0 ? "rotate-half on Q and K, base below" : "none (the data's own)");
    if (c->rope_base > 0) fprintf(out, "RoPE base: %g.\n\n", c->rope_base);
    fprintf(out, "Means over layers, heads and query positions. Dense decode in %s alone: relative "
                 "error %.2e, KL %.2e, top-%d overlap %.4f.\n\n",
            acc_dtype_label(s->opt.dtype), acc_point_mean(s, dense, ACC_REL_ERR, -1),
            acc_point_mean(s, dense, ACC_KL, -1), s->opt.topk,
            acc_point_mean(s, dense, ACC_TOPK, -1));

    fputs("## Attention-output relative error ‖o − o_dense‖ / ‖o_dense‖, by Key channels kept\n\n", out);
    acc_md_channel_table(s, out, ACC_REL_ERR, "%.4f", -1);
    fputs("\n## KL(p_dense ‖ p_method) of the attention weights\n\n", out);
    acc_md_channel_table(s, out, ACC_KL, "%.4f", -1);
    fprintf(out, "\n## Top-%d overlap of the attention weights\n\n", s->opt.topk);
    acc_md_channel_table(s, out, ACC_TOPK, "%.3f", -1);

    /* Per layer at the ratio nearest 50%. */
    int mid = 0;
    for (int i = 1; i < c->n_ratios; i++)
        if (fabs(c->ratios[i] - 0.5) < fabs(c->ratios[mid] - 0.5)) mid = i;
    fprintf(out, "\n## Relative error per layer at %g%% Key channels\n\n| method |", 100 * c->ratios[mid]);
    for (int l = 0; l < ds->L; l++) fprintf(out, " L%d |", l);
    fputs("\n|---|", out);
    for (int l = 0; l < ds->L; l++) fputs("---:|", out);
    fputc('\n', out);
    for (int mi = 0; mi < ACC_N_CHANNEL; mi++) {
        acc_method m = acc_channel_methods[mi];
        const acc_point *p = c->use[m] ? acc_study_find(s, m, c->ratios[mid], 0) : NULL;
        if (!p) continue;
        fprintf(out, "| %s |", acc_method_name(m));
        for (int l = 0; l < ds->L; l++) acc_cell(out, acc_point_mean(s, p, ACC_REL_ERR, l), "%.4f");
        fputc('\n', out);
    }

    fputs("\n## KV bytes kept per span token (fraction of dense)\n\n| method |", out);
    for (int i = 0; i < c->n_ratios; i++) fprintf(out, " %g%% |", 100 * c->ratios[i]);
    fputs("\n|---|", out);
    for (int i = 0; i < c->n_ratios; i++) fputs("---:|", out);
    fputc('\n', out);
    for (int mi = 0; mi < ACC_N_CHANNEL; mi++) {
        acc_method m = acc_channel_methods[mi];
        if (!c->use[m]) continue;
        fprintf(out, "| %s |", acc_method_name(m));
        for (int i = 0; i < c->n_ratios; i++) {
            const acc_point *p = acc_study_find(s, m, c->ratios[i], 0);
            acc_cell(out, p ? p->kv_bytes : NAN, "%.3f");
        }
        fputc('\n', out);
    }
    fputs("\nSparK stores int32 indices and an f32 fill per token, as the library lays it out; "
          "the per-head basis of the rotation methods (d·r + d floats) is amortised over the span "
          "and not counted.\n", out);

    if (c->n_budgets > 0 && (c->use[ACC_TOKENS_ONLY] || c->use[ACC_TOKENS_JOINT])) {
        fputs("\n## Fixed KV-cache budget: dropping tokens vs dropping tokens and Key channels\n\n"
              "SnapKV-style token scores (dense attention of the observation window, max-pooled); "
              "the joint method keeps 25% of Key channels (RotateK, query-weighted) and so "
              "affords more tokens.\n\n"
              "| KV budget | tokens-only: tokens kept | rel. error | top-k | dropped mass | "
              "tokens+rotatek: tokens kept | rel. error | top-k | dropped mass |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", out);
        for (int i = 0; i < c->n_budgets; i++) {
            fprintf(out, "| %.3f |", c->budgets[i]);
            acc_method ms[2] = {ACC_TOKENS_ONLY, ACC_TOKENS_JOINT};
            for (int j = 0; j < 2; j++) {
                const acc_point *p = c->use[ms[j]] ? acc_study_find(s, ms[j], 0, c->budgets[i]) : NULL;
                if (!p) {
                    fputs(" — | — | — | — |", out);
                    continue;
                }
                fprintf(out, " %d/%d |", p->keep, s->span_len);
                acc_cell(out, acc_point_mean(s, p, ACC_REL_ERR, -1), "%.4f");
                acc_cell(out, acc_point_mean(s, p, ACC_TOPK, -1), "%.3f");
                acc_cell(out, acc_point_mean(s, p, ACC_DROPPED, -1), "%.4f");
            }
            fputc('\n', out);
        }
    }

    double gap = 0;
    for (int i = 0; i < s->n_points; i++) {
        for (int l = 0; l < ds->L; l++)
            for (int h = 0; h < ds->H; h++) {
                double g = s->points[i].m[(size_t)l * ds->H + h].lib_host_diff;
                if (g > gap) gap = g;
            }
    }
    fprintf(out, "\nCheck: the library's outputs and a host rebuild from its caches "
                 "(k̂ = k̃ Rᵀ + δμ) differ by at most %.2e (relative), so the KL and top-k columns "
                 "describe the attention the library computed.\n", gap);
}

static void acc_json_num(FILE *out, double x) {
    if (isnan(x)) fputs("null", out);
    else fprintf(out, "%.6g", x);
}

void acc_report_json(const acc_study *s, FILE *out) {
    const acc_study_config *c = &s->cfg;
    const acc_dataset *ds = &s->ds;
    fputs("{\n  \"name\": \"", out);
    for (const char *p = c->name; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', out);
        fputc(*p, out);
    }
    fputs("\",\n  \"command\": \"", out);
    for (const char *p = c->command ? c->command : ""; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', out);
        fputc(*p, out);
    }
    fprintf(out, "\",\n  \"backend\": \"%s\", \"dtype\": \"%s\", \"rope_base\": %g,\n", c->backend,
            rk_dtype_name(s->opt.dtype), c->rope_base);
    fprintf(out, "  \"sequences\": %d, \"layers\": %d, \"heads\": %d, \"tokens\": %d, \"d\": %d, "
                 "\"dv\": %d,\n  \"span_begin\": %d, \"span_len\": %d, \"topk\": %d, \"window\": %d, "
                 "\"pool\": %d,\n  \"points\": [\n",
            ds->S, ds->L, ds->H, ds->T, ds->d, ds->dv, s->opt.span_begin, s->span_len, s->opt.topk,
            s->opt.window, s->opt.pool);
    static const char *const fields[] = {"rel_err", "kl", "topk", "dropped_mass", "lib_host_diff"};
    for (int i = 0; i < s->n_points; i++) {
        const acc_point *p = &s->points[i];
        fprintf(out, "    {\"method\": \"%s\", \"key_ratio\": %g, \"budget\": %g, \"rank\": %d, "
                     "\"keep\": %d, \"kv_bytes\": %.6g,\n     \"mean\": {",
                acc_method_name(p->method), p->key_ratio, p->budget, p->rank, p->keep, p->kv_bytes);
        for (int f = 0; f < 5; f++) {
            fprintf(out, "%s\"%s\": ", f ? ", " : "", fields[f]);
            acc_json_num(out, acc_point_mean(s, p, (acc_field)f, -1));
        }
        fputs("},\n     \"per_layer_head\": {", out);
        for (int f = 0; f < 4; f++) {
            fprintf(out, "%s\"%s\": [", f ? ", " : "", fields[f]);
            for (int l = 0; l < ds->L; l++) {
                fputs(l ? ", [" : "[", out);
                for (int h = 0; h < ds->H; h++) {
                    if (h) fputs(", ", out);
                    const acc_metrics *m = &p->m[(size_t)l * ds->H + h];
                    double x = f == 0 ? m->rel_err : f == 1 ? m->kl : f == 2 ? m->topk : m->dropped_mass;
                    acc_json_num(out, x);
                }
                fputc(']', out);
            }
            fputc(']', out);
        }
        fprintf(out, "}}%s\n", i + 1 < s->n_points ? "," : "");
    }
    fputs("  ]\n}\n", out);
}
