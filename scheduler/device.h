// One device models run on: its backend, the executor thread that steps its
// engines, its KV pool, and how much memory its models' weights may take
// (the device's budget less the KV pool).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cohost/kernels/backend.h"
#include "scheduler/device_executor.h"
#include "scheduler/kv_pool.h"

namespace cohost::scheduler {

struct Device {
  std::string name;  // the backend's, e.g. "cpu (2 threads)": metrics label it so
  std::string id;    // "cpu" or "cuda:N": what a model's `device` pins it to
  kernels::Backend* backend = nullptr;
  std::shared_ptr<DeviceExecutor> executor;
  std::shared_ptr<KvPool> kv_pool;
  int64_t weights_budget_bytes = 0;
};

}  // namespace cohost::scheduler
