// Where a model's weights go: pure functions of what each device reports,
// tested as tables (tests/scheduler/placement_test.cc).
//
// The rule, for one model (PlaceModel):
//   1. Only the devices it may use: the one its configuration pins it to, or all.
//   2. Among those where it fits in free memory and its expected load fits the
//      device's spare capacity: best fit, the device left with the least free
//      memory (bins stay as full as possible, so that large models still find
//      room); ties go to the less loaded device, then to the first listed.
//   3. Where it fits in memory only: the same, least loaded first, since load
//      is an estimate and memory is not.
//   4. Where it fits only once idle models past their keep-alive are evicted
//      (PickEvictions): the device whose victims' highest priority is lowest,
//      then the one where that evicts the fewest bytes (so a lower-priority
//      model on one device goes before a higher-priority one on another, as
//      on one device).
//   5. Nowhere: RESOURCE_EXHAUSTED saying how close the nearest device came.
// Never over-commits: a device's used bytes plus the model's never pass its
// budget. PlaceModels places several at once (start-up) by best-fit
// decreasing: the largest first, each by PlaceModel without evictions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/batching/request.h"
#include "scheduler/eviction.h"

namespace cohost::scheduler {

struct DeviceRoom {
  std::string name;                          // "cpu", "cuda:0"
  int64_t budget_bytes = 0;                  // what models' weights may take there
  int64_t used_bytes = 0;                    // taken by resident (or loading) models
  double load = 0;                           // expected busy fraction already placed, 0..1
  std::vector<EvictionCandidate> residents;  // the models that could make room
  int64_t retiring_bytes = 0;  // of used_bytes: unloaded models' until their last calls end
  // Besides used_bytes: evicted models' parked weights' contexts, which stay
  // on the device but can be dropped at will, so placement counts them free
  // (Router::MakeRoom drops what a reservation needs).
  int64_t parked_bytes = 0;
};

struct ModelDemand {
  std::string name;
  int64_t bytes = 0;                  // its weights (measured, or predicted before a first load)
  double load = 0;                    // expected busy fraction it adds, 0..1 (0: unknown)
  std::optional<std::string> device;  // pinned by its configuration
  // Start-up's memory plan alone (PlanDeviceMemory): the KV its configuration
  // guarantees it, which the device it is planned onto must keep beside its
  // weights. Placement itself reads `bytes`.
  int64_t kv_floor_bytes = 0;
};

struct Placement {
  size_t device = 0;          // index into the devices given
  std::vector<size_t> evict;  // indices into that device's residents
  std::string why;            // for `cohost models`
};

// Bytes in placement's words: "12.5 MB", clamped at 0 ("-3 GB free" reads
// as an error).
std::string Mb(int64_t bytes);

// INVALID_ARGUMENT when `model` is pinned to a device not listed (step 1 of
// the rule, checked alone before a model's file is read).
absl::Status CheckPin(absl::Span<const DeviceRoom> devices, const ModelDemand& model);

// INVALID_ARGUMENT for a pin to a device not listed; RESOURCE_EXHAUSTED when
// it fits nowhere, even after evictions.
absl::StatusOr<Placement> PlaceModel(absl::Span<const DeviceRoom> devices, const ModelDemand& model,
                                     runtime::Clock::time_point now);

// Best-fit decreasing over `models` (largest first; equal sizes in the order
// given), without evictions. One result per model, in the order given.
std::vector<absl::StatusOr<Placement>> PlaceModels(std::vector<DeviceRoom> devices,
                                                   absl::Span<const ModelDemand> models,
                                                   runtime::Clock::time_point now);

}  // namespace cohost::scheduler
