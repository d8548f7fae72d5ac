/* rk-conformance results: one row per (backend, case, dtype, op, metric); a table or JSON. */
#ifndef RK_CONF_REPORT_H
#define RK_CONF_REPORT_H

#include <stddef.h>
#include <stdio.h>

typedef enum conf_outcome { CONF_PASS, CONF_FAIL, CONF_SKIP, CONF_UNSUPPORTED } conf_outcome;

typedef struct conf_result {
    char backend[16], case_name[64], dtype[8], op[40], metric[24];
    double value, threshold; /* NaN value with a note when the op did not produce one */
    conf_outcome outcome;
    char note[256];
} conf_result;

typedef struct conf_report {
    conf_result *rows;
    size_t n, cap;
} conf_report;

int conf_report_add(conf_report *rep, const conf_result *row);
void conf_report_free(conf_report *rep);
size_t conf_report_count(const conf_report *rep, conf_outcome o);
const char *conf_outcome_name(conf_outcome o);
void conf_report_table(const conf_report *rep, FILE *f);
void conf_report_json(const conf_report *rep, FILE *f);

#endif
