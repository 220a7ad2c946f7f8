// User rules: an ordered list, each matching tensors by name (regex and/or
// glob), role, layer range and size, and naming a type or "keep".
//
// Precedence: FIRST MATCH WINS. Rules are tried in file order; the first rule
// whose every condition holds decides the tensor, later rules are not
// consulted. Tensors no rule matches get the default action ("default" in the
// file; "keep" when absent). Tensors that are never quantized (1-D, norms,
// the MoE router: see IsNeverQuantized) keep their source type whatever the
// rules say. A chosen type whose block does not divide the row length falls
// back as llama.cpp does (plan.h), and the plan records it.
//
// Put specific rules first and broad ones last, as in a firewall table.
#ifndef BLOCKQUANT_POLICY_RULES_H_
#define BLOCKQUANT_POLICY_RULES_H_

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/policy/tensor_role.h"

namespace blockquant {
inline namespace v0 {

struct RuleAction {
  bool keep = false;                  // keep the source type
  QuantType type = QuantType::kQ4_K;  // used when !keep

  static RuleAction Keep() { return RuleAction{true, QuantType::kF16}; }
  static RuleAction To(QuantType t) { return RuleAction{false, t}; }
};

// Every set field must hold for the rule to match; an empty rule matches all.
struct Rule {
  std::string label;              // optional, shown in plans
  std::string regex;              // ECMAScript regex, searched anywhere in the name (as llama-quantize --tensor-type)
  std::string glob;               // whole-name glob: '*' any run, '?' one character, [abc] / [a-z] / [!abc] classes
  RoleMask roles = 0;             // 0: any role
  std::optional<int> layer_min;   // inclusive; negative counts from the end (-1 = last layer)
  std::optional<int> layer_max;   // inclusive; negative counts from the end. With either bound set,
                                  // tensors outside the blocks (no "blk.N.") do not match
  int64_t min_elements = 0;       // inclusive
  int64_t max_elements = -1;      // inclusive; -1 = unbounded
  RuleAction action;
};

struct RuleSet {
  std::vector<Rule> rules;
  RuleAction default_action = RuleAction::Keep();
};

namespace policy_detail {

// Glob match over the whole string, iterative with one backtrack point for
// '*', so it runs in O(|pattern| * |name|) at worst.
inline bool GlobClassMatch(std::string_view pattern, size_t& p, char c) {
  // pattern[p] == '[' on entry; on return p is past the closing ']'.
  size_t i = p + 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < pattern.size() && (first || pattern[i] != ']')) {
    first = false;
    char lo = pattern[i];
    char hi = lo;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      hi = pattern[i + 2];
      i += 3;
    } else {
      i += 1;
    }
    if (c >= lo && c <= hi) matched = true;
  }
  p = i + 1;  // past ']' (validated beforehand)
  return matched != negate;
}

inline bool GlobMatch(std::string_view pattern, std::string_view name) {
  size_t p = 0, s = 0;
  size_t star_p = std::string_view::npos, star_s = 0;
  while (s < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_s = s;
      continue;
    }
    if (p < pattern.size()) {
      if (pattern[p] == '?') {
        ++p;
        ++s;
        continue;
      }
      if (pattern[p] == '[') {
        size_t q = p;
        if (GlobClassMatch(pattern, q, name[s])) {
          p = q;
          ++s;
          continue;
        }
      } else if (pattern[p] == name[s]) {
        ++p;
        ++s;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    s = ++star_s;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// A '[' must be closed; reports the offset of the first unclosed one, or npos.
inline size_t UnclosedGlobClass(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '[') continue;
    size_t j = i + 1;
    if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
    if (j < pattern.size()) ++j;  // a ']' right after '[' is literal
    while (j < pattern.size() && pattern[j] != ']') ++j;
    if (j >= pattern.size()) return i;
    i = j;
  }
  return std::string_view::npos;
}

// std::regex (libstdc++) compiles recursively, expands counted repetition by
// copying states, parses counts into a long without overflow checks, and by
// default matches by backtracking (exponential on nested quantifiers), so a
// hostile pattern could overflow the stack or a signed integer (both found
// by tests/fuzz/fuzz_rules) or take hours. Patterns are therefore checked
// first, and compiled for libstdc++'s polynomial-time matcher (RegexFlags).
// Rules name tensors; these limits are far above any real rule. Returns the
// reason a pattern is refused, or "" when it is fine.
inline constexpr size_t kMaxRegexLength = 512;
inline constexpr int kMaxRegexDepth = 32;
inline constexpr long kMaxRegexCount = 1000;   // in {n}, {n,} and {n,m}
inline constexpr long kMaxRegexStates = 2000;  // atoms once counted repetition is expanded
inline std::string RegexLimitProblem(std::string_view pattern) {
  if (pattern.size() > kMaxRegexLength) {
    return "longer than " + std::to_string(kMaxRegexLength) + " characters";
  }
  const std::string too_big = "expands to more than " + std::to_string(kMaxRegexStates) + " states";
  // Sizes of the open groups (innermost last) and of the atom or group a
  // quantifier after it would repeat.
  std::vector<long> size = {0};
  long last = 0;
  auto atom = [&](long n) {
    size.back() += n;
    last = n;
  };
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (in_class) {
      if (c == '\\') ++i;
      in_class = c != ']';
    } else if (c == '\\') {
      if (i + 1 < pattern.size() && pattern[i + 1] >= '1' && pattern[i + 1] <= '9') {
        return "back references are not supported";  // and need the backtracking matcher
      }
      ++i;
      atom(1);
    } else if (c == '[') {
      in_class = true;
      atom(1);
    } else if (c == '{' && i + 1 < pattern.size() && std::isdigit(static_cast<unsigned char>(pattern[i + 1]))) {
      long count = 0, value = 0;
      size_t j = i + 1;
      for (; j < pattern.size() && (std::isdigit(static_cast<unsigned char>(pattern[j])) || pattern[j] == ','); ++j) {
        if (pattern[j] == ',') {
          count = std::max(count, value) + 1;  // {n,}: at least n + 1 copies
          value = 0;
          continue;
        }
        value = value * 10 + (pattern[j] - '0');
        if (value > kMaxRegexCount) return "a repetition count above " + std::to_string(kMaxRegexCount);
      }
      count = std::max(count, value);
      i = j;  // the closing '}'
      if (count > 1) size.back() += last * (count - 1);
      if (size.back() > kMaxRegexStates) return too_big;
    } else if (c == '(') {
      if (static_cast<int>(size.size()) > kMaxRegexDepth) {
        return "groups nested deeper than " + std::to_string(kMaxRegexDepth);
      }
      size.push_back(0);
      last = 0;
    } else if (c == ')' && size.size() > 1) {
      const long group = size.back() + 1;
      size.pop_back();
      atom(group);
    } else if (c != '*' && c != '+' && c != '?' && c != '|') {
      atom(1);
    }
    if (size.back() > kMaxRegexStates) return too_big;
  }
  long total = 0;
  for (long s : size) total += s;
  return total > kMaxRegexStates ? too_big : "";
}

// ECMAScript, and on libstdc++ its breadth-first matcher, whose time is
// polynomial in pattern and name (it refuses back references, which
// RegexLimitProblem refuses first).
inline std::regex::flag_type RegexFlags() {
#if defined(__GLIBCXX__)
  return std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
  return std::regex::ECMAScript;
#endif
}

inline int ResolveLayer(int bound, int n_layer) { return bound < 0 ? n_layer + bound : bound; }

}  // namespace policy_detail

