// Keeping the best `cap` of a stream in one pass (top-k sampling, top
// logprobs): a heap under `better` whose front is the worst item kept, so
// most items cost one comparison and nothing vocabulary-sized is copied.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace cohost {

// Offers `item` to `heap` (a heap under `better`, at most `cap` items): kept
// while there is room, else in place of the worst kept item if better.
template <typename T, typename Better>
void OfferBounded(std::vector<T>& heap, size_t cap, const T& item, Better better) {
  if (heap.size() < cap) {
    heap.push_back(item);
    std::push_heap(heap.begin(), heap.end(), better);
  } else if (!heap.empty() && better(item, heap.front())) {
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.back() = item;
    std::push_heap(heap.begin(), heap.end(), better);
  }
}

}  // namespace cohost
