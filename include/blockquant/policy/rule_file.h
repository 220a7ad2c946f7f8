// Policies by name or file: a preset/hybrid name (Policy::Named) or the path
// of a JSON rule file (format in docs/policies.md).
#ifndef BLOCKQUANT_POLICY_RULE_FILE_H_
#define BLOCKQUANT_POLICY_RULE_FILE_H_

#include <fstream>
#include <sstream>
#include <string>

#include "blockquant/detail/json.h"
#include "blockquant/error.h"
#include "blockquant/policy/plan.h"
#include "blockquant/policy/rules_json.h"

namespace blockquant {
inline namespace v0 {

inline Policy LoadRuleFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) BLOCKQUANT_THROW(ErrorCode::kIo, "cannot open rule file '" + path + "'");
  std::stringstream text;
  text << f.rdbuf();
  const detail::JsonValue root = detail::ParseJson(text.str(), "rule file '" + path + "'");
  try {
    const size_t slash = path.rfind('/');
    return Policy::Rules(RuleSetFromJson<detail::JsonAdapter>(root),
                         "rules:" + (slash == std::string::npos ? path : path.substr(slash + 1)));
  } catch (const Error& e) {
    BLOCKQUANT_THROW(e.code(), "rule file '" + path + "': " + e.message());
  }
}

// "Q4_K_M", "int8-core", ... or a path ending in ".json".
inline Policy ResolvePolicy(const std::string& name_or_path) {
  const std::string suffix = ".json";
  if (name_or_path.size() > suffix.size() &&
      name_or_path.compare(name_or_path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return LoadRuleFile(name_or_path);
  }
  return Policy::Named(name_or_path);
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_RULE_FILE_H_