inline std::string DescribeAction(const RuleAction& a) { return a.keep ? "keep" : TypeName(a.type); }

// One line naming a rule's conditions, for plans: "#2 'attn' role=attn_v layers 0..3 -> Q6_K".
inline std::string DescribeRule(const Rule& rule, size_t index) {
  std::string s = "rule #" + std::to_string(index);
  if (!rule.label.empty()) s += " '" + rule.label + "'";
  if (!rule.regex.empty()) s += " regex=/" + rule.regex + "/";
  if (!rule.glob.empty()) s += " glob=" + rule.glob;
  if (rule.roles != 0) {
    std::string roles;
    for (TensorRole role : kAllTensorRoles) {
      if (rule.roles & RoleBit(role)) roles += std::string(roles.empty() ? "" : ",") + RoleName(role);
    }
    s += " role=" + roles;
  }
  if (rule.layer_min || rule.layer_max) {
    s += " layers " + (rule.layer_min ? std::to_string(*rule.layer_min) : std::string("*")) + ".." +
         (rule.layer_max ? std::to_string(*rule.layer_max) : std::string("*"));
  }
  if (rule.min_elements > 0) s += " min_elements=" + std::to_string(rule.min_elements);
  if (rule.max_elements >= 0) s += " max_elements=" + std::to_string(rule.max_elements);
  return s + " -> " + DescribeAction(rule.action);
}

