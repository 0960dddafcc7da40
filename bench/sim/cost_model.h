// What a step, a model and a device cost in the cluster simulator. A step of
// an engine costs runtime::StepCost (a fixed part, paid by every step, plus a
// part per new token), the same line each engine fits from its own steps in
// the server, plus a part per token of context its sequences attend over
// (attention reading the KV cache, which the server's line leaves out); a
// model needs its weights and KV bytes per token of memory.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/batching/step_cost.h"

namespace cohost::sim {

struct SimCost {
  std::string name;
  runtime::StepCost step;
  // Per token of context each scheduled sequence holds (its cached tokens
  // and this step's): attention's reads of the KV cache.
  double seconds_per_context_token = 0;
  double weights_bytes = 0;
  double kv_bytes_per_token = 0;
  double device_bytes = 0;  // what weights and KV may take on one device
  double load_seconds = 0;  // to load one model's weights onto a device
  std::string source;       // where each figure comes from
};

// A Llama-3-8B-class model in bf16 on an H200, from the floors measured on the
// lent H200 (shared/gpu.md: a device copy reaches about 4.3 TB/s, a bf16
// matrix product about 790 TFLOP/s), with the achieved fractions stated in
// `source`.
SimCost H200Llama3_8B();

// The same shape of cost from a step line measured on this machine (an
// engine's fitted StepCost), for a model of `weights_bytes` on a device of
// `device_bytes`.
SimCost MeasuredCost(std::string name, runtime::StepCost step, double seconds_per_context_token,
                     double weights_bytes, double kv_bytes_per_token, double device_bytes,
                     double load_seconds);

// One step's seconds: the line over its new tokens, plus its sequences'
// context.
double StepSeconds(const SimCost& cost, int64_t new_tokens, int64_t context_tokens);

}  // namespace cohost::sim
