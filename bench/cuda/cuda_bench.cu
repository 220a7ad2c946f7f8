// GPU benchmark: blockquant's CUDA kernels beside cuBLAS fp16 and the
// device-to-device copy bound, measured in the same process.
//   bq_cuda_bench OUT_DIR [--quick | --part1 | --part2 | --wide | --wgmma-q3 | --wgmma-q2 |
//                          --wgmma-f16w | --ratio]
// (--part1, --part2: the whole bench in two runs, each under the device
// tool's 10 minutes per call: n = 1..512, then the wide n = 17..64 rows,
// the wgmma forms, the short shapes, quantization and launch modes; give
// each its own OUT_DIR. --wide: the 16-group types' n = 24..64 only;
// --wgmma-*: one wgmma form against the kernels beside it; --ratio: Q4_K
// and cuBLAS fp16 in alternating rounds, BenchInterleaved.)
// Writes OUT_DIR/cuda_bench.json and OUT_DIR/cuda_bench.md (OUT_DIR made if missing).
// Cold: weights rotate over enough buffers to exceed 3x L2, so each launch
// reads its weights from HBM. Hot: one buffer, launched back to back.
// Times are the median over 9 batches of back-to-back launches (CUDA events
// around each batch, divided by its launch count), launch gaps included.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "blockquant/format/type_traits.h"
#include "blockquant_cuda.h"
#include "bq_gemv.cuh"
#include "bq_matmul.cuh"
#include "bq_mma_q8.cuh"
#include "bq_mma_q8_g16.cuh"
#include "bq_wgmma.cuh"
#include "gpu_state.h"
#include "test_util.h"

namespace {

using blockquant::QuantType;
namespace bqc = blockquant::cuda;
using bqtest::TypeInfo;

#define CUBLAS_CHECK(call)                                                     \
  do {                                                                         \
    const cublasStatus_t s_ = (call);                                          \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                         \
      std::fprintf(stderr, "FATAL %s:%d cublas status %d\n", __FILE__, __LINE__, \
                   static_cast<int>(s_));                                      \
      std::exit(2);                                                            \
    }                                                                          \
  } while (0)

struct Row {
  std::string kernel, type, cache;
  int64_t m, k, n;
  double us, weight_bytes, bound_us;
  std::string note;
};

std::vector<Row> g_rows;
double g_copy_gbs = 0.0;
size_t g_l2 = 0;

// Median microseconds per launch of fn(i) (i = launch index) on `stream`.
double TimeUs(const std::function<void(int)>& fn, int per_batch, cudaStream_t stream = nullptr) {
  cudaEvent_t a, b;
  BQ_CUDA_CHECK(cudaEventCreate(&a));
  BQ_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn(i);
  BQ_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  int idx = 0;
  for (int rep = 0; rep < 9; ++rep) {
    BQ_CUDA_CHECK(cudaEventRecord(a, stream));
    for (int i = 0; i < per_batch; ++i) fn(idx++);
    BQ_CUDA_CHECK(cudaEventRecord(b, stream));
    BQ_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.0f;
    BQ_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(1000.0 * ms / per_batch);
  }
  BQ_CUDA_CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void MeasureCopy() {
  const size_t bytes = size_t{1} << 30;
  void *src, *dst;
  BQ_CUDA_CHECK(cudaMalloc(&src, bytes));
  BQ_CUDA_CHECK(cudaMalloc(&dst, bytes));
  BQ_CUDA_CHECK(cudaMemset(src, 1, bytes));
  const double us = TimeUs([&](int) { BQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 5);
  g_copy_gbs = 2.0 * bytes / (us * 1e-6) / 1e9;  // bytes read + bytes written
  std::printf("copy bound: %.0f GB/s (1 GiB D2D, read+write counted)\n", g_copy_gbs);
  cudaFree(src);
  cudaFree(dst);
}

int BuffersForCold(size_t bytes) {
  const size_t want = 3 * g_l2;
  return static_cast<int>(std::max<size_t>(2, (want + bytes - 1) / bytes));
}

// BuffersForCold(its bytes) device copies of host, for cold timings that
// rotate through them. The caller frees them.
template <typename T>
std::vector<T*> ColdCopies(const std::vector<T>& host) {
  const size_t bytes = host.size() * sizeof(T);
  std::vector<T*> copies(static_cast<size_t>(BuffersForCold(bytes)));
  for (T*& p : copies) {
    BQ_CUDA_CHECK(cudaMalloc(&p, bytes));
    BQ_CUDA_CHECK(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice));
  }
  return copies;
}

// A device copy of count f16 values drawn from rng (x of a product).
__half* UploadRandomHalf(int64_t count, bqtest::Rng* rng) {
  std::vector<__half> host(static_cast<size_t>(count));
  for (auto& v : host) v = __float2half(rng->Symmetric());
  __half* dev = nullptr;
  BQ_CUDA_CHECK(cudaMalloc(&dev, host.size() * 2));
  BQ_CUDA_CHECK(cudaMemcpy(dev, host.data(), host.size() * 2, cudaMemcpyHostToDevice));
  return dev;
}

const TypeInfo& Info(QuantType t) {
  for (const TypeInfo& i : bqtest::CudaTypes()) {
    if (i.type == t) return i;
  }
  std::abort();
}

// The operands of a product: copies w of m x k random blocks of
// `type` (enough to rotate through more than L2 for cold timings), n f16
// columns of x, and y.
struct Operands {
  size_t bytes = 0;
  std::vector<uint8_t*> w;
  __half* x = nullptr;
  float* y = nullptr;
  Operands(QuantType type, int64_t m, int64_t k, int64_t n) {
    const std::vector<uint8_t> host = bqtest::MakeBlocks(Info(type), m, k, bqtest::BlockMode::kRealistic, 42);
    bytes = host.size();
    w = ColdCopies(host);
    bqtest::Rng rng(3);
    x = UploadRandomHalf(n * k, &rng);
    BQ_CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(n * m) * 4));
  }
  ~Operands() {
    for (uint8_t* p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(y);
  }
  uint8_t* cold(int i) const { return w[static_cast<size_t>(i) % w.size()]; }  // rotates through the copies
  Operands(const Operands&) = delete;
  Operands& operator=(const Operands&) = delete;
};

// A call the bench relies on must succeed: else the run stops, saying why.
void MustSucceed(const bqc::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "FATAL %s: %s\n", what, st.message.c_str());
    std::exit(2);
  }
}

void AddRow(Row r) {
  r.bound_us = r.weight_bytes / (g_copy_gbs * 1e9) * 1e6;
  std::printf("%-8s %-8s %-5s %6lld x %6lld n=%4lld  %9.2f us  %7.0f GB/s  %5.1f%% of copy bound  %s\n",
              r.kernel.c_str(), r.type.c_str(), r.cache.c_str(), static_cast<long long>(r.m),
              static_cast<long long>(r.k), static_cast<long long>(r.n), r.us, r.weight_bytes / (r.us * 1e-6) / 1e9,
              100.0 * r.bound_us / r.us, r.note.c_str());
  std::fflush(stdout);
  g_rows.push_back(r);
}

