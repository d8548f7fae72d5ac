#include "conf_report.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int conf_report_add(conf_report *rep, const conf_result *row) {
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 256;
        conf_result *rows = realloc(rep->rows, cap * sizeof *rows);
        if (!rows) return 1;
        rep->rows = rows;
        rep->cap = cap;
    }
    rep->rows[rep->n++] = *row;
    return 0;
}

void conf_report_free(conf_report *rep) {
    free(rep->rows);
    memset(rep, 0, sizeof *rep);
}

size_t conf_report_count(const conf_report *rep, conf_outcome o) {
    size_t n = 0;
    for (size_t i = 0; i < rep->n; i++) n += rep->rows[i].outcome == o;
    return n;
}

const char *conf_outcome_name(conf_outcome o) {
    switch (o) {
    case CONF_PASS: return "PASS";
    case CONF_FAIL: return "FAIL";
    case CONF_SKIP: return "SKIP";
    case CONF_UNSUPPORTED: return "UNSUPPORTED";
    }
    return "?";
}

void conf_report_table(const conf_report *rep, FILE *f) {
    fprintf(f, "%-8s %-14s %-5s %-24s %-8s %10s %10s  %s\n", "backend", "case", "dtype", "op",
            "metric", "error", "threshold", "result");
    for (size_t i = 0; i < rep->n; i++) {
        const conf_result *r = &rep->rows[i];
        char val[16] = "-", thr[16] = "-";
        if (!isnan(r->value) || r->outcome == CONF_FAIL) snprintf(val, sizeof val, "%.3g", r->value);
        if (r->threshold > 0) snprintf(thr, sizeof thr, "%.3g", r->threshold);
        fprintf(f, "%-8s %-14s %-5s %-24s %-8s %10s %10s  %s%s%s\n", r->backend, r->case_name,
                r->dtype, r->op, r->metric, val, thr, conf_outcome_name(r->outcome),
                r->note[0] ? "  " : "", r->note);
    }
    fprintf(f, "summary: %zu passed, %zu failed, %zu skipped, %zu unsupported\n",
            conf_report_count(rep, CONF_PASS), conf_report_count(rep, CONF_FAIL),
            conf_report_count(rep, CONF_SKIP), conf_report_count(rep, CONF_UNSUPPORTED));
}

void conf_report_json(const conf_report *rep, FILE *f) {
    cJSON *root = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(root, "results");
    for (size_t i = 0; i < rep->n; i++) {
        const conf_result *r = &rep->rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "backend", r->backend);
        cJSON_AddStringToObject(o, "case", r->case_name);
        cJSON_AddStringToObject(o, "dtype", r->dtype);
        cJSON_AddStringToObject(o, "op", r->op);
        cJSON_AddStringToObject(o, "metric", r->metric);
        if (isfinite(r->value)) cJSON_AddNumberToObject(o, "error", r->value);
        else cJSON_AddNullToObject(o, "error");
        if (r->threshold > 0) cJSON_AddNumberToObject(o, "threshold", r->threshold);
        else cJSON_AddNullToObject(o, "threshold");
        cJSON_AddStringToObject(o, "result", conf_outcome_name(r->outcome));
        cJSON_AddStringToObject(o, "note", r->note);
        cJSON_AddItemToArray(rows, o);
    }
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    cJSON_AddNumberToObject(sum, "passed", (double)conf_report_count(rep, CONF_PASS));
    cJSON_AddNumberToObject(sum, "failed", (double)conf_report_count(rep, CONF_FAIL));
    cJSON_AddNumberToObject(sum, "skipped", (double)conf_report_count(rep, CONF_SKIP));
    cJSON_AddNumberToObject(sum, "unsupported", (double)conf_report_count(rep, CONF_UNSUPPORTED));
    char *text = cJSON_Print(root);
    if (text) fprintf(f, "%s\n", text);
    free(text);
    cJSON_Delete(root);
}
