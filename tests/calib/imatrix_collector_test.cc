// The C++ imatrix collector: mean x^2 per column over every batch, width
// and NaN checks, and its Imatrix through llama.cpp's GGUF file and back.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/calib/imatrix_collector.h"
#include "blockquant/io/imatrix.h"
#include "random_util.h"

namespace bq = blockquant;
namespace calib = blockquant::calib;

TEST_CASE("imatrix collector: mean x^2 over batches, checks, file round trip") {
  const int64_t cols = 64;
  const std::vector<float> a = Normal(static_cast<size_t>(5 * cols), 1), b = Normal(static_cast<size_t>(3 * cols), 2, 4.0f);
  calib::ImatrixCollector col;
  CHECK(col.empty());
  col.Add("blk.0.attn_q.weight", a.data(), 5, cols);
  col.Add("blk.0.attn_q.weight", b.data(), 3, cols);
  col.EndChunk();
  CHECK(col.count("blk.0.attn_q.weight") == 8);
  CHECK(col.count("missing") == 0);
  CHECK(col.Importance("missing").empty());
  const std::vector<float> imp = col.Importance("blk.0.attn_q.weight");
  REQUIRE(imp.size() == static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    double s = 0.0;
    for (int64_t r = 0; r < 5; ++r) s += static_cast<double>(a[static_cast<size_t>(r * cols + j)]) * a[static_cast<size_t>(r * cols + j)];
    for (int64_t r = 0; r < 3; ++r) s += static_cast<double>(b[static_cast<size_t>(r * cols + j)]) * b[static_cast<size_t>(r * cols + j)];
    CHECK(imp[static_cast<size_t>(j)] == doctest::Approx(s / 8.0).epsilon(1e-6));
  }

  CHECK_THROWS_WITH_AS(col.Add("blk.0.attn_q.weight", a.data(), 2, 32), doctest::Contains("32 columns"), bq::Error);
  std::vector<float> bad = a;
  bad[static_cast<size_t>(2 * cols + 5)] = NAN;
  CHECK_THROWS_WITH_AS(col.Add("blk.0.attn_q.weight", bad.data(), 5, cols), doctest::Contains("row 2, column 5"),
                       bq::Error);
  CHECK(col.count("blk.0.attn_q.weight") == 8);  // nothing added

  const bq::Imatrix m = col.ToImatrix("calib.txt");
  CHECK(m.chunk_count == 1);
  REQUIRE(m.datasets.size() == 1);
  const std::string path = (std::filesystem::temp_directory_path() / "bq_imatrix_collector_test.gguf").string();
  bq::SaveImatrixGguf(m, path);
  const bq::Imatrix back = bq::LoadImatrix(path);
  std::remove(path.c_str());
  CHECK(back.chunk_count == 1);
  CHECK(back.datasets == m.datasets);
  const std::vector<float> imp_back = back.Importance("blk.0.attn_q.weight", cols);
  REQUIRE(imp_back.size() == imp.size());
  for (size_t j = 0; j < imp.size(); ++j) CHECK(imp_back[j] == doctest::Approx(imp[j]).epsilon(1e-6));
}
