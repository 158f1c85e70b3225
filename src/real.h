// The scalar type of the model's math. The normal build is fp32; the gradient-check test binary
// compiles the ops and the model again with -DPGOLF_F64 so finite differences run in double.
#pragma once
#ifdef PGOLF_F64
typedef double real;
#define REAL_NAME "f64"
#else
typedef float real;
#define REAL_NAME "f32"
#endif

// libm's square root at the precision of `real`.
#ifdef PGOLF_F64
#define rsqrt sqrt
#else
#define rsqrt sqrtf
#endif
