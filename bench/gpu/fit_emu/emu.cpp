/* fit_emu: rk_fit_kernel (backends/cuda/subspace.cuh) on the host, one pthread per CUDA thread
 * (shim.h), against the host subspace solver (core/pca.c) on the same weighted covariance. Checks
 * the kernel's logic without a GPU: indices, barriers' placement (a missing one shows as a wrong
 * result only by chance: run compute-sanitizer racecheck on a GPU), shuffle groups (a wrong mask
 * deadlocks), breakdown paths. Not a timing tool.
 *   fit_emu d r heads variant   (run.sh builds it and runs the shapes of cuda_check and more) */
#include <cmath>
using std::isfinite;
#include "shim.h"
extern "C" {
#include "pca.h"
}
thread_local dim3_ threadIdx, blockIdx;
static pthread_barrier_t g_block;
struct Warp { pthread_barrier_t full, half[2]; uint64_t buf[32]; };
static Warp g_warps[16];
void __syncthreads() { pthread_barrier_wait(&g_block); }
void emu_warp_barrier(unsigned mask) {
    Warp &w = g_warps[threadIdx.x / 32];
    if (mask == 0xffffffffu) pthread_barrier_wait(&w.full);
    else if (mask == 0xffffu) pthread_barrier_wait(&w.half[0]);
    else if (mask == 0xffff0000u) pthread_barrier_wait(&w.half[1]);
    else { fprintf(stderr, "mask %x\n", mask); abort(); }
}
void *emu_xbuf(int lane) { return &g_warps[threadIdx.x / 32].buf[lane]; }
alignas(16) unsigned char g_smem[232448];
#include "sub_dev.inc"

struct Arg { rk_fit_params q; int tid; int blk; };
static void *run(void *p) {
    Arg *a = (Arg *)p;
    threadIdx.x = a->tid; blockIdx.x = a->blk;
    rk_fit_kernel(a->q);
    return NULL;
}
static void launch(const rk_fit_params &q) {
    for (int b = 0; b < q.n; b++) {
        pthread_barrier_init(&g_block, NULL, RK_FIT_THREADS);
        for (int w = 0; w < 16; w++) { pthread_barrier_init(&g_warps[w].full, NULL, 32); pthread_barrier_init(&g_warps[w].half[0], NULL, 16); pthread_barrier_init(&g_warps[w].half[1], NULL, 16); }
        memset(g_smem, 0x7f, sizeof g_smem); /* garbage */
        pthread_t th[RK_FIT_THREADS]; Arg args[RK_FIT_THREADS];
        pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 1 << 18);
        for (int t = 0; t < RK_FIT_THREADS; t++) { args[t] = {q, t, b}; pthread_create(&th[t], &at, run, &args[t]); }
        for (int t = 0; t < RK_FIT_THREADS; t++) pthread_join(th[t], NULL);
    }
}

