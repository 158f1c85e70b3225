// A CUDA emulator for the CPU, for testing src/ops/cuda where no GPU exists (`make cuda-emu-test`).
// The .cu files compile unchanged as C++ (cu2cpp.sed turns `k<<<grid, block, shared>>>(args)` into
// EMU_LAUNCH(k, grid, block, shared)(args) and `extern __shared__ T x[]` into a pointer to the
// launch's dynamic shared memory, NaN for each block until written). A block's threads run as fibers
// on one core, switching only at __syncthreads, so the barrier semantics are CUDA's; blocks run one
// after another, so a kernel's static __shared__ arrays are plain statics.
//
// What it catches beyond wrong numbers: a kernel handed a host pointer, a cudaMemcpy whose kind does
// not match its pointers, a cuBLAS operand shorter than its dimensions say, launches a GPU would
// refuse (block > 1024 threads, grid y/z > 65535, dynamic shared memory > 48 KiB without the opt-in),
// ldmatrix rows at misaligned addresses (include/emu_warp_mma.h), __syncthreads that not every
// thread of a block reaches, and (built with AddressSanitizer and the alignment check, as the make
// target does) out-of-bounds kernel accesses, vector accesses off their alignment, and host code
// touching device memory, which stays poisoned outside kernels and transfers. EMU_THREAD_ORDER=reverse
// runs each barrier interval's threads, and a launch's blocks, last to first, so results that depend on
// a race between threads or between blocks change.
// Warps: __syncwarp is a barrier of a warp's lanes (fibers in a ring of their own); __shfl_xor_sync,
// mma.sync and ldmatrix (src/ops/cuda/warp_mma.h) pass values through the warp's slots across such
// a barrier; other shuffles and votes are not emulated.
// What it cannot catch: anything about speed, lanes of a warp that are out of step between warp
// barriers, memory model subtleties, the tensor cores' summation order, whether warp_mma.h's
// fragment layouts are the hardware's (the emulator implements the same description), and numerics
// of the device's math library (it uses the host's libm).
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
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;
// CUDA's vector types (kernels copy bf16 rows 8 values at a time, move fp32 rows 4 at a time); alignas
// gives them a GPU's alignment, which the kernels' build checks on every access (-fsanitize=alignment in
// the Makefile: x86 itself would not fault).
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
struct alignas(8) uint2 {
    unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void __syncthreads(void);
namespace emu {
// A barrier among the lanes of the calling thread's warp (32 consecutive linear thread ids): __syncwarp,
// and what warp-collective calls pass through (emu::exchange).
void warp_sync(const char *call);
} // namespace emu
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_sync("__syncwarp"); } // full warps only

namespace emu {
enum { SLOT_BYTES = 64 }; // what one lane can publish to its warp in one exchange
// The calling warp's 32 slots (SLOT_BYTES apart) for the calling lane's next exchange: two sets that
// alternate, so a lane that has read one exchange can publish the next while slower lanes still read.
void *warp_slots(void);
unsigned lane_id(void);
// The lanes' published values during an exchange: all[i] is lane i's (a copy, read on demand).
template <class T> struct Published {
    const unsigned char *slots;
    T operator[](unsigned lane) const {
        T v;
        memcpy(&v, slots + lane * SLOT_BYTES, sizeof v);
        return v;
    }
};
// Every lane publishes `mine`, the warp meets, and read(all) runs on each lane with all[i] = lane i's
// value: the collective calls (shuffles, mma.sync, ldmatrix) are built on it. One barrier suffices:
// a set is rewritten two exchanges later, after every lane has passed the barrier between.
template <class T, class Read> auto exchange(const T &mine, const char *call, Read read) {
    static_assert(sizeof(T) <= SLOT_BYTES && std::is_trivially_copyable_v<T>, "a lane publishes at most SLOT_BYTES");
    unsigned char *slots = (unsigned char *)warp_slots();
    memcpy(slots + lane_id() * SLOT_BYTES, &mine, sizeof mine);
    warp_sync(call);
    return read(Published<T>{slots});
}
// Each lane takes lane src's v.
template <class T> T shuffle(T v, unsigned src, const char *call) {
    return exchange(v, call, [&](Published<T> all) { return all[src % 32]; });
}
} // namespace emu
// Full warps and width 32 only, as src/ops/cuda uses them.
template <class T> inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    return emu::shuffle(v, emu::lane_id() ^ (unsigned)lane_mask, "__shfl_xor_sync");
}

namespace emu {

// The current launch's dynamic shared memory (`extern __shared__`).
void *dynamic_shared(void);
// Dies unless p is null or inside (or one past) a device allocation.
void require_device(const void *p, const char *what, const char *kernel, int arg);
// Runs each barrier interval's threads and each launch's blocks last to first or first to last (by
// default as EMU_THREAD_ORDER says: "reverse" or not); returns the order it replaces, for the caller to
// restore.
bool set_reverse_order(bool reverse);
// Runs body for every thread of every block; launch errors go to cudaGetLastError as on a GPU.
void run(const void *fn, const char *kernel, dim3 grid, dim3 block, size_t shared, const std::function<void()> &body);

template <class... P> struct Launch {
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t shared;

    template <class... A> void operator()(A &&...args) const {
        std::tuple<P...> params(std::forward<A>(args)...); // converted as the call to the kernel would
        check_pointers(params, std::index_sequence_for<P...>{});
        run((const void *)kernel, name, grid, block, shared, [&] { std::apply(kernel, params); });
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
