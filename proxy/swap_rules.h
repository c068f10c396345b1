// What each swap policy decides, as one object per policy behind one interface.
// The rules only answer questions; the pair and its slot table carry the answers out.
#pragma once

#include <memory>

#include "proxy/events.h"

namespace tandem::proxy {

struct SwapRulesOptions {
  // READY standbys to keep (`--standby_pool`) under the policies that keep standbys.
  int standby_pool = 2;
  // Fractions of the memory cap for `threshold`: start warming at warm_at, swap at swap_at.
  double warm_at = 0.70;
  double swap_at = 0.90;
};

// What happens to the instance that ran a block, once the block is committed.
enum class AfterBlock {
  kPublish,     // It becomes the active (it has seen exactly the new tip).
  kKeepActive,  // It was the active and stays the active.
  kReplaceNow,  // A new instance is made on the critical path and becomes the active.
};

// Threading: immutable; any thread may ask.
class SwapRules {
 public:
  virtual ~SwapRules() = default;

  virtual SwapPolicy policy() const = 0;
  // READY standbys to keep warm, besides those that waiting callers ask for and the one that
  // fills an empty active slot, given the active's memory as a fraction of the cap.
  virtual int StandbysWanted(double active_memory_ratio) const = 0;
  // True when blocks run on a fresh standby; false when they run on the active.
  virtual bool BlocksRunOnFreshInstance() const = 0;
  virtual AfterBlock AfterBlockCommitted() const = 0;
  // True when the active must give way to a READY standby at the next call boundary.
  virtual bool SwapDue(double active_memory_ratio) const = 0;
};

// The rules of `policy`:
//   block      every block on a fresh standby, which then serves as the active; keeps
//              standby_pool standbys READY.
//   threshold  blocks on the active; standbys warmed from warm_at, the swap due from swap_at.
//   none       blocks on the active; standby_pool standbys kept READY for failures and operators.
//   sync       blocks on the active, replaced on the critical path after every block; no standby.
std::unique_ptr<SwapRules> MakeSwapRules(SwapPolicy policy, const SwapRulesOptions& options);

}  // namespace tandem::proxy
