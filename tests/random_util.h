// Seeded random data shared by the doctest suites.
#ifndef BLOCKQUANT_TESTS_RANDOM_UTIL_H_
#define BLOCKQUANT_TESTS_RANDOM_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

// n draws from N(0, scale^2), the same for the same seed.
inline std::vector<float> Normal(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

#endif  // BLOCKQUANT_TESTS_RANDOM_UTIL_H_