// Ours: weights of `type`, m x k, n f16 activations, each kernel in `kernels`.
// MatMul gets a workspace allocated once, as a runtime would pass it
// (with_workspace false: MatMul allocates one per call).
void BenchOurs(QuantType type, int64_t m, int64_t k, int64_t n, const std::vector<bqc::MatMulKernel>& kernels,
               bool hot_too, bool with_workspace = true) {
  const TypeInfo& t = Info(type);
  const Operands op(type, m, k, n);
  const int64_t ws_bytes = bqc::MatMulWorkspaceBytes(type, n, k);
  void* ws = nullptr;
  if (ws_bytes > 0) BQ_CUDA_CHECK(cudaMalloc(&ws, static_cast<size_t>(ws_bytes)));
  for (bqc::MatMulKernel kern : kernels) {
    std::string name = bqc::MatMulKernelName(kern);
    if (!with_workspace) name += " (no workspace)";
    if (kern == bqc::MatMulKernel::kAuto) {
      name = std::string("auto:") +
             bqc::MatMulKernelName(bqc::ChooseMatMulKernel(type, op.w[0], m, k, QuantType::kF16, op.x, n));
    }
    auto run = [&](int i, int which) {
      MustSucceed(bqc::MatMul(type, which < 0 ? op.cold(i) : op.w[0], m, k, QuantType::kF16, op.x, n, op.y, nullptr,
                              kern, with_workspace ? ws : nullptr, ws_bytes),
                  "MatMul");
    };
    const int per_batch = m * k > 50'000'000 ? 20 : 100;
    const double cold = TimeUs([&](int i) { run(i, -1); }, per_batch);
    const double flops = 2.0 * m * k * n;
    char note[96];
    std::snprintf(note, sizeof(note), "%.1f TFLOP/s, %zu buffers", flops / (cold * 1e-6) / 1e12, op.w.size());
    AddRow({"ours " + name, t.name, "cold", m, k, n, cold, static_cast<double>(op.bytes), 0.0, note});
    if (hot_too) {
      const double hot = TimeUs([&](int i) { run(i, 0); }, per_batch);
      std::snprintf(note, sizeof(note), "%.1f TFLOP/s", flops / (hot * 1e-6) / 1e12);
      AddRow({"ours " + name, t.name, "hot", m, k, n, hot, static_cast<double>(op.bytes), 0.0, note});
    }
  }
  cudaFree(ws);
}

// MatMulPlanar on the planar layout (Q2_K, Q3_K, Q6_K): each cold copy of
// the blocks repacked by ToPlanar; the row's note has what a FromPlanar of
// the matrix (MatMulPlanar's restore path) takes, timed writing the same
// blocks back over the cold copies.
void BenchPlanar(QuantType type, int64_t m, int64_t k, int64_t n) {
  const TypeInfo& t = Info(type);
  const Operands op(type, m, k, n);
  std::vector<uint8_t*> planes(op.w.size());
  for (size_t i = 0; i < planes.size(); ++i) {
    BQ_CUDA_CHECK(cudaMalloc(&planes[i], op.bytes));
    MustSucceed(bqc::ToPlanar(type, op.w[i], m, k, planes[i]), "ToPlanar");
  }
  auto plane = [&](int i) { return planes[static_cast<size_t>(i) % planes.size()]; };
  const double restore =
      TimeUs([&](int i) { MustSucceed(bqc::FromPlanar(type, plane(i), m, k, op.cold(i + 1)), "FromPlanar"); }, 10);
  const bool in_place = bqc::MatMulPlanarInPlace(type, planes[0], k, QuantType::kF16, op.x, n);
  const std::string path = in_place ? "gemv_q8" : "restore+auto";
  auto run = [&](int i) {
    MustSucceed(bqc::MatMulPlanar(type, plane(i), m, k, QuantType::kF16, op.x, n, op.y), "MatMulPlanar");
  };
  const double cold = TimeUs(run, m * k > 50'000'000 ? 20 : 100);
  char note[96];
  std::snprintf(note, sizeof(note), "planar layout; FromPlanar %.1f us, %zu buffers", restore, op.w.size());
  AddRow({"ours planar:" + path, t.name, "cold", m, k, n, cold, static_cast<double>(op.bytes), 0.0, note});
  for (uint8_t* p : planes) cudaFree(p);
}

// A launch-bound shape three ways: MatMul calls launched one by one on a
// stream (as in BenchOurs), the same calls captured once into a CUDA graph
// and replayed (GPU time per call), and the host's time to enqueue one call
// while the GPU works through the queue (wall time over kHostCalls calls).
// If the host's time per call exceeds the GPU's, back-to-back calls are
// host-bound.
void BenchLaunchModes(QuantType type, int64_t m, int64_t k, int64_t n) {
  const TypeInfo& t = Info(type);
  const Operands op(type, m, k, n);
  cudaStream_t stream;
  BQ_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const int64_t ws_bytes = bqc::MatMulWorkspaceBytes(type, n, k);
  void* ws = nullptr;
  if (ws_bytes > 0) BQ_CUDA_CHECK(cudaMalloc(&ws, static_cast<size_t>(ws_bytes)));
  const std::string name =
      std::string("ours auto:") +
      bqc::MatMulKernelName(bqc::ChooseMatMulKernel(type, op.w[0], m, k, QuantType::kF16, op.x, n));
  auto call = [&](int i, bool cold) {
    MustSucceed(bqc::MatMul(type, cold ? op.cold(i) : op.w[0], m, k, QuantType::kF16, op.x, n, op.y, stream,
                            bqc::MatMulKernel::kAuto, ws, ws_bytes),
                "MatMul");
  };
  const double bytes = static_cast<double>(op.bytes);
  constexpr int kGraphCalls = 20;
  for (const bool cold : {true, false}) {
    const char* cache = cold ? "cold" : "hot";
    const double streamed = TimeUs([&](int i) { call(i, cold); }, kGraphCalls, stream);
    AddRow({name + " stream", t.name, cache, m, k, n, streamed, bytes, 0.0, "20 launches per batch"});
    // A capture this runtime refuses is reported, not fatal: the rows after
    // it still get measured and written.
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
    if (err == cudaSuccess) {
      for (int i = 0; i < kGraphCalls; ++i) call(i, cold);
      err = cudaStreamEndCapture(stream, &graph);
    }
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (err != cudaSuccess) {
      std::printf("%s graph: capture failed: %s\n", name.c_str(), cudaGetErrorString(err));
      cudaGetLastError();
    } else {
      const double graphed =
          TimeUs([&](int) { BQ_CUDA_CHECK(cudaGraphLaunch(exec, stream)); }, 5, stream) / kGraphCalls;
      AddRow({name + " graph", t.name, cache, m, k, n, graphed, bytes, 0.0, "a CUDA graph of 20 calls, per call"});
    }
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
  // Host time per call: under the launch queue's depth, so that enqueueing
  // never waits for the GPU.
  constexpr int kHostCalls = 400;
  std::vector<double> per_call;
  for (int rep = 0; rep < 5; ++rep) {
    BQ_CUDA_CHECK(cudaStreamSynchronize(stream));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kHostCalls; ++i) call(i, true);
    const auto t1 = std::chrono::steady_clock::now();
    per_call.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / kHostCalls);
  }
  BQ_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::sort(per_call.begin(), per_call.end());
  // No weight bytes: GB/s and % of the bound mean nothing for host time.
  AddRow({name + " host", t.name, "-", m, k, n, per_call[2], 0.0, 0.0,
          "host time to enqueue one MatMul call (not GPU time)"});
  cudaFree(ws);
  BQ_CUDA_CHECK(cudaStreamDestroy(stream));
}

