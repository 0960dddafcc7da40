// One device models run on: its backend, the executor thread that steps its
// engines, its KV pool, and how much memory its models' weights may take
// (the device's budget less the KV pool).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cohost/kernels/backend.h"
#include "runtime/batching/fair_share.h"
#include "scheduler/device_executor.h"
#include "scheduler/kv_pool.h"
#include "scheduler/offload_budget.h"

namespace cohost::scheduler {

// What a server is given for one device.
struct DeviceSetup {
  kernels::Backend* backend = nullptr;  // outlives the Router
  std::string id;                       // "cpu" or "cuda:N"; distinct among a Router's devices
  int64_t kv_pool_bytes = 0;            // the device's KV pool, shared by its models
  int64_t weights_budget_bytes = 0;     // what its models' weights may take; 0: no limit
  // The configured models that belong here (pinned, or planned), by name,
  // with their KV floors: kept for them in the pool (KvPool::Reserve).
  std::map<std::string, int64_t> reserved_kv_floors;
};

struct Device {
  // The backend's name, led by the id unless it starts with it: "cpu (2
  // threads)", "cuda:1: NVIDIA H200 (sm_90)". Metrics label by it.
  std::string name;
  std::string id;  // "cpu" or "cuda:N": what a model's `device` pins it to
  kernels::Backend* backend = nullptr;
  std::shared_ptr<DeviceExecutor> executor;
  std::shared_ptr<KvPool> kv_pool;
  // The tenants' virtual token counters of every engine here
  // (EngineConfig::fair_share): token-weighted fairness across the models.
  std::shared_ptr<runtime::FairShare> fair_share = std::make_shared<runtime::FairShare>();
  int64_t weights_budget_bytes = 0;
  // Host memory for evicted models' weights, shared by every device whose
  // memory is its own; null: evicted weights are dropped (always where the
  // device's memory is the host's: the file reloads from the page cache).
  std::shared_ptr<OffloadBudget> offload;
};

}  // namespace cohost::scheduler
