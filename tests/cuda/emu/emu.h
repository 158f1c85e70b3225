// A CUDA emulator for the CPU, for testing src/ops/cuda where no GPU exists (`make cuda-emu-test`).
// The .cu files compile unchanged as C++ (cu2cpp.sed turns `k<<<grid, block, shared>>>(args)` into
// EMU_LAUNCH(k, grid, block, shared)(args) and `extern __shared__ T x[]` into a pointer to the
// launch's dynamic shared memory). A block's threads run as fibers on one core, switching only at
// __syncthreads, so the barrier semantics are CUDA's; blocks run one after another, so a kernel's
// static __shared__ arrays are plain statics.
//
// What it catches beyond wrong numbers: a kernel handed a host pointer, a cudaMemcpy whose kind does
// not match its pointers, a cuBLAS operand shorter than its dimensions say, launches a GPU would
// refuse (block > 1024 threads, grid y/z > 65535, dynamic shared memory > 48 KiB), __syncthreads that
// not every thread of a block reaches, and (built with AddressSanitizer, as the make target does)
// out-of-bounds kernel accesses and host code touching device memory, which stays poisoned outside
// kernels and transfers. EMU_THREAD_ORDER=reverse runs each barrier interval's threads last to first,
// so results that depend on a race between threads change.
// What it cannot catch: anything about speed, warp-level behaviour (the kernels use none), memory
// model subtleties, and numerics of the device's math library (it uses the host's libm).
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void __syncthreads(void);

namespace emu {

// The current launch's dynamic shared memory (`extern __shared__`).
void *dynamic_shared(void);
// Dies unless p is null or inside (or one past) a device allocation.
void require_device(const void *p, const char *what, const char *kernel, int arg);
// Runs each barrier interval's threads last to first (EMU_THREAD_ORDER=reverse) or first to last.
void set_reverse_order(bool reverse);
// Runs body for every thread of every block; launch errors go to cudaGetLastError as on a GPU.
void run(const char *kernel, dim3 grid, dim3 block, size_t shared, const std::function<void()> &body);

template <class... P> struct Launch {
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t shared;

    template <class... A> void operator()(A &&...args) const {
        std::tuple<P...> params(std::forward<A>(args)...); // converted as the call to the kernel would
        check_pointers(params, std::index_sequence_for<P...>{});
        run(name, grid, block, shared, [&] { std::apply(kernel, params); });
    }

  private:
    template <size_t... I> void check_pointers(const std::tuple<P...> &params, std::index_sequence<I...>) const {
        (check_one<I>(std::get<I>(params)), ...);
    }
    template <size_t I, class T> void check_one(const T &value) const {
        if constexpr (std::is_pointer_v<T>) require_device((const void *)value, "kernel argument", name, (int)I);
    }
};

template <class... P> Launch<P...> launch(void (*kernel)(P...), const char *name, dim3 grid, dim3 block, size_t shared = 0) {
    return Launch<P...>{kernel, name, grid, block, shared};
}

} // namespace emu

#define EMU_LAUNCH(kernel, ...) emu::launch(kernel, #kernel, __VA_ARGS__)