// Header-only launches of tensor-core configurations the library does not
// pick (warps per CTA, pipeline depth), to show what the choice is worth.
template <QuantType kType, int kWarps, int kStages>
void BenchVariant(int64_t m, int64_t k, int64_t n) {
  const TypeInfo& t = Info(kType);
  const Operands op(kType, m, k, n);
  const double us = TimeUs(
      [&](int i) {
        BQ_CUDA_CHECK((bqc::LaunchMmaMatMul<kType, __half, 1, kWarps, kStages>(op.cold(i), m, k, op.x, n, op.y, nullptr)));
      },
      20);
  char name[64];
  std::snprintf(name, sizeof(name), "ours mma8 %dw %ds", kWarps, kStages);
  AddRow({name, t.name, "cold", m, k, n, us, static_cast<double>(op.bytes), 0.0, "variant"});
}

// gemv_q8 configurations the library does not pick (units in flight per
// lane, CTAs per SM, launched without programmatic dependent launch),
// through the header-only launcher.
// kPlanar: the weights read as the planar layout (random bytes either way).
template <QuantType kType, int kN, int kUnroll, int kMinBlocks, bool kPlanar = false>
void BenchGemvVariant(int64_t m, int64_t k, bool overlap_previous = true) {
  const TypeInfo& t = Info(kType);
  const Operands op(kType, m, k, kN);
  const double us = TimeUs(
      [&](int i) {
        BQ_CUDA_CHECK((bqc::LaunchGemvQ8<kType, __half, kN, 8, kUnroll, kMinBlocks, kPlanar>(
            op.cold(i), m, k, op.x, op.y, nullptr, overlap_previous)));
      },
      20);
  char name[64];
  std::snprintf(name, sizeof(name), "ours gemv_q8%s u%d b%d%s", kPlanar ? " planar" : "", kUnroll, kMinBlocks,
                overlap_previous ? "" : " no-pdl");
  AddRow({name, t.name, "cold", m, k, kN, us, static_cast<double>(op.bytes), 0.0, "variant"});
}

// Times launch(weights, workspace) over cold weights of `type` with a
// workspace of ws_bytes, as a variant row named `name`.
template <typename Launch>
void BenchScratchVariant(QuantType type, int64_t m, int64_t k, int64_t n, int64_t ws_bytes, const char* name,
                         Launch launch) {
  const Operands op(type, m, k, n);
  uint8_t* ws;
  BQ_CUDA_CHECK(cudaMalloc(&ws, static_cast<size_t>(ws_bytes)));
  const double us = TimeUs([&](int i) { BQ_CUDA_CHECK(launch(op, op.cold(i), ws)); }, 20);
  AddRow({name, Info(type).name, "cold", m, k, n, us, static_cast<double>(op.bytes), 0.0, "variant"});
  cudaFree(ws);
}

// mma_q8 through the header-only launcher: warps per CTA, stages of the
// per-warp ring, CTAs per SM.
template <int kWarps, int kStages, int kMinBlocks>
void BenchMmaQ8Variant(int64_t m, int64_t k, int64_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "ours mma_q8 %dw %ds b%d", kWarps, kStages, kMinBlocks);
  BenchScratchVariant(QuantType::kQ4_K, m, k, n, bqc::MmaQ8WorkspaceBytes(n, k), name,
                      [&](const Operands& op, const uint8_t* w, uint8_t* ws) {
                        return bqc::LaunchMmaQ8<QuantType::kQ4_K, __half, kWarps, kStages, kMinBlocks>(
                            w, m, k, op.x, n, op.y, ws, nullptr);
                      });
}

// The same for the 16-group types' mma_q8 (bq_mma_q8_g16.cuh), with the
// weights' path: TMA rings or direct loads.
template <QuantType kType, int kWarps, int kStages, int kMinBlocks, bool kTma>
void BenchMmaQ8G16Variant(int64_t m, int64_t k, int64_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "ours mma_q8 %s %dw %ds b%d", kTma ? "tma" : "direct", kWarps, kStages,
                kMinBlocks);
  BenchScratchVariant(kType, m, k, n, bqc::MmaQ8G16WorkspaceBytes(n, k), name,
                      [&](const Operands& op, const uint8_t* w, uint8_t* ws) {
                        return bqc::LaunchMmaQ8G16<kType, __half, kWarps, kStages, kMinBlocks, kTma>(
                            w, m, k, op.x, n, op.y, ws, nullptr);
                      });
}
template <QuantType kType>
void BenchMmaQ8G16Variants(int64_t m, int64_t k) {
  for (int64_t n : {8, 16}) {
    BenchMmaQ8G16Variant<kType, 8, 2, 2, false>(m, k, n);
    BenchMmaQ8G16Variant<kType, 8, 2, 2, true>(m, k, n);
    BenchMmaQ8G16Variant<kType, 4, 2, 4, true>(m, k, n);
    BenchMmaQ8G16Variant<kType, 4, 3, 4, true>(m, k, n);
    BenchMmaQ8G16Variant<kType, 2, 2, 8, true>(m, k, n);
  }
}

// The wide kernel (n > 16): consumer warps (16 rows each) per K group, K
// groups, stages (CTAs per SM: 1).
template <QuantType kType, int kRowWarps, int kKSplit, int kStages>
void BenchMmaQ8G16WideVariant(int64_t m, int64_t k, int64_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "ours mma_q8 wide %dw x%d %ds", kRowWarps, kKSplit, kStages);
  BenchScratchVariant(kType, m, k, n, bqc::MmaQ8G16WorkspaceBytes(n, k), name,
                      [&](const Operands& op, const uint8_t* w, uint8_t* ws) {
                        return bqc::LaunchMmaQ8G16Wide<kType, __half, kRowWarps, kKSplit, kStages>(
                            w, m, k, op.x, n, op.y, ws, nullptr);
                      });
}
// The library picks among these by type, rows and n (launch.cuh's
// LaunchMmaQ8G16WideFor). Stages are a multiple of the K groups (the kernel
// asserts it); 2w x4 8s would not fit Q2_K's stages at n = 64. On the short
// shape 4w x1 3s ran 2-3x slower than the rest (H200, 2026-12-03), so it
// is left out there; n = 24 and 48 show where a setting stops winning. With
// F16 x, kAuto takes wgmma on the tall shape for Q3_K, and for Q2_K from
// n = 33: these rows are its alternatives there.
template <QuantType kType>
void BenchMmaQ8G16WideVariants(int64_t m, int64_t k) {
  if (m >= 16384) {
    for (int64_t n : {24, 32, 64}) {
      BenchMmaQ8G16WideVariant<kType, 4, 1, 3>(m, k, n);
      BenchMmaQ8G16WideVariant<kType, 2, 2, 4>(m, k, n);
      BenchMmaQ8G16WideVariant<kType, 8, 1, 2>(m, k, n);
      BenchMmaQ8G16WideVariant<kType, 4, 2, 4>(m, k, n);
      BenchMmaQ8G16WideVariant<kType, 2, 4, 4>(m, k, n);
    }
    return;
  }
  for (int64_t n : {24, 32, 48, 64}) {
    BenchMmaQ8G16WideVariant<kType, 2, 2, 4>(m, k, n);
    BenchMmaQ8G16WideVariant<kType, 2, 4, 4>(m, k, n);
    BenchMmaQ8G16WideVariant<kType, 1, 4, 8>(m, k, n);
  }
}

