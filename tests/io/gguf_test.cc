// GGUF reader and writer: round trips of every metadata type, and bad files
// that must give a clear error, never a crash or an out-of-bounds read.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/io/gguf_reader.h"
#include "blockquant/io/gguf_writer.h"

namespace bq = blockquant;
using bq::GgufType;
using bq::GgufValue;

namespace {

std::string TempPath(const std::string& name) {
  return "/tmp/bq_io_test_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

GgufValue Scalar(GgufType t, int64_t v) {
  GgufValue x;
  x.type = t;
  x.u = static_cast<uint64_t>(v);
  x.i = v;
  return x;
}

// A small file with every metadata type and two tensors.
std::string WriteSample(const std::string& path) {
  bq::GgufWriter w(path);
  w.Set("general.architecture", GgufValue::String("llama"));
  w.Set("t.u8", Scalar(GgufType::kU8, 200));
  w.Set("t.i8", Scalar(GgufType::kI8, -100));
  w.Set("t.u16", Scalar(GgufType::kU16, 60000));
  w.Set("t.i16", Scalar(GgufType::kI16, -30000));
  w.Set("t.u32", GgufValue::U32(4000000000u));
  w.Set("t.i32", GgufValue::I32(-2000000000));
  w.Set("t.f32", GgufValue::F32(1.5f));
  w.Set("t.bool", GgufValue::Bool(true));
  w.Set("t.u64", GgufValue::U64(uint64_t{1} << 40));
  w.Set("t.i64", Scalar(GgufType::kI64, -(int64_t{1} << 40)));
  GgufValue f64;
  f64.type = GgufType::kF64;
  f64.f = 3.25;
  w.Set("t.f64", f64);
  w.Set("t.strings", GgufValue::Array(GgufType::kString, {GgufValue::String("a"), GgufValue::String("bc")}));
  w.Set("t.nested", GgufValue::Array(GgufType::kArray,
                                     {GgufValue::Array(GgufType::kU32, {GgufValue::U32(1), GgufValue::U32(2)}),
                                      GgufValue::Array(GgufType::kU32, {})}));
  const size_t a = w.AddTensor("a.weight", bq::QuantType::kF32, {4, 2});
  const size_t b = w.AddTensor("b.weight", bq::QuantType::kQ8_0, {64});
  w.Begin();
  std::vector<float> av = {1, 2, 3, 4, 5, 6, 7, 8};
  w.Write(a, av.data(), 32);
  std::vector<uint8_t> bv(68, 7);
  w.Write(b, bv.data(), 34);
  w.Write(b, bv.data() + 34, 34);
  w.Commit();
  return path;
}

int ErrorCodeOf(const std::string& path) {
  try {
    bq::GgufFile::Open(path);
  } catch (const bq::Error& e) {
    return static_cast<int>(e.code());
  }
  return 0;
}

}  // namespace

TEST_CASE("every metadata type and nested arrays round-trip") {
  const std::string path = WriteSample(TempPath("sample.gguf"));
  const bq::GgufFile f = bq::GgufFile::Open(path);
  CHECK(f.version() == 3);
  CHECK(f.GetString("general.architecture") == "llama");
  CHECK(f.Find("t.u8")->u == 200);
  CHECK(f.Find("t.i8")->i == -100);
  CHECK(f.Find("t.u16")->u == 60000);
  CHECK(f.Find("t.i16")->i == -30000);
  CHECK(f.Find("t.u32")->u == 4000000000u);
  CHECK(f.Find("t.i32")->i == -2000000000);
  CHECK(f.Find("t.f32")->f == 1.5);
  CHECK(f.Find("t.bool")->u == 1);
  CHECK(f.Find("t.u64")->u == (uint64_t{1} << 40));
  CHECK(f.Find("t.i64")->i == -(int64_t{1} << 40));
  CHECK(f.Find("t.f64")->f == 3.25);
  CHECK(f.Find("t.strings")->array.at(1).s == "bc");
  CHECK(f.Find("t.nested")->array.at(0).array.at(1).u == 2);
  CHECK(f.Find("t.nested")->array.at(1).array.empty());
  REQUIRE(f.tensors().size() == 2);
  const bq::GgufTensor* a = f.FindTensor("a.weight");
  REQUIRE(a != nullptr);
  CHECK(a->rows() == 2);
  CHECK(a->n_bytes == 32);
  float v[8];
  std::memcpy(v, a->data, 32);
  CHECK(v[7] == 8.0f);
  const bq::GgufTensor* b = f.FindTensor("b.weight");
  CHECK(b->offset % 32 == 0);
  CHECK(b->data[67] == 7);
  CHECK(f.data_offset() % 32 == 0);
  std::remove(path.c_str());
}

TEST_CASE("every truncation of a valid file is an error, never a crash") {
  const std::string path = WriteSample(TempPath("trunc_src.gguf"));
  const auto bytes = ReadAll(path);
  const bq::GgufFile whole = bq::GgufFile::Open(path);
  const bq::GgufTensor* last = whole.FindTensor("b.weight");
  // Bytes past the last tensor's data are only alignment padding.
  const size_t needed = static_cast<size_t>(whole.data_offset() + last->offset + static_cast<uint64_t>(last->n_bytes));
  const std::string cut = TempPath("trunc.gguf");
  for (size_t n = 0; n < needed; ++n) {
    WriteAll(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    CAPTURE(n);
    CHECK(ErrorCodeOf(cut) == static_cast<int>(bq::ErrorCode::kFormat));
  }
  std::remove(cut.c_str());
  std::remove(path.c_str());
}

TEST_CASE("crafted headers are rejected with kFormat, kUnsupportedType or kIo") {
  const std::string src = WriteSample(TempPath("craft_src.gguf"));
  const auto good = ReadAll(src);
  const std::string path = TempPath("craft.gguf");
  auto patched = [&](size_t at, const void* v, size_t n) {
    auto b = good;
    std::memcpy(b.data() + at, v, n);
    WriteAll(path, b);
    return ErrorCodeOf(path);
  };
  const int kFormat = static_cast<int>(bq::ErrorCode::kFormat);
  CHECK(patched(0, "GGUX", 4) == kFormat);
  const uint32_t v9 = 9;
  CHECK(patched(4, &v9, 4) == kFormat);
  const uint64_t huge = uint64_t{1} << 60;
  CHECK(patched(8, &huge, 8) == static_cast<int>(bq::ErrorCode::kLimit));  // 2^60 tensors
  CHECK(patched(16, &huge, 8) == kFormat);  // 2^60 metadata entries
  const uint64_t long_string = uint64_t{1} << 63;
  CHECK(patched(24, &long_string, 8) == kFormat);  // first key claims 2^63 bytes
  CHECK(ErrorCodeOf(TempPath("does_not_exist.gguf")) == static_cast<int>(bq::ErrorCode::kIo));

  // Tensor-info level: build files by hand with a writer, then patch offsets.
  bq::GgufFile f = bq::GgufFile::Open(src);
  const bq::GgufTensor* b = f.FindTensor("b.weight");
  // Find the tensor info of b: its offset field is the 8 bytes before the data section padding;
  // search for the name and patch type / offset after it.
  const std::string name = "b.weight";
  auto it = std::search(good.begin(), good.end(), name.begin(), name.end());
  REQUIRE(it != good.end());
  const size_t info = static_cast<size_t>(it - good.begin()) + name.size();  // n_dims follows
  const size_t type_at = info + 4 + 8, offset_at = type_at + 4;
  const uint32_t bad_type = 99;
  CHECK(patched(type_at, &bad_type, 4) == static_cast<int>(bq::ErrorCode::kUnsupportedType));
  const uint32_t q8k = 15;  // Q8_K never belongs in a file
  CHECK(patched(type_at, &q8k, 4) == static_cast<int>(bq::ErrorCode::kUnsupportedType));
  const uint64_t misaligned = b->offset + 1;
  CHECK(patched(offset_at, &misaligned, 8) == kFormat);
  const uint64_t overlapping = 0;  // b on top of a
  CHECK(patched(offset_at, &overlapping, 8) == kFormat);
  const uint64_t past_end = 1 << 20;
  CHECK(patched(offset_at, &past_end, 8) == kFormat);
  const uint32_t five_dims = 5;
  CHECK(patched(info, &five_dims, 4) == kFormat);
  const uint64_t zero_dim = 0;
  CHECK(patched(info + 4, &zero_dim, 8) == kFormat);
  const uint64_t odd_row = 48;  // Q8_0 needs multiples of 32
  CHECK(patched(info + 4, &odd_row, 8) == kFormat);
  std::remove(path.c_str());
  std::remove(src.c_str());
}

TEST_CASE("resource limits: caps and 64-bit overflows are refused before allocating") {
  const std::string src = WriteSample(TempPath("limits_src.gguf"));
  const auto good = ReadAll(src);
  auto code_of = [](const std::string& path, const bq::GgufReadOptions& o, std::string* message = nullptr) {
    try {
      bq::GgufFile::Open(path, o);
    } catch (const bq::Error& e) {
      if (message) *message = e.what();
      return static_cast<int>(e.code());
    }
    return 0;
  };
  const int kLimit = static_cast<int>(bq::ErrorCode::kLimit), kFormat = static_cast<int>(bq::ErrorCode::kFormat);
  bq::GgufReadOptions o;
  CHECK(code_of(src, o) == 0);
  std::string msg;
  o.max_metadata_bytes = 200;  // the sample's header is larger: the cap is named, not "truncated"
  CHECK(code_of(src, o, &msg) == kLimit);
  CHECK(msg.find("max_metadata_bytes = 200") != std::string::npos);
  o = {};
  o.max_tensor_count = 1;  // the sample has 2
  CHECK(code_of(src, o, &msg) == kLimit);
  CHECK(msg.find("max_tensor_count") != std::string::npos);
  o = {};
  o.max_array_depth = 1;  // t.nested is an array of arrays
  CHECK(code_of(src, o, &msg) == kFormat);
  CHECK(msg.find("nested deeper than 1") != std::string::npos);

  // a.weight's dimensions patched so that their product overflows 64 bits,
  // and a string length of 2^64 - 1: both rejected before any allocation.
  const std::string path = TempPath("limits.gguf");
  const std::string name = "a.weight";
  const auto at = std::search(good.begin(), good.end(), name.begin(), name.end());
  REQUIRE(at != good.end());
  const size_t dims_at = static_cast<size_t>(at - good.begin()) + name.size() + 4;
  auto bytes = good;
  const uint64_t big = uint64_t{1} << 40;
  std::memcpy(bytes.data() + dims_at, &big, 8);
  std::memcpy(bytes.data() + dims_at + 8, &big, 8);
  WriteAll(path, bytes);
  CHECK(code_of(path, {}, &msg) == kFormat);
  CHECK(msg.find("impossible shape") != std::string::npos);
  bytes = good;
  const uint64_t max_len = ~uint64_t{0};
  std::memcpy(bytes.data() + dims_at - 4 - name.size() - 8, &max_len, 8);  // a.weight's name length
  WriteAll(path, bytes);
  CHECK(code_of(path, {}, &msg) == kFormat);
  CHECK(msg.find("tensor name needs 18446744073709551615 bytes") != std::string::npos);
  std::remove(path.c_str());
  std::remove(src.c_str());
}

TEST_CASE("the writer leaves nothing behind unless committed") {
  const std::string path = TempPath("uncommitted.gguf");
  {
    bq::GgufWriter w(path);
    w.AddTensor("x", bq::QuantType::kF32, {8});
    w.Begin();
    float v[4] = {};
    w.Write(0, v, 16);  // half the tensor, then the writer goes away
  }
  CHECK_FALSE(Exists(path));
  CHECK_FALSE(Exists(path + ".tmp." + std::to_string(::getpid())));
  {
    // While writing, nothing is visible beside the target where the data go
    // to an unnamed file (so a SIGKILL leaves nothing); a named temporary
    // otherwise.
    bq::AtomicFile f(path);
    f.Write("abcd", 4);
    CHECK(Exists(path + ".tmp." + std::to_string(::getpid())) == !f.unnamed());
#if defined(__linux__)
    CHECK(f.unnamed());  // tmpfs and ext4 support O_TMPFILE
#endif
    f.Commit();
    CHECK(ReadAll(path).size() == 4);
    CHECK_FALSE(Exists(path + ".tmp." + std::to_string(::getpid())));
    std::remove(path.c_str());
  }
  {
    bq::GgufWriter w(path);
    w.AddTensor("x", bq::QuantType::kF32, {8});
    w.Begin();
    CHECK_THROWS_AS(w.Commit(), bq::Error);  // x was never written
  }
  CHECK_FALSE(Exists(path));
  bq::GgufWriter missing_dir("/nonexistent_dir_bq/out.gguf");
  try {
    missing_dir.Begin();
    FAIL("expected an error");
  } catch (const bq::Error& e) {
    CHECK(e.code() == bq::ErrorCode::kIo);
    CHECK(std::string(e.what()).find("/nonexistent_dir_bq/out.gguf") != std::string::npos);
  }
}

TEST_CASE("general.alignment is honoured and validated") {
  const std::string path = TempPath("align.gguf");
  bq::GgufWriter w(path);
  w.Set("general.alignment", GgufValue::U32(64));
  w.AddTensor("a", bq::QuantType::kF32, {3});
  w.AddTensor("b", bq::QuantType::kF32, {5});
  w.Begin();
  float v[5] = {1, 2, 3, 4, 5};
  w.Write(0, v, 12);
  w.Write(1, v, 20);
  w.Commit();
  const bq::GgufFile f = bq::GgufFile::Open(path);
  CHECK(f.alignment() == 64);
  CHECK(f.FindTensor("b")->offset == 64);
  CHECK(f.data_offset() % 64 == 0);
  bq::GgufWriter bad(path + ".bad");
  bad.Set("general.alignment", GgufValue::U32(48));
  CHECK_THROWS_AS(bad.Begin(), bq::Error);
  std::remove(path.c_str());
}
