// One device's KV memory, shared by the engines placed on it: a byte budget,
// and per engine a floor it is guaranteed and a cap it cannot pass. In
// between, memory goes where the work is: an engine that needs a group asks
// (KvBudget::Acquire); the pool grants from what is free, else takes it back
// from engines above their floors. They drain their emptiest groups, and
// preempt the sequences holding them when the asker is below its own floor,
// or when the asker's work is older than theirs (wound-wait, kv_budget.h):
// without that, two engines that each hold half of what their requests need
// would wait for each other forever. Nobody is
// pushed below its floor. Acquire and the reclaims it makes run on the
// device's executor thread (one engine steps at a time); Join, Leave and the
// read-outs are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/engine/kv_budget.h"

namespace cohost::scheduler {

class KvPool {
 public:
  // Gives back at least `wanted` bytes, at most `most`, preempting if its
  // oldest live request is younger than `wounder` (kv_budget.h); returns what
  // it gave back (Engine::ReclaimKv).
  using ReclaimFn =
      std::function<int64_t(int64_t wanted, int64_t most, runtime::RequestId wounder)>;

  class Account : public runtime::KvBudget {
   public:
    ~Account() override;  // leaves the pool; whatever it still holds is freed
    bool Acquire(int64_t bytes, runtime::RequestId oldest) override;
    void Release(int64_t bytes) override;
    // Installed once the engine exists; the pool calls it to take memory back.
    // `group_bytes`: what the engine takes and gives back at a time. Its floor
    // then holds in whole groups (rounded down, said on stderr where groups
    // are megabytes, as a GPU's are): a floor between two groups
    // could neither be reached by the asker (it grows a group at a time) nor
    // left by a holder (it gives back whole groups), and a request waited for
    // memory nobody could give.
    void SetReclaimer(ReclaimFn reclaim, int64_t group_bytes = 1);
    // Its model was unloaded: its floor stops counting against other joins
    // and promises (a model of the same name may join at once), and all it
    // holds may be reclaimed (its requests were aborted). What it holds stays
    // counted until it is released or the account is destroyed.
    void Retire();

    const std::string& name() const { return name_; }
    int64_t floor() const { return floor_; }
    int64_t cap() const { return cap_; }
    // The most this account can ever hold: its cap, less what other accounts'
    // floors keep out of reach. Fixed at Join (later joins must respect it).
    int64_t promised() const { return promised_; }
    int64_t held() const;

   private:
    friend class KvPool;
    Account(KvPool* pool, std::string name, int64_t floor, int64_t cap, int64_t promised)
        : pool_(pool),
          name_(std::move(name)),
          floor_(floor),
          cap_(cap),
          promised_(promised),
          guarantee_(floor) {}
    KvPool* pool_;
    const std::string name_;
    const int64_t floor_, cap_, promised_;
    int64_t held_ = 0;       // guarded by pool_->mu_
    int64_t guarantee_ = 0;  // guarded by pool_->mu_; floor_ in whole groups, 0 once retired
    bool retired_ = false;   // guarded by pool_->mu_
    ReclaimFn reclaim_;      // guarded by pool_->mu_
  };

  KvPool(std::string device, int64_t budget_bytes);
  ~KvPool();  // every account must be gone

  // An engine's share (a cap above the budget is the budget):
  // INVALID_ARGUMENT for a negative floor or a cap below the floor;
  // RESOURCE_EXHAUSTED when the floors, this one's with the others', would
  // no longer fit the budget, or when this floor would break what an earlier
  // account was promised (another device's pool may take it). `name`
  // appears in errors.
  absl::StatusOr<std::unique_ptr<Account>> Join(std::string name, int64_t floor, int64_t cap);

  // The configured model `name` may come here (pinned, planned, or placed
  // at its load), and its floor is kept out of every other account's promise
  // from now on, joined or not. So whatever loads first, and whatever loads
  // later by LoadModel, the model finds its floor here when it comes. Its
  // own Join counts its floor once. The caller checks that the reserved
  // floors fit the budget (SplitDeviceBudgets); past it, Joins are refused.
  // The Router moves a reservation to where its model joins, and drops it
  // when the model is unloaded.
  void Reserve(std::string name, int64_t floor);
  void Unreserve(const std::string& name);
  bool Reserved(const std::string& name) const;

  const std::string& device() const { return device_; }
  int64_t budget() const { return budget_; }
  int64_t used() const;
  int64_t floors() const;  // of the accounts not retired

 private:
  bool AcquireFor(Account* asker, int64_t bytes, runtime::RequestId oldest);
  void ReleaseFor(Account* account, int64_t bytes);
  void Leave(Account* account);
  // The floors in force beside `joining`'s: every live account's, and every
  // reservation whose model has no live account here.
  int64_t FloorsBesideLocked(const std::string& joining) const;

  const std::string device_;
  const int64_t budget_;
  mutable std::mutex mu_;
  int64_t used_ = 0;                         // guarded by mu_
  std::vector<Account*> accounts_;           // guarded by mu_
  std::map<std::string, int64_t> reserved_;  // guarded by mu_; model -> its floor
};

}  // namespace cohost::scheduler