// The f16-weights wgmma through the header launcher: columns and
// warpgroups per CTA, stages, and whether a producer warp streams the
// stages ("inline": thread 0 does, between barriers), and kBatch (bN: k16
// steps decoded ahead); the K split as the library picks it (the library
// takes 128 x 2 x 2 b8 with the producer warp past n = 64, 64 x 2 x 3 b4
// beyond 32 and to n = 128 on short matrices, 128 x 4 x 2 b4 inline at n =
// 65..128 on tall ones).
template <QuantType kType, int kBN, int kWGs, int kStages, bool kProducerWarp = true, int kBatch = 4>
void BenchWgmmaF16WVariant(int64_t m, int64_t k, int64_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "ours wgmma_f16w %dc %dwg %ds b%d%s", kBN, kWGs, kStages, kBatch,
                kProducerWarp ? "" : " inline");
  BenchScratchVariant(kType, m, k, n, 16, name, [&](const Operands& op, const uint8_t* w, uint8_t*) {
    return bqc::LaunchWgmmaMatMul<kType, kBN, kWGs, kStages, kBatch, 1, true, kProducerWarp>(
        w, m, k, op.x, n, op.y, nullptr, nullptr, bqc::kWgmmaKSplitAuto);
  });
}

// How many clusters of 2 and 4 CTAs of an f16-weights wgmma kernel the GPU
// holds at once (what the automatic K split asks), to the log.
template <QuantType kType, int kBN, int kWGs, int kStages, int kBatch, bool kProducerWarp = true>
void PrintWgmmaClusters() {
  auto kernel = bqc::WgmmaMatMulKernel<kType, kBN, kWGs, kStages, kBatch, 1, true, kProducerWarp>;
  constexpr int smem = bqc::WgmmaSmemBytes<kType, kBN, kWGs, kStages, true>();
  BQ_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int threads = kWGs * 128 + (kProducerWarp ? 32 : 0);
  std::printf("wgmma_f16w %dc %dwg %ds%s, %d B of shared memory: %d clusters of 2, %d of 4 at once\n", kBN, kWGs,
              kStages, kProducerWarp ? "" : " inline", smem, bqc::MaxActiveClusters(kernel, threads, smem, 2),
              bqc::MaxActiveClusters(kernel, threads, smem, 4));
}

// cuBLAS fp16 on f16 weights (random, |w| <= 0.05), m x k, in enough
// copies to rotate through more than L2, n f16 columns of x, f16 out.
struct CublasOperands {
  size_t bytes = 0;
  std::vector<__half*> w;
  __half *x = nullptr, *y = nullptr;
  CublasOperands(int64_t m, int64_t k, int64_t n) : bytes(static_cast<size_t>(m * k) * 2) {
    std::vector<__half> host(static_cast<size_t>(m * k));
    bqtest::Rng rng(11);
    for (auto& v : host) v = __float2half(0.05f * rng.Symmetric());
    w = ColdCopies(host);
    x = UploadRandomHalf(n * k, &rng);  // the same stream, after the weights
    BQ_CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(n * m) * 2));
  }
  ~CublasOperands() {
    for (__half* p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(y);
  }
  CublasOperands(const CublasOperands&) = delete;
  CublasOperands& operator=(const CublasOperands&) = delete;
  // Row-major y[n][m] = x[n][k] W[m][k]^T is column-major y^T = W^T(op T) x^T.
  void Run(cublasHandle_t h, int64_t m, int64_t k, int64_t n, int i, bool rotate) const {
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n),
                              static_cast<int>(k), &alpha, w[rotate ? static_cast<size_t>(i) % w.size() : 0],
                              CUDA_R_16F, static_cast<int>(k), x, CUDA_R_16F, static_cast<int>(k), &beta, y,
                              CUDA_R_16F, static_cast<int>(m), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
};

void BenchCublas(cublasHandle_t h, int64_t m, int64_t k, int64_t n, bool hot_too) {
  const CublasOperands op(m, k, n);
  const int per_batch = m * k > 50'000'000 ? 20 : 100;
  const double flops = 2.0 * m * k * n;
  const double cold = TimeUs([&](int i) { op.Run(h, m, k, n, i, true); }, per_batch);
  char note[96];
  std::snprintf(note, sizeof(note), "%.1f TFLOP/s, %zu buffers", flops / (cold * 1e-6) / 1e12, op.w.size());
  AddRow({"cublas fp16", "F16", "cold", m, k, n, cold, static_cast<double>(op.bytes), 0.0, note});
  if (hot_too) {
    const double hot = TimeUs([&](int i) { op.Run(h, m, k, n, i, false); }, per_batch);
    std::snprintf(note, sizeof(note), "%.1f TFLOP/s", flops / (hot * 1e-6) / 1e12);
    AddRow({"cublas fp16", "F16", "hot", m, k, n, hot, static_cast<double>(op.bytes), 0.0, note});
  }
}

// Ours (kAuto, with a workspace) and cuBLAS fp16 timed in alternating
// rounds, weights cold. A ratio between rows timed apart depends on the
// GPU's state: after about a tenth of a second of back-to-back products an
// H200 lowered its SM clock at its power cap (1980 -> 1530-1920 MHz), which
// slowed ours (4096 x 14336, n = 512: 100 -> up to 120 us) far more than
// cuBLAS (84 -> up to 90; bench/results/cuda_ratio_h200.md). Each row's note
// has the SM clock, power and throttle reasons NVML saw while it ran.
void BenchInterleaved(cublasHandle_t h, QuantType type, int64_t m, int64_t k, int64_t n, int rounds) {
  bqbench::GpuStateSampler state;
  const Operands ours(type, m, k, n);
  const CublasOperands ref(m, k, n);
  const int64_t ws_bytes = bqc::MatMulWorkspaceBytes(type, n, k);
  void* ws = nullptr;
  if (ws_bytes > 0) BQ_CUDA_CHECK(cudaMalloc(&ws, static_cast<size_t>(ws_bytes)));
  const bqc::MatMulKernel picked = bqc::ChooseMatMulKernel(type, ours.w[0], m, k, QuantType::kF16, ours.x, n);
  const std::string name = std::string("ours auto:") + bqc::MatMulKernelName(picked);
  const int per_batch = m * k > 50'000'000 ? 20 : 100;
  // TimeUs of fn, and what the GPU ran at meanwhile.
  auto timed = [&](const std::function<void(int)>& fn, std::string* gpu) {
    state.Start();
    const double us = TimeUs(fn, per_batch);
    state.Stop();
    *gpu = state.Summary();
    return us;
  };
  for (int r = 0; r < rounds; ++r) {
    std::string ours_gpu, ref_gpu;
    const double a = timed(
        [&](int i) {
          MustSucceed(bqc::MatMul(type, ours.cold(i), m, k, QuantType::kF16, ours.x, n, ours.y, nullptr,
                                  bqc::MatMulKernel::kAuto, ws, ws_bytes),
                      "MatMul");
        },
        &ours_gpu);
    const double b = timed([&](int i) { ref.Run(h, m, k, n, i, true); }, &ref_gpu);
    char note[64];
    std::snprintf(note, sizeof(note), "interleaved round %d: %.3fx cuBLAS fp16; ", r, a / b);
    AddRow({name, Info(type).name, "cold", m, k, n, a, static_cast<double>(ours.bytes), 0.0, note + ours_gpu});
    std::snprintf(note, sizeof(note), "interleaved round %d; ", r);
    AddRow({"cublas fp16", "F16", "cold", m, k, n, b, static_cast<double>(ref.bytes), 0.0, note + ref_gpu});
  }
  cudaFree(ws);
}

