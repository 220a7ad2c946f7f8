// The budget solver: choose a type per tensor from a ladder of candidates so
// the file fits a size (or bits/weight) target and the total error is as
// small as possible. The caller measures the error of each candidate (the
// flow quantizes and compares; tests use a synthetic model); the solver only
// sees numbers, so it is cheap and deterministic.
//
// This is a multiple-choice knapsack. The solver:
//  1. keeps, per tensor, the candidates no other candidate beats on both size
//     and error (the Pareto set), and their lower convex hull;
//  2. starts every tensor at its smallest candidate, then repeatedly takes
//     the hull step with the largest error reduction per extra byte that still
//     fits (Lagrangian greedy: at the budget it stops at, this is optimal);
//  3. polishes with exact local moves: the single change, then the paired
//     change (one tensor up, another down), that lowers the error most while
//     fitting, until none does;
//  4. runs a depth-first branch and bound from that incumbent, pruning with
//     the LP relaxation (the same greedy over convex hulls, with one
//     fractional step), up to max_search_nodes nodes. When the search
//     finishes, the plan is proven optimal (BudgetResult::proven_optimal);
//     on small models it always finishes, on large ones it usually stops at
//     the node limit and the greedy/polished plan (or a better one it found)
//     is returned.
// It never returns a plan above the budget; a budget below the smallest
// achievable size is an error (kLimit) that states that size.
#ifndef BLOCKQUANT_POLICY_BUDGET_H_
#define BLOCKQUANT_POLICY_BUDGET_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/policy/plan.h"

