// A read-only memory map of a whole file, for model loaders that treat the
// file as untrusted bytes: every reader bounds-checks against size() itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cohost::runtime {

// Tells the kernel this process is done with the whole pages inside the
// `size` bytes at `begin` (a file's mapping, or anonymous memory about to be
// freed): they leave its resident set; a later read faults them back in
// from the page cache, or as zeros. Advice only: a failure changes nothing.
void DropWholePages(const uint8_t* begin, size_t size);

class MappedFile {
 public:
  // NOT_FOUND if the file does not exist, INVALID_ARGUMENT if it is not a
  // regular file; an empty file maps to an empty span.
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  absl::Span<const uint8_t> bytes() const { return {data_, static_cast<size_t>(size_)}; }

  // Tells the kernel this process is done with the whole pages inside
  // `range` (a part of bytes()): they leave its resident set (a later read
  // faults them back in from the page cache). A loader calls it once a
  // tensor is copied, so that the file's pages and the copies never both
  // hold the whole model.
  void DropPages(absl::Span<const uint8_t> range) const;

 private:
  void Reset();

  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace cohost::runtime