// The baseline a batched kernel of a quantized type has to beat: each call
// dequantizes the (cold) weights to f16 with Dequantize and runs cuBLAS fp16
// on them, f32 out (what a runtime without an int8 kernel for the type would
// do; the weights are then rounded to f16).
void BenchDequantCublas(cublasHandle_t h, QuantType type, int64_t m, int64_t k, int64_t n) {
  const TypeInfo& t = Info(type);
  const Operands op(type, m, k, n);
  __half* wf = nullptr;
  BQ_CUDA_CHECK(cudaMalloc(&wf, static_cast<size_t>(m * k) * 2));
  const float alpha = 1.0f, beta = 0.0f;
  auto run = [&](int i) {
    MustSucceed(bqc::Dequantize(type, op.cold(i), m, k, QuantType::kF16, wf), "Dequantize");
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n),
                              static_cast<int>(k), &alpha, wf, CUDA_R_16F, static_cast<int>(k), op.x, CUDA_R_16F,
                              static_cast<int>(k), &beta, op.y, CUDA_R_32F, static_cast<int>(m), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  };
  const double cold = TimeUs(run, m * k > 50'000'000 ? 20 : 100);
  char note[96];
  std::snprintf(note, sizeof(note), "Dequantize to f16, then cuBLAS; %zu buffers", op.w.size());
  AddRow({"dequant+cublas", t.name, "cold", m, k, n, cold, static_cast<double>(op.bytes), 0.0, note});
  cudaFree(wf);
}

void BenchDequantQuant() {
  const int64_t m = 28672, k = 8192;
  const TypeInfo& t = Info(QuantType::kQ4_K);
  const std::vector<uint8_t> host = bqtest::MakeBlocks(t, m, k, bqtest::BlockMode::kRealistic, 5);
  uint8_t* w;
  __half* out;
  BQ_CUDA_CHECK(cudaMalloc(&w, host.size()));
  BQ_CUDA_CHECK(cudaMalloc(&out, static_cast<size_t>(m * k) * 2));
  BQ_CUDA_CHECK(cudaMemcpy(w, host.data(), host.size(), cudaMemcpyHostToDevice));
  const double us = TimeUs(
      [&](int) { MustSucceed(bqc::Dequantize(QuantType::kQ4_K, w, m, k, QuantType::kF16, out), "Dequantize"); },
      10);
  // The bound for dequantization counts the f16 writes too.
  const double bytes = static_cast<double>(host.size()) + 2.0 * m * k;
  AddRow({"ours dequantize->f16", "Q4_K", "cold", m, k, 0, us, bytes, 0.0, "bytes = blocks read + f16 written"});
  cudaFree(out);
  float* xf;
  uint8_t* q;
  BQ_CUDA_CHECK(cudaMalloc(&xf, static_cast<size_t>(m * k) * 4));
  BQ_CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(m * k / 32 * 34)));
  BQ_CUDA_CHECK(cudaMemset(xf, 0x3C, static_cast<size_t>(m * k) * 4));
  const double qus = TimeUs(
      [&](int) { MustSucceed(bqc::Quantize(QuantType::kQ8_0, xf, m, k, q), "Quantize"); },
      10);
  AddRow({"ours quantize f32->", "Q8_0", "cold", m, k, 0, qus, 4.0 * m * k + m * k / 32 * 34.0, 0.0,
          "bytes = f32 read + blocks written"});
  // The other types run the reference quantizer per block: time them on
  // weight-like data (a constant input would take the early exits).
  {
    std::vector<float> hx(static_cast<size_t>(m * k));
    bqtest::Rng rng(17);
    for (auto& v : hx) {
      const float u = rng.Symmetric() + rng.Symmetric() + rng.Symmetric();  // roughly bell-shaped
      v = (rng.Uniform() < 0.01f ? 20.0f : 1.0f) * 0.02f * u;
    }
    BQ_CUDA_CHECK(cudaMemcpy(xf, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  }
  BQ_CUDA_CHECK(cudaFree(q));
  BQ_CUDA_CHECK(cudaMalloc(&q, static_cast<size_t>(m * k / 256 * 210)));  // the largest: Q6_K
  for (QuantType type : {QuantType::kQ4_K, QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ5_K, QuantType::kQ6_K,
                         QuantType::kQ4_0}) {
    const double kus = TimeUs(
        [&](int) { MustSucceed(bqc::Quantize(type, xf, m, k, q), "Quantize"); },
        1);
    AddRow({"ours quantize f32->", blockquant::TypeName(type), "cold", m, k, 0, kus,
            4.0 * m * k + static_cast<double>(blockquant::RowBytes(type, k)) * m, 0.0,
            type == QuantType::kQ4_0 ? "reference, a thread per block; bytes = f32 read + blocks written"
                                     : "reference steps, a lane per group; bytes = f32 read + blocks written"});
  }
  cudaFree(xf);
  cudaFree(q);
  cudaFree(w);
}

// Writes every row so far to cuda_bench.json and cuda_bench.md, each through
// a temporary file renamed into place: main calls it after each section, so
// that a run stopped by a time limit keeps whole tables of what it measured.
void Write(const std::string& dir, const cudaDeviceProp& prop) {
  const std::string jpath = dir + "/cuda_bench.json", mdpath = dir + "/cuda_bench.md";
  FILE* j = std::fopen((jpath + ".tmp").c_str(), "w");
  FILE* md = std::fopen((mdpath + ".tmp").c_str(), "w");
  if (!j || !md) {
    std::fprintf(stderr, "cannot write to %s\n", dir.c_str());
    std::exit(2);
  }
  std::fprintf(j, "{\n  \"device\": \"%s\",\n  \"sms\": %d,\n  \"l2_bytes\": %zu,\n  \"copy_gbs\": %.1f,\n  \"rows\": [\n",
               prop.name, prop.multiProcessorCount, g_l2, g_copy_gbs);
  std::fprintf(md, "# CUDA bench: %s, %d SMs, L2 %.0f MB, D2D copy %.0f GB/s (read+write)\n\n", prop.name,
               prop.multiProcessorCount, g_l2 / 1e6, g_copy_gbs);
  std::fprintf(md, "| kernel | type | weights | out x in | n | time (us) | GB/s of weights | copy bound (us) | %% of bound | note |\n");
  std::fprintf(md, "|---|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < g_rows.size(); ++i) {
    const Row& r = g_rows[i];
    std::fprintf(j,
                 "    {\"kernel\": \"%s\", \"type\": \"%s\", \"cache\": \"%s\", \"m\": %lld, \"k\": %lld, \"n\": %lld, "
                 "\"us\": %.3f, \"bytes\": %.0f, \"bound_us\": %.3f, \"note\": \"%s\"}%s\n",
                 r.kernel.c_str(), r.type.c_str(), r.cache.c_str(), static_cast<long long>(r.m),
                 static_cast<long long>(r.k), static_cast<long long>(r.n), r.us, r.weight_bytes, r.bound_us,
                 r.note.c_str(), i + 1 < g_rows.size() ? "," : "");
    // One decimal in the share of the bound: whole percent showed 89.8% as 90%, a goal's line.
    std::fprintf(md, "| %s | %s | %s | %lld x %lld | %lld | %.1f | %.0f | %.1f | %.1f%% | %s |\n", r.kernel.c_str(),
                 r.type.c_str(), r.cache.c_str(), static_cast<long long>(r.m), static_cast<long long>(r.k),
                 static_cast<long long>(r.n), r.us, r.weight_bytes / (r.us * 1e-6) / 1e9, r.bound_us,
                 100.0 * r.bound_us / r.us, r.note.c_str());
  }
  std::fprintf(j, "  ]\n}\n");
  const bool j_closed = std::fclose(j) == 0, md_closed = std::fclose(md) == 0;
  if (!j_closed || !md_closed || std::rename((jpath + ".tmp").c_str(), jpath.c_str()) != 0 ||
      std::rename((mdpath + ".tmp").c_str(), mdpath.c_str()) != 0) {
    std::fprintf(stderr, "cannot write to %s\n", dir.c_str());
    std::exit(2);
  }
}

}  // namespace

