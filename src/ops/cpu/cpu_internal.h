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
void cpu_round_into(real *out, const real *x, size_t n); // out = x rounded to bf16 values (may be in place; dense.c)
// Where an op's result goes: out, its rounded copy (returned; NULL in fp32 mode or without out_r), or
// both; out NULL (the copy only) is allowed in bf16 mode only (dense.c).
real *cpu_rounded_output(const char *op, real *out, struct RoundedInput *out_r, size_t n);
// The values an op reads of its input x [n] given with its RoundedInput r (NULL: x itself): r's rounded
// values in bf16 mode (checked to be x's; x may then be NULL, an input kept only rounded), else x (dense.c).
const real *cpu_input_values(const char *op, const real *x, const struct RoundedInput *r, size_t n);
