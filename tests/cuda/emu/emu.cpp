// The CPU emulator behind emu.h: device memory, the runtime and cuBLAS calls src/ops/cuda makes, and
// kernel launches that run each block's threads as fibers, switching at __syncthreads.
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <vector>

#include "include/cublas_v2.h"
#include "include/cuda_bf16.h"
#include "include/cuda_runtime.h"
#include "include/emu_warp_mma.h"

extern "C" void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

// AddressSanitizer's poisoning calls, when the program links its runtime (the kernels are built with it;
// this file is not, so that fiber switches stay cheap).
extern "C" void __asan_poison_memory_region(void const volatile *p, size_t n) __attribute__((weak));
extern "C" void __asan_unpoison_memory_region(void const volatile *p, size_t n) __attribute__((weak));

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

// ---------------------------------------------------------------- device memory
std::map<uintptr_t, size_t> g_allocations; // base -> bytes
cudaError_t g_last_error = cudaSuccess;

// The allocation holding [p, p + bytes), or end(). One past the end counts as inside (empty spans).
std::map<uintptr_t, size_t>::const_iterator find_allocation(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocations.upper_bound(a);
    if (it == g_allocations.begin()) return g_allocations.end();
    --it;
    return a + bytes <= it->first + it->second ? it : g_allocations.end();
}

bool is_device(const void *p) { return p && find_allocation(p, 0) != g_allocations.end(); }

void require_span(const void *p, size_t bytes, const char *what) {
    if (!is_device(p)) die("CUDA emulator: %s: %p is not device memory", what, p);
    if (find_allocation(p, bytes) == g_allocations.end())
        die("CUDA emulator: %s: %zu bytes at %p run past the end of their allocation", what, bytes, p);
}

void require_host(const void *p, const char *what) {
    if (is_device(p)) die("CUDA emulator: %s: %p is device memory where host memory belongs", what, p);
}

// Device memory is poisoned for AddressSanitizer except while a kernel, a transfer or cuBLAS runs, so
// host code that dereferences a device pointer is reported where it happens.
void poison(const void *p, size_t bytes, bool on) {
    if (on && __asan_poison_memory_region) __asan_poison_memory_region(p, bytes);
    if (!on && __asan_unpoison_memory_region) __asan_unpoison_memory_region(p, bytes);
}

void device_access(bool open) {
    for (const auto &a : g_allocations) poison((const void *)a.first, a.second, !open);
}

// ---------------------------------------------------------------- fibers
// A fiber switch saves the callee-saved registers on the old stack and pops them off the new one:
// no signal-mask system call as in swapcontext, which made a barrier cost microseconds (and no
// AddressSanitizer interceptor clearing the stack's shadow on every switch). x86-64 only.
extern "C" void emu_switch(void **save_sp, void *next_sp);
#if defined(__x86_64__)
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
enum { SAVED_WORDS = 6 }; // r15 r14 r13 r12 rbx rbp, then the return address
#else
#error "the CUDA emulator's fiber switch is written for x86-64 only"
#endif

enum { FIBER_STACK = 256 * 1024 }; // room for kernels' register arrays with ASan redzones

// A block's threads run in run order, one warp at a time, until one reaches a barrier: each warp's
// first thread runs as a fiber, and if it finishes without a barrier, so must the warp's other lanes
// (a __syncthreads or warp-collective call that one lane skips is a bug), which run as plain calls;
// a kernel without barriers costs a fiber per warp. The thread that reaches a barrier and all after it
// then form a ring in run order, and a thread at a barrier switches straight to the next live one,
// so the ring goes round once per barrier interval. Finished threads leave the ring; the last one
// switches back to the launch.
struct Fiber {
    void *sp = nullptr;
    char *stack = nullptr;
    uint3 thread;
    Fiber *next = nullptr, *prev = nullptr; // the block's ring (__syncthreads)
    Fiber *warp_next = nullptr;             // the ring of its warp's lanes (warp-collective calls)
    unsigned barriers = 0;                  // __syncthreads calls so far
    bool done = false;
};

