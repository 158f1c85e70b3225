// Causal GQA attention through cuDNN's fused flash attention (its SDPA graphs, built with the
// header-only cudnn-frontend), the issue's alternative to our own tensor-core kernels. Linked only into
// builds made with CUDNN_HOME and CUDNN_FRONTEND (Makefile); attention.cu picks it in bf16 mode unless
// PGOLF_CUDA_ATTENTION=pgolf.
//
// Same layouts as the other kernels, given to cuDNN as strides: q, y [B,T,H,Dh], k, v [B,T,Hkv,Dh]
// (cuDNN's dims are [b, h, s, d]), v's and dv's rows ldv apart (read and written in place as a column
// block of the fused q/k/v product's output and its gradient); lse [B,H,T] is cuDNN's Stats, the
// natural-log logsumexp of each row of scaled scores, as ours. cuDNN reads and writes bf16: q, k, v as
// the caller rounded them (or rounded here), y and dy rounded here for the backward unless given
// rounded; O is y's rounding, and dQ, dK, dV come out bf16 (the reference's are bf16 under autocast
// too): as the rounded outputs asked for, widened into the fp32 ones given. Its backward adds dQ with
// atomics, so unlike our kernels it is not bit-reproducible (neither is the reference's).
// Graphs are built once per shape (and v stride) and kept.
#include <stdio.h>

#include <cstring> // before cudnn_frontend.h, which uses std::strlen without it
#include <map>
#include <memory>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <cudnn_frontend.h>

#include "ops/cuda/cuda_check.h"
extern "C" {
#include "ops/ops.h"
}

namespace fe = cudnn_frontend;

enum { Q_ID = 1, K_ID, V_ID, O_ID, STATS_ID, DO_ID, DQ_ID, DK_ID, DV_ID };

typedef std::tuple<int, int, int, int, int, int> Shape; // B, T, H, Hkv, Dh, ldv
typedef std::shared_ptr<fe::graph::Graph> Graph;

static void check(fe::error_t status, const char *what) {
    if (!status.is_good())
        die("%s: %s (PGOLF_CUDA_ATTENTION=pgolf runs pgolf's own kernels instead)", what, status.get_message().c_str());
}

static cudnnHandle_t handle(void) {
    static cudnnHandle_t h = nullptr;
    if (!h) {
        cudnnStatus_t st = cudnnCreate(&h); // on the default stream, as every other kernel here
        if (st != CUDNN_STATUS_SUCCESS) die("cuDNN: cudnnCreate failed: %s", cudnnGetErrorString(st));
    }
    return h;
}

extern "C" const char *cuda_attention_cudnn_version(void) {
    static char text[32];
    size_t v = cudnnGetVersion(); // major * 10000 + minor * 100 + patch since cuDNN 9
    snprintf(text, sizeof text, "cudnn-%zu.%zu.%zu", v / 10000, v / 100 % 100, v % 100);
    return text;
}

typedef std::shared_ptr<fe::graph::Tensor_attributes> Tensor;

// pgolf's [B,T,heads,Dh], token rows ld apart, as cuDNN's dims [b, h, s, d] and their strides
struct Layout {
    std::vector<int64_t> dim, stride;
};
static Layout bthd(int B, int T, int heads, int Dh, int ld) {
    return {{B, heads, T, Dh}, {(int64_t)T * ld, Dh, ld, 1}};
}

static Tensor input(Graph g, const char *name, int64_t uid, Layout l) {
    return g->tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(l.dim).set_stride(l.stride));
}

static void output(Tensor t, int64_t uid, Layout l) { t->set_output(true).set_uid(uid).set_dim(l.dim).set_stride(l.stride); }

static Graph new_graph(void) {
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    return g;
}

static float attn_scale(int Dh) { return (float)(1.0 / sqrt((double)Dh)); }

