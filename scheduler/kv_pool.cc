#include "scheduler/kv_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"

namespace cohost::scheduler {
namespace {

// Sums of floors are held at this: two of them add up without overflow.
constexpr int64_t kMostFloors = int64_t{1} << 61;

// Sizes in errors: MB as the configuration gives them, bytes below one.
std::string Shown(int64_t bytes) {
  return bytes >= (int64_t{1} << 20) ? absl::StrFormat("%d MB", bytes >> 20)
                                     : absl::StrFormat("%d bytes", bytes);
}

}  // namespace

KvPool::KvPool(std::string device, int64_t budget_bytes)
    : device_(std::move(device)), budget_(budget_bytes) {}

KvPool::~KvPool() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!accounts_.empty()) {
    std::fprintf(stderr, "cohost kv pool %s: destroyed with %zu accounts\n", device_.c_str(),
                 accounts_.size());
    std::abort();
  }
}

absl::StatusOr<std::unique_ptr<KvPool::Account>> KvPool::Join(std::string name, int64_t floor,
                                                              int64_t cap) {
  if (floor < 0 || cap < floor) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model \"%s\": KV floor %d and cap %d bytes must satisfy 0 <= floor <= cap",
                        name, floor, cap));
  }
  // A cap past this pool is the pool: pools differ between devices, and the
  // cap bounds what the model may take, not where it may go. A floor past it
  // may fit another device's (placement moves on at RESOURCE_EXHAUSTED, below).
  cap = std::min(cap, budget_);
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t beside = FloorsBesideLocked(name);
  const int64_t floors = std::min(floor, kMostFloors) + beside;
  if (floors > budget_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "model \"%s\": its KV floor of %s and those of the models on %s add up to %s, more "
        "than its KV pool of %s",
        name, Shown(floor), device_, Shown(floors), Shown(budget_)));
  }
  // Every account may grow to its promise whatever the others do, as long as
  // they sit at their floors: promise + the others' floors <= budget.
  for (const Account* a : accounts_) {
    if (a->retired_) continue;  // its model is gone: nothing is promised to it
    if (a->promised_ + (floors - a->floor_) > budget_) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "model \"%s\": a KV floor of %s on %s would break the %s promised to model \"%s\"", name,
          Shown(floor), device_, Shown(a->promised_), a->name_));
    }
  }
  const int64_t promised = std::min(cap, budget_ - beside);
  std::unique_ptr<Account> account(new Account(this, std::move(name), floor, cap, promised));
  accounts_.push_back(account.get());
  return account;
}

void KvPool::Reserve(std::string name, int64_t floor) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_[std::move(name)] = std::max<int64_t>(floor, 0);
}

void KvPool::Unreserve(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_.erase(name);
}

bool KvPool::Reserved(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_.contains(name);
}

int64_t KvPool::FloorsBesideLocked(const std::string& joining) const {
  int64_t floors = 0;
  for (const Account* a : accounts_) {
    if (!a->retired_) floors = std::min(floors + a->floor_, kMostFloors);
  }
  for (const auto& reserved : reserved_) {
    const std::string& model = reserved.first;
    if (model == joining) continue;
    const bool joined = std::any_of(accounts_.begin(), accounts_.end(), [&](const Account* a) {
      return !a->retired_ && a->name_ == model;
    });
    if (!joined) floors = std::min(floors + std::min(reserved.second, kMostFloors), kMostFloors);
  }
  return floors;
}

int64_t KvPool::used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

int64_t KvPool::floors() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t f = 0;
  for (const Account* a : accounts_) {
    if (!a->retired_) f += a->floor_;
  }
  return f;
}

bool KvPool::AcquireFor(Account* asker, int64_t bytes, runtime::RequestId oldest) {
  if (bytes <= 0) return true;
  struct Victim {
    ReclaimFn reclaim;
    int64_t excess;
  };
  std::vector<Victim> victims;
  runtime::RequestId wounder;
  int64_t need;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (asker->held_ + bytes > asker->promised_) return false;
    if (used_ + bytes <= budget_) {
      used_ += bytes;
      asker->held_ += bytes;
      return true;
    }
    need = used_ + bytes - budget_;
    // Below its floor it may preempt anyone above theirs; above, only work
    // younger than its own.
    wounder = asker->held_ + bytes <= asker->guarantee_ ? runtime::kPreemptAlways : oldest;
    for (Account* a : accounts_) {
      if (a == asker || !a->reclaim_ || a->held_ <= a->guarantee_) continue;
      victims.push_back({a->reclaim_, a->held_ - a->guarantee_});
    }
  }
  // Most above its floor first. The reclaims call Release (which locks), so
  // the lock is not held across them.
  std::stable_sort(victims.begin(), victims.end(),
                   [](const Victim& x, const Victim& y) { return x.excess > y.excess; });
  for (const Victim& v : victims) {
    if (need <= 0) break;
    need -= v.reclaim(std::min(need, v.excess), v.excess, wounder);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (used_ + bytes > budget_) return false;
  used_ += bytes;
  asker->held_ += bytes;
  return true;
}

void KvPool::ReleaseFor(Account* account, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t b = std::min(bytes, account->held_);
  account->held_ -= b;
  used_ -= b;
}

void KvPool::Leave(Account* account) {
  std::lock_guard<std::mutex> lock(mu_);
  used_ -= account->held_;
  account->held_ = 0;
  accounts_.erase(std::remove(accounts_.begin(), accounts_.end(), account), accounts_.end());
}

KvPool::Account::~Account() { pool_->Leave(this); }

bool KvPool::Account::Acquire(int64_t bytes, runtime::RequestId oldest) {
  return pool_->AcquireFor(this, bytes, oldest);
}

void KvPool::Account::Release(int64_t bytes) { pool_->ReleaseFor(this, bytes); }

void KvPool::Account::SetReclaimer(ReclaimFn reclaim, int64_t group_bytes) {
  std::lock_guard<std::mutex> lock(pool_->mu_);
  reclaim_ = std::move(reclaim);
  const int64_t g = std::max<int64_t>(group_bytes, 1);
  if (retired_) return;  // nothing is guaranteed to it any more
  guarantee_ = floor_ / g * g;
  if (guarantee_ < floor_ && g >= (int64_t{1} << 20)) {
    // A floor is reserved whole but held in whole groups: say what it holds.
    std::fprintf(stderr,
                 "cohost kv pool %s: model \"%s\" is guaranteed %s of its KV floor of %s: its "
                 "KV memory comes in groups of %s\n",
                 pool_->device_.c_str(), name_.c_str(), Shown(guarantee_).c_str(),
                 Shown(floor_).c_str(), Shown(g).c_str());
  }
}

void KvPool::Account::Retire() {
  std::lock_guard<std::mutex> lock(pool_->mu_);
  retired_ = true;
  guarantee_ = 0;
}

int64_t KvPool::Account::held() const {
  std::lock_guard<std::mutex> lock(pool_->mu_);
  return held_;
}

}  // namespace cohost::scheduler