std::vector<unsigned char> g_slots; // each warp's two sets of 32 exchange slots (emu::exchange)
std::vector<unsigned> g_exchanges;  // each thread's exchanges so far: its next set is the count's parity

void *g_launch_sp;          // the launching code's stack while fibers run
std::vector<Fiber> g_fibers;
Fiber *g_current;           // null while threads run as plain calls
bool g_probing;             // warps' first threads run alone until one reaches a barrier
// Every thread of a block must reach the same __syncthreads calls: the most any thread has reached,
// and the fewest any finished thread had reached (UINT_MAX while none has finished).
unsigned g_most_barriers, g_fewest_finished;
const std::function<void()> *g_body;
const char *g_kernel;
void *g_shared;

void switch_to(void **save_sp, Fiber *to) {
    g_current = to;
    threadIdx = to->thread;
    emu_switch(save_sp, to->sp);
}

// Where a new fiber's first switch returns to. It never returns: a finished thread switches away.
extern "C" void emu_fiber_main() {
    (*g_body)();
    Fiber *f = g_current;
    f->done = true;
    if (f->barriers < g_most_barriers)
        die("CUDA emulator: kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) finished after %u __syncthreads while another "
            "reached %u; a barrier not every thread reaches hangs or misbehaves on a GPU",
            g_kernel, f->thread.x, f->thread.y, f->thread.z, blockIdx.x, blockIdx.y, blockIdx.z, f->barriers, g_most_barriers);
    if (f->barriers < g_fewest_finished) g_fewest_finished = f->barriers;
    if (g_probing || f->next == f) {
        emu_switch(&f->sp, g_launch_sp);
    } else {
        f->prev->next = f->next, f->next->prev = f->prev;
        switch_to(&f->sp, f->next);
    }
    __builtin_unreachable();
}

// A new fiber's stack holds zeroed registers and, as the return address, emu_fiber_main; the return
// address sits 16-byte aligned, so the entered function sees the stack as after a call. The stacks'
// tops are staggered by a cache line per fiber: at one offset they would share cache sets.
void start_fiber(Fiber &f, uint3 thread, unsigned index) {
    if (!f.stack) {
        f.stack = (char *)mmap(nullptr, FIBER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (f.stack == MAP_FAILED) die("CUDA emulator: no memory for a fiber stack");
    }
    f.done = false;
    f.barriers = 0;
    f.thread = thread;
    void **top = (void **)(f.stack + FIBER_STACK - 64 * (index % 61)) - 2; // 16-byte aligned
    top[0] = (void *)emu_fiber_main;
    top[1] = nullptr;
    void **sp = top - SAVED_WORDS;
    memset(sp, 0, sizeof(void *) * SAVED_WORDS);
    f.sp = sp;
}

int g_reverse = -1; // EMU_THREAD_ORDER=reverse, read at the first launch unless set

bool reverse_order() {
    if (g_reverse < 0) {
        const char *s = getenv("EMU_THREAD_ORDER");
        g_reverse = s && !strcmp(s, "reverse");
    }
    return g_reverse;
}

// One block: warps run alone until a thread reaches a barrier, then that one and the rest as a ring.
// A __syncthreads that not every thread reaches is reported (__syncthreads and a finishing thread
// compare counts), and so is a warp-collective call whose warp has a finished lane (a whole warp
// may finish early: a warp's calls need only its lanes).
void run_block(unsigned n) {
    bool rev = reverse_order();
    auto linear = [&](unsigned i) { return rev ? n - 1 - i : i; }; // run order -> linear thread id
    auto thread = [&](unsigned i) {
        unsigned l = linear(i);
        return uint3(l % blockDim.x, l / blockDim.x % blockDim.y, l / (blockDim.x * blockDim.y));
    };
    if (g_fibers.size() < n) g_fibers.resize(n);
    size_t slot_bytes = (n + 31) / 32 * 2 * 32 * emu::SLOT_BYTES; // never read before written: no clearing
    if (g_slots.size() < slot_bytes) g_slots.resize(slot_bytes);
    g_exchanges.assign(n, 0);
    g_most_barriers = 0, g_fewest_finished = UINT_MAX;
    unsigned first = 0; // the first thread that reached a barrier
    for (; first < n; first++) {
        if (first > 0 && linear(first) / 32 == linear(first - 1) / 32) { // a later lane of a warp that had no barrier
            g_current = nullptr;
            threadIdx = thread(first);
            (*g_body)();
            continue;
        }
        start_fiber(g_fibers[first], thread(first), first);
        g_probing = true;
        switch_to(&g_launch_sp, &g_fibers[first]);
        g_probing = false;
        if (!g_fibers[first].done) break;
    }
    if (first == n) {
        g_current = nullptr;
        return;
    }
    unsigned live = n - first;
    Fiber *ring = &g_fibers[first];
    for (unsigned i = 0; i < live; i++) {
        if (i) start_fiber(ring[i], thread(first + i), first + i);
        ring[i].next = &ring[(i + 1) % live];
        ring[i].prev = &ring[(i + live - 1) % live];
    }
    for (unsigned i = 0; i < live; i++) { // lanes of a warp: consecutive linear ids
        unsigned j = (i + 1) % live;
        while (linear(first + j) / 32 != linear(first + i) / 32) j = (j + 1) % live;
        ring[i].warp_next = &ring[j];
    }
    switch_to(&g_launch_sp, ring[0].next); // the first waits at its barrier; the round goes on
    g_current = nullptr;
}

const char *error_name(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    }
    return "unknown error";
}

} // namespace

