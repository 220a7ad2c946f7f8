// llama.cpp importance-matrix files, both formats, read and written:
// - GGUF (general.type "imatrix"): per weight "<name>.in_sum2" (F32, sums of
//   x^2 per input column, one row per matrix/expert) and "<name>.counts" (F32,
//   rows summed per matrix), plus imatrix.datasets / chunk_count / chunk_size.
// - legacy .dat: i32 entry count; per entry i32 name length, name, i32 ncall,
//   i32 nval, f32 values[nval] (mean x^2 times ncall); then i32 chunk count and
//   i32 length + dataset name.
// The importance of column j is sum2[j] / count (the mean of x^2), which is
// what the quantizers weight the squared error with.
#ifndef BLOCKQUANT_IO_IMATRIX_H_
#define BLOCKQUANT_IO_IMATRIX_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/io/atomic_file.h"
#include "blockquant/io/gguf_reader.h"
#include "blockquant/io/gguf_writer.h"
#include "blockquant/io/mapped_file.h"

namespace blockquant {
inline namespace v0 {

struct ImatrixEntry {
  int64_t cols = 0;
  std::vector<float> sum2;    // n_mat * cols
  std::vector<float> counts;  // n_mat (a single count is broadcast to every matrix)
  int64_t n_mat() const { return cols == 0 ? 0 : static_cast<int64_t>(sum2.size()) / cols; }

  // Throws kShape unless sum2 holds whole rows of cols values and counts has
  // one value or one per matrix (the savers and Importance rely on it).
  void Check(const std::string& name) const {
    if (cols <= 0 || sum2.empty() || static_cast<int64_t>(sum2.size()) % cols != 0 ||
        (counts.size() != 1 && static_cast<int64_t>(counts.size()) != n_mat())) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "imatrix entry '" + name + "': " + std::to_string(sum2.size()) +
                                              " values, " + std::to_string(cols) + " columns and " +
                                              std::to_string(counts.size()) +
                                              " counts do not form [matrices x columns] with a count per matrix");
    }
  }
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight tensor name
  std::vector<std::string> datasets;
  int64_t chunk_count = 0;
  int64_t chunk_size = 0;

  // Importance (mean x^2 per column) of matrix `mat` of `tensor`; empty when
  // the file has no entry for it. Throws kShape when its width differs.
  std::vector<float> Importance(const std::string& tensor, int64_t cols, int64_t mat = 0) const {
    const auto it = entries.find(tensor);
    if (it == entries.end()) return {};
    const ImatrixEntry& e = it->second;
    e.Check(tensor);
    if (e.cols != cols || mat < 0 || mat >= e.n_mat()) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "imatrix entry '" + tensor + "' has " + std::to_string(e.n_mat()) + " x " +
                                              std::to_string(e.cols) + " values; the tensor needs " +
                                              std::to_string(cols) + " columns for matrix " + std::to_string(mat));
    }
    const float count = e.counts.size() == 1 ? e.counts[0] : e.counts[static_cast<size_t>(mat)];
    std::vector<float> w(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) {
      // A matrix never seen in calibration (count 0, e.g. an unused expert) gets uniform weights.
      w[static_cast<size_t>(j)] = count > 0.0f ? e.sum2[static_cast<size_t>(mat * cols + j)] / count : 1.0f;
    }
    return w;
  }
};

inline Imatrix LoadImatrixGguf(const std::string& path) {
  const GgufFile f = GgufFile::Open(path);
  Imatrix m;
  if (const GgufValue* d = f.Find("imatrix.datasets")) {
    for (const GgufValue& s : d->array) m.datasets.push_back(s.s);
  }
  m.chunk_count = f.GetInt("imatrix.chunk_count", 0);
  m.chunk_size = f.GetInt("imatrix.chunk_size", 0);
  const std::string kSum2 = ".in_sum2", kCounts = ".counts";
  for (const GgufTensor& t : f.tensors()) {
    if (t.name.size() <= kSum2.size() || t.name.compare(t.name.size() - kSum2.size(), kSum2.size(), kSum2) != 0) continue;
    const std::string name = t.name.substr(0, t.name.size() - kSum2.size());
    const GgufTensor* c = f.FindTensor(name + kCounts);
    if (t.type != QuantType::kF32 || c == nullptr || c->type != QuantType::kF32 ||
        c->n_elements != t.rows()) {
      BLOCKQUANT_THROW(ErrorCode::kFormat, "'" + path + "': imatrix entry '" + name +
                                               "' needs F32 in_sum2 [cols, n] and counts [1, n]");
    }
    ImatrixEntry e;
    e.cols = t.row_length();
    e.sum2.resize(static_cast<size_t>(t.n_elements));
    std::memcpy(e.sum2.data(), t.data, static_cast<size_t>(t.n_bytes));
    e.counts.resize(static_cast<size_t>(c->n_elements));
    std::memcpy(e.counts.data(), c->data, static_cast<size_t>(c->n_bytes));
    m.entries[name] = std::move(e);
  }
  return m;
}