// g built into an execution plan, or null where cuDNN has none for it (said once per graph on stderr;
// attention.cu then gives cuDNN v packed, or, v packed already, runs pgolf's kernels)
static Graph build(Graph g, const char *what, Shape s) {
    fe::error_t status = g->build(handle(), {fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
    if (status.is_good()) return g;
    auto [B, T, H, Hkv, Dh, ldv] = s;
    fprintf(stderr, "cuDNN attention: no %s for B=%d T=%d H=%d Hkv=%d Dh=%d, v rows %d apart (%s)%s\n", what, B, T, H, Hkv,
            Dh, ldv, status.get_message().c_str(), ldv == Hkv * Dh ? ": pgolf's kernels run it" : ": v copied packed for it");
    return nullptr;
}

// The graph for shape s, made (and its plan built) on first use; null, as where build finds no plan, if
// cudnn-frontend throws (its C++ exceptions must not cross into pgolf's C).
static Graph cached(std::map<Shape, Graph> &built, Shape s, Graph (*make)(Shape)) {
    auto it = built.find(s);
    if (it != built.end()) return it->second;
    try {
        return built[s] = make(s);
    } catch (const std::exception &e) {
        auto [B, T, H, Hkv, Dh, ldv] = s;
        fprintf(stderr, "cuDNN attention: making the graph for B=%d T=%d H=%d Hkv=%d Dh=%d, v rows %d apart, threw (%s)\n", B,
                T, H, Hkv, Dh, ldv, e.what());
        return built[s] = nullptr;
    }
}

static Graph make_forward(Shape s) {
    auto [B, T, H, Hkv, Dh, ldv] = s;
    Layout lq = bthd(B, T, H, Dh, H * Dh), lk = bthd(B, T, Hkv, Dh, Hkv * Dh), lv = bthd(B, T, Hkv, Dh, ldv);
    Graph g = new_graph();
    auto opts = fe::graph::SDPA_attributes().set_name("attention").set_generate_stats(true).set_attn_scale(attn_scale(Dh));
    opts.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0); // causal
    auto [O, stats] = g->sdpa(input(g, "Q", Q_ID, lq), input(g, "K", K_ID, lk), input(g, "V", V_ID, lv), opts);
    output(O, O_ID, lq);
    stats->set_output(true).set_uid(STATS_ID).set_data_type(fe::DataType_t::FLOAT); // [b, h, s, 1] packed: lse's layout
    return build(g, "forward plan", s);
}

static Graph make_backward(Shape s) {
    auto [B, T, H, Hkv, Dh, ldv] = s;
    Layout lq = bthd(B, T, H, Dh, H * Dh), lk = bthd(B, T, Hkv, Dh, Hkv * Dh), lv = bthd(B, T, Hkv, Dh, ldv);
    Graph g = new_graph();
    auto stats = g->tensor(fe::graph::Tensor_attributes()
                               .set_name("Stats")
                               .set_uid(STATS_ID)
                               .set_dim({B, H, T, 1})
                               .set_stride({(int64_t)H * T, T, 1, 1})
                               .set_data_type(fe::DataType_t::FLOAT));
    auto opts = fe::graph::SDPA_backward_attributes().set_name("attention_backward").set_attn_scale(attn_scale(Dh));
    opts.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0);
    auto [dQ, dK, dV] = g->sdpa_backward(input(g, "Q", Q_ID, lq), input(g, "K", K_ID, lk), input(g, "V", V_ID, lv),
                                         input(g, "O", O_ID, lq), input(g, "dO", DO_ID, lq), stats, opts);
    output(dQ, DQ_ID, lq);
    output(dK, DK_ID, lk);
    output(dV, DV_ID, lv);
    return build(g, "backward plan", s);
}

static Graph forward_graph(Shape s) {
    static std::map<Shape, Graph> built;
    return cached(built, s, make_forward);
}

static Graph backward_graph(Shape s) {
    static std::map<Shape, Graph> built;
    return cached(built, s, make_backward);
}

static void run(Graph g, std::unordered_map<int64_t, void *> &pack, const char *what) {
    int64_t bytes = 0;
    try {
        check(g->get_workspace_size(bytes), what);
        void *workspace = bytes > 0 ? cuda_scratch(SCRATCH_CUDNN_WORKSPACE, (size_t)bytes) : nullptr;
        check(g->execute(handle(), pack, workspace), what);
    } catch (const std::exception &e) {
        die("%s: cudnn-frontend threw: %s (PGOLF_CUDA_ATTENTION=pgolf runs pgolf's own kernels instead)", what, e.what());
    }
    cuda_profile_mark(what);
}