void __syncthreads(void) {
    Fiber *f = g_current;
    if (!f)
        die("CUDA emulator: kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) reached __syncthreads, which the first lane "
            "of its warp finished without; a barrier not every thread reaches hangs or misbehaves on a GPU",
            g_kernel, threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z);
    if (++f->barriers > g_fewest_finished)
        die("CUDA emulator: kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) reached __syncthreads %u, which a finished "
            "thread of the block never reached; a barrier not every thread reaches hangs or misbehaves on a GPU",
            g_kernel, threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z, f->barriers);
    if (f->barriers > g_most_barriers) g_most_barriers = f->barriers;
    if (g_probing) emu_switch(&f->sp, g_launch_sp);
    else if (f->next != f) switch_to(&f->sp, f->next);
}

namespace emu {

// Like __syncthreads within the ring of a warp's lanes: each lane parks here until every lane of its
// warp has arrived, so a collective call's reads all happen before any lane's writes.
void warp_sync(const char *call) {
    Fiber *f = g_current;
    if (!f)
        die("CUDA emulator: kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) reached %s after a lane of its warp finished "
            "without it; every lane of a warp must make the same warp-collective calls",
            g_kernel, threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z, call);
    if (g_probing) {
        emu_switch(&f->sp, g_launch_sp);
        return;
    }
    if (f->warp_next->done)
        die("CUDA emulator: kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) reached %s after a lane of its warp finished",
            g_kernel, threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z, call);
    if (f->warp_next != f) switch_to(&f->sp, f->warp_next);
}

static unsigned linear_thread(void) { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

unsigned lane_id(void) { return linear_thread() % 32; }

void *warp_slots(void) {
    unsigned t = linear_thread(), set = g_exchanges[t]++ % 2;
    return &g_slots[(t / 32 * 2 + set) * 32 * SLOT_BYTES];
}

void *dynamic_shared(void) { return g_shared; }

// The layouts of src/ops/cuda/warp_mma.h: A (r, k) is in half k % 2 of register r / 8 + 2 (k / 8) of
// lane 4 (r % 8) + k % 8 / 2; B (k, n) in half k % 2 of register k / 8 of lane 4 n + k % 8 / 2; this
// lane's accumulator i is C (g + 8 (i / 2), 2 t + i % 2), g = lane / 4, t = lane % 4.
void mma_lane(float d[4], const MmaOperands *lanes, unsigned lane) {
    auto half = [](unsigned reg, int k) { return __bfloat162float(__nv_bfloat16{(uint16_t)(k % 2 ? reg >> 16 : reg & 0xffffu)}); };
    unsigned g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
        unsigned row = g + 8 * (i / 2), col = 2 * t + i % 2;
        float s = d[i];
        for (int k = 0; k < 16; k++)
            s += half(lanes[4 * (row % 8) + k % 8 / 2].a[row / 8 + 2 * (k / 8)], k) * half(lanes[4 * col + k % 8 / 2].b[k / 8], k);
        d[i] = s;
    }
}

bool set_reverse_order(bool reverse) {
    bool was = reverse_order();
    g_reverse = reverse;
    return was;
}

void require_device(const void *p, const char *what, const char *kernel, int arg) {
    if (p && !is_device(p)) die("CUDA emulator: kernel %s: %s %d is %p, host memory a GPU cannot read", kernel, what, arg, p);
}

static std::map<const void *, size_t> g_max_shared; // kernels' opt-ins beyond 48 KiB

cudaError_t set_max_dynamic_shared(const void *kernel, int bytes) {
    if (bytes < 0 || bytes > 99 * 1024) return cudaErrorInvalidValue;
    g_max_shared[kernel] = (size_t)bytes;
    return cudaSuccess;
}

void run(const void *fn, const char *kernel, dim3 grid, dim3 block, size_t shared, const std::function<void()> &body) {
    size_t threads = (size_t)block.x * block.y * block.z;
    auto opt_in = g_max_shared.find(fn);
    size_t max_shared = opt_in != g_max_shared.end() && opt_in->second > 48 * 1024 ? opt_in->second : 48 * 1024;
    // the limits of every GPU since compute capability 3.0 (dynamic shared memory above 48 KiB needs an opt-in)
    if (!threads || threads > 1024 || block.z > 64 || !grid.x || !grid.y || !grid.z || grid.y > 65535 || grid.z > 65535 ||
        shared > max_shared) {
        fprintf(stderr, "CUDA emulator: kernel %s: launch refused (grid %u,%u,%u block %u,%u,%u shared %zu bytes)\n", kernel,
                grid.x, grid.y, grid.z, block.x, block.y, block.z, shared);
        g_last_error = cudaErrorInvalidConfiguration;
        return;
    }
    // 128-byte aligned like the start of a GPU's shared memory
    void *shared_bytes = nullptr;
    if (shared && posix_memalign(&shared_bytes, 128, shared)) die("CUDA emulator: no memory for %zu bytes of shared memory", shared);
    g_shared = shared_bytes;
    g_body = &body;
    g_kernel = kernel;
    gridDim = grid;
    blockDim = block;
    device_access(true);
    // Blocks one after another, last to first in reverse order: a block that reads what another block of
    // the same launch writes (no order exists between them on a GPU) sees it in one order only.
    size_t blocks = (size_t)grid.x * grid.y * grid.z;
    for (size_t i = 0; i < blocks; i++) {
        size_t b = reverse_order() ? blocks - 1 - i : i;
        blockIdx = uint3((unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((size_t)grid.x * grid.y)));
        if (shared) memset(shared_bytes, 0xff, shared); // each block's own: unwritten values read as NaN, not the last block's
        run_block((unsigned)threads);
    }
    device_access(false);
    free(shared_bytes);
    g_shared = nullptr;
}

} // namespace emu

