// Device tests for blockquant's CUDA kernels against the scalar CPU
// reference (quant/dequantize.h, quant/q8.h). Plain executable: one PASS or
// FAIL line per case, a summary, exit code 1 on any failure.
//   bq_cuda_test [--small]     --small: fewer shapes (for compute-sanitizer)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "blockquant/calib/block_grid.h"
#include "blockquant/format/fp16.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"
#include "blockquant/quant/q8.h"
#include "blockquant_cuda.h"
#include "bq_gemv.cuh"
#include "bq_mma_q8.cuh"
#include "bq_mma_q8_g16.cuh"
#include "bq_wgmma.cuh"
#include "test_util.h"

namespace {

using blockquant::QuantType;
namespace bqc = blockquant::cuda;
using bqtest::BlockMode;
using bqtest::DeviceBuffer;
using bqtest::TypeInfo;

int g_pass = 0, g_fail = 0;

void Report(bool ok, const std::string& name, const std::string& detail = "") {
  if (ok) {
    ++g_pass;
    std::printf("PASS %s\n", name.c_str());
  } else {
    ++g_fail;
    std::printf("FAIL %s%s%s\n", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  }
}

const char* ModeName(BlockMode m) {
  return m == BlockMode::kRealistic ? "realistic" : (m == BlockMode::kRaw ? "raw" : "extreme");
}

std::vector<float> ReferenceDequant(const TypeInfo& t, const std::vector<uint8_t>& blocks, int64_t rows,
                                    int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const int64_t row_bytes = cols / t.elems * t.bytes;
  for (int64_t r = 0; r < rows; ++r) {
    blockquant::DequantizeRowReference(t.type, blocks.data() + r * row_bytes, out.data() + r * cols, cols);
  }
  return out;
}

// ---------------------------------------------------------------------------
void TestDequantize(const TypeInfo& t, int64_t rows, int64_t cols, BlockMode mode, QuantType out_type,
                    bool misaligned_out) {
  const std::string name = std::string("dequantize ") + t.name + " " + ModeName(mode) + " " + std::to_string(rows) +
                           "x" + std::to_string(cols) + " -> " +
                           (out_type == QuantType::kF32 ? "f32" : out_type == QuantType::kF16 ? "f16" : "bf16") +
                           (misaligned_out ? " (unaligned dst)" : "");
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, mode, 1000 + rows * 7 + cols);
  const std::vector<float> ref = ReferenceDequant(t, blocks, rows, cols);
  const size_t esize = out_type == QuantType::kF32 ? 4 : 2;
  const size_t n = static_cast<size_t>(rows * cols);
  DeviceBuffer<uint8_t> dw(blocks.size());
  DeviceBuffer<uint8_t> dy(n * esize + 16);
  const size_t off = misaligned_out ? esize : 0;
  BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemset(dy.ptr, 0x55, n * esize + 16));  // poison
  const bqc::Status st = bqc::Dequantize(t.type, dw.ptr, rows, cols, out_type, dy.ptr + off);
  if (!st.ok()) return Report(false, name, st.message);
  BQ_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(n * esize);
  BQ_CUDA_CHECK(cudaMemcpy(got.data(), dy.ptr + off, n * esize, cudaMemcpyDeviceToHost));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < n; ++i) {
    bool ok;
    if (out_type == QuantType::kF32) {
      float g;
      std::memcpy(&g, &got[i * 4], 4);
      ok = std::memcmp(&g, &ref[i], 4) == 0 || (std::isnan(g) && std::isnan(ref[i]));
    } else {
      uint16_t g, r;
      std::memcpy(&g, &got[i * 2], 2);
      r = out_type == QuantType::kF16 ? blockquant::F32ToF16(ref[i]) : blockquant::F32ToBF16(ref[i]);
      const bool gnan = out_type == QuantType::kF16 ? ((g & 0x7C00) == 0x7C00 && (g & 0x3FF)) : ((g & 0x7F80) == 0x7F80 && (g & 0x7F));
      ok = g == r || (gnan && std::isnan(ref[i]));
    }
    if (!ok) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  Report(bad == 0, name, bad ? std::to_string(bad) + " mismatches, first at " + std::to_string(first) : "");
}

// ---------------------------------------------------------------------------
struct MatMulCase {
  int64_t rows, cols, n;
};

// Activations as the kernel reads them and as the reference sees them (the
// exact float of each f16/bf16 value). adversarial: 32-blocks cycle through
// normal, all-zero, one spike among small values, tiny and constant values.
void MakeActivations(QuantType act, int64_t count, uint64_t seed, std::vector<uint8_t>* raw, std::vector<float>* f,
                     bool adversarial = false) {
  bqtest::Rng rng(seed);
  const size_t esize = act == QuantType::kF32 ? 4 : 2;
  raw->assign(static_cast<size_t>(count) * esize, 0);
  f->assign(static_cast<size_t>(count), 0.0f);
  const float tiny = act == QuantType::kF16 ? 1e-4f : 1e-30f;
  for (int64_t i = 0; i < count; ++i) {
    float v = rng.Symmetric();
    if (adversarial) {
      switch ((i / 32) % 5) {
        case 1: v = 0.0f; break;
        case 2: v = i % 32 == 7 ? 3.0e4f : v * 1e-2f; break;
        case 3: v *= tiny; break;
        case 4: v = -0.7f; break;
        default: break;
      }
    }
    if (act == QuantType::kF32) {
      std::memcpy(&(*raw)[i * 4], &v, 4);
      (*f)[i] = v;
    } else {
      const uint16_t h = act == QuantType::kF16 ? blockquant::F32ToF16(v) : blockquant::F32ToBF16(v);
      std::memcpy(&(*raw)[i * 2], &h, 2);
      (*f)[i] = act == QuantType::kF16 ? blockquant::F16ToF32(h) : blockquant::BF16ToF32(h);
    }
  }
}

// Tolerance: errors come only from f32 accumulation (weights and the
// products are exact), so they are bounded relative to sum |w x|. gemv_q8
// also rounds x to int8 per 32-block: at most sum_k |w_k| * dx(k) / 2 more,
// dx = max |x| of the block / 127.
constexpr double kRelTol = 3e-5;

// mma_q8's types; those it takes as 16-value groups (bq_mma_q8_g16.cuh)
// take 2-byte aligned weights.
bool G16Type(QuantType t) {
  return t == QuantType::kQ2_K || t == QuantType::kQ3_K || t == QuantType::kQ6_K || t == QuantType::kQ8_0 ||
         t == QuantType::kQ4_0;
}
bool MmaQ8Type(QuantType t) { return t == QuantType::kQ4_K || t == QuantType::kQ5_K || G16Type(t); }

// The products y[j][r] = sum_k w[r][k] x[j][k] of the dequantized weights
// wf (rows x cols) and x (n x cols) in double precision, with, per output,
// sum_k |w x| (what f32 accumulation errors scale with) and sum_k |w| * dx / 2
// (the most that rounding x to int8 per 32-block adds; dx = max|x| / 127).
// ref: sum w x; mag: sum |w x|; qmag: sum |w| dx / 2 (x rounded to int8);
// fmag: sum (|w| + 2 |mterm|) |x| and xabs: sum |x| (weights rounded to f16;
// mterm: each weight's -dmin * m, empty for none).
struct Products {
  std::vector<double> ref, mag, qmag, fmag, xabs;
};
Products ReferenceProducts(const std::vector<float>& wf, const std::vector<float>& xf, int64_t rows, int64_t cols,
                           int64_t n, const std::vector<float>& mterm = {}) {
  std::vector<double> half_step(xf.size());  // dx / 2 of each value's 32-block
  for (size_t b = 0; b < xf.size() / 32; ++b) {
    double amax = 0.0;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(static_cast<double>(xf[32 * b + i])));
    for (size_t i = 0; i < 32; ++i) half_step[32 * b + i] = amax / 127.0 / 2.0;
  }
  Products p;
  p.ref.resize(static_cast<size_t>(n * rows));
  p.mag.resize(p.ref.size());
  p.qmag.resize(p.ref.size());
  p.fmag.resize(p.ref.size());
  p.xabs.resize(p.ref.size());
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0.0, m = 0.0, q = 0.0, f = 0.0, xa = 0.0;
      const float* w = &wf[r * cols];
      const float* x = &xf[j * cols];
      for (int64_t k = 0; k < cols; ++k) {
        s += static_cast<double>(w[k]) * x[k];
        m += std::fabs(static_cast<double>(w[k]) * x[k]);
        q += std::fabs(static_cast<double>(w[k])) * half_step[j * cols + k];
        const double mt = mterm.empty() ? 0.0 : std::fabs(static_cast<double>(mterm[r * cols + k]));
        f += (std::fabs(static_cast<double>(w[k])) + 2.0 * mt) * std::fabs(static_cast<double>(x[k]));
        xa += std::fabs(static_cast<double>(x[k]));
      }
      p.ref[j * rows + r] = s;
      p.mag[j * rows + r] = m;
      p.qmag[j * rows + r] = q;
      p.fmag[j * rows + r] = f;
      p.xabs[j * rows + r] = xa;
    }
  }
  return p;
}

// Whether output i (got) is within the bound: f32 accumulation, kRelTol of
// sum |w x|, plus q_weight times what rounding x to int8 may add, plus, for
// weights rounded to f16 (f16_weights), three f16 roundings per weight:
// fl(u fl(d sc) + fl(-dmin m)) is off by at most u (2 + u) (|d sc u| +
// |dmin m|) <= 2.001 u (|w| + 2 |dmin m|), u = 2^-11, and by 33 * 2^-25 in
// f16's subnormal range.
bool WithinBound(const Products& p, size_t i, double got, double q_weight, bool f16_weights = false) {
  const double err = std::fabs(got - p.ref[i]);
  const double f16 = f16_weights ? 2.001 * std::ldexp(1.0, -11) * p.fmag[i] + std::ldexp(33.0, -25) * p.xabs[i] : 0.0;
  return err <= kRelTol * p.mag[i] + q_weight * p.qmag[i] + f16 || err == 0.0;
}

// Each weight's mins' term -dmin * m (Q4_K, Q5_K: the blocks with their codes
// zeroed; bytes 16 on hold them); empty for the other types.
std::vector<float> ReferenceMinTerms(const TypeInfo& t, std::vector<uint8_t> blocks, int64_t rows, int64_t cols) {
  if (t.type != QuantType::kQ4_K && t.type != QuantType::kQ5_K) return {};
  for (size_t b = 0; b < blocks.size(); b += static_cast<size_t>(t.bytes)) {
    std::memset(&blocks[b + 16], 0, static_cast<size_t>(t.bytes - 16));
  }
  return ReferenceDequant(t, blocks, rows, cols);
}