// A validated rule set with its regexes compiled once.
class RuleMatcher {
 public:
  explicit RuleMatcher(RuleSet set) : set_(std::move(set)) {
    for (size_t i = 0; i < set_.rules.size(); ++i) {
      const Rule& r = set_.rules[i];
      const std::string where = "rule " + std::to_string(i);
      if (!r.regex.empty()) {
        const std::string problem = policy_detail::RegexLimitProblem(r.regex);
        if (!problem.empty()) {
          BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                           where + ", field 'regex': refused ('" + r.regex.substr(0, 64) +
                               (r.regex.size() > 64 ? "...'" : "'") + "): " + problem);
        }
        try {
          regexes_.emplace_back(std::in_place, r.regex, policy_detail::RegexFlags());
        } catch (const std::regex_error& e) {
          BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                           where + ", field 'regex': invalid regular expression '" + r.regex + "': " + e.what());
        }
      } else {
        regexes_.emplace_back(std::nullopt);
      }
      const size_t bad = policy_detail::UnclosedGlobClass(r.glob);
      if (bad != std::string_view::npos) {
        BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, where + ", field 'glob': unclosed '[' at offset " +
                                                          std::to_string(bad) + " in '" + r.glob + "'");
      }
      if (r.layer_min && r.layer_max && (*r.layer_min < 0) == (*r.layer_max < 0) &&
          *r.layer_min > *r.layer_max) {
        BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, where + ", field 'layers': lower bound " +
                                                          std::to_string(*r.layer_min) + " > upper bound " +
                                                          std::to_string(*r.layer_max));
      }
      if (r.min_elements < 0) {
        BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, where + ", field 'min_elements': negative");
      }
      if (r.max_elements >= 0 && r.max_elements < r.min_elements) {
        BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, where + ", field 'max_elements': " +
                                                          std::to_string(r.max_elements) + " < min_elements " +
                                                          std::to_string(r.min_elements));
      }
      CheckAction(r.action, where + ", field 'type'");
    }
    CheckAction(set_.default_action, "field 'default'");
  }

  const RuleSet& rules() const { return set_; }

  // Index of the first matching rule, or -1 for the default.
  int Match(const std::string& name, const TensorClass& cls, int64_t n_elements, int n_layer) const {
    for (size_t i = 0; i < set_.rules.size(); ++i) {
      if (Matches(i, name, cls, n_elements, n_layer)) return static_cast<int>(i);
    }
    return -1;
  }

  const RuleAction& Action(int index) const {
    return index < 0 ? set_.default_action : set_.rules[static_cast<size_t>(index)].action;
  }

  std::string Describe(int index) const {
    if (index < 0) return "default -> " + DescribeAction(set_.default_action);
    return DescribeRule(set_.rules[static_cast<size_t>(index)], static_cast<size_t>(index));
  }

 private:
  static void CheckAction(const RuleAction& a, const std::string& where) {
    if (a.keep) return;
    const TypeTraits* t = FindTraits(static_cast<uint32_t>(a.type));
    if (t == nullptr || !t->storable) {
      BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                       where + ": type id " + std::to_string(static_cast<uint32_t>(a.type)) +
                           " cannot be stored in a GGUF file");
    }
  }

  bool Matches(size_t i, const std::string& name, const TensorClass& cls, int64_t n_elements, int n_layer) const {
    const Rule& r = set_.rules[i];
    if (regexes_[i] && !std::regex_search(name, *regexes_[i])) return false;
    if (!r.glob.empty() && !policy_detail::GlobMatch(r.glob, name)) return false;
    if (r.roles != 0 && (r.roles & RoleBit(cls.role)) == 0) return false;
    if (r.layer_min || r.layer_max) {
      if (cls.layer < 0) return false;
      if (r.layer_min && cls.layer < policy_detail::ResolveLayer(*r.layer_min, n_layer)) return false;
      if (r.layer_max && cls.layer > policy_detail::ResolveLayer(*r.layer_max, n_layer)) return false;
    }
    if (n_elements < r.min_elements) return false;
    if (r.max_elements >= 0 && n_elements > r.max_elements) return false;
    return true;
  }

  RuleSet set_;
  std::vector<std::optional<std::regex>> regexes_;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_RULES_H_