// ---------------------------------------------------------------- runtime API
cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (device != 0) return cudaErrorInvalidValue;
    snprintf(prop->name, sizeof prop->name, "CUDA emulator on the CPU (tests/cuda/emu)");
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t err) { return error_name(err); }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    // fresh device memory is garbage on a GPU: here every byte is 0xff (a NaN in every float)
    void *m = malloc(bytes ? bytes : 1);
    if (!m) return cudaErrorMemoryAllocation;
    memset(m, 0xff, bytes);
    g_allocations[(uintptr_t)m] = bytes;
    poison(m, bytes, true);
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = g_allocations.find((uintptr_t)p);
    if (it == g_allocations.end()) return cudaErrorInvalidValue;
    poison(p, it->second, false);
    g_allocations.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    *total = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    *free_bytes = *total; // nothing the emulator could know better
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    require_span(p, bytes, "cudaMemset");
    device_access(true);
    memset(p, value, bytes);
    device_access(false);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dst_dev) require_span(dst, bytes, "cudaMemcpy destination");
    else require_host(dst, "cudaMemcpy destination");
    if (src_dev) require_span(src, bytes, "cudaMemcpy source");
    else require_host(src, "cudaMemcpy source");
    device_access(true);
    memmove(dst, src, bytes);
    device_access(false);
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

