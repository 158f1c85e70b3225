// PGOLF_CUDA_PROFILE=1: where a run's GPU time goes, without a profiler on the machine. Every kernel
// launch, cuBLAS call and copy ends with a mark; with profiling on, a mark waits for the GPU and
// charges the time since the previous mark to the function that made it (its __func__: the cuda_*
// op, or dense.cu's linear_gemm). Host work between two marks (the loader, the embedding's counting
// sort) is charged to the later one. The table goes to stderr at exit. Waiting after every call
// serializes host and GPU, so a profiled step is slower than a real one: read the shares.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_check.h"
extern "C" {
#include "util.h"
}

#define MAX_SITES 128

typedef struct {
    const char *name;
    double seconds;
    long calls;
} Site;

static Site sites[MAX_SITES];
static int n_sites, enabled = -1; // -1: PGOLF_CUDA_PROFILE not read yet
static double last_mark;

static int by_time(const void *a, const void *b) {
    double d = ((const Site *)b)->seconds - ((const Site *)a)->seconds;
    return (d > 0) - (d < 0);
}

static void print_profile(void) {
    double total = 0;
    for (int i = 0; i < n_sites; i++) total += sites[i].seconds;
    qsort(sites, (size_t)n_sites, sizeof(Site), by_time);
    fprintf(stderr, "cuda_profile: %.1f ms in %d call sites (PGOLF_CUDA_PROFILE; every call waited for)\n", 1e3 * total, n_sites);
    for (int i = 0; i < n_sites; i++)
        fprintf(stderr, "cuda_profile: %-34s calls %8ld  total %10.1f ms  per call %9.1f us  %5.1f%%\n", sites[i].name,
                sites[i].calls, 1e3 * sites[i].seconds, 1e6 * sites[i].seconds / (double)sites[i].calls,
                total > 0 ? 100 * sites[i].seconds / total : 0.0);
}

static Site *site(const char *name) {
    for (int i = 0; i < n_sites; i++)
        if (sites[i].name == name || !strcmp(sites[i].name, name)) return &sites[i];
    if (n_sites == MAX_SITES) return &sites[MAX_SITES - 1]; // more sites than the code has: lump the rest
    sites[n_sites].name = name;
    return &sites[n_sites++];
}

void cuda_profile_mark(const char *where) {
    if (enabled < 0) {
        const char *e = getenv("PGOLF_CUDA_PROFILE");
        enabled = e && *e && strcmp(e, "0");
        if (enabled) atexit(print_profile);
    }
    if (!enabled) return;
    CUDA_CHECK(cudaDeviceSynchronize());
    double t = now_seconds();
    if (last_mark > 0) {
        Site *s = site(where);
        s->seconds += t - last_mark;
        s->calls++;
    }
    last_mark = t;
}
