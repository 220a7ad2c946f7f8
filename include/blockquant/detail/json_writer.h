// A minimal JSON emitter for reports and manifests: escaped strings and
// finite numbers (non-finite doubles become null, which JSON can hold).
#ifndef BLOCKQUANT_DETAIL_JSON_WRITER_H_
#define BLOCKQUANT_DETAIL_JSON_WRITER_H_

#include <cmath>
#include <cstdio>
#include <string>

namespace blockquant {
inline namespace v0 {
namespace detail {

inline std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

inline std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace detail
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_DETAIL_JSON_WRITER_H_