void TestMatMul(const TypeInfo& t, const MatMulCase& c, QuantType act, BlockMode mode,
                const std::vector<bqc::MatMulKernel>& kernels, bool misaligned_w, bool adversarial_x = false) {
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, c.rows, c.cols, mode, 7 + c.rows * 31 + c.cols + c.n);
  const std::vector<float> wf = ReferenceDequant(t, blocks, c.rows, c.cols);
  std::vector<uint8_t> xraw;
  std::vector<float> xf;
  MakeActivations(act, c.n * c.cols, 99 + c.n, &xraw, &xf, adversarial_x);
  const Products products =
      ReferenceProducts(wf, xf, c.rows, c.cols, c.n, ReferenceMinTerms(t, blocks, c.rows, c.cols));
  const std::vector<double>& ref = products.ref;
  const std::vector<double>& mag = products.mag;
  const size_t woff = misaligned_w ? 2 : 0;
  DeviceBuffer<uint8_t> dw(blocks.size() + woff);
  DeviceBuffer<uint8_t> dx(xraw.size());
  DeviceBuffer<float> dy(ref.size());
  BQ_CUDA_CHECK(cudaMemcpy(dw.ptr + woff, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
  const char* act_name = act == QuantType::kF16 ? "f16" : act == QuantType::kBF16 ? "bf16" : "f32";
  for (bqc::MatMulKernel k : kernels) {
    std::string name = std::string("matmul ") + t.name + " " + act_name + " " + ModeName(mode) + " " +
                       std::to_string(c.rows) + "x" + std::to_string(c.cols) + " n=" + std::to_string(c.n) + " " +
                       bqc::MatMulKernelName(k);
    const bqc::MatMulKernel resolved =
        k == bqc::MatMulKernel::kAuto
            ? bqc::ChooseMatMulKernel(t.type, dw.ptr + woff, c.rows, c.cols, act, dx.ptr, c.n)
            : k;
    if (k == bqc::MatMulKernel::kAuto) name += std::string("(") + bqc::MatMulKernelName(resolved) + ")";
    if (misaligned_w) name += " (weights at +2 bytes)";
    if (adversarial_x) name += " (adversarial x)";
    const bool rounds_x = resolved == bqc::MatMulKernel::kGemvQ8 || resolved == bqc::MatMulKernel::kMmaQ8;
    const double q_weight = rounds_x ? 1.001 : 0.0;
    BQ_CUDA_CHECK(cudaMemset(dy.ptr, 0xFF, ref.size() * 4));  // poison: NaN
    const bqc::Status st = bqc::MatMul(t.type, dw.ptr + woff, c.rows, c.cols, act, dx.ptr, c.n, dy.ptr, nullptr, k);
    // wgmma takes Q4_K/Q5_K, and Q2_K and Q3_K with rows of whole 16-byte
    // multiples (cols % 1024 and 2048 == 0), with aligned F16 x only (this
    // test runs on an sm_90 GPU and the build targets sm_90a); the rest must
    // be refused.
    // mma_q8 takes Q4_K/Q5_K (16-byte aligned, n <= 16) and Q2_K/Q3_K/Q6_K/
    // Q8_0/Q4_0 (2-byte aligned) with F16/BF16 x only.
    const bool wgmma_type = t.type == QuantType::kQ4_K || t.type == QuantType::kQ5_K ||
                            (t.type == QuantType::kQ2_K && c.cols % 1024 == 0) ||
                            (t.type == QuantType::kQ3_K && c.cols % 2048 == 0);
    const bool wgmma_refuses = k == bqc::MatMulKernel::kWgmma &&
                               (!wgmma_type || act != QuantType::kF16 || misaligned_w || c.cols % 256 != 0);
    // The f16-weights wgmma: Q4_K/Q5_K on the same terms, and Q8_0/Q4_0, and
    // Q6_K with rows of 16-byte multiples (cols % 2048 == 0).
    const bool f16w_type = t.type == QuantType::kQ4_K || t.type == QuantType::kQ5_K ||
                           t.type == QuantType::kQ8_0 || t.type == QuantType::kQ4_0 ||
                           (t.type == QuantType::kQ6_K && c.cols % 2048 == 0);
    const bool f16w_refuses = k == bqc::MatMulKernel::kWgmmaF16W &&
                              (!f16w_type || act != QuantType::kF16 || misaligned_w || c.cols % 256 != 0);
    // The 16-group types take n <= 64, beyond 16 on the TMA path only
    // (16-byte aligned weights and rows).
    const bool tma_rows = !misaligned_w && c.cols / t.elems * t.bytes % 16 == 0;
    const bool mma_q8_refuses =
        k == bqc::MatMulKernel::kMmaQ8 &&
        (!MmaQ8Type(t.type) || act == QuantType::kF32 || (misaligned_w && !G16Type(t.type)) || c.cols % 256 != 0 ||
         c.n > (G16Type(t.type) ? 64 : 16) || (G16Type(t.type) && c.n > 16 && !tma_rows));
    if (wgmma_refuses || f16w_refuses || mma_q8_refuses) {
      Report(!st.ok() && st.code == 1, name + " refused", st.ok() ? "accepted" : "");
      continue;
    }
    if (!st.ok()) {
      Report(false, name, st.message);
      continue;
    }
    // Weights rounded to f16 overflow where the blocks' scales (kExtreme
    // near 65504, kRaw anything) put them beyond f16's range, as they would
    // dequantized to f16: that kernel is checked on realistic blocks only.
    const bool f16_weights = resolved == bqc::MatMulKernel::kWgmmaF16W;
    if (f16_weights && mode != BlockMode::kRealistic) continue;
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> got(ref.size());
    BQ_CUDA_CHECK(cudaMemcpy(got.data(), dy.ptr, got.size() * 4, cudaMemcpyDeviceToHost));
    int64_t bad = 0, first = -1;
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double rel = std::fabs(got[i] - ref[i]) / (mag[i] + 1e-30);
      if (!WithinBound(products, i, got[i], q_weight, f16_weights)) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++bad;
      }
      if (rel > worst || std::isnan(rel)) worst = rel;
    }
    char detail[200];
    std::snprintf(detail, sizeof(detail), "%lld bad, first at %lld (got %g want %g), worst err/sum|wx| %.3g",
                  static_cast<long long>(bad), static_cast<long long>(first), first >= 0 ? got[first] : 0.0,
                  first >= 0 ? ref[first] : 0.0, worst);
    Report(bad == 0, name, bad ? detail : "");
  }
}

// A NaN or Inf in x must reach every output of its column, and only that
// column. gemv_q8 and mma_q8 round x per 32-block (fmaxf alone would drop a
// NaN) and make the column NaN; the exact kernels (mma8, and wgmma with its x
// sums) make it NaN or +-Inf.
void TestNonFiniteX(const TypeInfo& t) {
  const int64_t rows = 37, cols = 2048;
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kRealistic, 5);
  std::vector<bqc::MatMulKernel> kernels = {bqc::MatMulKernel::kGemvQ8, bqc::MatMulKernel::kMma8};
  if (t.type == QuantType::kQ2_K || t.type == QuantType::kQ3_K || t.type == QuantType::kQ4_K ||
      t.type == QuantType::kQ5_K) {
    kernels.push_back(bqc::MatMulKernel::kWgmma);  // (Q2_K, Q3_K: rows of 8 units, 16-byte multiples)
  }
  if (t.type != QuantType::kQ2_K && t.type != QuantType::kQ3_K) kernels.push_back(bqc::MatMulKernel::kWgmmaF16W);
  if (MmaQ8Type(t.type)) kernels.push_back(bqc::MatMulKernel::kMmaQ8);
  // n = 20: the 16-group types' wide mma_q8 (rows of 8 units, 16-byte multiples).
  for (int64_t n : {2, 20}) {
    if (n == 20) {
      if (!G16Type(t.type)) continue;
      kernels = {bqc::MatMulKernel::kMmaQ8};
      if (t.type == QuantType::kQ2_K || t.type == QuantType::kQ3_K) kernels.push_back(bqc::MatMulKernel::kWgmma);
    }
    for (float bad : {std::nanf(""), INFINITY}) {
      std::vector<uint8_t> xraw;
      std::vector<float> xf;
      MakeActivations(QuantType::kF16, n * cols, 3, &xraw, &xf);
      const uint16_t h = blockquant::F32ToF16(bad);
      std::memcpy(&xraw[2 * 300], &h, 2);  // column 0, element 300
      DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size());
      DeviceBuffer<float> dy(static_cast<size_t>(n * rows));
      BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
      BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
      for (bqc::MatMulKernel k : kernels) {
        const bool gemv = k == bqc::MatMulKernel::kGemvQ8 || k == bqc::MatMulKernel::kMmaQ8;
        const std::string name = std::string("matmul ") + t.name + " n=" + std::to_string(n) + " " +
                                 bqc::MatMulKernelName(k) + " x with " + (std::isnan(bad) ? "NaN" : "Inf") +
                                 ": its column all " + (gemv ? "NaN" : "non-finite") + ", the others finite";
        BQ_CUDA_CHECK(cudaMemset(dy.ptr, 0, n * rows * 4));
        const bqc::Status st =
            bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, dy.ptr, nullptr, k);
        if (!st.ok()) {
          Report(false, name, st.message);
          continue;
        }
        std::vector<float> got(static_cast<size_t>(n * rows));
        BQ_CUDA_CHECK(cudaMemcpy(got.data(), dy.ptr, got.size() * 4, cudaMemcpyDeviceToHost));
        int64_t wrong = 0;
        for (int64_t r = 0; r < rows; ++r) {
          if (gemv ? !std::isnan(got[r]) : std::isfinite(got[r])) ++wrong;
          for (int64_t j = 1; j < n; ++j) wrong += !std::isfinite(got[j * rows + r]);
        }
        Report(wrong == 0, name, std::to_string(wrong) + " outputs wrong");
      }
    }
  }
}

// mma_q8 and wgmma with a caller's workspace: the same bits as with
// MatMul's own stream-ordered one; a workspace too small or misaligned is
// refused. Q4_K, and Q2_K's wgmma (two fragments per lane; 20 super-blocks
// per row, 16-byte multiples).
void TestScratchWorkspaceTyped(const TypeInfo& t) {
  const bool q2 = t.type == QuantType::kQ2_K;
  const int64_t rows = 41, cols = q2 ? 5120 : 5376;
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kRealistic, 13);
  using K = bqc::MatMulKernel;
  std::vector<std::pair<K, int64_t>> cases = {{K::kWgmma, 40}, {K::kWgmma, 200}};
  if (!q2) cases.insert(cases.begin(), {{K::kMmaQ8, 3}, {K::kMmaQ8, 9}});
  for (const auto& [k, n] : cases) {
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, n * cols, 17, &xraw, &xf);
    const int64_t need = bqc::MatMulWorkspaceBytes(t.type, n, cols);
    DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size()), ws(static_cast<size_t>(need) + 16);
    DeviceBuffer<float> y0(static_cast<size_t>(n * rows)), y1(static_cast<size_t>(n * rows));
    BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    const std::string name =
        std::string("matmul ") + t.name + " " + bqc::MatMulKernelName(k) + " n=" + std::to_string(n);
    const bqc::Status a = bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, y0.ptr, nullptr, k);
    const bqc::Status b =
        bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, y1.ptr, nullptr, k, ws.ptr, need);
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> r0(static_cast<size_t>(n * rows)), r1(r0.size());
    BQ_CUDA_CHECK(cudaMemcpy(r0.data(), y0.ptr, r0.size() * 4, cudaMemcpyDeviceToHost));
    BQ_CUDA_CHECK(cudaMemcpy(r1.data(), y1.ptr, r1.size() * 4, cudaMemcpyDeviceToHost));
    Report(a.ok() && b.ok() && std::memcmp(r0.data(), r1.data(), r0.size() * 4) == 0,
           name + ": a given workspace gives the same bits", a.message + b.message);
    // MatMulWorkspaceBytes covers every kernel; the check is against this one's need.
    const int64_t own =
        k == K::kMmaQ8 ? bqc::MmaQ8WorkspaceBytes(n, cols) : bqc::WgmmaWorkspaceBytes(t.type, n, cols);
    const bqc::Status small =
        bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, y1.ptr, nullptr, k, ws.ptr, own - 1);
    Report(small.code == 1 && own <= need, "error: " + name + " workspace one byte short -> code 1", small.message);
    const bqc::Status odd =
        bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, y1.ptr, nullptr, k, ws.ptr + 8, need);
    Report(odd.code == 1, "error: " + name + " workspace not 16-byte aligned -> code 1", odd.message);
  }
}

// gemv_q8 through the header launcher with units-in-flight and CTA settings
// the library does not pick: each lane group still takes its units in the
// same order, so the bits must equal MatMul's. 21 and 53 units per row give
// every tail (batches of 4, 2 and 1 units per lane group after a batch of 6
// or 8) for 8 and 4 lanes per unit.
template <QuantType kType>
void TestGemvSettingsTyped(const TypeInfo& t) {
  for (const int64_t cols : {int64_t{5376}, int64_t{13568}}) {
    const int64_t rows = 53;
    const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kExtreme, 29);
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, cols, 31, &xraw, &xf, true);
    DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size());
    DeviceBuffer<float> y0(static_cast<size_t>(rows)), y1(static_cast<size_t>(rows));
    BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    const bqc::Status st =
        bqc::MatMul(kType, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, 1, y0.ptr, nullptr, bqc::MatMulKernel::kGemvQ8);
    std::vector<float> want(static_cast<size_t>(rows)), got(want.size());
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    BQ_CUDA_CHECK(cudaMemcpy(want.data(), y0.ptr, want.size() * 4, cudaMemcpyDeviceToHost));
    const uint8_t* w = dw.ptr;
    const __half* xh = reinterpret_cast<const __half*>(dx.ptr);
    float* y = y1.ptr;
    auto check = [&](const char* setting, auto launch) {
      BQ_CUDA_CHECK(cudaMemset(y, 0xFF, got.size() * 4));  // NaN: a launch that writes nothing fails
      const cudaError_t err = launch();
      BQ_CUDA_CHECK(cudaDeviceSynchronize());
      BQ_CUDA_CHECK(cudaMemcpy(got.data(), y, got.size() * 4, cudaMemcpyDeviceToHost));
      Report(st.ok() && err == cudaSuccess && std::memcmp(want.data(), got.data(), want.size() * 4) == 0,
             std::string("gemv_q8 ") + t.name + " " + setting + ", " + std::to_string(cols / 256) +
                 " units per row: MatMul's bits",
             st.message + cudaGetErrorString(err));
    };
    check("u8 b3", [&] { return bqc::LaunchGemvQ8<kType, __half, 1, 8, 8, 3>(w, rows, cols, xh, y, nullptr); });
    check("u6 b2", [&] { return bqc::LaunchGemvQ8<kType, __half, 1, 8, 6, 2>(w, rows, cols, xh, y, nullptr); });
    check("u2 b2", [&] { return bqc::LaunchGemvQ8<kType, __half, 1, 8, 2, 2>(w, rows, cols, xh, y, nullptr); });
  }
}

