// DeviceBuffer: RAII over Backend::Allocate/Free (and AllocateStaging/
// FreeStaging), and Backend's defaults for AdoptHostBytes (none: a device's
// memory is its own) and for staging memory (plain host memory).
#include <algorithm>
#include <new>

#include "absl/strings/str_cat.h"
#include "cohost/kernels/backend.h"

namespace cohost::kernels {

absl::StatusOr<DeviceBuffer> DeviceBuffer::Create(Backend* backend, size_t bytes) {
  return Make(backend, bytes, /*staging=*/false);
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::CreateStaging(Backend* backend, size_t bytes) {
  return Make(backend, bytes, /*staging=*/true);
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::Make(Backend* backend, size_t bytes, bool staging) {
  if (backend == nullptr) return absl::InvalidArgumentError("DeviceBuffer: null backend");
  absl::StatusOr<void*> ptr = staging ? backend->AllocateStaging(bytes) : backend->Allocate(bytes);
  if (!ptr.ok()) return ptr.status();
  DeviceBuffer b = Adopt(backend, *ptr, bytes);
  b.staging_ = staging;
  return b;
}

namespace {
constexpr std::align_val_t kStagingAlign{64};
}  // namespace

absl::StatusOr<void*> Backend::AllocateStaging(size_t bytes) {
  void* p = ::operator new(std::max<size_t>(bytes, 1), kStagingAlign, std::nothrow);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("staging memory: ", bytes, " bytes"));
  }
  return p;
}

void Backend::FreeStaging(void* ptr) { ::operator delete(ptr, kStagingAlign); }

DeviceBuffer DeviceBuffer::Adopt(Backend* backend, void* data, size_t bytes) {
  DeviceBuffer b;
  b.backend_ = backend;
  b.data_ = data;
  b.bytes_ = bytes;
  return b;
}

std::optional<DeviceBuffer> Backend::AdoptHostBytes(std::vector<uint8_t>& /*bytes*/) {
  return std::nullopt;
}

// By value: an override keeps the owner.
std::optional<DeviceBuffer> Backend::AdoptMapped(
    absl::Span<const uint8_t> /*bytes*/,
    std::shared_ptr<const void> /*owner*/) {  // NOLINT(performance-unnecessary-value-param)
  return std::nullopt;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    Reset();
    backend_ = o.backend_;
    data_ = o.data_;
    bytes_ = o.bytes_;
    staging_ = o.staging_;
    o.backend_ = nullptr;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::Reset() {
  if (backend_ != nullptr && data_ != nullptr) {
    if (staging_) {
      backend_->FreeStaging(data_);
    } else {
      backend_->Free(data_);
    }
  }
  backend_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
  staging_ = false;
}

}  // namespace cohost::kernels
