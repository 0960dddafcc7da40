#include "scheduler/placement.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <tuple>

#include "absl/strings/str_format.h"

namespace cohost::scheduler {
namespace {

// Negative for a device over its budget (a load measured larger than
// expected): evictions there must free the excess too.
int64_t FreeBytes(const DeviceRoom& d) { return d.budget_bytes - d.used_bytes; }

}  // namespace

std::string Mb(int64_t bytes) {
  return absl::StrFormat("%.1f MB", static_cast<double>(std::max<int64_t>(bytes, 0)) / (1 << 20));
}

absl::Status CheckPin(absl::Span<const DeviceRoom> devices, const ModelDemand& model) {
  if (!model.device || std::any_of(devices.begin(), devices.end(),
                                   [&](const DeviceRoom& d) { return d.name == *model.device; })) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("model \"%s\" is pinned to device %s, which this server does not have",
                      model.name, *model.device));
}

absl::StatusOr<Placement> PlaceModel(absl::Span<const DeviceRoom> devices, const ModelDemand& model,
                                     runtime::Clock::time_point now) {
  if (absl::Status pin = CheckPin(devices, model); !pin.ok()) return pin;
  std::vector<size_t> allowed;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (!model.device || devices[i].name == *model.device) allowed.push_back(i);
  }
  const std::string pinned = model.device ? "pinned there by its configuration; " : "";

  // Steps 2 and 3: fits in free memory. Within capacity: (free after, load);
  // over it: (load, free after). Earlier devices win ties.
  std::optional<size_t> best;
  std::tuple<bool, double, double> best_key;
  for (size_t i : allowed) {
    const DeviceRoom& d = devices[i];
    if (model.bytes > FreeBytes(d)) continue;
    const bool over = d.load + model.load > 1.0;
    const auto free_after = static_cast<double>(FreeBytes(d) - model.bytes);
    const auto key = over ? std::make_tuple(true, d.load, free_after)
                          : std::make_tuple(false, free_after, d.load);
    if (!best || key < best_key) {
      best = i;
      best_key = key;
    }
  }
  if (best) {
    const DeviceRoom& d = devices[*best];
    Placement p;
    p.device = *best;
    p.why = absl::StrFormat("%sbest fit: %s of %s free there before it, %s after", pinned,
                            Mb(FreeBytes(d)), Mb(d.budget_bytes), Mb(FreeBytes(d) - model.bytes));
    if (std::get<0>(best_key)) p.why += "; every device that fits is at capacity";
    return p;
  }

  // Step 4: fits after evicting idle models: the device whose victims have
  // the lowest priority (the highest among them counts), then the fewest
  // bytes evicted.
  std::optional<Placement> evicting;
  int64_t evicted_bytes = 0;
  int32_t evicted_priority = 0;
  for (size_t i : allowed) {
    const DeviceRoom& d = devices[i];
    if (model.bytes > d.budget_bytes) continue;
    std::optional<std::vector<size_t>> victims =
        PickEvictions(d.residents, model.bytes, FreeBytes(d), now);
    if (!victims) continue;
    int64_t bytes = 0;
    int32_t priority = std::numeric_limits<int32_t>::min();
    for (size_t v : *victims) {
      bytes += d.residents[v].bytes;
      priority = std::max(priority, d.residents[v].priority);
    }
    if (!evicting ||
        std::make_pair(priority, bytes) < std::make_pair(evicted_priority, evicted_bytes)) {
      evicting = Placement{i, *std::move(victims), ""};
      evicted_bytes = bytes;
      evicted_priority = priority;
    }
  }
  if (evicting) {
    const DeviceRoom& d = devices[evicting->device];
    evicting->why =
        absl::StrFormat("%sfits after evicting %d idle model(s) past their keep-alive (%s) of %s",
                        pinned, evicting->evict.size(), Mb(evicted_bytes), Mb(d.budget_bytes));
    return *evicting;
  }

  // Step 5: say how close it came.
  int64_t most_free = 0;
  const DeviceRoom* where = nullptr;
  for (size_t i : allowed) {
    if (where == nullptr || FreeBytes(devices[i]) > most_free) {
      most_free = FreeBytes(devices[i]);
      where = &devices[i];
    }
  }
  const std::string retiring =
      where != nullptr && where->retiring_bytes > 0
          ? absl::StrFormat(" (%s there held by unloaded models until their last calls end)",
                            Mb(where->retiring_bytes))
          : "";
  return absl::ResourceExhaustedError(absl::StrFormat(
      "model \"%s\" needs %s for its weights; the most free is %s on %s%s, and no idle model "
      "past its keep-alive can make room",
      model.name, Mb(model.bytes), Mb(most_free), where != nullptr ? where->name : "no device",
      retiring));
}

std::vector<absl::StatusOr<Placement>> PlaceModels(std::vector<DeviceRoom> devices,
                                                   absl::Span<const ModelDemand> models,
                                                   runtime::Clock::time_point now) {
  std::vector<size_t> order(models.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return models[a].bytes > models[b].bytes; });
  // Residents are not evicted at start-up: nobody is idle yet.
  for (DeviceRoom& d : devices) d.residents.clear();
  std::vector<absl::StatusOr<Placement>> out(models.size(), absl::UnknownError("unplaced"));
  for (size_t m : order) {
    out[m] = PlaceModel(devices, models[m], now);
    if (!out[m].ok()) continue;
    DeviceRoom& d = devices[out[m]->device];
    d.used_bytes += models[m].bytes;
    d.load += models[m].load;
  }
  return out;
}

}  // namespace cohost::scheduler