static double uni(uint64_t *s) { *s += 0x9E3779B97F4A7C15ull; uint64_t z = *s; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; z ^= z >> 31; return (double)(z >> 11) / 9007199254740992.0; }
static double dist(const double *A, const double *B, int d, int r) {
    double s = 0;
    for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) { double x = 0; for (int k = 0; k < r; k++) x += A[i*r+k]*A[j*r+k] - B[i*r+k]*B[j*r+k]; s += x*x; }
    return sqrt(s / 2);
}
int main(int argc, char **argv) {
    int d = atoi(argv[1]), r = atoi(argv[2]), nh = atoi(argv[3]), variant = atoi(argv[4]);
    int p = rk_pca_subspace_width(d, r), T = 3000;
    size_t dd = (size_t)d * d;
    double *S = (double *)calloc(nh * dd, 8), *w = (double *)malloc(nh * d * 8), scale[8], add[8];
    unsigned long long seeds[8];
    uint64_t rng = 0x77 + d;
    double *keys = (double *)malloc(sizeof(double) * T * d), mean[256], qms[256], sorted[256];
    for (int h = 0; h < nh; h++) {
        for (int t = 0; t < T; t++) for (int i = 0; i < d; i++) keys[t*d+i] = uni(&rng) * pow(0.9, i % 64) + 0.2 + (i > 0 ? 0.3 * uni(&rng) * keys[t*d + i - 1] : 0.0); /* correlated channels */
        for (int i = 0; i < d; i++) { mean[i] = 0; for (int t = 0; t < T; t++) mean[i] += keys[t*d+i]; mean[i] /= T; }
        for (int t = 0; t < T; t++) for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) S[h*dd + i*d+j] += (keys[t*d+i]-mean[i])*(keys[t*d+j]-mean[j]);
        for (int i = 0; i < d; i++) qms[i] = 1.0 + 0.5 * uni(&rng);
        rk_pca_weights(qms, d, 0.05, w + h*d, sorted);
        scale[h] = 1.0 / T;
        double tr = 0; for (int i = 0; i < d; i++) tr += S[h*dd+i*d+i] * scale[h] * (w[h*d+i]*w[h*d+i]);
        add[h] = rk_pca_ridge(tr, d, 1e-6);
        seeds[h] = 0x5eed + h;
    }
    int s_index[8]; for (int h = 0; h < nh; h++) s_index[h] = h;
    double *R = (double *)malloc(sizeof(double) * nh * d * r), *ev = (double *)malloc(sizeof(double) * nh * r);
    int status[8]; long long prof[RK_FIT_PROF];
    /* the host entry's limits (rk_gpu_rotation_fit): past them the core fits on the host */
    const rk_fit_layout L = rk_fit_layout_of(d, p);
    if (d > RK_FIT_THREADS / 4 || p > RK_FIT_PMAX || r > p || (size_t)r * 8 > (size_t)L.ldc * 4 || L.bytes > 232448) {
        printf("d%d r%d p%d: no device fit (host fallback)\n", d, r, p);
        return 0;
    }
    rk_fit_params q;
    memset(&q, 0, sizeof q);
    q.S = S; q.s_index = s_index; q.w = w; q.scale = scale; q.add = add; q.seeds = seeds;
    q.R = R; q.evals = ev; q.status = status; q.prof = prof; q.n = nh; q.d = d; q.r = r; q.p = p; q.iters = 6;
    q.variant = variant;
    launch(q);
    double *C = (double *)malloc(dd * 8), *Rh = (double *)malloc(sizeof(double) * d * r), evh[256];
    for (int h = 0; h < nh; h++) {
        for (size_t i = 0; i < dd; i++) C[i] = S[h*dd+i] * scale[h];
        for (int i = 0; i < d; i++) qms[i] = 0; /* recompute weights: use w directly */
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) C[i*d+j] *= w[h*d+i] * w[h*d+j];
        for (int i = 0; i < d; i++) C[i*d+i] += add[h];
        rk_pca_subspace(C, d, r, 6, seeds[h], evh, Rh);
        double e = 0; for (int j = 0; j < r; j++) { double x = fabs(ev[h*r+j] - evh[j]) / evh[0]; if (x > e) e = x; }
        double orth = 0; for (int a = 0; a < r; a++) for (int b = 0; b < r; b++) { double s = 0; for (int i = 0; i < d; i++) s += R[h*d*r+i*r+a]*R[h*d*r+i*r+b]; s -= a == b; if (fabs(s) > orth) orth = fabs(s); }
        int signs_ok = 1; for (int j = 0; j < r; j++) { int bi = 0; for (int i = 1; i < d; i++) if (fabs(R[h*d*r+i*r+j]) > fabs(R[h*d*r+bi*r+j])) bi = i; if (R[h*d*r+bi*r+j] < 0) signs_ok = 0; }
        if (status[h] != 0) {
            printf("d%d r%d p%d variant %d head %d: status %d (Gram not positive definite: host fallback)\n", d, r, p, variant, h, status[h]);
            continue;
        }
        printf("d%d r%d p%d variant %d head %d: distance %.2e, Ritz values %.2e, orthonormal to %.1e, "
               "signs %s", d, r, p, variant, h, dist(R + h*d*r, Rh, d, r), e, orth, signs_ok ? "ok" : "WRONG");
        if (h == 0) printf(", %lld Jacobi sweeps", prof[7]); /* the profile covers head 0 */
        printf("\n");
    }
    return 0;
}