// bq_mma_q8_g16.cuh's two weight paths, TMA rings and direct loads, do the
// same arithmetic in the same order: the same bits, and MatMul's (which takes
// TMA where it fits: 16 units of 256 values per row, 16-byte aligned). 45 rows: a partial
// last tile, whose TMA rows arrive as zeros and whose direct rows repeat the
// last one.
template <QuantType kType>
void TestMmaQ8G16PathsTyped(const TypeInfo& t) {
  const int64_t rows = 45, cols = 4096;
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kExtreme, 37);
  for (int64_t n : {3, 12}) {
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, n * cols, 41, &xraw, &xf, true);
    DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size());
    DeviceBuffer<uint8_t> ws(static_cast<size_t>(bqc::MmaQ8G16WorkspaceBytes(n, cols)));
    DeviceBuffer<float> y0(static_cast<size_t>(n * rows)), y1(y0.count), y2(y0.count);
    BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    for (float* y : {y0.ptr, y1.ptr, y2.ptr}) BQ_CUDA_CHECK(cudaMemset(y, 0xFF, y0.count * 4));
    const __half* xh = reinterpret_cast<const __half*>(dx.ptr);
    const bool tma_fits = bqc::MmaQ8G16TmaFits<kType>(dw.ptr, rows, cols);
    const cudaError_t e1 = bqc::LaunchMmaQ8G16<kType, __half, 8, 2, 2, true>(dw.ptr, rows, cols, xh, n, y0.ptr,
                                                                               ws.ptr, nullptr);
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    const cudaError_t e2 = bqc::LaunchMmaQ8G16<kType, __half, 8, 2, 2, false>(dw.ptr, rows, cols, xh, n, y1.ptr,
                                                                                ws.ptr, nullptr);
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    const bqc::Status st =
        bqc::MatMul(kType, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, y2.ptr, nullptr, bqc::MatMulKernel::kMmaQ8);
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> r0(y0.count), r1(y0.count), r2(y0.count);
    BQ_CUDA_CHECK(cudaMemcpy(r0.data(), y0.ptr, r0.size() * 4, cudaMemcpyDeviceToHost));
    BQ_CUDA_CHECK(cudaMemcpy(r1.data(), y1.ptr, r1.size() * 4, cudaMemcpyDeviceToHost));
    BQ_CUDA_CHECK(cudaMemcpy(r2.data(), y2.ptr, r2.size() * 4, cudaMemcpyDeviceToHost));
    const std::string name = std::string("mma_q8 ") + t.name + " n=" + std::to_string(n);
    Report(tma_fits, name + ": 16 units per row take the TMA path");
    Report(e1 == cudaSuccess && e2 == cudaSuccess && std::memcmp(r0.data(), r1.data(), r0.size() * 4) == 0,
           name + ": TMA and direct paths give the same bits", cudaGetErrorString(e1 != cudaSuccess ? e1 : e2));
    Report(st.ok() && std::memcmp(r0.data(), r2.data(), r0.size() * 4) == 0, name + ": MatMul's bits", st.message);
  }
  // The wide kernel (n > 16): its settings give the same bits as long as
  // the K split is the same (each row's sums are one warp's per K group,
  // added in group order). 150 rows: partial last CTAs of 16, 32 and 128
  // rows; 16 units over 4 K groups and over 2.
  const int64_t wide_rows = 150, n = 40;
  const std::vector<uint8_t> wide = bqtest::MakeBlocks(t, wide_rows, cols, BlockMode::kExtreme, 43);
  std::vector<uint8_t> xraw;
  std::vector<float> xf;
  MakeActivations(QuantType::kF16, n * cols, 47, &xraw, &xf, true);
  DeviceBuffer<uint8_t> dw(wide.size()), dx(xraw.size());
  DeviceBuffer<uint8_t> ws(static_cast<size_t>(bqc::MmaQ8G16WorkspaceBytes(n, cols)));
  BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, wide.data(), wide.size(), cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
  const __half* xh = reinterpret_cast<const __half*>(dx.ptr);
  std::vector<std::vector<float>> got;
  std::string errors;
  auto run = [&](auto launch) {
    DeviceBuffer<float> y(static_cast<size_t>(n * wide_rows));
    BQ_CUDA_CHECK(cudaMemset(y.ptr, 0xFF, y.count * 4));
    const cudaError_t e = launch(y.ptr);
    if (e != cudaSuccess) errors += std::string(cudaGetErrorString(e)) + " ";
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    got.emplace_back(y.count);
    BQ_CUDA_CHECK(cudaMemcpy(got.back().data(), y.ptr, y.count * 4, cudaMemcpyDeviceToHost));
  };
  // No K split: 4 x 16 rows, 8 x 16; 4 K groups: 2 x 16 rows, 1 x 16 with
  // 4 and 8 stages; 2 K groups: 2 x 16 with 2 and 4 stages, 4 x 16. Then
  // MatMul, which on these 150 rows at n = 40 takes 2 x 2 warps with 4
  // stages for Q2_K and 2 x 4 for the others (launch.cuh's
  // LaunchMmaQ8G16WideFor).
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 4, 1, 3>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 8, 1, 2>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 2, 4, 4>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 1, 4, 4>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 1, 4, 8>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 2, 2, 2>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 2, 2, 4>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    return bqc::LaunchMmaQ8G16Wide<kType, __half, 4, 2, 2>(dw.ptr, wide_rows, cols, xh, n, y, ws.ptr, nullptr);
  });
  run([&](float* y) {
    const bqc::Status st = bqc::MatMul(kType, dw.ptr, wide_rows, cols, QuantType::kF16, dx.ptr, n, y, nullptr,
                                       bqc::MatMulKernel::kMmaQ8);
    return st.ok() ? cudaSuccess : cudaErrorInvalidValue;
  });
  const size_t bytes = got[0].size() * 4;
  bool written = true;  // no poison left anywhere
  for (const std::vector<float>& g : got) {
    written = written && std::none_of(g.begin(), g.end(), [](float v) {
                uint32_t u;
                std::memcpy(&u, &v, 4);
                return u == 0xFFFFFFFFu;
              });
  }
  auto same = [&](size_t a, size_t b) { return std::memcmp(got[a].data(), got[b].data(), bytes) == 0; };
  const std::string name = std::string("mma_q8 ") + t.name + " n=40, the wide kernel: ";
  Report(errors.empty() && written && same(0, 1), name + "settings without a K split give the same bits", errors);
  Report(same(2, 3) && same(2, 4), name + "settings with 4 K groups give the same bits");
  Report(same(5, 6) && same(5, 7), name + "settings with 2 K groups give the same bits");
  Report(same(kType == QuantType::kQ2_K ? 6 : 2, 8), name + "MatMul's bits are those of its setting (150 rows)");
}

