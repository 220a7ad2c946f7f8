// Rule files: the JSON form of a RuleSet (format in docs/policies.md).
//
// The conversion is written against a small adapter (A) over any parsed JSON
// value type (V), so the field checks and their error messages live here once
// whatever parser produced the tree. An adapter provides, as static functions:
//   bool IsObject(const V&), IsArray(const V&), IsString(const V&), IsNumber(const V&)
//   const V* Member(const V&, std::string_view key)     // nullptr when absent
//   std::vector<std::string> Keys(const V&)             // object keys, in file order
//   size_t Size(const V&); const V& At(const V&, size_t) // arrays
//   std::string String(const V&); double Number(const V&)
#ifndef BLOCKQUANT_POLICY_RULES_JSON_H_
#define BLOCKQUANT_POLICY_RULES_JSON_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/policy/rules.h"
#include "blockquant/policy/tensor_role.h"

namespace blockquant {
inline namespace v0 {

namespace policy_detail {

[[noreturn]] inline void RuleFileError(const std::string& where, const std::string& what) {
  BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, where + ": " + what);
}

template <class A, class V>
int64_t JsonInteger(const V& v, const std::string& where, int64_t lo, int64_t hi) {
  if (!A::IsNumber(v)) RuleFileError(where, "expected an integer");
  const double d = A::Number(v);
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || std::floor(d) != d) {
    RuleFileError(where, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                             std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

inline RuleAction ParseRuleAction(const std::string& word, const std::string& where) {
  if (word == "keep") return RuleAction::Keep();
  const TypeTraits* found = FindTraitsByName(word);
  if (found == nullptr || !found->storable) {
    std::string known;
    for (const TypeTraits& t : kTypeTraits) {
      if (t.storable) known += std::string(t.name) + ", ";
    }
    RuleFileError(where, "unknown or unstorable type '" + word + "' (known: " + known + "keep)");
  }
  return RuleAction::To(found->type);
}

}  // namespace policy_detail

// `root` is the whole file: {"version": 1, "rules": [...], "default": "Q4_K"}.
// Errors are kInvalidArgument naming the rule index and field, e.g.
// "rule 3, field 'layers': expected [lo, hi]". Regexes, globs and bounds are
// checked again when the RuleSet is compiled (Policy::Rules / RuleMatcher).
template <class A, class V>
RuleSet RuleSetFromJson(const V& root) {
  using policy_detail::RuleFileError;
  if (!A::IsObject(root)) RuleFileError("rule file", "the top level must be an object");
  for (const std::string& key : A::Keys(root)) {
    if (key != "version" && key != "rules" && key != "default") {
      RuleFileError("rule file", "unknown top-level field '" + key + "' (known: version, rules, default)");
    }
  }
  if (const V* version = A::Member(root, "version")) {
    if (policy_detail::JsonInteger<A>(*version, "field 'version'", 0, 1000000) != 1) {
      RuleFileError("field 'version'", "only version 1 is known");
    }
  }
  RuleSet set;
  if (const V* def = A::Member(root, "default")) {
    if (!A::IsString(*def)) RuleFileError("field 'default'", "expected a type name or \"keep\"");
    set.default_action = policy_detail::ParseRuleAction(A::String(*def), "field 'default'");
  }
  const V* rules = A::Member(root, "rules");
  if (rules == nullptr) RuleFileError("rule file", "missing field 'rules' (an array)");
  if (!A::IsArray(*rules)) RuleFileError("field 'rules'", "expected an array");
  for (size_t i = 0; i < A::Size(*rules); ++i) {
    const V& item = A::At(*rules, i);
    const std::string where = "rule " + std::to_string(i);
    if (!A::IsObject(item)) RuleFileError(where, "expected an object");
    Rule rule;
    bool has_type = false;
    for (const std::string& key : A::Keys(item)) {
      const V& v = *A::Member(item, key);
      const std::string field = where + ", field '" + key + "'";
      if (key == "name") {
        if (!A::IsString(v)) RuleFileError(field, "expected a string");
        rule.label = A::String(v);
      } else if (key == "regex" || key == "glob") {
        if (!A::IsString(v) || A::String(v).empty()) RuleFileError(field, "expected a non-empty string");
        (key == "regex" ? rule.regex : rule.glob) = A::String(v);
      } else if (key == "role") {
        std::vector<std::string> words;
        if (A::IsString(v)) {
          words.push_back(A::String(v));
        } else if (A::IsArray(v) && A::Size(v) > 0) {
          for (size_t j = 0; j < A::Size(v); ++j) {
            if (!A::IsString(A::At(v, j))) RuleFileError(field, "expected role names");
            words.push_back(A::String(A::At(v, j)));
          }
        } else {
          RuleFileError(field, "expected a role name or a non-empty array of role names");
        }
        for (const std::string& w : words) {
          try {
            rule.roles |= ParseRoleMask(w);
          } catch (const Error& e) {
            RuleFileError(field, e.message());
          }
        }
      } else if (key == "layers") {
        constexpr int64_t kMax = 1000000;
        if (A::IsNumber(v)) {
          rule.layer_min = rule.layer_max = static_cast<int>(policy_detail::JsonInteger<A>(v, field, -kMax, kMax));
        } else if (A::IsArray(v) && A::Size(v) == 2) {
          rule.layer_min = static_cast<int>(policy_detail::JsonInteger<A>(A::At(v, 0), field, -kMax, kMax));
          rule.layer_max = static_cast<int>(policy_detail::JsonInteger<A>(A::At(v, 1), field, -kMax, kMax));
        } else {
          RuleFileError(field, "expected a layer index or [lo, hi]");
        }
      } else if (key == "min_elements") {
        rule.min_elements = policy_detail::JsonInteger<A>(v, field, 0, int64_t{1} << 53);
      } else if (key == "max_elements") {
        rule.max_elements = policy_detail::JsonInteger<A>(v, field, 0, int64_t{1} << 53);
      } else if (key == "type") {
        if (!A::IsString(v)) RuleFileError(field, "expected a type name or \"keep\"");
        rule.action = policy_detail::ParseRuleAction(A::String(v), field);
        has_type = true;
      } else {
        RuleFileError(field, "unknown field (known: name, regex, glob, role, layers, min_elements, "
                             "max_elements, type)");
      }
    }
    if (!has_type) RuleFileError(where + ", field 'type'", "missing (a type name or \"keep\")");
    set.rules.push_back(std::move(rule));
  }
  return set;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_RULES_JSON_H_
