// A model-file target's input written where the loader can open it: one
// folder per process (its id in the name), removed as the process exits,
// its file rewritten for each input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace cohost::fuzz {

inline std::string WriteInputFile(const uint8_t* data, size_t size, const std::string& name) {
  static const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("cohost_fuzz_" + std::to_string(::getpid()));
  // Registered once `dir` is made: exit runs it before `dir` is destroyed.
  static const bool made = [] {
    std::filesystem::create_directories(dir);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    });
    return true;
  }();
  (void)made;
  const std::filesystem::path path = dir / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

}  // namespace cohost::fuzz