// The wide kernel's settings on a tall matrix (16421 rows: more CTAs than
// fit the GPU at once) against the reference, each twice, with the caller's
// workspace first filled with 0x7F and then with zeros (x's codes must all be
// rewritten by the call), at n = 20 (4 tiles) and 40 (8 tiles). 2 x 2 warps
// with 4 stages failed here on an H200 (Q3_K, n = 20) before the producer
// fenced the async proxy ahead of each refill (detail::FenceProxyAsync).
template <QuantType kType>
void TestWideTallTyped(const TypeInfo& t) {
  const int64_t rows = 16421, cols = 2048;
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kRealistic, 53);
  const std::vector<float> wf = ReferenceDequant(t, blocks, rows, cols);
  DeviceBuffer<uint8_t> dw(blocks.size());
  BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
  for (int64_t n : {20, 40}) {
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, n * cols, 59 + n, &xraw, &xf, true);
    const Products p = ReferenceProducts(wf, xf, rows, cols, n, ReferenceMinTerms(t, blocks, rows, cols));
    DeviceBuffer<uint8_t> dx(xraw.size()), ws(static_cast<size_t>(bqc::MmaQ8G16WorkspaceBytes(n, cols)));
    DeviceBuffer<float> y(static_cast<size_t>(n * rows));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    const __half* xh = reinterpret_cast<const __half*>(dx.ptr);
    auto check = [&](const char* setting, auto launch) {
      for (int fill : {0x7F, 0}) {
        BQ_CUDA_CHECK(cudaMemset(ws.ptr, fill, ws.count));
        BQ_CUDA_CHECK(cudaMemset(y.ptr, 0xFF, y.count * 4));
        const cudaError_t e = launch(y.ptr, ws.ptr);
        BQ_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> got(y.count);
        BQ_CUDA_CHECK(cudaMemcpy(got.data(), y.ptr, got.size() * 4, cudaMemcpyDeviceToHost));
        int64_t bad = 0, first = -1, last = -1;
        for (size_t i = 0; i < got.size(); ++i) {
          if (!WithinBound(p, i, got[i], 1.001)) {
            if (first < 0) first = static_cast<int64_t>(i);
            last = static_cast<int64_t>(i);
            ++bad;
          }
        }
        char detail[200];
        std::snprintf(detail, sizeof(detail), "%s; %lld bad, first row %lld col %lld, last row %lld col %lld",
                      cudaGetErrorString(e), static_cast<long long>(bad), static_cast<long long>(first % rows),
                      static_cast<long long>(first / rows), static_cast<long long>(last % rows),
                      static_cast<long long>(last / rows));
        Report(e == cudaSuccess && bad == 0,
               std::string("mma_q8 wide ") + t.name + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                   " n=" + std::to_string(n) + " " + setting + ", workspace filled with " + std::to_string(fill),
               bad || e != cudaSuccess ? detail : "");
      }
    };
    check("4w x1 3s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 4, 1, 3>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
    check("2w x2 2s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 2, 2, 2>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
    check("4w x2 2s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 4, 2, 2>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
    check("8w x1 2s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 8, 1, 2>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
    check("2w x4 4s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 2, 4, 4>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
    check("2w x2 4s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 2, 2, 4>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
    check("1w x4 8s", [&](float* yp, uint8_t* w) {
      return bqc::LaunchMmaQ8G16Wide<kType, __half, 1, 4, 8>(dw.ptr, rows, cols, xh, n, yp, w, nullptr);
    });
  }
}
void TestWideTall(const TypeInfo& t) {
  switch (t.type) {
    case QuantType::kQ2_K: return TestWideTallTyped<QuantType::kQ2_K>(t);
    case QuantType::kQ3_K: return TestWideTallTyped<QuantType::kQ3_K>(t);
    case QuantType::kQ6_K: return TestWideTallTyped<QuantType::kQ6_K>(t);
    case QuantType::kQ8_0: return TestWideTallTyped<QuantType::kQ8_0>(t);
    case QuantType::kQ4_0: return TestWideTallTyped<QuantType::kQ4_0>(t);
    default: return;
  }
}

void TestGemvSettings(const TypeInfo& t) {
  switch (t.type) {
    case QuantType::kQ2_K: return TestGemvSettingsTyped<QuantType::kQ2_K>(t);
    case QuantType::kQ3_K: return TestGemvSettingsTyped<QuantType::kQ3_K>(t);
    case QuantType::kQ4_K: return TestGemvSettingsTyped<QuantType::kQ4_K>(t);
    case QuantType::kQ5_K: return TestGemvSettingsTyped<QuantType::kQ5_K>(t);
    case QuantType::kQ6_K: return TestGemvSettingsTyped<QuantType::kQ6_K>(t);
    case QuantType::kQ8_0: return TestGemvSettingsTyped<QuantType::kQ8_0>(t);
    case QuantType::kQ4_0: return TestGemvSettingsTyped<QuantType::kQ4_0>(t);
    default: Report(false, std::string("gemv_q8 settings: no case for ") + t.name);
  }
}

// LaunchWgmmaMatMul with the library's tile for n (launch.cuh); kF16W:
// the f16-weights kernel, with or without its producer warp (the library's
// 128-column f16-weights tile decodes 8 steps ahead, the others 4).
template <QuantType kType, bool kF16W = false, bool kProducerWarp = kF16W>
cudaError_t LaunchWgmmaForN(const uint8_t* w, int64_t rows, int64_t cols, const __half* x, int64_t n, float* y,
                            void* ws, int k_split) {
  if (n <= 16) {
    return bqc::LaunchWgmmaMatMul<kType, 16, 1, 3, 4, 4, kF16W, kProducerWarp>(w, rows, cols, x, n, y, ws, nullptr,
                                                                             k_split);
  }
  if (n <= 32) {
    return bqc::LaunchWgmmaMatMul<kType, 32, 1, 3, 4, 3, kF16W, kProducerWarp>(w, rows, cols, x, n, y, ws, nullptr,
                                                                             k_split);
  }
  if (n <= 64) {
    return bqc::LaunchWgmmaMatMul<kType, 64, 2, 3, 4, 1, kF16W, kProducerWarp>(w, rows, cols, x, n, y, ws, nullptr,
                                                                             k_split);
  }
  return bqc::LaunchWgmmaMatMul<kType, 128, 2, 2, kF16W ? 8 : 4, 1, kF16W, kProducerWarp>(w, rows, cols, x, n, y, ws,
                                                                                          nullptr, k_split);
}

// wgmma's K split through the header launcher: 1, 2 and 4 CTAs per tile
// (clusters along z) and the launcher's own pick, on Q4_K rows of 6 and 7
// super-blocks (uneven over 4), Q2_K rows of 12 and 16 and Q3_K rows of 24
// and 32, partial last row and column tiles, every tile width; each held to
// the exact kernels' bound. Q4_K's f16-weights kernel too, with its
// producer warp and without, on realistic blocks, held to the f16-weights
// bound (and its 4-warpgroup tile, which streams the stages inline). Splits
// the launcher does not take are refused.
template <QuantType kType>
void TestWgmmaKSplitTyped(const TypeInfo& t) {
  // Q2_K and Q3_K: rows of 16-byte multiples (4 and 8 super-blocks).
  const int64_t unit = kType == QuantType::kQ3_K ? 2048 : kType == QuantType::kQ2_K ? 1024 : 256;
  const int64_t cols = kType == QuantType::kQ4_K ? 1536 : unit * 3;  // 6, 12 or 24 super-blocks per row
  enum Variant { kExact, kF16WProducer, kF16WInline, kF16WFourWGs };
  std::vector<Variant> variants = {kExact};
  if (kType == QuantType::kQ4_K) variants.insert(variants.end(), {kF16WProducer, kF16WInline, kF16WFourWGs});
  for (const MatMulCase c : {MatMulCase{131, cols, 13}, MatMulCase{70, cols, 30}, MatMulCase{200, cols, 40},
                             MatMulCase{131, cols + unit, 150}}) {
    for (const Variant v : variants) {
      const bool f16w = v != kExact;
      const std::vector<uint8_t> blocks =
          bqtest::MakeBlocks(t, c.rows, c.cols, f16w ? BlockMode::kRealistic : BlockMode::kExtreme, 61 + c.n);
      const std::vector<float> wf = ReferenceDequant(t, blocks, c.rows, c.cols);
      std::vector<uint8_t> xraw;
      std::vector<float> xf;
      MakeActivations(QuantType::kF16, c.n * c.cols, 67, &xraw, &xf, true);
      const Products p = f16w ? ReferenceProducts(wf, xf, c.rows, c.cols, c.n,
                                                  ReferenceMinTerms(t, blocks, c.rows, c.cols))
                              : ReferenceProducts(wf, xf, c.rows, c.cols, c.n);
      DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size());
      DeviceBuffer<uint8_t> ws(static_cast<size_t>(bqc::WgmmaWorkspaceBytes(kType, c.n, c.cols) + 16));
      DeviceBuffer<float> dy(p.ref.size());
      BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
      BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
      const __half* xh = reinterpret_cast<const __half*>(dx.ptr);
      for (int k_split : {1, 2, 4, bqc::kWgmmaKSplitAuto}) {
        BQ_CUDA_CHECK(cudaMemset(dy.ptr, 0xFF, p.ref.size() * 4));
        cudaError_t err;
        if (v == kExact) {
          err = LaunchWgmmaForN<kType>(dw.ptr, c.rows, c.cols, xh, c.n, dy.ptr, ws.ptr, k_split);
        } else if constexpr (kType == QuantType::kQ4_K) {
          if (v == kF16WFourWGs) {
            err = bqc::LaunchWgmmaMatMul<kType, 128, 4, 2, 4, 1, true, false>(dw.ptr, c.rows, c.cols, xh, c.n, dy.ptr,
                                                                             nullptr, nullptr, k_split);
          } else {
            err = v == kF16WProducer
                      ? LaunchWgmmaForN<kType, true, true>(dw.ptr, c.rows, c.cols, xh, c.n, dy.ptr, nullptr, k_split)
                      : LaunchWgmmaForN<kType, true, false>(dw.ptr, c.rows, c.cols, xh, c.n, dy.ptr, nullptr, k_split);
          }
        } else {
          err = cudaErrorNotSupported;  // no f16-weights variant of this type runs
        }
        const char* what = v == kExact          ? "wgmma "
                           : v == kF16WProducer ? "wgmma_f16w "
                           : v == kF16WInline   ? "wgmma_f16w inline "
                                                : "wgmma_f16w 4wg ";
        const std::string name = what + std::string(t.name) + " " + std::to_string(c.rows) + "x" +
                                 std::to_string(c.cols) + " n=" + std::to_string(c.n) + " k split " +
                                 (k_split == bqc::kWgmmaKSplitAuto ? std::string("auto") : std::to_string(k_split));
        if (err != cudaSuccess) {
          Report(false, name, cudaGetErrorString(err));
          continue;
        }
        BQ_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> got(p.ref.size());
        BQ_CUDA_CHECK(cudaMemcpy(got.data(), dy.ptr, got.size() * 4, cudaMemcpyDeviceToHost));
        int64_t bad = 0;
        for (size_t i = 0; i < got.size(); ++i) bad += !WithinBound(p, i, got[i], 0.0, f16w);
        Report(bad == 0, name, std::to_string(bad) + " outputs out of bound");
      }
    }
  }
  // Refused: a split of 3, and more CTAs per tile than super-blocks (Q2_K
  // and Q3_K with 4 and 8 per row: a split of 8, beyond 4 anyway).
  const int64_t rcols = unit;  // 1, 4 or 8 super-blocks per row
  DeviceBuffer<uint8_t> dw(static_cast<size_t>(rcols / 256 * t.bytes * 64)), dx(static_cast<size_t>(rcols * 2 * 8));
  DeviceBuffer<uint8_t> ws(static_cast<size_t>(bqc::WgmmaWorkspaceBytes(kType, 8, rcols) + 16));
  DeviceBuffer<float> dy(64 * 8);
  for (const int bad : {3, kType == QuantType::kQ4_K ? 2 : 8}) {
    const cudaError_t err = bqc::LaunchWgmmaMatMul<kType, 16, 1, 3, 4, 4>(
        dw.ptr, 64, rcols, reinterpret_cast<const __half*>(dx.ptr), 8, dy.ptr, ws.ptr, nullptr, bad);
    Report(err == cudaErrorInvalidValue,
           std::string("error: wgmma ") + t.name + " k split " + std::to_string(bad) + " of " +
               std::to_string(rcols / 256) + " super-blocks refused",
           cudaGetErrorString(err));
  }
  cudaGetLastError();
}

// The f16-weights kernel's 4-warpgroup tile (128 columns, stages streamed
// inline, 4 steps decoded ahead), which the library takes for n = 65..128 on
// tall matrices, against its 2-warpgroup tile (producer warp, 8 steps
// ahead), both unsplit: each output is the same chain of the same wgmmas,
// so the bits must match. Rows past the last 256-row tile, n past 64 and a
// partial column tile.
template <QuantType kType>
void TestWgmmaFourWarpgroupsTyped(const TypeInfo& t) {
  for (const MatMulCase c : {MatMulCase{300, 1536, 100}, MatMulCase{131, 1792, 128}, MatMulCase{257, 256, 70},
                             MatMulCase{64, 512, 200}}) {
    const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, c.rows, c.cols, BlockMode::kRealistic, 83 + c.n);
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, c.n * c.cols, 89 + c.n, &xraw, &xf, true);
    DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size());
    DeviceBuffer<float> dy2(static_cast<size_t>(c.rows * c.n)), dy4(static_cast<size_t>(c.rows * c.n));
    BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemset(dy2.ptr, 0xFF, static_cast<size_t>(c.rows * c.n) * 4));
    BQ_CUDA_CHECK(cudaMemset(dy4.ptr, 0xFF, static_cast<size_t>(c.rows * c.n) * 4));
    const __half* xh = reinterpret_cast<const __half*>(dx.ptr);
    const cudaError_t e2 = bqc::LaunchWgmmaMatMul<kType, 128, 2, 2, 8, 1, true, true>(dw.ptr, c.rows, c.cols, xh, c.n,
                                                                                     dy2.ptr, nullptr, nullptr, 1);
    const cudaError_t e4 = bqc::LaunchWgmmaMatMul<kType, 128, 4, 2, 4, 1, true, false>(dw.ptr, c.rows, c.cols, xh, c.n,
                                                                                      dy4.ptr, nullptr, nullptr, 1);
    const std::string name = std::string("wgmma_f16w 4wg vs 2wg bits ") + t.name + " " + std::to_string(c.rows) + "x" +
                             std::to_string(c.cols) + " n=" + std::to_string(c.n);
    if (e2 != cudaSuccess || e4 != cudaSuccess) {
      Report(false, name, std::string(cudaGetErrorString(e2)) + " / " + cudaGetErrorString(e4));
      continue;
    }
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> y2(static_cast<size_t>(c.rows * c.n)), y4(y2.size());
    BQ_CUDA_CHECK(cudaMemcpy(y2.data(), dy2.ptr, y2.size() * 4, cudaMemcpyDeviceToHost));
    BQ_CUDA_CHECK(cudaMemcpy(y4.data(), dy4.ptr, y4.size() * 4, cudaMemcpyDeviceToHost));
    int64_t differ = 0;
    for (size_t i = 0; i < y2.size(); ++i) differ += std::memcmp(&y2[i], &y4[i], 4) != 0;
    Report(differ == 0, name, std::to_string(differ) + " outputs differ");
  }
}

// Weights that end exactly where their allocation ends (DeviceBuffer pads
// 16 bytes, which hid a read past the end; compute-sanitizer faults one
// here): every kernel that takes the arguments must give the bits it gives
// on a padded buffer.
void TestExactBufferCols(const TypeInfo& t, int64_t cols) {
  const int64_t rows = 19;
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kRealistic, 47);
  uint8_t* exact = nullptr;
  BQ_CUDA_CHECK(cudaMalloc(&exact, blocks.size()));
  DeviceBuffer<uint8_t> padded(blocks.size());
  BQ_CUDA_CHECK(cudaMemcpy(exact, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemcpy(padded.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
  using K = bqc::MatMulKernel;
  for (int64_t n : {1, 9, 40}) {
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, n * cols, 53, &xraw, &xf);
    DeviceBuffer<uint8_t> dx(xraw.size());
    DeviceBuffer<float> y0(static_cast<size_t>(n * rows)), y1(static_cast<size_t>(n * rows));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    for (K k : {K::kSimple, K::kMma8, K::kMma16, K::kMma64, K::kGemvQ8, K::kWgmma, K::kMmaQ8, K::kWgmmaF16W}) {
      const bqc::Status a = bqc::MatMul(t.type, padded.ptr, rows, cols, QuantType::kF16, dx.ptr, n, y0.ptr, nullptr, k);
      if (!a.ok()) continue;  // a kernel that refuses these arguments (TestMatMul checks which)
      const bqc::Status b = bqc::MatMul(t.type, exact, rows, cols, QuantType::kF16, dx.ptr, n, y1.ptr, nullptr, k);
      BQ_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> r0(static_cast<size_t>(n * rows)), r1(r0.size());
      BQ_CUDA_CHECK(cudaMemcpy(r0.data(), y0.ptr, r0.size() * 4, cudaMemcpyDeviceToHost));
      BQ_CUDA_CHECK(cudaMemcpy(r1.data(), y1.ptr, r1.size() * 4, cudaMemcpyDeviceToHost));
      Report(b.ok() && std::memcmp(r0.data(), r1.data(), r0.size() * 4) == 0,
             std::string("matmul ") + t.name + " " + std::to_string(rows) + "x" + std::to_string(cols) + " n=" +
                 std::to_string(n) + " " + bqc::MatMulKernelName(k) +
                 ": weights ending at their allocation's end, same bits",
             b.message);
    }
  }
  cudaFree(exact);
}
void TestExactBuffer(const TypeInfo& t) {
  // 2304 columns: rows off 16-byte boundaries for Q2_K/Q3_K/Q6_K; 2048:
  // Q2_K, Q3_K and Q6_K rows that wgmma takes (Q6_K's with f16 weights),
  // whose last TMA box reaches past the row.
  for (const int64_t cols : {int64_t{2304}, int64_t{2048}}) {
    if (cols == 2048 && t.type != QuantType::kQ2_K && t.type != QuantType::kQ3_K && t.type != QuantType::kQ6_K) {
      continue;
    }
    TestExactBufferCols(t, cols);
  }
}

// The planar layout as bq_planar.cuh describes it, built the other way
// round (from the GGUF fields to the planes): Q2_K codes qs, scales, then d
// and dmin; Q3_K hmask and qs, scales, d; Q6_K ql and qh, with lane j's ql
// bytes 64h + l0 + i and 64h + 32 + l0 + i (h = j / 4, l0 = 8 (j % 4),
// i < 8) first as codes 16j .. 16j + 15, then scales, then d.
std::vector<uint8_t> HostPlanar(const TypeInfo& t, const std::vector<uint8_t>& blocks) {
  struct Field {
    int off, len;
  };
  Field f[3];  // codes, scales, d
  if (t.type == QuantType::kQ2_K) {
    f[0] = {16, 64}, f[1] = {0, 16}, f[2] = {80, 4};
  } else if (t.type == QuantType::kQ3_K) {
    f[0] = {0, 96}, f[1] = {96, 12}, f[2] = {108, 2};
  } else {
    f[0] = {0, 192}, f[1] = {192, 16}, f[2] = {208, 2};
  }
  const size_t nb = blocks.size() / static_cast<size_t>(t.bytes);
  std::vector<uint8_t> out(blocks.size());
  size_t plane = 0;
  for (const Field& field : f) {
    for (size_t b = 0; b < nb; ++b) {
      std::memcpy(&out[plane + b * field.len], &blocks[b * t.bytes + field.off], static_cast<size_t>(field.len));
    }
    plane += nb * field.len;
  }
  if (t.type == QuantType::kQ6_K) {
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* ql = &blocks[b * t.bytes];
      uint8_t* code = &out[b * 192];
      for (int j = 0; j < 8; ++j) {
        const int h = j / 4, l0 = 8 * (j % 4);
        for (int i = 0; i < 8; ++i) {
          code[16 * j + i] = ql[64 * h + l0 + i];
          code[16 * j + 8 + i] = ql[64 * h + 32 + l0 + i];
        }
      }
    }
  }
  return out;
}

