// MappedFile::DropPages: a copied tensor's whole pages leave the process's
// resident set (read from /proc/self/smaps for the mapping), the bytes read
// back unchanged, and ranges that are not whole pages or not in the mapping
// change nothing.

#include "runtime/loader/mapped_file.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/runtime/loader/loader_test_util.h"

namespace cohost::runtime {
namespace {

// Resident kB of the mapping that contains `p`, from /proc/self/smaps; -1
// where the kernel does not say.
int64_t ResidentKb(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto at = reinterpret_cast<uintptr_t>(p);
  while (std::getline(smaps, line)) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2 && line.find('-') < 16) {
      inside = at >= begin && at < end;
      continue;
    }
    if (inside && line.rfind("Rss:", 0) == 0) {
      std::istringstream in(line.substr(4));
      int64_t kb = -1;
      in >> kb;
      return kb;
    }
  }
  return -1;
}

TEST(MappedFileTest, DropPagesLeavesTheResidentSetAndKeepsTheBytes) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::string bytes(8 * page, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + 3);
  const std::string path = testing::TempPath("mapped_drop.bin");
  testing::WriteFile(path, bytes);
  absl::StatusOr<MappedFile> f = MappedFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  uint64_t sum = 0;
  for (uint8_t b : f->bytes()) sum += b;  // every page resident
  const int64_t before = ResidentKb(f->data());
  if (before < 0) GTEST_SKIP() << "/proc/self/smaps does not list the mapping";
  ASSERT_EQ(before, static_cast<int64_t>(8 * page / 1024)) << sum;

  // Not in the mapping, or no whole page inside: nothing changes.
  const uint8_t outside[16] = {};
  f->DropPages({outside, sizeof(outside)});
  f->DropPages(f->bytes().subspan(page / 2, page));
  EXPECT_EQ(ResidentKb(f->data()), before);

  // Pages 2-4 whole, with half pages either side that stay.
  f->DropPages(f->bytes().subspan(page + page / 2, 3 * page + page / 2));
  EXPECT_EQ(ResidentKb(f->data()), before - static_cast<int64_t>(3 * page / 1024));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()), bytes);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace cohost::runtime