// ---------------------------------------------------------------- cuBLAS
struct EmuBlas {
    int unused;
};

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    static EmuBlas blas;
    *handle = &blas;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

// A column-major operand of rows x cols stored with leading dimension ld must lie in device memory;
// returns how many elements that span.
static size_t require_matrix(const void *p, size_t elem, int rows, int cols, int ld, const char *what) {
    if (ld < (rows > 1 ? rows : 1)) die("CUDA emulator: %s has leading dimension %d < %d rows", what, ld, rows);
    size_t count = (size_t)ld * (cols - 1) + rows;
    require_span(p, elem * count, what);
    return count;
}

// What cublasSgemm and cublasGemmEx check of their arguments; false: nothing to compute.
static bool check_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha, const void *A,
                       size_t a_elem, int lda, const void *B, size_t b_elem, int ldb, const void *beta, const void *C,
                       size_t c_elem, int ldc, const char *call, size_t *a_count, size_t *b_count) {
    if (!m || !n) return false;
    char what[64];
    snprintf(what, sizeof what, "%s alpha (host pointer mode)", call);
    require_host(alpha, what);
    snprintf(what, sizeof what, "%s beta (host pointer mode)", call);
    require_host(beta, what);
    *a_count = *b_count = 0;
    if (k) {
        snprintf(what, sizeof what, "%s A", call);
        *a_count = require_matrix(A, a_elem, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, what);
        snprintf(what, sizeof what, "%s B", call);
        *b_count = require_matrix(B, b_elem, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, what);
    }
    snprintf(what, sizeof what, "%s C", call);
    require_matrix(C, c_elem, m, n, ldc, what);
    return true;
}

