// What each swap policy decides, as one object per policy behind one interface.
// The rules only answer questions; the pair and its slot table carry the answers out.
#include "proxy/swap_rules.h"

namespace tandem::proxy {
namespace {

class BlockRules final : public SwapRules {
 public:
  explicit BlockRules(const SwapRulesOptions& options) : options_(options) {}
  SwapPolicy policy() const override { return SwapPolicy::kBlock; }
  int StandbysWanted(double) const override { return options_.standby_pool; }
  bool BlocksRunOnFreshInstance() const override { return true; }
  AfterBlock AfterBlockCommitted() const override { return AfterBlock::kPublish; }
  bool SwapDue(double) const override { return false; }

 private:
  const SwapRulesOptions options_;
};

class ThresholdRules final : public SwapRules {
 public:
  explicit ThresholdRules(const SwapRulesOptions& options) : options_(options) {}
  SwapPolicy policy() const override { return SwapPolicy::kThreshold; }
  int StandbysWanted(double ratio) const override {
    return ratio >= options_.warm_at ? options_.standby_pool : 0;
  }
  bool BlocksRunOnFreshInstance() const override { return false; }
  AfterBlock AfterBlockCommitted() const override { return AfterBlock::kKeepActive; }
  bool SwapDue(double ratio) const override { return ratio >= options_.swap_at; }

 private:
  const SwapRulesOptions options_;
};

class NoneRules final : public SwapRules {
 public:
  explicit NoneRules(const SwapRulesOptions& options) : options_(options) {}
  SwapPolicy policy() const override { return SwapPolicy::kNone; }
  int StandbysWanted(double) const override { return options_.standby_pool; }
  bool BlocksRunOnFreshInstance() const override { return false; }
  AfterBlock AfterBlockCommitted() const override { return AfterBlock::kKeepActive; }
  bool SwapDue(double) const override { return false; }

 private:
  const SwapRulesOptions options_;
};

class SyncRules final : public SwapRules {
 public:
  SwapPolicy policy() const override { return SwapPolicy::kSync; }
  // Instances are made on the critical path: that is the point of the baseline.
  int StandbysWanted(double) const override { return 0; }
  bool BlocksRunOnFreshInstance() const override { return false; }
  AfterBlock AfterBlockCommitted() const override { return AfterBlock::kReplaceNow; }
  bool SwapDue(double) const override { return false; }
};

}  // namespace

std::unique_ptr<SwapRules> MakeSwapRules(SwapPolicy policy, const SwapRulesOptions& options) {
  switch (policy) {
    case SwapPolicy::kBlock:
      return std::make_unique<BlockRules>(options);
    case SwapPolicy::kThreshold:
      return std::make_unique<ThresholdRules>(options);
    case SwapPolicy::kNone:
      return std::make_unique<NoneRules>(options);
    case SwapPolicy::kSync:
      return std::make_unique<SyncRules>();
  }
  return std::make_unique<BlockRules>(options);
}

}  // namespace tandem::proxy