// The 16-group types beyond n = 16: mma_q8's wide kernel (kAuto to n = 64)
// against the f16 mma kernels and cuBLAS fp16, and its settings; with
// `full`, dequantize+cuBLAS beside them and n = 512 (mma64), and not Q2_K
// and Q3_K, which the full run measures in BenchWgmmaG16.
void BenchWide(cublasHandle_t h, int64_t m, int64_t k, bool full) {
  using K = bqc::MatMulKernel;
  BenchCublas(h, m, k, 32, false);
  if (!full) BenchCublas(h, m, k, 64, false);  // the full run has it already
  BenchCublas(h, 4096, 14336, 32, false);
  BenchCublas(h, 4096, 14336, 64, false);
  for (QuantType t : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ6_K, QuantType::kQ8_0, QuantType::kQ4_0}) {
    if (full && (t == QuantType::kQ2_K || t == QuantType::kQ3_K)) continue;
    BenchOurs(t, m, k, 24, {K::kAuto}, false);
    BenchOurs(t, m, k, 32, {K::kAuto, K::kMma32}, false);
    BenchOurs(t, m, k, 64, {K::kAuto, K::kMma64}, false);
    if (full) BenchDequantCublas(h, t, m, k, 64);
    BenchOurs(t, 4096, 14336, 32, {K::kAuto, K::kMma32}, false);
    BenchOurs(t, 4096, 14336, 64, {K::kAuto, K::kMma64}, false);
    if (full) {
      BenchOurs(t, 4096, 14336, 512, {K::kAuto}, false);
      BenchDequantCublas(h, t, 4096, 14336, 512);
    }
  }
  BenchMmaQ8G16WideVariants<QuantType::kQ2_K>(m, k);
  BenchMmaQ8G16WideVariants<QuantType::kQ3_K>(m, k);
  BenchMmaQ8G16WideVariants<QuantType::kQ6_K>(m, k);
  BenchMmaQ8G16WideVariants<QuantType::kQ8_0>(m, k);
  BenchMmaQ8G16WideVariants<QuantType::kQ4_0>(m, k);
  BenchMmaQ8G16WideVariants<QuantType::kQ2_K>(4096, 14336);
  BenchMmaQ8G16WideVariants<QuantType::kQ3_K>(4096, 14336);
  BenchMmaQ8G16WideVariants<QuantType::kQ6_K>(4096, 14336);
  BenchMmaQ8G16WideVariants<QuantType::kQ8_0>(4096, 14336);
  BenchMmaQ8G16WideVariants<QuantType::kQ4_0>(4096, 14336);
}

// The wgmma of a 16-value-group type (Q2_K, Q3_K; f16 x) against the
// kernels of the 16-group types beside it (the wide mma_q8 to n = 64, mma64
// beyond), dequantize+cuBLAS and cuBLAS fp16; with_q4k: Q4_K's wgmma too.
// kAuto's rows show which kernel it takes.
void BenchWgmmaG16(cublasHandle_t h, QuantType t, int64_t m, int64_t k, bool with_q4k) {
  using K = bqc::MatMulKernel;
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{m, k}, std::pair<int64_t, int64_t>{4096, 14336}}) {
    for (int64_t n : {16, 24, 32, 64}) BenchOurs(t, rows, cols, n, {K::kAuto, K::kWgmma, K::kMmaQ8}, false);
    for (int64_t n : {128, 512}) BenchOurs(t, rows, cols, n, {K::kAuto, K::kWgmma, K::kMma64}, false);
    if (with_q4k) {
      BenchOurs(QuantType::kQ4_K, rows, cols, 64, {K::kAuto}, false);
      BenchOurs(QuantType::kQ4_K, rows, cols, 512, {K::kAuto}, false);
    }
    BenchDequantCublas(h, t, rows, cols, 512);
    for (int64_t n : {32, 64, 128, 512}) BenchCublas(h, rows, cols, n, false);
  }
}

// Q4_K's and Q5_K's f16-weights wgmma against the exact one and cuBLAS
// fp16, on both shapes, with tile variants at n = 128 and 512; Q6_K's,
// Q8_0's and Q4_0's against mma64.
void BenchWgmmaF16W(cublasHandle_t h, int64_t m, int64_t k) {
  using K = bqc::MatMulKernel;
  // Q6_K, Q8_0 and Q4_0 on the f16-weights kernel (forced) against what
  // kAuto runs (the wide mma_q8 to n = 64, mma64 past it), and dequantizing
  // to f16 for cuBLAS.
  for (QuantType t : {QuantType::kQ6_K, QuantType::kQ8_0, QuantType::kQ4_0}) {
    for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{4096, 14336}, std::pair<int64_t, int64_t>{m, k}}) {
      for (int64_t n : {32, 64, 128, 512}) BenchOurs(t, rows, cols, n, {K::kWgmmaF16W, K::kAuto}, false);
    }
    BenchDequantCublas(h, t, 4096, 14336, 512);
  }
  // The 4-warpgroup rule (launch.cuh's WgmmaFourWarpgroupsWin) on a second
  // tall shape (160 tiles of 128 rows) and at n = 96: kAuto against the
  // 2-warpgroup tile it replaced.
  for (const auto& [rows, n] : {std::pair<int64_t, int64_t>{20480, 128}, std::pair<int64_t, int64_t>{m, 96}}) {
    BenchOurs(QuantType::kQ4_K, rows, k, n, {K::kAuto}, false);
    BenchWgmmaF16WVariant<QuantType::kQ4_K, 128, 2, 2, true, 8>(rows, k, n);
    BenchCublas(h, rows, k, n, false);
  }
  PrintWgmmaClusters<QuantType::kQ4_K, 128, 2, 2, 8>();  // the library's tiles
  PrintWgmmaClusters<QuantType::kQ4_K, 64, 2, 3, 4>();
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{m, k}, std::pair<int64_t, int64_t>{4096, 14336}}) {
    for (int64_t n : {17, 32, 64, 128, 512}) {
      BenchOurs(QuantType::kQ4_K, rows, cols, n, {K::kAuto, K::kWgmma, K::kWgmmaF16W}, false);
    }
    for (int64_t n : {64, 512}) BenchOurs(QuantType::kQ5_K, rows, cols, n, {K::kAuto, K::kWgmma, K::kWgmmaF16W}, false);
    for (int64_t n : {128, 512}) {
      // The library's 2-warpgroup 128-column tile, decoding 4 steps ahead
      // instead of 8, and without its producer warp; 4 warpgroups (the
      // library's tile at n = 65..128 on tall matrices).
      BenchWgmmaF16WVariant<QuantType::kQ4_K, 128, 2, 2, true, 8>(rows, cols, n);
      BenchWgmmaF16WVariant<QuantType::kQ4_K, 128, 2, 2, true, 4>(rows, cols, n);
      BenchWgmmaF16WVariant<QuantType::kQ4_K, 128, 2, 2, false, 8>(rows, cols, n);
      BenchWgmmaF16WVariant<QuantType::kQ4_K, 128, 4, 2, false>(rows, cols, n);
    }
    BenchDequantCublas(h, QuantType::kQ4_K, rows, cols, 512);
    for (int64_t n : {32, 64, 128, 512}) BenchCublas(h, rows, cols, n, false);
  }
}