static void sgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m,
                n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta, float *C,
                           int ldc) {
    if (!handle || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    size_t na, nb;
    if (!check_gemm(ta, tb, m, n, k, alpha, A, sizeof(float), lda, B, sizeof(float), ldb, beta, C, sizeof(float), ldc, "cublasSgemm",
                    &na, &nb))
        return CUBLAS_STATUS_SUCCESS;
    device_access(true);
    sgemm(ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    device_access(false);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSsyrk(cublasHandle_t handle, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                           const float *alpha, const float *A, int lda, const float *beta, float *C, int ldc) {
    if (!handle || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (!n) return CUBLAS_STATUS_SUCCESS;
    require_host(alpha, "cublasSsyrk alpha (host pointer mode)");
    require_host(beta, "cublasSsyrk beta (host pointer mode)");
    if (k) require_matrix(A, sizeof(float), trans == CUBLAS_OP_N ? n : k, trans == CUBLAS_OP_N ? k : n, lda, "cublasSsyrk A");
    require_matrix(C, sizeof(float), n, n, ldc, "cublasSsyrk C");
    device_access(true);
    cblas_ssyrk(CblasColMajor, uplo == CUBLAS_FILL_MODE_LOWER ? CblasLower : CblasUpper,
                trans == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, n, k, *alpha, A, lda, *beta, C, ldc);
    device_access(false);
    return CUBLAS_STATUS_SUCCESS;
}

static std::vector<float> widen_bf16(const void *p, size_t count) {
    std::vector<float> out(count);
    for (size_t i = 0; i < count; i++) out[i] = __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return out;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B, cudaDataType Btype,
                            int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
    if (!handle || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    // the combinations pgolf uses (cuBLAS supports more): fp32 or bf16 operands, fp32 results, or bf16
    // operands and bf16 results (the fp32 sums rounded to nearest even)
    if (Atype != Btype || compute != CUBLAS_COMPUTE_32F || (Atype != CUDA_R_32F && Atype != CUDA_R_16BF) ||
        (Ctype != CUDA_R_32F && !(Ctype == CUDA_R_16BF && Atype == CUDA_R_16BF)))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    size_t elem = Atype == CUDA_R_16BF ? sizeof(__nv_bfloat16) : sizeof(float), na, nb;
    size_t c_elem = Ctype == CUDA_R_16BF ? sizeof(__nv_bfloat16) : sizeof(float);
    if (!check_gemm(ta, tb, m, n, k, alpha, A, elem, lda, B, elem, ldb, beta, C, c_elem, ldc, "cublasGemmEx", &na, &nb))
        return CUBLAS_STATUS_SUCCESS;
    float al = *(const float *)alpha, be = *(const float *)beta;
    device_access(true);
    if (Atype == CUDA_R_32F) {
        sgemm(ta, tb, m, n, k, al, (const float *)A, lda, (const float *)B, ldb, be, (float *)C, ldc);
    } else if (Ctype == CUDA_R_32F) {
        std::vector<float> a = widen_bf16(A, na), b = widen_bf16(B, nb);
        sgemm(ta, tb, m, n, k, al, a.data(), lda, b.data(), ldb, be, (float *)C, ldc);
    } else { // C [ldc x n] column-major in bf16: widened, multiplied into, rounded back
        size_t nc = (size_t)(n - 1) * ldc + m;
        std::vector<float> a = widen_bf16(A, na), b = widen_bf16(B, nb), c = widen_bf16(C, nc);
        sgemm(ta, tb, m, n, k, al, a.data(), lda, b.data(), ldb, be, c.data(), ldc);
        __nv_bfloat16 *out = (__nv_bfloat16 *)C;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) out[(size_t)j * ldc + i] = __float2bfloat16_rn(c[(size_t)j * ldc + i]);
    }
    device_access(false);
    return CUBLAS_STATUS_SUCCESS;
}

// count cublasGemmEx products, each operand `stride` elements after the previous one's
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                                          long long stride_a, const void *B, cudaDataType Btype, int ldb, long long stride_b,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc, long long stride_c, int count,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    if (count < 0 || stride_a < 0 || stride_b < 0 || stride_c < 0) return CUBLAS_STATUS_INVALID_VALUE;
    size_t ea = Atype == CUDA_R_16BF ? sizeof(__nv_bfloat16) : sizeof(float),
           eb = Btype == CUDA_R_16BF ? sizeof(__nv_bfloat16) : sizeof(float);
    size_t ec = Ctype == CUDA_R_16BF ? sizeof(__nv_bfloat16) : sizeof(float);
    for (int i = 0; i < count; i++) {
        cublasStatus_t st = cublasGemmEx(handle, ta, tb, m, n, k, alpha, (const char *)A + i * stride_a * ea, Atype, lda,
                                         (const char *)B + i * stride_b * eb, Btype, ldb, beta, (char *)C + i * stride_c * ec,
                                         Ctype, ldc, compute, algo);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}