namespace blockquant {
inline namespace v0 {

struct BudgetOptions {
  int64_t target_bytes = -1;  // whole-file tensor bytes; or
  double target_bpw = -1.0;   // bits per weight over all tensors (fixed ones included)
  std::vector<QuantType> ladder = {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K,
                                   QuantType::kQ6_K, QuantType::kQ8_0, QuantType::kF16};
  std::vector<double> importance;  // optional, one weight >= 0 per tensor (same order as the tensors)
  int max_polish_moves = 100000;   // a safety cap; the polish stops earlier when no move helps
  int64_t max_search_nodes = 200000;  // branch-and-bound nodes; 0 skips the exact search
};

// err(tensor, type) >= 0: the error of storing `tensor` as `type`, in any
// unit the caller likes as long as it is additive over tensors.
using BudgetErrorFn = std::function<double(const TensorPlan&, QuantType)>;

struct BudgetResult {
  Plan plan;
  double total_error = 0.0;  // importance-weighted sum over the free tensors
  int64_t budget_bytes = 0;
  int64_t min_bytes = 0;     // the smallest plan the ladder allows
  int64_t max_bytes = 0;     // the largest Pareto-useful plan
  int greedy_steps = 0;
  int polish_moves = 0;
  int64_t search_nodes = 0;
  bool proven_optimal = false;  // the branch and bound finished within max_search_nodes
};

namespace policy_detail {

struct BudgetCandidate {
  QuantType type;
  int64_t bytes;
  double error;
};

}  // namespace policy_detail

// Tensors the base policy keeps (never quantized, or "keep" rules) stay as
// they are; every other tensor chooses from options.ladder, restricted to
// types whose block divides its rows.
inline BudgetResult SolveBudget(const std::vector<TensorDesc>& tensors, const Policy& base_policy,
                                const ModelFacts& facts, const BudgetOptions& options, const BudgetErrorFn& err) {
  using policy_detail::BudgetCandidate;
  BudgetResult result;
  result.plan = MakePlan(tensors, base_policy, facts);
  Plan& plan = result.plan;
  plan.policy = "budget(" + base_policy.name() + ")";

  if ((options.target_bytes >= 0) == (options.target_bpw >= 0.0)) {
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "budget: give exactly one of target_bytes and target_bpw");
  }
  if (!options.importance.empty() && options.importance.size() != tensors.size()) {
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "budget: " + std::to_string(options.importance.size()) +
                                                      " importance weights for " + std::to_string(tensors.size()) +
                                                      " tensors");
  }
  if (options.ladder.empty()) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "budget: empty candidate ladder");
  if (!err) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "budget: no error callback");
  const int64_t budget = options.target_bytes >= 0
                             ? options.target_bytes
                             : static_cast<int64_t>(std::floor(options.target_bpw * static_cast<double>(plan.n_elements) / 8.0));
  result.budget_bytes = budget;

  // Pareto candidates per free tensor, smallest first.
  std::vector<size_t> free_index;
  std::vector<std::vector<BudgetCandidate>> cands;
  int64_t fixed_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorPlan& p = plan.tensors[i];
    if (p.keep) {
      fixed_bytes += p.bytes;
      continue;
    }
    const double w = options.importance.empty() ? 1.0 : options.importance[i];
    if (!(w >= 0.0) || !std::isfinite(w)) {
      BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "budget: importance of tensor '" + p.name + "' is " +
                                                        std::to_string(w) + ", must be finite and >= 0");
    }
    std::vector<BudgetCandidate> all;
    for (QuantType type : options.ladder) {
      if (tensors[i].dims[0] % Traits(type).block_elems != 0) continue;
      bool seen = false;
      for (const BudgetCandidate& c : all) seen = seen || c.type == type;
      if (seen) continue;
      const double e = err(p, type);
      if (!(e >= 0.0) || !std::isfinite(e)) {
        BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "budget: error of tensor '" + p.name + "' as " +
                                                          TypeName(type) + " is " + std::to_string(e) +
                                                          ", must be finite and >= 0");
      }
      all.push_back({type, TensorBytes(type, tensors[i]), w * e});
    }
    if (all.empty()) {
      // No ladder type fits the row: use what the fallback would write.
      const QuantType type = FallbackType(options.ladder.front(), tensors[i].dims[0]);
      all.push_back({type, TensorBytes(type, tensors[i]), w * err(p, type)});
    }
    std::stable_sort(all.begin(), all.end(), [](const BudgetCandidate& a, const BudgetCandidate& b) {
      return a.bytes != b.bytes ? a.bytes < b.bytes : a.error < b.error;
    });
    std::vector<BudgetCandidate> pareto;
    for (const BudgetCandidate& c : all) {
      if (pareto.empty() || c.error < pareto.back().error) {
        if (!pareto.empty() && pareto.back().bytes == c.bytes) pareto.pop_back();
        pareto.push_back(c);
      }
    }
    free_index.push_back(i);
    cands.push_back(std::move(pareto));
  }

  const size_t n = cands.size();
  std::vector<size_t> pick(n, 0);
  int64_t used = fixed_bytes;
  int64_t most = fixed_bytes;
  for (size_t k = 0; k < n; ++k) {
    used += cands[k][0].bytes;
    most += cands[k].back().bytes;
  }
  result.min_bytes = used;
  result.max_bytes = most;
  if (used > budget) {
    BLOCKQUANT_THROW(ErrorCode::kLimit, "budget: target " + std::to_string(budget) +
                                            " bytes is below the smallest plan the ladder allows, " +
                                            std::to_string(used) + " bytes");
  }

  // Greedy over each tensor's lower convex hull (indices into its Pareto set).
  std::vector<std::vector<size_t>> hull(n);
  for (size_t k = 0; k < n; ++k) {
    std::vector<size_t>& h = hull[k];
    for (size_t j = 0; j < cands[k].size(); ++j) {
      // Drop the last hull point while it lies on or above the segment from
      // the one before it to j (its slope is not steeper).
      while (h.size() >= 2) {
        const BudgetCandidate& a = cands[k][h[h.size() - 2]];
        const BudgetCandidate& b = cands[k][h.back()];
        const BudgetCandidate& c = cands[k][j];
        const double lhs = (a.error - b.error) * static_cast<double>(c.bytes - a.bytes);
        const double rhs = (a.error - c.error) * static_cast<double>(b.bytes - a.bytes);
        if (lhs <= rhs) {
          h.pop_back();
        } else {
          break;
        }
      }
      h.push_back(j);
    }
  }
  std::vector<size_t> hull_pos(n, 0);
  std::vector<bool> blocked(n, false);
  for (;;) {
    size_t best = n;
    double best_ratio = 0.0;
    for (size_t k = 0; k < n; ++k) {
      if (blocked[k] || hull_pos[k] + 1 >= hull[k].size()) continue;
      const BudgetCandidate& cur = cands[k][hull[k][hull_pos[k]]];
      const BudgetCandidate& nxt = cands[k][hull[k][hull_pos[k] + 1]];
      const double ratio = (cur.error - nxt.error) / static_cast<double>(nxt.bytes - cur.bytes);
      if (best == n || ratio > best_ratio) {
        best = k;
        best_ratio = ratio;
      }
    }
    if (best == n) break;
    const BudgetCandidate& cur = cands[best][hull[best][hull_pos[best]]];
    const BudgetCandidate& nxt = cands[best][hull[best][hull_pos[best] + 1]];
    if (used - cur.bytes + nxt.bytes > budget) {
      blocked[best] = true;  // its later hull steps are no better per byte
      continue;
    }
    used += nxt.bytes - cur.bytes;
    ++hull_pos[best];
    pick[best] = hull[best][hull_pos[best]];
    ++result.greedy_steps;
  }

  // Polish: best improving single move, else best improving pair move.
  while (result.polish_moves < options.max_polish_moves) {
    double gain = 0.0;
    size_t mk = n, mj = 0, pk = n, pj = 0;
    for (size_t k = 0; k < n; ++k) {
      const BudgetCandidate& cur = cands[k][pick[k]];
      for (size_t j = 0; j < cands[k].size(); ++j) {
        const BudgetCandidate& c = cands[k][j];
        if (used - cur.bytes + c.bytes <= budget && cur.error - c.error > gain) {
          gain = cur.error - c.error;
          mk = k;
          mj = j;
        }
      }
    }
    if (mk == n) {
      // Pairs: raise k to j (costs bytes), lower l to m (frees bytes).
      for (size_t k = 0; k < n; ++k) {
        const BudgetCandidate& ck = cands[k][pick[k]];
        for (size_t j = pick[k] + 1; j < cands[k].size(); ++j) {
          const int64_t extra = cands[k][j].bytes - ck.bytes;
          const double up_gain = ck.error - cands[k][j].error;
          if (up_gain <= gain) continue;
          for (size_t l = 0; l < n; ++l) {
            if (l == k) continue;
            const BudgetCandidate& cl = cands[l][pick[l]];
            for (size_t m = 0; m < pick[l]; ++m) {
              const int64_t freed = cl.bytes - cands[l][m].bytes;
              if (used + extra - freed > budget) continue;
              const double net = up_gain - (cands[l][m].error - cl.error);
              if (net > gain) {
                gain = net;
                mk = k;
                mj = j;
                pk = l;
                pj = m;
              }
            }
          }
        }
      }
    }
    if (mk == n) break;
    used += cands[mk][mj].bytes - cands[mk][pick[mk]].bytes;
    pick[mk] = mj;
    if (pk != n) {
      used += cands[pk][pj].bytes - cands[pk][pick[pk]].bytes;
      pick[pk] = pj;
    }
    ++result.polish_moves;
  }

  // Branch and bound. Tensors are branched on largest-first (their choices
  // move the total most); the bound is the LP relaxation of the rest.
  if (options.max_search_nodes > 0 && n > 0) {
    std::vector<size_t> order(n);
    for (size_t k = 0; k < n; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return cands[a].back().bytes - cands[a][0].bytes > cands[b].back().bytes - cands[b][0].bytes;
    });
    std::vector<size_t> depth_of(n);
    for (size_t d = 0; d < n; ++d) depth_of[order[d]] = d;
    // Every hull step of every tensor, steepest (most error saved per byte) first.
    struct Step {
      size_t depth;
      int64_t bytes;
      double gain;
    };
    std::vector<Step> steps;
    for (size_t k = 0; k < n; ++k) {
      for (size_t h = 1; h < hull[k].size(); ++h) {
        const BudgetCandidate& a = cands[k][hull[k][h - 1]];
        const BudgetCandidate& b = cands[k][hull[k][h]];
        steps.push_back({depth_of[k], b.bytes - a.bytes, a.error - b.error});
      }
    }
    std::stable_sort(steps.begin(), steps.end(), [](const Step& x, const Step& y) {
      return x.gain * static_cast<double>(y.bytes) > y.gain * static_cast<double>(x.bytes);
    });
    // Suffix sums over the branching order: smallest bytes and their error.
    std::vector<int64_t> rest_min_bytes(n + 1, 0);
    std::vector<double> rest_min_error(n + 1, 0.0);
    for (size_t d = n; d-- > 0;) {
      rest_min_bytes[d] = rest_min_bytes[d + 1] + cands[order[d]][0].bytes;
      rest_min_error[d] = rest_min_error[d + 1] + cands[order[d]][0].error;
    }
    auto lower_bound = [&](size_t depth, int64_t room) {
      // room: bytes left for tensors at depth >= `depth`.
      int64_t cap = room - rest_min_bytes[depth];
      double bound = rest_min_error[depth];
      for (const Step& st : steps) {
        if (st.depth < depth) continue;
        if (st.bytes <= cap) {
          cap -= st.bytes;
          bound -= st.gain;
        } else {
          bound -= st.gain * static_cast<double>(cap) / static_cast<double>(st.bytes);
          break;
        }
      }
      return bound;
    };
    double best_error = 0.0;
    for (size_t k = 0; k < n; ++k) best_error += cands[k][pick[k]].error;
    std::vector<size_t> best_pick = pick;
    std::vector<size_t> cur(n, 0);
    const int64_t room0 = budget - fixed_bytes;
    bool complete = true;
    // Iterative DFS: frame d tries candidate choice[d] for tensor order[d],
    // best error first.
    std::vector<std::vector<size_t>> by_error(n);
    for (size_t k = 0; k < n; ++k) {
      by_error[k].resize(cands[k].size());
      for (size_t j = 0; j < cands[k].size(); ++j) by_error[k][j] = cands[k].size() - 1 - j;  // Pareto: error falls with size
    }
    std::vector<size_t> next(n + 1, 0);
    std::vector<int64_t> room(n + 1, 0);
    std::vector<double> acc(n + 1, 0.0);
    room[0] = room0;
    size_t d = 0;
    next[0] = 0;
    const double eps = 1e-12;
    while (true) {
      if (result.search_nodes >= options.max_search_nodes) {
        complete = false;
        break;
      }
      const size_t k = order[d];
      if (next[d] >= by_error[k].size()) {
        if (d == 0) break;
        --d;
        continue;
      }
      const size_t j = by_error[k][next[d]++];
      const BudgetCandidate& c = cands[k][j];
      const int64_t left = room[d] - c.bytes;
      if (left < rest_min_bytes[d + 1]) continue;  // the rest cannot fit
      ++result.search_nodes;
      const double err_so_far = acc[d] + c.error;
      if (err_so_far + lower_bound(d + 1, left) >= best_error - eps * std::fabs(best_error)) continue;
      cur[k] = j;
      if (d + 1 == n) {
        best_error = err_so_far;
        best_pick = cur;
        continue;
      }
      acc[d + 1] = err_so_far;
      room[d + 1] = left;
      next[d + 1] = 0;
      ++d;
    }
    result.proven_optimal = complete;
    if (best_pick != pick) {
      pick = best_pick;
      used = fixed_bytes;
      for (size_t k = 0; k < n; ++k) used += cands[k][pick[k]].bytes;
    }
  }

  result.total_error = 0.0;
  for (size_t k = 0; k < n; ++k) {
    const BudgetCandidate& c = cands[k][pick[k]];
    TensorPlan& p = plan.tensors[free_index[k]];
    p.requested_type = p.type = c.type;
    p.fallback = false;
    p.bytes = c.bytes;
    p.decided_by = "budget: " + std::string(TypeName(c.type)) + " (weighted error " + std::to_string(c.error) +
                   ", " + std::to_string(c.bytes) + " bytes)";
    result.total_error += c.error;
  }
  plan.file_type = policy_detail::GuessFileType(plan.tensors);
  policy_detail::Totals(plan);
  return result;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_BUDGET_H_
