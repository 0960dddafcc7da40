// The two status macros every folder uses at its module boundaries:
//   RETURN_IF_ERROR(expr);           expr is an absl::Status
//   ASSIGN_OR_RETURN(lhs, expr);     expr is an absl::StatusOr<T>; lhs is a new
//                                    declaration (`auto x`) or an existing lvalue
// Both return the error unchanged from the enclosing function, which must return
// absl::Status or absl::StatusOr<U>.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define COHOST_STATUS_CONCAT_INNER_(a, b) a##b
#define COHOST_STATUS_CONCAT_(a, b) COHOST_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                                              \
  do {                                                                                     \
    if (absl::Status cohost_status_ = (expr); !cohost_status_.ok()) return cohost_status_; \
  } while (0)

// Not wrapped in do/while: `lhs` may declare a variable the caller goes on using.
#define ASSIGN_OR_RETURN(lhs, expr) \
  COHOST_ASSIGN_OR_RETURN_IMPL_(COHOST_STATUS_CONCAT_(cohost_status_or_, __LINE__), lhs, expr)

#define COHOST_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = *std::move(tmp)