// ToPlanar / FromPlanar bytes, and MatMulPlanar against MatMul (kAuto) on
// the blocks: gemv_q8 reading the planes (the tall launch and passes of
// columns included) and the restore-then-MatMul path (n beyond gemv_q8's
// reach, F32 x, planes off 16 bytes), with and without a workspace; each
// must give MatMul's bits, and MatMulPlanarInPlace must say which path ran.
void TestPlanar(const TypeInfo& t, bool small) {
  for (const int64_t rows : {int64_t{53}, bqc::gemv::kTallGemvRows + 37}) {
    const int64_t cols = rows > 100 && small ? 1280 : 5376;
    const std::string shape = std::string(t.name) + " " + std::to_string(rows) + "x" + std::to_string(cols);
    const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kExtreme, 41 + rows);
    const std::vector<uint8_t> want = HostPlanar(t, blocks);
    const size_t bytes = blocks.size();
    DeviceBuffer<uint8_t> dw(bytes), dp(bytes + 16), back(bytes);
    BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), bytes, cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemset(dp.ptr, 0xA5, bytes + 16));
    bqc::Status st = bqc::ToPlanar(t.type, dw.ptr, rows, cols, dp.ptr);
    std::vector<uint8_t> got(bytes);
    BQ_CUDA_CHECK(cudaMemcpy(got.data(), dp.ptr, bytes, cudaMemcpyDeviceToHost));
    Report(st.ok() && got == want, "planar " + shape + ": ToPlanar bytes as the layout describes", st.message);
    st = bqc::FromPlanar(t.type, dp.ptr, rows, cols, back.ptr);
    BQ_CUDA_CHECK(cudaMemcpy(got.data(), back.ptr, bytes, cudaMemcpyDeviceToHost));
    Report(st.ok() && got == blocks, "planar " + shape + ": FromPlanar gives the blocks back", st.message);
    // The same planes 4 bytes further on: not 16-byte aligned.
    DeviceBuffer<uint8_t> odd(bytes + 4);
    BQ_CUDA_CHECK(cudaMemcpy(odd.ptr + 4, dp.ptr, bytes, cudaMemcpyDeviceToDevice));
    const int64_t ws_bytes = bqc::MatMulPlanarWorkspaceBytes(t.type, rows, cols);
    DeviceBuffer<uint8_t> ws(static_cast<size_t>(ws_bytes));
    for (QuantType act : {QuantType::kF16, QuantType::kBF16, QuantType::kF32}) {
      for (int64_t n : {1, 2, 3, 4, 5, 8, 9, 16, 17}) {
        if (act == QuantType::kF32 && n != 1 && n != 4) continue;
        if (rows > 100 && n != 1 && n != 9) continue;
        std::vector<uint8_t> xraw;
        std::vector<float> xf;
        MakeActivations(act, n * cols, 43 + n, &xraw, &xf, true);
        DeviceBuffer<uint8_t> dx(xraw.size());
        DeviceBuffer<float> y0(static_cast<size_t>(n * rows)), y1(static_cast<size_t>(n * rows));
        BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
        const bqc::Status ref = bqc::MatMul(t.type, dw.ptr, rows, cols, act, dx.ptr, n, y0.ptr);
        std::vector<float> r0(static_cast<size_t>(n * rows)), r1(r0.size());
        BQ_CUDA_CHECK(cudaDeviceSynchronize());
        BQ_CUDA_CHECK(cudaMemcpy(r0.data(), y0.ptr, r0.size() * 4, cudaMemcpyDeviceToHost));
        const char* act_name = act == QuantType::kF16 ? "f16" : act == QuantType::kBF16 ? "bf16" : "f32";
        auto check = [&](const std::string& how, const uint8_t* planes, void* workspace) {
          // In place exactly where kAuto runs gemv_q8 on the blocks and the
          // planes are 16-byte aligned.
          const bool gemv =
              bqc::ChooseMatMulKernel(t.type, dw.ptr, rows, cols, act, dx.ptr, n) == bqc::MatMulKernel::kGemvQ8;
          const bool in_place = bqc::MatMulPlanarInPlace(t.type, planes, cols, act, dx.ptr, n);
          Report(in_place == (gemv && reinterpret_cast<uintptr_t>(planes) % 16 == 0),
                 "planar " + shape + " n=" + std::to_string(n) + " " + how + ": MatMulPlanarInPlace " +
                     (in_place ? "true" : "false"));
          BQ_CUDA_CHECK(cudaMemset(y1.ptr, 0xFF, r1.size() * 4));  // NaN: a call that writes nothing fails
          const bqc::Status s = bqc::MatMulPlanar(t.type, planes, rows, cols, act, dx.ptr, n, y1.ptr, nullptr,
                                                  workspace, workspace ? ws_bytes : 0);
          BQ_CUDA_CHECK(cudaDeviceSynchronize());
          BQ_CUDA_CHECK(cudaMemcpy(r1.data(), y1.ptr, r1.size() * 4, cudaMemcpyDeviceToHost));
          Report(ref.ok() && s.ok() && std::memcmp(r0.data(), r1.data(), r0.size() * 4) == 0,
                 "planar " + shape + " " + act_name + " n=" + std::to_string(n) + " " + how + ": MatMul's bits",
                 ref.message + s.message);
        };
        check("", dp.ptr, nullptr);
        if (n == 1 || n == 9 || n == 17 || act == QuantType::kF32) check("with a workspace", dp.ptr, ws.ptr);
        if (n == 1 && act != QuantType::kF32) check("planes off 16 bytes", odd.ptr + 4, nullptr);
      }
    }
    if (rows > 100) continue;
    st = bqc::MatMulPlanar(t.type, dp.ptr, rows, cols, QuantType::kF16, dw.ptr, 17, reinterpret_cast<float*>(back.ptr),
                           nullptr, ws.ptr, ws_bytes - 1);
    Report(st.code == 1, "error: planar " + shape + " workspace one byte short -> code 1", st.message);
    st = bqc::ToPlanar(t.type, dw.ptr, rows, cols, dw.ptr + 16);
    Report(st.code == 1, "error: planar " + shape + " overlapping buffers -> code 1", st.message);
  }
}

// With the device's memory taken, MatMul's own scratch allocation fails:
// kAuto must fall back to a kernel without scratch, whose exact x holds the
// result to the exact kernels' bound (mma_q8's rounded x would not; at n =
// 40 kAuto's own f16-weights wgmma needs no scratch, held to its bound),
// and a forced mma_q8 or (exact) wgmma must return the allocation's error.
void TestScratchOutOfMemory() {
  const TypeInfo& t = bqtest::CudaTypes()[0];  // Q4_K
  const int64_t rows = 64, cols = 2304;
  const std::vector<uint8_t> blocks = bqtest::MakeBlocks(t, rows, cols, BlockMode::kRealistic, 21);
  const std::vector<float> wf = ReferenceDequant(t, blocks, rows, cols);
  using K = bqc::MatMulKernel;
  for (int64_t n : {8, 40}) {
    std::vector<uint8_t> xraw;
    std::vector<float> xf;
    MakeActivations(QuantType::kF16, n * cols, 23, &xraw, &xf);
    DeviceBuffer<uint8_t> dw(blocks.size()), dx(xraw.size());
    DeviceBuffer<float> dy(static_cast<size_t>(n * rows));
    BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, blocks.data(), blocks.size(), cudaMemcpyHostToDevice));
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, xraw.data(), xraw.size(), cudaMemcpyHostToDevice));
    const K chosen = bqc::ChooseMatMulKernel(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n);
    const bool f16_weights = chosen == K::kWgmmaF16W;
    const K with_scratch = f16_weights ? K::kWgmma : chosen;
    const std::string name = std::string("matmul Q4_K n=") + std::to_string(n) + " out of memory (" +
                             bqc::MatMulKernelName(with_scratch) + "'s scratch)";
    // Take every allocation the device still grants, down to 256 bytes.
    BQ_CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemPool_t pool;
    BQ_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
    BQ_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    size_t free_bytes = 0, total = 0;
    BQ_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    std::vector<void*> hog;
    for (size_t chunk = free_bytes; chunk >= 256;) {
      void* p = nullptr;
      if (cudaMalloc(&p, chunk) == cudaSuccess) {
        hog.push_back(p);
      } else {
        cudaGetLastError();
        chunk /= 2;
      }
    }
    void* probe = nullptr;
    const bool exhausted = cudaMallocAsync(&probe, 4096, nullptr) != cudaSuccess;
    cudaGetLastError();
    if (!exhausted) BQ_CUDA_CHECK(cudaFreeAsync(probe, nullptr));
    const bqc::Status forced = bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, dy.ptr, nullptr,
                                           with_scratch);
    const bqc::Status st = bqc::MatMul(t.type, dw.ptr, rows, cols, QuantType::kF16, dx.ptr, n, dy.ptr);
    const cudaError_t sync = cudaDeviceSynchronize();
    for (void* p : hog) cudaFree(p);
    Report(exhausted, name + ": the device's memory taken", "a 4 KB stream-ordered allocation still succeeded");
    Report(!forced.ok(), "error: forced " + name + " -> an error", forced.message);
    std::vector<float> got(static_cast<size_t>(n * rows));
    BQ_CUDA_CHECK(cudaMemcpy(got.data(), dy.ptr, got.size() * 4, cudaMemcpyDeviceToHost));
    const Products p = ReferenceProducts(wf, xf, rows, cols, n, ReferenceMinTerms(t, blocks, rows, cols));
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += !WithinBound(p, i, got[i], 0.0, f16_weights);
    Report(st.ok() && sync == cudaSuccess && bad == 0,
           name + (f16_weights ? ": kAuto runs its f16-weights wgmma" : ": kAuto falls back to an exact kernel"),
           st.message + " " + std::to_string(bad) + " outputs outside the bound");
  }
}

// ---------------------------------------------------------------------------
void TestQuantizeQ8_0(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  bqtest::Rng rng(seed);
  for (int64_t b = 0; b < rows * cols / 32; ++b) {
    float* v = &x[b * 32];
    const int kind = static_cast<int>(b % 8);
    for (int i = 0; i < 32; ++i) {
      const float u = rng.Symmetric();
      switch (kind) {
        case 0: v[i] = 0.0f; break;                                          // all-zero block
        case 1: v[i] = (static_cast<float>(i) - 15.5f) * 0.25f; break;       // exact ties after scaling
        case 2: v[i] = u * 1e-40f; break;                                    // subnormal inputs
        case 3: v[i] = u * 3e38f; break;                                     // d saturates to 65504
        case 4: v[i] = i == 0 ? 127.0f : std::round(u * 127.0f) + 0.5f; break;  // q ties at .5
        case 5: v[i] = -0.0f; break;
        default: v[i] = u * std::ldexp(1.0f, static_cast<int>(rng.Next() % 40) - 20); break;
      }
    }
  }
  const int64_t row_bytes = cols / 32 * 34;
  std::vector<uint8_t> want(static_cast<size_t>(rows * row_bytes));
  for (int64_t r = 0; r < rows; ++r) {
    blockquant::ref::QuantizeRowQ8_0(&x[r * cols], reinterpret_cast<blockquant::BlockQ8_0*>(&want[r * row_bytes]),
                                     cols);
  }
  DeviceBuffer<float> dx(x.size());
  DeviceBuffer<uint8_t> dq(want.size());
  BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemset(dq.ptr, 0xA5, want.size()));
  const std::string name = "quantize Q8_0 " + std::to_string(rows) + "x" + std::to_string(cols) + " bytes identical";
  const bqc::Status st = bqc::Quantize(QuantType::kQ8_0, dx.ptr, rows, cols, dq.ptr);
  if (!st.ok()) return Report(false, name, st.message);
  BQ_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(want.size());
  BQ_CUDA_CHECK(cudaMemcpy(got.data(), dq.ptr, got.size(), cudaMemcpyDeviceToHost));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  Report(bad == 0, name, bad ? std::to_string(bad) + " bytes differ, first at " + std::to_string(first) : "");
}

// ---------------------------------------------------------------------------
// gemv_q8's x rounding (gemv::RoundBlockOf32, also mma_q8's). Its divisions
// skip div.rn's range check: DivBy127(a) and Div127By(b) against div.rn for
// every finite a >= 0 and b >= 2^-121 (every stride-th value), mismatches
// counted and the lowest one kept.
__global__ void XDivisionsKernel(uint32_t stride, unsigned long long* bad, unsigned* first) {
  const uint32_t step = gridDim.x * blockDim.x * stride;
  for (uint32_t u = (blockIdx.x * blockDim.x + threadIdx.x) * stride; u < 0x7F800000u; u += step) {
    const float a = __uint_as_float(u);
    bool ok = __float_as_uint(bqc::gemv::DivBy127(a)) == __float_as_uint(a / 127.0f);
    if (a >= 0x1p-121f) ok = ok && __float_as_uint(bqc::gemv::Div127By(a)) == __float_as_uint(127.0f / a);
    if (!ok) {
      atomicAdd(bad, 1ull);
      atomicMin(first, u);
    }
  }
}

// RoundBlockOf32<kBranchFree> on chunks of 8 values, 4 lanes to a 32-block
// (whole warps): each chunk's codes, dx and code sum.
template <bool kBranchFree>
__global__ void RoundBlocksKernel(const float* x, uint32_t* codes, float* d, int* qsum) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float f[8];
  for (int i = 0; i < 8; ++i) f[i] = x[8 * idx + i];
  uint32_t packed[2];
  int sum = 0;
  d[idx] = bqc::gemv::RoundBlockOf32<kBranchFree>(f, packed, &sum);
  codes[2 * idx] = packed[0];
  codes[2 * idx + 1] = packed[1];
  qsum[idx] = sum;
}

