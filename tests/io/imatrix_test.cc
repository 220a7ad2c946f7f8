// llama.cpp importance-matrix files: both formats load what they saved,
// and a load-save cycle reproduces the bytes.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/io/imatrix.h"

namespace bq = blockquant;

namespace {
std::vector<char> Bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

bq::Imatrix Sample() {
  bq::Imatrix m;
  m.datasets = {"calib.txt"};
  m.chunk_count = 10;
  m.chunk_size = 512;
  bq::ImatrixEntry dense;
  dense.cols = 4;
  dense.sum2 = {5120, 1024, 0, 2048};
  dense.counts = {5120};
  m.entries["blk.0.attn_q.weight"] = dense;
  bq::ImatrixEntry experts;  // 2 experts of 3 columns; expert 1 never routed
  experts.cols = 3;
  experts.sum2 = {300, 600, 900, 0, 0, 0};
  experts.counts = {300, 0};
  m.entries["blk.0.ffn_up_exps.weight"] = experts;
  return m;
}
}  // namespace

TEST_CASE("GGUF imatrix: save, load, importance = sum2 / count, byte-stable round trip") {
  const std::string a = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_a.gguf";
  const std::string b = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_b.gguf";
  bq::SaveImatrixGguf(Sample(), a);
  const bq::Imatrix m = bq::LoadImatrix(a);
  CHECK(m.datasets == std::vector<std::string>{"calib.txt"});
  CHECK(m.chunk_count == 10);
  CHECK(m.Importance("blk.0.attn_q.weight", 4) == std::vector<float>{1.0f, 0.2f, 0.0f, 0.4f});
  CHECK(m.Importance("blk.0.ffn_up_exps.weight", 3, 0) == std::vector<float>{1, 2, 3});
  CHECK(m.Importance("blk.0.ffn_up_exps.weight", 3, 1) == std::vector<float>{1, 1, 1});  // unseen expert
  CHECK(m.Importance("blk.9.attn_q.weight", 4).empty());
  CHECK_THROWS_AS(m.Importance("blk.0.attn_q.weight", 8), bq::Error);
  bq::SaveImatrixGguf(m, b);
  CHECK(Bytes(a) == Bytes(b));
  std::remove(a.c_str());
  std::remove(b.c_str());
}

TEST_CASE("legacy .dat imatrix: llama.cpp's layout, load-save identical") {
  const std::string a = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_a.dat";
  const std::string b = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_b.dat";
  bq::Imatrix dense_only = Sample();
  dense_only.entries.erase("blk.0.ffn_up_exps.weight");
  bq::SaveImatrixDat(dense_only, a);
  const auto bytes = Bytes(a);
  // i32 count, i32 len, name, i32 ncall, i32 nval, 4 floats, i32 chunks, i32 len, dataset
  REQUIRE(bytes.size() == 4 + 4 + 19 + 4 + 4 + 16 + 4 + 4 + 9);
  const bq::Imatrix m = bq::LoadImatrix(a);
  // ncall = ceil(5120 / 512) = 10; values stored as mean * ncall, importance = values / ncall.
  CHECK(m.Importance("blk.0.attn_q.weight", 4) == std::vector<float>{1.0f, 0.2f, 0.0f, 0.4f});
  CHECK(m.chunk_count == 10);
  CHECK(m.datasets.back() == "calib.txt");
  bq::Imatrix again = m;
  again.chunk_size = 1;  // counts now hold ncall itself
  bq::SaveImatrixDat(again, b);
  CHECK(Bytes(a) == Bytes(b));
  std::ofstream(b, std::ios::binary) << std::string("\x05\x00\x00\x00\x03", 5);  // truncated
  CHECK_THROWS_AS(bq::LoadImatrix(b), bq::Error);
  std::remove(a.c_str());
  std::remove(b.c_str());
}

