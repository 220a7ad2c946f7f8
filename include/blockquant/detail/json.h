// A small strict JSON parser (RFC 8259) for rule files and safetensors
// headers: objects keep their key order, numbers are doubles, strings are
// UTF-8 (\uXXXX escapes and surrogate pairs decoded). Depth and size are
// bounded; errors are kFormat naming the source and byte offset.
#ifndef BLOCKQUANT_DETAIL_JSON_H_
#define BLOCKQUANT_DETAIL_JSON_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blockquant/error.h"

namespace blockquant {
inline namespace v0 {
namespace detail {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<JsonValue> items;                          // arrays
  std::vector<std::pair<std::string, JsonValue>> members;  // objects, in file order

  const JsonValue* Find(std::string_view key) const {
    for (const auto& m : members) {
      if (m.first == key) return &m.second;
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  JsonParser(std::string_view text, std::string source, int max_depth = 64)
      : text_(text), source_(std::move(source)), max_depth_(max_depth) {}

  JsonValue Parse() {
    JsonValue v = Value(0);
    SkipSpace();
    if (pos_ != text_.size()) Fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    BLOCKQUANT_THROW(ErrorCode::kFormat, source_ + ": JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  JsonValue Value(int depth) {
    if (depth > max_depth_) Fail("nested deeper than " + std::to_string(max_depth_));
    SkipSpace();
    if (pos_ >= text_.size()) Fail("unexpected end of input");
    JsonValue v;
    const char c = text_[pos_];
    if (c == '{') {
      v.kind = JsonValue::Kind::kObject;
      ++pos_;
      SkipSpace();
      if (Consume("}")) return v;
      for (;;) {
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != '"') Fail("expected a string key");
        std::string key = String();
        for (const auto& m : v.members) {
          if (m.first == key) Fail("duplicate key '" + key + "'");
        }
        SkipSpace();
        if (!Consume(":")) Fail("expected ':'");
        v.members.emplace_back(std::move(key), Value(depth + 1));
        SkipSpace();
        if (Consume("}")) return v;
        if (!Consume(",")) Fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::kArray;
      ++pos_;
      SkipSpace();
      if (Consume("]")) return v;
      for (;;) {
        v.items.push_back(Value(depth + 1));
        SkipSpace();
        if (Consume("]")) return v;
        if (!Consume(",")) Fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      v.string = String();
      return v;
    }
    if (Consume("true")) {
      v.kind = JsonValue::Kind::kBool;
      v.boolean = true;
      return v;
    }
    if (Consume("false")) {
      v.kind = JsonValue::Kind::kBool;
      return v;
    }
    if (Consume("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      const size_t start = pos_;
      if (text_[pos_] == '-') ++pos_;
      auto digits = [&] {
        const size_t s = pos_;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
        if (pos_ == s) Fail("expected a digit");
      };
      if (pos_ < text_.size() && text_[pos_] == '0') {
        ++pos_;
      } else {
        digits();
      }
      if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        digits();
      }
      if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
        digits();
      }
      v.kind = JsonValue::Kind::kNumber;
      v.number = std::strtod(std::string(text_.substr(start, pos_ - start)).c_str(), nullptr);
      return v;
    }
    Fail(std::string("unexpected character '") + c + "'");
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t Hex4() {
    if (pos_ + 4 > text_.size()) Fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
      else Fail("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string String() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) Fail("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) Fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) Fail("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = Hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (!Consume("\\u")) Fail("lone high surrogate");
            const uint32_t lo = Hex4();
            if (lo < 0xDC00 || lo >= 0xE000) Fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            Fail("lone low surrogate");
          }
          AppendUtf8(out, cp);
          break;
        }
        default: Fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  std::string_view text_;
  std::string source_;
  int max_depth_;
  size_t pos_ = 0;
};

inline JsonValue ParseJson(std::string_view text, const std::string& source = "JSON") {
  return JsonParser(text, source).Parse();
}

// The adapter policy/rules_json.h reads JsonValue trees through.
struct JsonAdapter {
  using V = JsonValue;
  static bool IsObject(const V& v) { return v.kind == V::Kind::kObject; }
  static bool IsArray(const V& v) { return v.kind == V::Kind::kArray; }
  static bool IsString(const V& v) { return v.kind == V::Kind::kString; }
  static bool IsNumber(const V& v) { return v.kind == V::Kind::kNumber; }
  static const V* Member(const V& v, std::string_view key) { return v.Find(key); }
  static std::vector<std::string> Keys(const V& v) {
    std::vector<std::string> k;
    for (const auto& m : v.members) k.push_back(m.first);
    return k;
  }
  static size_t Size(const V& v) { return v.items.size(); }
  static const V& At(const V& v, size_t i) { return v.items.at(i); }
  static std::string String(const V& v) { return v.string; }
  static double Number(const V& v) { return v.number; }
};

}  // namespace detail
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_DETAIL_JSON_H_
