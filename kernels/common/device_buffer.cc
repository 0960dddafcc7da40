// DeviceBuffer: RAII over Backend::Allocate/Free, and Backend's default
// AdoptHostBytes (none: a device's memory is its own).
#include "cohost/kernels/backend.h"

namespace cohost::kernels {

absl::StatusOr<DeviceBuffer> DeviceBuffer::Create(Backend* backend, size_t bytes) {
  if (backend == nullptr) return absl::InvalidArgumentError("DeviceBuffer: null backend");
  absl::StatusOr<void*> ptr = backend->Allocate(bytes);
  if (!ptr.ok()) return ptr.status();
  DeviceBuffer b;
  b.backend_ = backend;
  b.data_ = *ptr;
  b.bytes_ = bytes;
  return b;
}

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
    o.backend_ = nullptr;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::Reset() {
  if (backend_ != nullptr && data_ != nullptr) backend_->Free(data_);
  backend_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

}  // namespace cohost::kernels