inline Imatrix LoadImatrixDat(const std::string& path) {
  const MappedFile file(path);
  ByteReader r(file.data(), file.size(), "'" + path + "'");
  Imatrix m;
  const int32_t n = r.Read<int32_t>("entry count");
  if (n < 1 || static_cast<uint64_t>(n) > r.remaining() / 12) r.Fail("bad entry count " + std::to_string(n));
  for (int32_t k = 0; k < n; ++k) {
    const int32_t len = r.Read<int32_t>("name length");
    if (len <= 0) r.Fail("bad name length");
    const uint8_t* name = r.Bytes(static_cast<uint64_t>(len), "name");
    const int32_t ncall = r.Read<int32_t>("ncall");
    const int32_t nval = r.Read<int32_t>("nval");
    if (nval <= 0 || ncall < 0) r.Fail("bad value count");
    const uint8_t* vals = r.Bytes(static_cast<uint64_t>(nval) * 4, "values");
    ImatrixEntry e;
    e.cols = nval;  // the legacy format has no matrix split: one row of values
    e.sum2.resize(static_cast<size_t>(nval));
    std::memcpy(e.sum2.data(), vals, static_cast<size_t>(nval) * 4);
    e.counts = {static_cast<float>(ncall > 0 ? ncall : 1)};
    m.entries[std::string(reinterpret_cast<const char*>(name), static_cast<size_t>(len))] = std::move(e);
  }
  if (r.remaining() >= 4) {
    m.chunk_count = r.Read<int32_t>("chunk count");
    if (r.remaining() >= 4) {
      const int32_t len = r.Read<int32_t>("dataset length");
      if (len > 0) {
        const uint8_t* d = r.Bytes(static_cast<uint64_t>(len), "dataset name");
        m.datasets.emplace_back(reinterpret_cast<const char*>(d), static_cast<size_t>(len));
      }
    }
  }
  return m;
}

// By content: GGUF magic, else the legacy format.
inline Imatrix LoadImatrix(const std::string& path) {
  const MappedFile probe(path);
  if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) return LoadImatrixGguf(path);
  return LoadImatrixDat(path);
}

// Legacy .dat as llama.cpp writes it (entries sorted by name): values are the
// mean x^2 times ncall, ncall the largest count rounded up to whole chunks.
inline void SaveImatrixDat(const Imatrix& m, const std::string& path) {
  for (const auto& kv : m.entries) kv.second.Check(kv.first);  // before the file is created
  AtomicFile f(path);
  auto put_i32 = [&](int32_t v) { f.Write(&v, 4); };
  put_i32(static_cast<int32_t>(m.entries.size()));
  for (const auto& kv : m.entries) {  // std::map: sorted by name
    const ImatrixEntry& e = kv.second;
    put_i32(static_cast<int32_t>(kv.first.size()));
    f.Write(kv.first.data(), kv.first.size());
    float max_count = 0.0f;
    for (float c : e.counts) max_count = std::max(max_count, c);
    const int64_t chunk = m.chunk_size > 0 ? m.chunk_size : 1;
    const int32_t ncall = static_cast<int32_t>((static_cast<int64_t>(max_count) + chunk - 1) / chunk);
    put_i32(ncall);
    put_i32(static_cast<int32_t>(e.sum2.size()));
    std::vector<float> tmp(e.sum2.size());
    for (size_t i = 0; i < tmp.size(); ++i) {
      float count = e.counts.size() == 1 ? e.counts[0] : e.counts[i / static_cast<size_t>(e.cols)];
      float value = e.sum2[i];
      if (count == 0.0f) value = count = 1.0f;
      tmp[i] = (value / count) * static_cast<float>(ncall);
    }
    f.Write(tmp.data(), tmp.size() * 4);
  }
  put_i32(static_cast<int32_t>(m.chunk_count));
  const std::string dataset = m.datasets.empty() ? "" : m.datasets.back();
  put_i32(static_cast<int32_t>(dataset.size()));
  f.Write(dataset.data(), dataset.size());
  f.Commit();
}

inline void SaveImatrixGguf(const Imatrix& m, const std::string& path) {
  GgufWriter w(path);
  w.Set("general.type", GgufValue::String("imatrix"));
  std::vector<GgufValue> ds;
  for (const std::string& d : m.datasets) ds.push_back(GgufValue::String(d));
  w.Set("imatrix.datasets", GgufValue::Array(GgufType::kString, std::move(ds)));
  w.Set("imatrix.chunk_count", GgufValue::U32(static_cast<uint32_t>(m.chunk_count)));
  w.Set("imatrix.chunk_size", GgufValue::U32(static_cast<uint32_t>(m.chunk_size)));
  for (const auto& kv : m.entries) {
    kv.second.Check(kv.first);
    w.AddTensor(kv.first + ".in_sum2", QuantType::kF32, {kv.second.cols, kv.second.n_mat()});
    w.AddTensor(kv.first + ".counts", QuantType::kF32, {1, kv.second.n_mat()});  // one per matrix in the file
  }
  w.Begin();
  size_t i = 0;
  for (const auto& kv : m.entries) {
    const ImatrixEntry& e = kv.second;
    w.Write(i++, e.sum2.data(), e.sum2.size() * 4);
    const std::vector<float> counts(static_cast<size_t>(e.n_mat()), e.counts[0]);
    w.Write(i++, e.counts.size() == 1 ? counts.data() : e.counts.data(), static_cast<size_t>(e.n_mat()) * 4);
  }
  w.Commit();
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_IMATRIX_H_
