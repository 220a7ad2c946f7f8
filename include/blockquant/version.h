#ifndef BLOCKQUANT_VERSION_H_
#define BLOCKQUANT_VERSION_H_

#define BLOCKQUANT_VERSION_MAJOR 0
#define BLOCKQUANT_VERSION_MINOR 1
#define BLOCKQUANT_VERSION_PATCH 0

namespace blockquant {
inline namespace v0 {
inline constexpr const char* kVersionString = "0.1.0";
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_VERSION_H_
