// WriteSet: a block's final writes, the one type the engine produces and the store commits.
// It must stay a plain container with no behaviour: util/ sits below engine/ and store/, so the
// two layers can hand a block's writes over (by move) without either knowing the other.
#pragma once

#include <functional>
#include <map>
#include <string>

namespace tandem::util {

// Key -> value, ordered by key bytewise (std::string compares as unsigned bytes), which is the
// order the state root hashes them in. An empty value deletes the key. The transparent
// comparator lets lookups take a string_view without building a string.
using WriteSet = std::map<std::string, std::string, std::less<>>;

}  // namespace tandem::util
