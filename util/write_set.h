// WriteSet: a block's final writes, the one type the engine produces and the store commits.
// It must stay a plain container with no behaviour: util/ sits below engine/ and store/, so the
// two layers can hand a block's writes over (by move) without either knowing the other.
#pragma once

#include <functional>
#include <string>

#include "absl/container/btree_map.h"

namespace tandem::util {

// Key -> value, ordered by key bytewise (std::string compares as unsigned bytes), which is the
// order the state root hashes them in. An empty value deletes the key. The transparent
// comparator lets lookups take a string_view without building a string.
//
// A B-tree rather than std::map: a real block writes tens of thousands of keys, and std::map's
// node per entry made building the set in the guest's __flush and freeing it after the commit a
// measurable share of the commit thread. Iterators do not survive an insert; nothing keeps one.
using WriteSet = absl::btree_map<std::string, std::string, std::less<>>;

}  // namespace tandem::util