static __nv_bfloat16 *bf16_scratch(CudaScratch use, size_t n) {
    return (__nv_bfloat16 *)cuda_scratch(use, n * sizeof(__nv_bfloat16));
}

extern "C" int cuda_attention_cudnn_forward(float *y, __nv_bfloat16 *yr, float *lse, const float *q, const float *k,
                                            const float *v, const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh,
                                            int ldv) {
    Graph g = forward_graph(Shape{B, T, H, Hkv, Dh, ldv});
    if (!g) return 0;
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh, nv = gemm_operand_extent(B * T, Hkv * Dh, ldv);
    __nv_bfloat16 *o = yr ? yr : bf16_scratch(SCRATCH_ATTN_O, nq); // cuDNN's O is y's rounding
    std::unordered_map<int64_t, void *> pack = {
        {Q_ID, (void *)cuda_attention_operand(SCRATCH_ATTN_Q, q, qkv_r, nq)},
        {K_ID, (void *)cuda_attention_operand(SCRATCH_ATTN_K, k, qkv_r ? qkv_r + 1 : NULL, nk)},
        {V_ID, (void *)cuda_attention_operand(SCRATCH_ATTN_V, v, qkv_r ? qkv_r + 2 : NULL, nv)},
        {O_ID, o},
        {STATS_ID, lse}};
    run(g, pack, "cudnn attention forward");
    if (y) cuda_bf16_to_float(y, o, nq);
    return 1;
}

// dQ, dK, dV straight into dqr, dkr, dvr where given (the rounded outputs ops.h's attention_backward asks
// for), else into scratch; widened into dq, dk, dv where those are given.
extern "C" int cuda_attention_cudnn_backward(float *dq, float *dk, float *dv, __nv_bfloat16 *dqr, __nv_bfloat16 *dkr,
                                             __nv_bfloat16 *dvr, const float *dy, const __nv_bfloat16 *dyb, const float *y,
                                             const __nv_bfloat16 *yb, const float *lse, const float *q, const float *k,
                                             const float *v, const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh,
                                             int ldv) {
    Graph g = backward_graph(Shape{B, T, H, Hkv, Dh, ldv});
    if (!g) return 0;
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh, nv = gemm_operand_extent(B * T, Hkv * Dh, ldv);
    __nv_bfloat16 *gq = dqr ? dqr : bf16_scratch(SCRATCH_ATTN_DQ, nq), *gk = dkr ? dkr : bf16_scratch(SCRATCH_ATTN_DK, nk),
                  *gv = dvr ? dvr : bf16_scratch(SCRATCH_ATTN_DV, nv); // dV's rows ldv apart in either
    std::unordered_map<int64_t, void *> pack = {
        {Q_ID, (void *)cuda_attention_operand(SCRATCH_ATTN_Q, q, qkv_r, nq)},
        {K_ID, (void *)cuda_attention_operand(SCRATCH_ATTN_K, k, qkv_r ? qkv_r + 1 : NULL, nk)},
        {V_ID, (void *)cuda_attention_operand(SCRATCH_ATTN_V, v, qkv_r ? qkv_r + 2 : NULL, nv)},
        {O_ID, (void *)(yb ? yb : cuda_bf16_copy(SCRATCH_ATTN_O, y, nq))}, // the forward's O again: y holds its values
        {DO_ID, (void *)(dyb ? dyb : cuda_bf16_copy(SCRATCH_ATTN_DY, dy, nq))},
        {STATS_ID, (void *)lse},
        {DQ_ID, gq},
        {DK_ID, gk},
        {DV_ID, gv}};
    run(g, pack, "cudnn attention backward");
    if (dq) cuda_bf16_to_float(dq, gq, nq);
    if (dk) cuda_bf16_to_float(dk, gk, nk);
    if (dv) cuda_copy_columns(dv, nullptr, ldv, gv, ldv, B * T, Hkv * Dh);
    return 1;
}