// RoundWholeBlock<Act>, one thread per 32-block: codes, dx, code sums of
// each half.
template <typename Act>
__global__ void RoundWholeBlocksKernel(const uint4* x, int64_t blocks, uint32_t* codes, float* d, int* qsum) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= blocks) return;
  const uint4 raw[4] = {x[4 * b], x[4 * b + 1], x[4 * b + 2], x[4 * b + 3]};
  uint32_t packed[8];
  int sums[2];
  d[b] = bqc::gemv::RoundWholeBlock<Act>(raw, packed, sums);
  for (int w = 0; w < 8; ++w) codes[8 * b + w] = packed[w];
  qsum[2 * b] = sums[0];
  qsum[2 * b + 1] = sums[1];
}

// count values of a device buffer, on the host.
template <typename T>
std::vector<T> ToHost(const T* dev, size_t count) {
  std::vector<T> host(count);
  BQ_CUDA_CHECK(cudaMemcpy(host.data(), dev, count * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

// What the x rounding must give for one 32-block v: codes rint(v * 127 /
// max|v|) (ties to even; zero below 2^-121), 4 to a word, dx = max|v| / 127,
// and the codes' sums over each 8 values. false: the block is not finite
// (dx must be NaN; codes and sums are unspecified).
bool ReferenceXBlock(const float* v, uint32_t* codes, float* dx, int* sums8) {
  float amax = 0.0f;
  bool finite = true;
  for (int i = 0; i < 32; ++i) {
    finite = finite && std::isfinite(v[i]);
    amax = std::max(amax, std::fabs(v[i]));
  }
  const float inv = amax >= 0x1p-121f ? 127.0f / amax : 0.0f;
  *dx = amax / 127.0f;
  for (int w = 0; w < 8; ++w) codes[w] = 0;
  for (int c = 0; c < 4; ++c) sums8[c] = 0;
  for (int i = 0; i < 32; ++i) {
    const int q = static_cast<int>(std::nearbyint(v[i] * inv));
    sums8[i / 8] += q;
    codes[i / 4] |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * (i % 4));
  }
  return finite;
}

void TestXRounding(bool small) {
  {
    DeviceBuffer<unsigned long long> bad(1);
    DeviceBuffer<unsigned> first(1);
    const unsigned none = 0xFFFFFFFFu;
    BQ_CUDA_CHECK(cudaMemset(bad.ptr, 0, 8));
    BQ_CUDA_CHECK(cudaMemcpy(first.ptr, &none, 4, cudaMemcpyHostToDevice));
    const uint32_t stride = small ? 9973 : 1;  // compute-sanitizer runs a sample
    XDivisionsKernel<<<1024, 256>>>(stride, bad.ptr, first.ptr);
    BQ_CUDA_CHECK(cudaGetLastError());
    unsigned long long nbad = 0;
    unsigned f = 0;
    BQ_CUDA_CHECK(cudaMemcpy(&nbad, bad.ptr, 8, cudaMemcpyDeviceToHost));
    BQ_CUDA_CHECK(cudaMemcpy(&f, first.ptr, 4, cudaMemcpyDeviceToHost));
    char detail[64];
    std::snprintf(detail, sizeof(detail), "%llu differ, first at bits 0x%08x", nbad, f);
    Report(nbad == 0,
           std::string("x rounding: a / 127 and 127 / b as div.rn for ") + (small ? "a sample of" : "every") +
               " finite float",
           detail);
  }
  // Block kinds: random, all zero, -0, ties (x * 127 / max at k + 1/2), one
  // value and zeros, subnormal, below 2^-121 (codes 0), near FLT_MAX, mixed
  // magnitudes, then NaN and -Inf (dx NaN; codes unspecified).
  const int kKinds = 11, kPerKind = 64;
  const int64_t blocks = int64_t{kKinds} * kPerKind, chunks = blocks * 4;
  std::vector<float> x(static_cast<size_t>(blocks * 32));
  bqtest::Rng rng(17);
  for (int64_t b = 0; b < blocks; ++b) {
    float* v = &x[b * 32];
    const int kind = static_cast<int>(b % kKinds);
    for (int i = 0; i < 32; ++i) {
      const float u = rng.Symmetric();
      switch (kind) {
        case 0: v[i] = u * 3.0f; break;
        case 1: v[i] = 0.0f; break;
        case 2: v[i] = -0.0f; break;
        case 3: v[i] = i == 0 ? 127.0f : std::floor(u * 126.0f) + 0.5f; break;
        case 4: v[i] = i == static_cast<int>(b % 32) ? u : 0.0f; break;
        case 5: v[i] = u * 1e-39f; break;
        case 6: v[i] = u * 0x1p-122f; break;
        case 7: v[i] = u * 3.4e38f; break;
        case 8: v[i] = u * std::ldexp(1.0f, static_cast<int>(rng.Next() % 60) - 30); break;
        case 9: v[i] = i == 5 ? std::nanf("") : u; break;
        default: v[i] = i == 31 ? -INFINITY : u; break;
      }
    }
  }
  DeviceBuffer<float> dev_x(x.size());
  DeviceBuffer<uint32_t> dev_codes(static_cast<size_t>(chunks * 2));
  DeviceBuffer<float> dev_d(static_cast<size_t>(chunks));
  DeviceBuffer<int> dev_sum(static_cast<size_t>(chunks));
  BQ_CUDA_CHECK(cudaMemcpy(dev_x.ptr, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
  for (const bool branch_free : {true, false}) {
    auto kernel = branch_free ? RoundBlocksKernel<true> : RoundBlocksKernel<false>;
    kernel<<<static_cast<unsigned>(chunks / 128), 128>>>(dev_x.ptr, dev_codes.ptr, dev_d.ptr, dev_sum.ptr);
    BQ_CUDA_CHECK(cudaGetLastError());
    const std::vector<uint32_t> codes = ToHost(dev_codes.ptr, static_cast<size_t>(chunks * 2));
    const std::vector<float> d = ToHost(dev_d.ptr, static_cast<size_t>(chunks));
    const std::vector<int> sums = ToHost(dev_sum.ptr, static_cast<size_t>(chunks));
    int64_t wrong = 0, first = -1;
    for (int64_t b = 0; b < blocks; ++b) {
      uint32_t want_codes[8];
      float want_d;
      int want_sums[4];
      bool ok = true;
      const bool finite = ReferenceXBlock(&x[b * 32], want_codes, &want_d, want_sums);
      for (int64_t c = 4 * b; c < 4 * b + 4; ++c) {
        const int64_t j = c - 4 * b;  // the chunk within the block
        ok = ok && (finite ? std::memcmp(&d[c], &want_d, 4) == 0 : std::isnan(d[c]));
        if (finite) {
          ok = ok && codes[2 * c] == want_codes[2 * j] && codes[2 * c + 1] == want_codes[2 * j + 1] &&
               sums[c] == want_sums[j];
        }
      }
      if (!ok && first < 0) first = b;
      wrong += ok ? 0 : 1;
    }
    Report(wrong == 0,
           std::string("x rounding: codes, dx and code sums as rint(x * 127 / max|x|) for every block kind, ") +
               (branch_free ? "branch-free divisions" : "div.rn"),
           std::to_string(wrong) + " blocks wrong, first " + std::to_string(first) + " (kind " +
               std::to_string(first % kKinds) + ")");
  }
  // RoundWholeBlock on the same blocks in f16 and bf16 (f16 turns the
  // largest into Inf and the tiniest into zeros).
  for (const QuantType act : {QuantType::kF16, QuantType::kBF16}) {
    std::vector<uint16_t> raw(x.size());
    std::vector<float> seen(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      raw[i] = act == QuantType::kF16 ? blockquant::F32ToF16(x[i]) : blockquant::F32ToBF16(x[i]);
      seen[i] = act == QuantType::kF16 ? blockquant::F16ToF32(raw[i]) : blockquant::BF16ToF32(raw[i]);
    }
    DeviceBuffer<uint16_t> dev_raw(raw.size());
    BQ_CUDA_CHECK(cudaMemcpy(dev_raw.ptr, raw.data(), raw.size() * 2, cudaMemcpyHostToDevice));
    const uint4* xin = reinterpret_cast<const uint4*>(dev_raw.ptr);
    const unsigned grid = static_cast<unsigned>((blocks + 127) / 128);
    if (act == QuantType::kF16) {
      RoundWholeBlocksKernel<__half><<<grid, 128>>>(xin, blocks, dev_codes.ptr, dev_d.ptr, dev_sum.ptr);
    } else {
      RoundWholeBlocksKernel<__nv_bfloat16><<<grid, 128>>>(xin, blocks, dev_codes.ptr, dev_d.ptr, dev_sum.ptr);
    }
    BQ_CUDA_CHECK(cudaGetLastError());
    const std::vector<uint32_t> codes = ToHost(dev_codes.ptr, static_cast<size_t>(blocks * 8));
    const std::vector<float> d = ToHost(dev_d.ptr, static_cast<size_t>(blocks));
    const std::vector<int> sums = ToHost(dev_sum.ptr, static_cast<size_t>(blocks * 2));
    int64_t wrong = 0, first = -1;
    for (int64_t b = 0; b < blocks; ++b) {
      uint32_t want_codes[8];
      float want_d;
      int want_sums[4];
      const bool finite = ReferenceXBlock(&seen[b * 32], want_codes, &want_d, want_sums);
      bool ok = finite ? std::memcmp(&d[b], &want_d, 4) == 0 : std::isnan(d[b]);
      if (finite) {
        ok = ok && std::memcmp(&codes[8 * b], want_codes, sizeof(want_codes)) == 0 &&
             sums[2 * b] == want_sums[0] + want_sums[1] && sums[2 * b + 1] == want_sums[2] + want_sums[3];
      }
      if (!ok && first < 0) first = b;
      wrong += ok ? 0 : 1;
    }
    Report(wrong == 0,
           std::string("x rounding: one thread per block (RoundWholeBlock) as rint(x * 127 / max|x|), ") +
               (act == QuantType::kF16 ? "f16" : "bf16") + " x",
           std::to_string(wrong) + " blocks wrong, first " + std::to_string(first) + " (kind " +
               std::to_string(first % kKinds) + ")");
  }
}

// FindNonFinite: the lowest bad index wherever it falls (first, last, past
// the grid's first sweep, several bad values), -1 for all finite values,
// subnormals and the largest float included.
void TestFindNonFinite() {
  const int64_t count = int64_t{4096} * 256 * 3 + 17;  // more than one sweep of the grid
  std::vector<float> x(static_cast<size_t>(count));
  bqtest::Rng rng(9);
  for (auto& v : x) v = rng.Symmetric() * 1e3f;
  x[5] = 1e-40f;
  x[6] = 3.4028235e38f;
  x[7] = -3.4028235e38f;
  DeviceBuffer<float> dx(x.size());
  struct Case { std::vector<int64_t> bad; float value; };
  const std::vector<Case> cases = {{{}, 0.0f},
                                   {{0}, std::nanf("")},
                                   {{count - 1}, INFINITY},
                                   {{count - 1, 4096 * 256 + 3}, -INFINITY},
                                   {{count - 2, 2 * 4096 * 256 + 1, 3 * 4096 * 256 + 5}, std::nanf("")}};
  for (const Case& c : cases) {
    std::vector<float> y = x;
    int64_t want = -1;
    for (int64_t i : c.bad) {
      y[i] = c.value;
      if (want < 0 || i < want) want = i;
    }
    BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, y.data(), y.size() * 4, cudaMemcpyHostToDevice));
    int64_t got = -2;
    const bqc::Status st = bqc::FindNonFinite(dx.ptr, count, &got);
    Report(st.ok() && got == want, "find_non_finite: want " + std::to_string(want),
           st.ok() ? "got " + std::to_string(got) : st.message);
  }
  int64_t got = -2;
  bqc::Status st = bqc::FindNonFinite(dx.ptr, 0, &got);
  Report(st.ok() && got == -1, "find_non_finite: count 0 -> -1", st.message);
  st = bqc::FindNonFinite(nullptr, 5, &got);
  Report(st.code == 1, "error: find_non_finite on null -> code 1", st.message);
}

// GptqRoundBatch against gptq.h's inner loop run on the CPU with the same
// operations in the same order (so bit for bit), for the second batch of a
// 512-column tensor and a random upper-triangular U; then WriteBlockLevels
// against calib::WriteBlockLevels.
void TestGptq(const TypeInfo& t) {
  const int64_t rows = 37, cols = 512, c0 = 256, bb = t.bytes;
  bqtest::Rng rng(21);
  std::vector<float> w(static_cast<size_t>(rows * cols)), u(static_cast<size_t>(cols * cols), 0.0f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = rng.Symmetric() * (i % 97 == 0 ? 8.0f : 1.0f);
  for (int64_t i = 0; i < cols; ++i) {
    u[static_cast<size_t>(i * cols + i)] = 0.5f + 1.5f * std::fabs(rng.Symmetric());
    for (int64_t j = i + 1; j < cols; ++j) u[static_cast<size_t>(i * cols + j)] = rng.Symmetric() * 0.05f;
  }
  // Scales of the batch, one block per row, and of the whole tensor for the level write.
  std::vector<uint8_t> batch(static_cast<size_t>(rows * bb)), full(static_cast<size_t>(rows * 2 * bb));
  for (int64_t r = 0; r < rows; ++r) {
    blockquant::QuantizeRowReference(t.type, &w[r * cols + c0], &batch[r * bb], 256);
    blockquant::QuantizeRowReference(t.type, &w[r * cols], &full[r * 2 * bb], cols);
  }
  // The CPU loop.
  const blockquant::calib::LevelRange range(t.type);
  std::vector<int8_t> want_levels(static_cast<size_t>(rows * cols), 0);
  std::vector<float> want_err(static_cast<size_t>(rows * 256));
  blockquant::calib::BlockGrid grid;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> x(&w[r * cols], &w[r * cols] + cols);
    blockquant::calib::ReadBlockGrid(t.type, &batch[r * bb], &grid);
    for (int64_t c = 0; c < 256; ++c) {
      const float xc = x[c0 + c];
      const float q = blockquant::calib::RoundToGrid(xc, grid.step[c], grid.offset[c], static_cast<float>(range.min),
                                                     static_cast<float>(range.max));
      const float* ui = &u[(c0 + c) * cols];
      const float e = (xc - (grid.step[c] * q - grid.offset[c])) / ui[c0 + c];
      want_levels[r * cols + c0 + c] = static_cast<int8_t>(q);
      want_err[r * 256 + c] = e;
      for (int64_t j = c0 + c + 1; j < c0 + 256; ++j) x[j] -= e * ui[j];
    }
  }
  DeviceBuffer<float> dw(w.size()), du(u.size()), derr(want_err.size());
  DeviceBuffer<uint8_t> dbatch(batch.size()), dfull(full.size());
  DeviceBuffer<int8_t> dlev(want_levels.size());
  BQ_CUDA_CHECK(cudaMemcpy(dw.ptr, w.data(), w.size() * 4, cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemcpy(du.ptr, u.data(), u.size() * 4, cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemcpy(dbatch.ptr, batch.data(), batch.size(), cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemset(dlev.ptr, 0, want_levels.size()));
  const std::string name = std::string("gptq ") + t.name + " round batch: levels and errors as the CPU loop";
  bqc::Status st = bqc::GptqRoundBatch(t.type, dw.ptr, rows, cols, c0, dbatch.ptr, du.ptr, cols, dlev.ptr, derr.ptr);
  if (!st.ok()) return Report(false, name, st.message);
  std::vector<int8_t> got_levels(want_levels.size());
  std::vector<float> got_err(want_err.size());
  BQ_CUDA_CHECK(cudaMemcpy(got_levels.data(), dlev.ptr, got_levels.size(), cudaMemcpyDeviceToHost));
  BQ_CUDA_CHECK(cudaMemcpy(got_err.data(), derr.ptr, got_err.size() * 4, cudaMemcpyDeviceToHost));
  Report(got_levels == want_levels && std::memcmp(got_err.data(), want_err.data(), want_err.size() * 4) == 0, name,
         "levels or errors differ");

  // Levels into the blocks of the whole rows (the first batch's levels are 0).
  std::vector<uint8_t> want_full = full;
  std::vector<int> q(256);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < 2; ++b) {
      for (int k = 0; k < 256; ++k) q[static_cast<size_t>(k)] = want_levels[r * cols + b * 256 + k];
      blockquant::calib::WriteBlockLevels(t.type, q.data(), &want_full[(r * 2 + b) * bb]);
    }
  }
  BQ_CUDA_CHECK(cudaMemcpy(dfull.ptr, full.data(), full.size(), cudaMemcpyHostToDevice));
  st = bqc::WriteBlockLevels(t.type, dlev.ptr, rows, cols, cols, dfull.ptr);
  if (!st.ok()) return Report(false, std::string("gptq ") + t.name + " write levels", st.message);
  std::vector<uint8_t> got_full(full.size());
  BQ_CUDA_CHECK(cudaMemcpy(got_full.data(), dfull.ptr, got_full.size(), cudaMemcpyDeviceToHost));
  Report(got_full == want_full, std::string("gptq ") + t.name + " write levels: bytes as calib::WriteBlockLevels",
         "bytes differ");
}

void TestErrors() {
  DeviceBuffer<uint8_t> buf(1 << 16);
  float* y = reinterpret_cast<float*>(buf.ptr + 4096);
  bqc::Status st = bqc::MatMul(QuantType::kQ4_1, buf.ptr, 4, 256, QuantType::kF16, buf.ptr, 1, y);
  Report(st.code == 2 && !st.message.empty(), "error: unsupported type -> code 2", st.message);
  st = bqc::MatMul(QuantType::kQ4_K, buf.ptr, 4, 100, QuantType::kF16, buf.ptr, 1, y);
  Report(st.code == 3, "error: cols not a multiple of the block -> code 3", st.message);
  st = bqc::MatMul(QuantType::kQ4_K, nullptr, 4, 256, QuantType::kF16, buf.ptr, 1, y);
  Report(st.code == 1, "error: null weights -> code 1", st.message);
  st = bqc::MatMul(QuantType::kQ8_0, buf.ptr + 2, 4, 256, QuantType::kF16, buf.ptr, 1, y, nullptr,
                   bqc::MatMulKernel::kMma8);
  Report(st.code == 1, "error: forced tensor-core kernel on unaligned weights -> code 1", st.message);
  st = bqc::MatMul(QuantType::kQ4_K, buf.ptr, 4, 256, QuantType::kF32, buf.ptr, 5, y, nullptr,
                   bqc::MatMulKernel::kGemvQ8);
  Report(st.code == 1, "error: forced gemv_q8 with F32 x -> code 1", st.message);
  st = bqc::MatMul(QuantType::kQ4_K, buf.ptr + 4, 4, 256, QuantType::kF16, buf.ptr, 1, y, nullptr,
                   bqc::MatMulKernel::kGemvQ8);
  Report(st.code == 1, "error: forced gemv_q8 on Q4_K weights not 16-byte aligned -> code 1", st.message);
  st = bqc::MatMul(QuantType::kQ4_K, buf.ptr, 4, 256, QuantType::kF16, buf.ptr, 17, y, nullptr,
                   bqc::MatMulKernel::kMmaQ8);
  Report(st.code == 1, "error: forced mma_q8 with n = 17 -> code 1", st.message);
  st = bqc::MatMul(QuantType::kQ8_0, buf.ptr, 4, 96, QuantType::kF16, buf.ptr, 2, y, nullptr,
                   bqc::MatMulKernel::kMmaQ8);
  Report(st.code == 1, "error: forced mma_q8 on Q8_0 rows of 96 -> code 1", st.message);
  st = bqc::MatMul(QuantType::kQ8_0, buf.ptr, 4, 256, QuantType::kF16, buf.ptr, 0, y);
  Report(st.code == 3, "error: n = 0 -> code 3", st.message);
  st = bqc::Dequantize(QuantType::kQ6_K, buf.ptr, 2, 256, QuantType::kQ8_0, buf.ptr + 2048);
  Report(st.code == 2, "error: dequantize to Q8_0 -> code 2", st.message);
  st = bqc::Quantize(QuantType::kQ8_K, reinterpret_cast<float*>(buf.ptr), 1, 256, buf.ptr + 2048);
  Report(st.code == 2, "error: quantize to a type without a GPU quantizer -> code 2", st.message);
  st = bqc::GptqRoundBatch(QuantType::kQ8_0, y, 1, 256, 0, buf.ptr, y, 256, reinterpret_cast<int8_t*>(buf.ptr), y);
  Report(st.code == 2, "error: gptq round batch on Q8_0 -> code 2", st.message);
  st = bqc::GptqRoundBatch(QuantType::kQ4_K, y, 1, 256, 128, buf.ptr, y, 256, reinterpret_cast<int8_t*>(buf.ptr), y);
  Report(st.code == 3, "error: gptq batch not on a 256-column boundary -> code 3", st.message);
  st = bqc::WriteBlockLevels(QuantType::kQ4_K, reinterpret_cast<int8_t*>(buf.ptr), 1, 200, 200, buf.ptr);
  Report(st.code == 3, "error: write levels with cols not a multiple of 256 -> code 3", st.message);
  st = bqc::ToPlanar(QuantType::kQ4_K, buf.ptr, 2, 256, buf.ptr + 4096);
  Report(st.code == 2, "error: planar layout of Q4_K -> code 2", st.message);
  st = bqc::MatMulPlanar(QuantType::kQ8_0, buf.ptr, 4, 256, QuantType::kF16, buf.ptr, 1, y);
  Report(st.code == 2, "error: planar product of Q8_0 -> code 2", st.message);
  st = bqc::MatMulPlanar(QuantType::kQ6_K, buf.ptr, 4, 100, QuantType::kF16, buf.ptr, 1, y);
  Report(st.code == 3, "error: planar product with cols not a multiple of 256 -> code 3", st.message);
}

}  // namespace

// Every other type: the GPU runs the reference itself; bytes must match the
// CPU reference on random and adversarial 256-value blocks, with and without
// importance (random, with zero groups).
void TestQuantizeRef(QuantType type, int64_t rows, int64_t cols, uint64_t seed, bool with_importance) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  bqtest::Rng rng(seed);
  for (int64_t b = 0; b < rows * cols / 256; ++b) {
    float* v = &x[b * 256];
    const int kind = static_cast<int>(b % 9);
    for (int i = 0; i < 256; ++i) {
      const float u = rng.Symmetric();
      switch (kind) {
        case 0: v[i] = 0.0f; break;                                       // all zero
        case 1: v[i] = 0.37f; break;                                      // constant
        case 2: v[i] = i == 77 ? 50.0f : 0.0f; break;                     // one spike
        case 3: v[i] = u * 1e4f; break;                                   // large
        case 4: v[i] = u * 1e-30f; break;                                 // below f16
        case 5: v[i] = u * 1e-39f; break;                                 // subnormal
        case 6: v[i] = static_cast<float>(i % 16) - 7.5f; break;          // exact ties
        case 7: v[i] = (i % 37 == 0 ? 100.0f : 1.0f) * u; break;          // outliers
        default: v[i] = u * std::ldexp(1.0f, static_cast<int>(rng.Next() % 20) - 10); break;
      }
    }
  }
  std::vector<float> imp(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) imp[c] = (c / 16) % 5 == 0 ? 0.0f : 0.5f + rng.Symmetric() * 0.4f;
  const float* himp = with_importance ? imp.data() : nullptr;
  const int64_t row_bytes = blockquant::RowBytes(type, cols);
  std::vector<uint8_t> want(static_cast<size_t>(rows * row_bytes));
  for (int64_t r = 0; r < rows; ++r) {
    blockquant::QuantizeRowReference(type, &x[r * cols], &want[r * row_bytes], cols, himp);
  }
  DeviceBuffer<float> dx(x.size()), dimp(imp.size());
  DeviceBuffer<uint8_t> dq(want.size());
  BQ_CUDA_CHECK(cudaMemcpy(dx.ptr, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemcpy(dimp.ptr, imp.data(), imp.size() * 4, cudaMemcpyHostToDevice));
  BQ_CUDA_CHECK(cudaMemset(dq.ptr, 0xA5, want.size()));
  const std::string name = std::string("quantize ") + blockquant::TypeName(type) + " " + std::to_string(rows) + "x" +
                           std::to_string(cols) + (with_importance ? " importance" : "") + " bytes identical";
  const bqc::Status st = bqc::Quantize(type, dx.ptr, rows, cols, dq.ptr, nullptr, with_importance ? dimp.ptr : nullptr);
  if (!st.ok()) return Report(false, name, st.message);
  BQ_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(want.size());
  BQ_CUDA_CHECK(cudaMemcpy(got.data(), dq.ptr, got.size(), cudaMemcpyDeviceToHost));
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  Report(bad == 0, name, bad ? std::to_string(bad) + " bytes differ, first at " + std::to_string(first) : "");
}

int main(int argc, char** argv) {
  const bool small = argc > 1 && std::strcmp(argv[1], "--small") == 0;
  const bool wide_tall_only = argc > 1 && std::strcmp(argv[1], "--wide-tall") == 0;
  int dev_count = 0;
  if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
    std::printf("FAIL no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop;
  BQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);

  using K = bqc::MatMulKernel;
  const std::vector<K> all = {K::kAuto,  K::kSimple, K::kMma8,  K::kMma16,  K::kMma32,
                              K::kMma64, K::kGemvQ8, K::kWgmma, K::kMmaQ8, K::kWgmmaF16W};
  const std::vector<K> auto_simple = {K::kAuto, K::kSimple};

  if (wide_tall_only) {  // the wide mma_q8's settings on a tall matrix only
    for (const TypeInfo& t : bqtest::CudaTypes()) TestWideTall(t);
    std::printf("SUMMARY %d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
  }
  for (const TypeInfo& t : bqtest::CudaTypes()) {
    // Dequantization: bit-exact, every output type, raw bytes included.
    for (BlockMode mode : {BlockMode::kRealistic, BlockMode::kRaw}) {
      for (QuantType out : {QuantType::kF32, QuantType::kF16, QuantType::kBF16}) {
        TestDequantize(t, small ? 3 : 37, 512, mode, out, false);
      }
    }
    TestDequantize(t, 5, t.elems == 32 ? 96 : 768, BlockMode::kRealistic, QuantType::kF16, true);

    // Products.
    std::vector<int64_t> ns;
    if (small) {
      ns = {1, 9, 17};
    } else {
      for (int64_t n = 1; n <= 17; ++n) ns.push_back(n);
      ns.push_back(33);
      ns.push_back(127);
    }
    for (QuantType act : {QuantType::kF16, QuantType::kBF16}) {
      for (int64_t n : ns) {
        const bool every = n == 1 || n == 8 || n == 9 || n == 17 || n == 33 || n == 127;
        TestMatMul(t, {small ? 21 : 77, 512, n}, act, BlockMode::kRealistic, every ? all : auto_simple, false);
      }
      // Row lengths whose rows start off 16-byte boundaries (Q2_K/Q3_K/Q6_K),
      // a single row, many rows over several CTAs.
      TestMatMul(t, {small ? 19 : 130, 2304, 5}, act, BlockMode::kRealistic, all, false);
      TestMatMul(t, {1, 256, 3}, act, BlockMode::kRealistic, all, false);
      if (!small) {
        TestMatMul(t, {300, 1024, 64}, act, BlockMode::kRealistic,
                   {K::kAuto, K::kMma16, K::kMma64, K::kWgmma, K::kWgmmaF16W}, false);
        // wgmma's wide tiles: 128 columns per CTA, rows past the last
        // 128-row tile, n past a tile edge (K splits of 4: 6 super-blocks).
        for (int64_t n : {17, 24, 40, 96, 128, 129, 200}) {
          TestMatMul(t, {200, 1536, n}, act, BlockMode::kRealistic, {K::kAuto, K::kWgmma, K::kWgmmaF16W}, false);
        }
        // The f16-weights wgmma: a single row, rows longer than the ring of
        // stages, adversarial x, and 4096 rows through kAuto (32 x 2 tiles
        // of 128 x 128, a K split of 2; {1, 256, 3} above runs it unsplit).
        TestMatMul(t, {1, 2048, 33}, act, BlockMode::kRealistic, {K::kWgmmaF16W}, false);
        TestMatMul(t, {131, 4096, 150}, act, BlockMode::kRealistic, {K::kWgmmaF16W}, false, true);
        TestMatMul(t, {4096, 512, 130}, act, BlockMode::kRealistic, {K::kAuto, K::kWgmmaF16W}, false);
        TestMatMul(t, {131, 768, 150}, act, BlockMode::kExtreme, {K::kWgmma}, false);
      }
      if (t.type == QuantType::kQ6_K || t.type == QuantType::kQ8_0 || t.type == QuantType::kQ4_0) {
        // Their f16-weights wgmma on rows Q6_K's takes (cols % 2048 == 0):
        // kAuto on both sides of n = 33, where it starts (mma_q8 below), both
        // tiles, a partial column tile, and 4096 rows (the 64-column tile, a
        // K split of 2).
        for (int64_t n : {32, 33, 65, 100, 200}) {
          if (small && n != 33 && n != 100) continue;
          TestMatMul(t, {small ? 70 : 200, 2048, n}, act, BlockMode::kRealistic,
                     {K::kAuto, K::kWgmmaF16W, K::kMma64}, false);
        }
        if (!small) TestMatMul(t, {4096, 2048, 100}, act, BlockMode::kRealistic, {K::kWgmmaF16W}, false);
        if (act == QuantType::kF16) {
          DeviceBuffer<uint8_t> w(static_cast<size_t>(200 * 2048 / t.elems * t.bytes)), x(2 * 2048 * 40);
          const K at32 = bqc::ChooseMatMulKernel(t.type, w.ptr, 200, 2048, act, x.ptr, 32);
          const K at33 = bqc::ChooseMatMulKernel(t.type, w.ptr, 200, 2048, act, x.ptr, 33);
          Report(at32 == K::kMmaQ8 && at33 == K::kWgmmaF16W,
                 std::string("kAuto ") + t.name + " f16 x: mma_q8 to n = 32, wgmma_f16w from 33",
                 std::string(bqc::MatMulKernelName(at32)) + ", " + bqc::MatMulKernelName(at33));
        }
      }
      if (t.type == QuantType::kQ2_K || t.type == QuantType::kQ3_K) {
        // Q2_K's and Q3_K's wgmma (rows of 8 and 16 units, 16-byte
        // multiples): every tile width (16, 32, 64, 128 columns), columns
        // past n in the last tile, rows past the last 64- and 128-row tile,
        // a single row, rows longer than the ring of stages; n = 3 and 9
        // only forced.
        for (int64_t n : {3, 9, 17, 24, 40, 64, 65, 96, 128, 129, 200}) {
          if (small && n != 9 && n != 40 && n != 129) continue;
          TestMatMul(t, {small ? 70 : 200, 2048, n}, act, BlockMode::kRealistic, {K::kAuto, K::kWgmma}, false);
        }
        TestMatMul(t, {1, 2048, 33}, act, BlockMode::kRealistic, {K::kWgmma}, false);
        TestMatMul(t, {small ? 13 : 131, 4096, small ? 70 : 150}, act, BlockMode::kExtreme, {K::kAuto, K::kWgmma},
                   false, true);
      }
      TestMatMul(t, {small ? 17 : 70, 768, 11}, act, BlockMode::kExtreme, all, false);
      for (int64_t n : {1, 2, 3, 4}) {
        TestMatMul(t, {small ? 13 : 67, 1280, n}, act, BlockMode::kRealistic, {K::kAuto, K::kGemvQ8}, false, true);
      }
      TestMatMul(t, {small ? 9 : 29, 512, 3}, act, BlockMode::kExtreme, {K::kGemvQ8}, false, true);
      // gemv_q8's batches of 4 units per lane group with a remainder (21
      // units), and more rows than warps (each warp takes several); n > 4
      // in passes of 3 + 2, 4 + 4 and 4 + 3 + 3 + 3 columns.
      for (int64_t n : {1, 2, 3, 4, 5, 8, 13}) {
        TestMatMul(t, {small ? 11 : 41, 5376, n}, act, BlockMode::kExtreme, {K::kGemvQ8}, false, true);
      }
      if (!small) TestMatMul(t, {2500, 512, 1}, act, BlockMode::kRealistic, {K::kGemvQ8}, false, true);
      // n = 1 on tall matrices takes gemv_q8's 3-CTAs-per-SM launch (all
      // but Q4_0). 5 units per row: no full batch per lane group; 53: batches
      // of 4 units per lane group and then 2 and 1 (8 lanes per unit: three
      // such batches; Q2_K, Q3_K with 4 lanes: one), Q6_K's batch of 8 and
      // then single units.
      TestMatMul(t, {bqc::gemv::kTallGemvRows + 37, small ? 1280 : 13568, 1}, act, BlockMode::kExtreme,
                 {K::kAuto, K::kGemvQ8}, false, true);
      if (MmaQ8Type(t.type)) {
        // mma_q8: rows past the last 16-row tile, rows longer than its ring
        // of stages (21 super-blocks), both column tiles, more tiles than
        // the warps of one CTA.
        for (int64_t n : {1, 3, 8, 9, 16}) {
          TestMatMul(t, {small ? 11 : 41, 5376, n}, act, BlockMode::kExtreme, {K::kMmaQ8}, false, true);
        }
        if (!small) TestMatMul(t, {2500, 2304, 12}, act, BlockMode::kRealistic, {K::kMmaQ8}, false, true);
        if (G16Type(t.type)) {
          // These types' words start 2-byte aligned (for Q2_K, Q3_K and Q6_K
          // the rows above, of 21 and 9 units, take the direct path; Q8_0's
          // and Q4_0's rows are whole 16-byte multiples): whole blocks at +2
          // bytes too; rows of 8 and 16 units, 16-byte aligned, take the TMA
          // path (rows past its ring, warps without a unit, both tiles).
          TestMatMul(t, {small ? 11 : 41, 2304, 12}, act, BlockMode::kExtreme, {K::kMmaQ8, K::kAuto}, true, true);
          for (int64_t n : {1, 5, 8, 9, 16}) {
            TestMatMul(t, {small ? 11 : 41, 4096, n}, act, BlockMode::kExtreme, {K::kMmaQ8, K::kAuto}, false, true);
          }
          TestMatMul(t, {small ? 19 : 300, 2048, 12}, act, BlockMode::kRealistic, {K::kMmaQ8}, false, true);
          TestMatMul(t, {small ? 7 : 37, 1024, 3}, act, BlockMode::kRealistic, {K::kMmaQ8}, false, true);
          // From 16384 rows MatMul takes 4 warps per 16 rows and 4 CTAs per SM.
          if (!small) {
            TestMatMul(t, {bqc::gemv::kTallGemvRows + 37, 2048, 9}, act, BlockMode::kRealistic, {K::kMmaQ8}, false,
                       true);
          }
          // n = 17..64, the wide kernel: both tile counts (4, 8), columns
          // past n in the last tile, rows past the last CTA of 64 rows, a
          // single row, rows longer than its stages (16 units); rows that
          // are not 16-byte multiples (21 units) or weights at +2 bytes are
          // refused (the refusal is checked in TestMatMul).
          for (int64_t n : {17, 24, 32, 33, 57, 64}) {
            TestMatMul(t, {small ? 11 : 41, 4096, n}, act, BlockMode::kExtreme, {K::kMmaQ8, K::kAuto}, false, true);
          }
          TestMatMul(t, {small ? 70 : 300, 2048, 40}, act, BlockMode::kRealistic, {K::kMmaQ8, K::kAuto}, false, true);
          TestMatMul(t, {1, 2048, 20}, act, BlockMode::kRealistic, {K::kMmaQ8}, false, true);
          TestMatMul(t, {small ? 11 : 41, 5376, 20}, act, BlockMode::kExtreme, {K::kMmaQ8}, false, true);
          TestMatMul(t, {small ? 11 : 41, 4096, 20}, act, BlockMode::kExtreme, {K::kMmaQ8}, true, true);
          if (!small) {
            // From 16384 rows kMmaQ8 takes 2 x 2 warps with 4 stages to n =
            // 32 (Q8_0: 4 x 1) and 4 x 1 beyond; kAuto takes Q3_K's wgmma
            // with F16 x from n = 17 and Q2_K's from n = 33.
            for (int64_t n : {20, 33}) {
              TestMatMul(t, {bqc::gemv::kTallGemvRows + 37, 2048, n}, act, BlockMode::kRealistic,
                         {K::kMmaQ8, K::kAuto}, false, true);
            }
          }
        }
      }
    }
    TestNonFiniteX(t);
    TestGemvSettings(t);
    if (!small) TestWideTall(t);
    if (t.type == QuantType::kQ2_K) TestMmaQ8G16PathsTyped<QuantType::kQ2_K>(t);
    if (t.type == QuantType::kQ3_K) TestMmaQ8G16PathsTyped<QuantType::kQ3_K>(t);
    if (t.type == QuantType::kQ6_K) TestMmaQ8G16PathsTyped<QuantType::kQ6_K>(t);
    if (t.type == QuantType::kQ8_0) TestMmaQ8G16PathsTyped<QuantType::kQ8_0>(t);
    if (t.type == QuantType::kQ4_0) TestMmaQ8G16PathsTyped<QuantType::kQ4_0>(t);
    TestExactBuffer(t);
    if (t.type == QuantType::kQ2_K) TestWgmmaKSplitTyped<QuantType::kQ2_K>(t);
    if (t.type == QuantType::kQ3_K) TestWgmmaKSplitTyped<QuantType::kQ3_K>(t);
    if (t.type == QuantType::kQ4_K) TestWgmmaKSplitTyped<QuantType::kQ4_K>(t);
    if (t.type == QuantType::kQ4_K) TestWgmmaFourWarpgroupsTyped<QuantType::kQ4_K>(t);
    if (t.type == QuantType::kQ5_K) TestWgmmaFourWarpgroupsTyped<QuantType::kQ5_K>(t);
    if (!small && (t.type == QuantType::kQ4_K || t.type == QuantType::kQ5_K)) {
      // kAuto where it takes the 4-warpgroup tile: 128-row tiles one more
      // than the SMs (launch.cuh's WgmmaFourWarpgroupsWin).
      TestMatMul(t, {128 * bqc::CurrentSmCount() + 37, 256, 100}, QuantType::kF16, BlockMode::kRealistic,
                 {K::kAuto, K::kWgmmaF16W}, false);
    }
    if (t.type == QuantType::kQ2_K || t.type == QuantType::kQ3_K || t.type == QuantType::kQ6_K) TestPlanar(t, small);
    TestMatMul(t, {small ? 9 : 45, 512, 7}, QuantType::kF32, BlockMode::kRealistic, {K::kAuto}, false);
    TestMatMul(t, {small ? 9 : 33, 512, 4}, QuantType::kF16, BlockMode::kRealistic, auto_simple, true);
    if (t.elems == 32) TestMatMul(t, {small ? 9 : 40, 96, 6}, QuantType::kF16, BlockMode::kRealistic, auto_simple, false);
  }
  TestQuantizeQ8_0(small ? 4 : 64, 4096, 5);
  TestQuantizeQ8_0(3, 96, 6);
  for (QuantType q : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K, QuantType::kQ6_K,
                      QuantType::kQ4_0, QuantType::kQ4_1, QuantType::kQ5_0, QuantType::kQ5_1}) {
    for (bool imp : {false, true}) TestQuantizeRef(q, small ? 3 : 37, small ? 2304 : 4608, 11, imp);
  }
  for (const TypeInfo& t : bqtest::CudaTypes()) {
    if (t.elems == 256) TestGptq(t);
  }
  TestXRounding(small);
  TestFindNonFinite();
  for (const TypeInfo& t : bqtest::CudaTypes()) {
    if (t.type == QuantType::kQ4_K || t.type == QuantType::kQ2_K) TestScratchWorkspaceTyped(t);
  }
  if (!small) TestScratchOutOfMemory();  // under compute-sanitizer the hogging is slow and its own allocations differ
  TestErrors();

  std::printf("SUMMARY %d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