int main(int argc, char** argv) {
  const std::string mode = argc > 2 ? argv[2] : "";
  const std::vector<std::string> modes = {"",          "--quick",     "--part1",    "--part2", "--wide",
                                          "--wgmma-q3", "--wgmma-q2", "--wgmma-f16w", "--ratio"};
  if (argc < 2 || argc > 3 || std::find(modes.begin(), modes.end(), mode) == modes.end()) {
    std::string options;
    for (size_t i = 1; i < modes.size(); ++i) options += (i > 1 ? " | " : "") + modes[i];
    std::fprintf(stderr, "usage: %s OUT_DIR [%s]\n", argv[0], options.c_str());
    return 2;
  }
  const bool quick = mode == "--quick";
  const bool part1 = mode == "--part1", part2 = mode == "--part2";
  const bool wide_only = mode == "--wide";
  const bool wgmma_q3_only = mode == "--wgmma-q3";
  const bool wgmma_q2_only = mode == "--wgmma-q2";
  const bool wgmma_f16w_only = mode == "--wgmma-f16w";
  const bool ratio_only = mode == "--ratio";
  // The tables are written at checkpoints and at the end: a folder that
  // cannot be made fails here, not after the run.
  std::error_code dir_error;
  std::filesystem::create_directories(argv[1], dir_error);
  if (dir_error) {
    std::fprintf(stderr, "cannot create %s: %s\n", argv[1], dir_error.message().c_str());
    return 2;
  }
  cudaDeviceProp prop;
  BQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  g_l2 = static_cast<size_t>(prop.l2CacheSize);
  std::printf("device: %s, %d SMs, L2 %zu bytes\n", prop.name, prop.multiProcessorCount, g_l2);
  MeasureCopy();
  cublasHandle_t h;
  CUBLAS_CHECK(cublasCreate(&h));

  using K = bqc::MatMulKernel;
  const int64_t M = 28672, Kd = 8192;
  if (wide_only || wgmma_q3_only || wgmma_q2_only || wgmma_f16w_only || ratio_only) {
    if (wide_only) BenchWide(h, M, Kd, false);
    if (ratio_only) {
      // The issue's Q4_K goals: n = 512 against cuBLAS, and the small
      // batches' absolute times, in the state a long run leaves the GPU in.
      BenchInterleaved(h, QuantType::kQ4_K, 4096, 14336, 512, 10);
      for (int64_t n : {1, 8, 16, 64}) BenchInterleaved(h, QuantType::kQ4_K, M, Kd, n, 4);
    }
    if (wgmma_q3_only) BenchWgmmaG16(h, QuantType::kQ3_K, M, Kd, true);
    if (wgmma_q2_only) BenchWgmmaG16(h, QuantType::kQ2_K, M, Kd, true);
    if (wgmma_f16w_only) BenchWgmmaF16W(h, M, Kd);
    cublasDestroy(h);
    Write(argv[1], prop);
    return 0;
  }
  if (!part2) {
    // GEMV, n = 1.
    BenchOurs(QuantType::kQ4_K, M, Kd, 1, {K::kAuto, K::kMmaQ8, K::kMma8, K::kSimple}, true);
    if (!quick) {
      for (QuantType t : {QuantType::kQ8_0, QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ6_K, QuantType::kQ5_K,
                          QuantType::kQ4_0}) {
        BenchOurs(t, M, Kd, 1, {K::kAuto, K::kMma8}, false);
      }
    }
    // The planar layout, the GGUF rows above beside it.
    for (QuantType t : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ6_K}) {
      BenchPlanar(t, M, Kd, 1);
      if (!quick) {
        BenchPlanar(t, M, Kd, 2);
        BenchOurs(t, M, Kd, 2, {K::kAuto}, false);
        BenchPlanar(t, 4096, 14336, 1);
      }
    }
    if (!quick) {
      // The types of the 16-group mma_q8 (kAuto from n = 3) against gemv_q8
      // (in passes of up to 4 columns beyond n = 4) and mma8/mma16.
      for (QuantType t : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ6_K, QuantType::kQ8_0, QuantType::kQ4_0}) {
        BenchOurs(t, M, Kd, 2, {K::kMmaQ8}, false);
        BenchOurs(t, M, Kd, 3, {K::kAuto, K::kGemvQ8}, false);
        BenchOurs(t, M, Kd, 4, {K::kAuto, K::kGemvQ8}, false);
        BenchOurs(t, M, Kd, 5, {K::kAuto, K::kGemvQ8}, false);
        BenchOurs(t, M, Kd, 8, {K::kAuto, K::kGemvQ8, K::kMma8}, false);
        BenchOurs(t, M, Kd, 12, {K::kAuto, K::kGemvQ8}, false);
        BenchOurs(t, M, Kd, 16, {K::kAuto, K::kGemvQ8, K::kMma16}, false);
        if (bqc::PlanarSupported(t)) BenchPlanar(t, M, Kd, 8);
        // A short matrix (256 tiles of 16 rows).
        BenchOurs(t, 4096, 14336, 8, {K::kAuto, K::kGemvQ8}, false);
        BenchOurs(t, 4096, 14336, 16, {K::kAuto}, false);
      }
      // mma_q8 settings for them through the header launcher, on both shapes
      // (the library takes 4w 2s b4 from 16384 rows, 8w 2s b2 below, on the
      // TMA path where it fits).
      BenchMmaQ8G16Variants<QuantType::kQ2_K>(M, Kd);
      BenchMmaQ8G16Variants<QuantType::kQ3_K>(M, Kd);
      BenchMmaQ8G16Variants<QuantType::kQ6_K>(M, Kd);
      BenchMmaQ8G16Variants<QuantType::kQ8_0>(M, Kd);
      BenchMmaQ8G16Variants<QuantType::kQ2_K>(4096, 14336);
      BenchMmaQ8G16Variants<QuantType::kQ3_K>(4096, 14336);
      BenchMmaQ8G16Variants<QuantType::kQ6_K>(4096, 14336);
      BenchMmaQ8G16Variants<QuantType::kQ8_0>(4096, 14336);
      BenchGemvVariant<QuantType::kQ2_K, 4, 2, 2, true>(M, Kd);
      BenchGemvVariant<QuantType::kQ3_K, 4, 2, 2, true>(M, Kd);
      BenchGemvVariant<QuantType::kQ6_K, 4, 2, 2, true>(M, Kd);
      // Planar Q3_K's tall launch before it took 2 CTAs of 12 warps
      // (gemv::TallGemvWarps): 3 of 8, u8.
      BenchGemvVariant<QuantType::kQ3_K, 1, 8, 3, true>(M, Kd);
    }
    Write(argv[1], prop);  // the tables so far, in case the run is stopped
    BenchOurs(QuantType::kQ4_K, M, Kd, 2, {K::kAuto, K::kMmaQ8, K::kMma8, K::kWgmma}, false);
    BenchOurs(QuantType::kQ4_K, M, Kd, 3, {K::kAuto, K::kGemvQ8, K::kWgmma, K::kMma8}, false);
    BenchOurs(QuantType::kQ4_K, M, Kd, 4, {K::kAuto, K::kGemvQ8, K::kWgmma, K::kMma8}, false);
    // gemv_q8 settings the library does not use: units in flight, CTAs per SM
    // (at n = 1 on this shape it runs the tall launch: 3 CTAs per SM; Q2_K and
    // Q3_K u4, Q6_K u8, Q4_K u4).
    BenchGemvVariant<QuantType::kQ2_K, 1, 4, 2>(M, Kd);
    BenchGemvVariant<QuantType::kQ2_K, 1, 8, 3>(M, Kd);
    BenchGemvVariant<QuantType::kQ3_K, 1, 4, 2>(M, Kd);
    BenchGemvVariant<QuantType::kQ3_K, 1, 2, 3>(M, Kd);
    BenchGemvVariant<QuantType::kQ6_K, 1, 4, 2>(M, Kd);
    BenchGemvVariant<QuantType::kQ6_K, 1, 4, 3>(M, Kd);
    BenchGemvVariant<QuantType::kQ4_K, 1, 2, 2>(M, Kd);
    BenchGemvVariant<QuantType::kQ4_K, 1, 4, 2>(M, Kd);
    BenchGemvVariant<QuantType::kQ4_K, 1, 4, 3>(M, Kd, false);
    BenchGemvVariant<QuantType::kQ4_K, 2, 2, 2>(M, Kd);
    BenchGemvVariant<QuantType::kQ8_0, 1, 2, 2>(M, Kd);
    BenchCublas(h, M, Kd, 1, false);
    BenchVariant<QuantType::kQ4_K, 1, 4>(M, Kd, 1);
    BenchVariant<QuantType::kQ4_K, 4, 4>(M, Kd, 1);
    BenchVariant<QuantType::kQ4_K, 2, 6>(M, Kd, 1);
    BenchVariant<QuantType::kQ8_0, 1, 4>(M, Kd, 1);
    BenchVariant<QuantType::kQ8_0, 4, 4>(M, Kd, 1);
    // Small batches and GEMM.
    BenchOurs(QuantType::kQ4_K, M, Kd, 8, {K::kAuto, K::kWgmma, K::kMma8}, false);
    BenchOurs(QuantType::kQ5_K, M, Kd, 3, {K::kAuto, K::kGemvQ8}, false);
    BenchOurs(QuantType::kQ5_K, M, Kd, 8, {K::kAuto, K::kWgmma}, false);
    // What MatMul's own per-call scratch allocation costs, and mma_q8
    // settings the library does not use (the default is 8w 2s b2).
    BenchOurs(QuantType::kQ4_K, M, Kd, 8, {K::kMmaQ8}, false, false);
    BenchMmaQ8Variant<8, 2, 2>(M, Kd, 8);
    BenchMmaQ8Variant<8, 4, 2>(M, Kd, 8);
    BenchMmaQ8Variant<4, 4, 4>(M, Kd, 8);
    BenchMmaQ8Variant<16, 3, 1>(M, Kd, 8);
    BenchCublas(h, M, Kd, 8, false);
    BenchOurs(QuantType::kQ4_K, M, Kd, 16, {K::kAuto, K::kWgmma, K::kMma8, K::kMma16}, false);
    BenchCublas(h, M, Kd, 16, false);
    BenchOurs(QuantType::kQ4_K, M, Kd, 64, {K::kAuto, K::kMma32, K::kMma64}, false);
    BenchOurs(QuantType::kQ5_K, M, Kd, 64, {K::kAuto, K::kMma64}, false);
    BenchCublas(h, M, Kd, 64, false);
    Write(argv[1], prop);
    BenchOurs(QuantType::kQ4_K, 4096, 14336, 512, {K::kAuto, K::kMma64}, true);
    BenchOurs(QuantType::kQ5_K, 4096, 14336, 512, {K::kAuto}, false);
    BenchOurs(QuantType::kQ4_K, 4096, 14336, 512, {K::kWgmma}, false, false);  // x sums in a per-call allocation
    BenchCublas(h, 4096, 14336, 512, true);
    BenchInterleaved(h, QuantType::kQ4_K, 4096, 14336, 512, quick ? 2 : 6);
    if (!quick) BenchDequantCublas(h, QuantType::kQ4_K, 4096, 14336, 512);
    Write(argv[1], prop);
  }
  if (!part1) {
    if (!quick) BenchWide(h, M, Kd, true);
    Write(argv[1], prop);
    if (!quick) {
      BenchWgmmaG16(h, QuantType::kQ3_K, M, Kd, true);
      Write(argv[1], prop);
      BenchWgmmaG16(h, QuantType::kQ2_K, M, Kd, false);
      Write(argv[1], prop);
      BenchWgmmaF16W(h, M, Kd);
    }
    Write(argv[1], prop);
    // n = 1 below gemv_q8's tall-matrix threshold (2 CTAs per SM; 3 beside it).
    BenchOurs(QuantType::kQ4_K, 4096, 14336, 1, {K::kAuto}, false);
    BenchGemvVariant<QuantType::kQ4_K, 1, 4, 3>(4096, 14336);
    for (QuantType t : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ6_K}) {
      BenchOurs(t, 4096, 14336, 1, {K::kAuto}, false);
    }
    BenchGemvVariant<QuantType::kQ3_K, 1, 4, 2>(4096, 14336);  // the library's u2 beside it
    // Launch-bound shape.
    BenchOurs(QuantType::kQ4_K, 4096, 4096, 1, {K::kAuto}, true);
    BenchOurs(QuantType::kQ4_K, 4096, 4096, 8, {K::kAuto, K::kWgmma}, true);
    BenchCublas(h, 4096, 4096, 1, true);
    if (!quick) BenchDequantQuant();
    BenchLaunchModes(QuantType::kQ4_K, 4096, 4096, 1);
    BenchLaunchModes(QuantType::kQ4_K, 4096, 4096, 8);
  }

  cublasDestroy(h);
  Write(argv[1], prop);
  std::printf("wrote %s/cuda_bench.json and cuda_bench.md\n", argv[1]);
  return 0;
}