TEST_CASE("corrupted imatrix files are errors, never crashes or partial matrices") {
  const std::string dat = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_c.dat";
  const std::string gguf = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_c.gguf";
  const std::string cut = "/tmp/bq_imat_" + std::to_string(::getpid()) + "_cut";
  bq::Imatrix dense_only = Sample();
  dense_only.entries.erase("blk.0.ffn_up_exps.weight");
  bq::SaveImatrixDat(dense_only, dat);
  bq::SaveImatrixGguf(Sample(), gguf);
  auto load_code = [&](const std::vector<char>& bytes, bq::Imatrix* out = nullptr) {
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    try {
      const bq::Imatrix m = bq::LoadImatrix(cut);
      if (out) *out = m;
    } catch (const bq::Error& e) {
      return static_cast<int>(e.code());
    }
    return 0;
  };
  const int kFormat = static_cast<int>(bq::ErrorCode::kFormat);
  // .dat: every cut inside the entries fails; a cut in the optional trailer
  // (chunk count, dataset name) loads the entries whole or fails.
  const auto d = Bytes(dat);
  const size_t entries_end = 4 + 4 + 19 + 4 + 4 + 16;
  for (size_t n = 0; n < d.size(); ++n) {
    CAPTURE(n);
    bq::Imatrix m;
    const int code = load_code(std::vector<char>(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n)), &m);
    if (n < entries_end) {
      CHECK(code == kFormat);
    } else if (code == 0) {
      CHECK(m.Importance("blk.0.attn_q.weight", 4) == std::vector<float>{1.0f, 0.2f, 0.0f, 0.4f});
    } else {
      CHECK(code == kFormat);
    }
  }
  // .dat: entry count, name length and value count patched to nonsense.
  for (const auto& [at, value] : std::vector<std::pair<size_t, int32_t>>{
           {0, 0}, {0, -1}, {0, 1 << 30}, {4, -5}, {4, 1 << 30}, {27, -1}, {31, 0}, {31, 1 << 30}}) {
    CAPTURE(at);
    CAPTURE(value);
    auto b = d;
    std::memcpy(b.data() + at, &value, 4);
    CHECK(load_code(b) == kFormat);
  }
  // GGUF: every cut fails (the GGUF reader checks each tensor lies in the file).
  const auto g = Bytes(gguf);
  size_t g_needed = 0;  // past the last tensor's data there is only alignment padding
  {
    const bq::GgufFile f = bq::GgufFile::Open(gguf);
    for (const bq::GgufTensor& t : f.tensors()) {
      g_needed = std::max<size_t>(g_needed, f.data_offset() + t.offset + static_cast<size_t>(t.n_bytes));
    }
  }
  for (size_t n = 0; n < g_needed; n += 7) {
    CAPTURE(n);
    const int code = load_code(std::vector<char>(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(n)));
    CHECK(code == kFormat);
  }
  // Entries whose counts or values do not form [matrices x columns] are
  // refused by name, by both savers and by Importance, before any file exists.
  std::remove(cut.c_str());
  bq::Imatrix wrong = Sample();
  wrong.entries["blk.0.attn_q.weight"].counts = {1, 2, 3};
  for (auto save : {&bq::SaveImatrixGguf, &bq::SaveImatrixDat}) {
    try {
      save(wrong, cut);
      FAIL("expected kShape");
    } catch (const bq::Error& e) {
      CHECK(e.code() == bq::ErrorCode::kShape);
      CHECK(std::string(e.what()).find("blk.0.attn_q.weight") != std::string::npos);
    }
    CHECK_FALSE(std::ifstream(cut).good());
  }
  CHECK_THROWS_AS(wrong.Importance("blk.0.attn_q.weight", 4), bq::Error);
  wrong.entries["blk.0.attn_q.weight"].counts = {5120};
  wrong.entries["blk.0.attn_q.weight"].sum2.push_back(1.0f);  // 5 values, 4 columns
  CHECK_THROWS_AS(bq::SaveImatrixGguf(wrong, cut), bq::Error);
  // A single count for several matrices is written as one per matrix.
  bq::Imatrix broadcast = Sample();
  broadcast.entries["blk.0.ffn_up_exps.weight"].counts = {300};
  bq::SaveImatrixGguf(broadcast, cut);
  CHECK(bq::LoadImatrix(cut).Importance("blk.0.ffn_up_exps.weight", 3, 1) == std::vector<float>{0, 0, 0});
  std::remove(dat.c_str());
  std::remove(gguf.c_str());
  std::remove(cut.c_str());
}
