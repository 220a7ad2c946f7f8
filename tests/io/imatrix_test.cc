// llama.cpp importance-matrix files: both formats load what they saved,
// and a load-save cycle reproduces the bytes.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
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
