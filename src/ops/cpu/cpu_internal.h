// Shared by the CPU op files only.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#define omp_get_num_threads_safe() omp_get_num_threads()
#define omp_get_thread_num_safe() omp_get_thread_num()
#define omp_get_max_threads_safe() omp_get_max_threads()
#else
#define omp_get_num_threads_safe() 1
#define omp_get_thread_num_safe() 0
#define omp_get_max_threads_safe() 1
#endif

void ops_profile_attention(double seconds); // adds to the running OpsProfile (dense.c)
// For an op writing x [n] and its rounding together: makes r hold x (as matmul_input_round) and returns
// where the rounded values go, or NULL in fp32 mode or without r (dense.c).
struct RoundedInput;
real *cpu_rounded_storage(struct RoundedInput *r, const real *x, size_t n);
