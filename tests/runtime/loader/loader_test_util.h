// Test helpers for the model-file loaders: writers that build GGUF and
// safetensors files byte by byte (so tests can also build broken ones), and
// temp-file utilities.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace cohost::runtime::testing {

// absl::string_view is not std::string_view in Debian's Abseil, and gmock
// prints it char by char; match on a std::string instead.
inline std::string Msg(const absl::Status& s) { return std::string(s.message()); }

inline std::string TempPath(const std::string& name) {
  std::string dir = ::testing::TempDir();
  if (!dir.empty() && dir.back() != '/') dir += '/';
  return dir + "cohost_loader_" + std::to_string(::getpid()) + "_" + name;
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A fresh empty directory.
inline std::string MakeTempDir(const std::string& name) {
  std::string dir = TempPath(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// fp32 -> IEEE half bits for values exactly representable as normal halves
// or zero (what the tests use); anything else is a test bug.
inline uint16_t ExactHalf(float f) {
  if (f == 0.f) return std::signbit(f) ? 0x8000 : 0;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const int exp = static_cast<int>((bits >> 23) & 0xff) - 127 + 15;
  const uint32_t mant = bits & 0x7fffffu;
  EXPECT_TRUE(exp > 0 && exp < 31 && (mant & 0x1fffu) == 0) << f << " is not an exact half";
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13));
}

// fp32 -> bf16 bits for values whose low 16 bits are zero.
inline uint16_t ExactBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  EXPECT_EQ(bits & 0xffffu, 0u) << f << " is not an exact bf16";
  return static_cast<uint16_t>(bits >> 16);
}

template <typename T>
void Append(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

inline void AppendString(std::string* out, const std::string& s) {
  Append<uint64_t>(out, s.size());
  out->append(s);
}

// GGUF value type ids (gguf_type).
enum : uint32_t {
  kGU8 = 0,
  kGI8 = 1,
  kGU16 = 2,
  kGI16 = 3,
  kGU32 = 4,
  kGI32 = 5,
  kGF32 = 6,
  kGBool = 7,
  kGString = 8,
  kGArray = 9,
  kGU64 = 10,
  kGI64 = 11,
  kGF64 = 12,
};
// ggml tensor type ids.
enum : uint32_t {
  kTF32 = 0,
  kTF16 = 1,
  kTQ4_0 = 2,
  kTQ4_1 = 3,
  kTQ5_0 = 6,
  kTQ5_1 = 7,
  kTQ8_0 = 8,
  kTQ2_K = 10,
  kTQ3_K = 11,
  kTQ4_K = 12,
  kTQ5_K = 13,
  kTQ6_K = 14,
  kTQ8_K = 15,
  kTBF16 = 30
};

// Builds a GGUF file. Fields are public so tests can break any of them.
struct GgufWriter {
  struct Kv {
    std::string key;
    uint32_t type;
    std::string value;  // encoded value bytes (after the type)
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;  // ggml order (innermost first)
    uint32_t type;
    std::string data;
    std::optional<uint64_t> offset;  // default: packed at the alignment
  };

  uint32_t version = 3;
  uint64_t alignment = 32;
  std::optional<uint64_t> tensor_count, kv_count;  // overrides
  std::vector<Kv> kvs;
  std::vector<Tensor> tensors;

  void AddRaw(const std::string& key, uint32_t type, std::string value) {
    kvs.push_back({key, type, std::move(value)});
  }
  template <typename T>
  void AddScalar(const std::string& key, uint32_t type, T v) {
    std::string s;
    Append(&s, v);
    AddRaw(key, type, s);
  }
  void AddU32(const std::string& key, uint32_t v) { AddScalar(key, kGU32, v); }
  void AddF32(const std::string& key, float v) { AddScalar(key, kGF32, v); }
  void AddBool(const std::string& key, bool v) { AddScalar<uint8_t>(key, kGBool, v ? 1 : 0); }
  void AddString(const std::string& key, const std::string& v) {
    std::string s;
    AppendString(&s, v);
    AddRaw(key, kGString, s);
  }
  void AddStringArray(const std::string& key, const std::vector<std::string>& v) {
    std::string s;
    Append<uint32_t>(&s, kGString);
    Append<uint64_t>(&s, v.size());
    for (const std::string& x : v) AppendString(&s, x);
    AddRaw(key, kGArray, s);
  }
  template <typename T>
  void AddArray(const std::string& key, uint32_t elem_type, const std::vector<T>& v) {
    std::string s;
    Append<uint32_t>(&s, elem_type);
    Append<uint64_t>(&s, v.size());
    for (T x : v) Append(&s, x);
    AddRaw(key, kGArray, s);
  }
  void AddTensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                 std::string data) {
    tensors.push_back({name, std::move(dims), type, std::move(data), std::nullopt});
  }
  void AddF32Tensor(const std::string& name, std::vector<uint64_t> dims,
                    const std::vector<float>& v) {
    std::string data;
    for (float x : v) Append(&data, x);
    AddTensor(name, std::move(dims), kTF32, data);
  }

  // Data of each tensor is padded to the alignment, except after the last, so
  // that cutting any byte off the file breaks it.
  std::string Build() const {
    std::string out = "GGUF";
    Append<uint32_t>(&out, version);
    Append<uint64_t>(&out, tensor_count.value_or(tensors.size()));
    Append<uint64_t>(&out, kv_count.value_or(kvs.size()));
    for (const Kv& kv : kvs) {
      AppendString(&out, kv.key);
      Append<uint32_t>(&out, kv.type);
      out += kv.value;
    }
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const Tensor& t : tensors) {
      offsets.push_back(t.offset.value_or(next));
      next += t.data.size();
      next += (alignment - next % alignment) % alignment;
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const Tensor& t = tensors[i];
      AppendString(&out, t.name);
      Append<uint32_t>(&out, static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) Append(&out, d);
      Append<uint32_t>(&out, t.type);
      Append<uint64_t>(&out, offsets[i]);
    }
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].offset.has_value()) continue;  // placed by hand: caller's business
      if (out.size() < data_start + offsets[i]) out.resize(data_start + offsets[i], '\0');
      out += tensors[i].data;
    }
    return out;
  }
};

// Encodes blocks of the 32-wide quant types from their fields.
inline std::string Q8_0Block(float d, const std::vector<int8_t>& q) {
  std::string s;
  Append<uint16_t>(&s, ExactHalf(d));
  for (int8_t x : q) Append(&s, x);
  return s;
}
inline std::string Q4_0Block(float d, const std::vector<uint8_t>& qs) {  // 16 bytes of nibbles
  std::string s;
  Append<uint16_t>(&s, ExactHalf(d));
  for (uint8_t x : qs) Append(&s, x);
  return s;
}
inline std::string Q4_1Block(float d, float m, const std::vector<uint8_t>& qs) {
  std::string s;
  Append<uint16_t>(&s, ExactHalf(d));
  Append<uint16_t>(&s, ExactHalf(m));
  for (uint8_t x : qs) Append(&s, x);
  return s;
}

// llama.cpp's converter order: HF row (h, i, j) is written as GGUF row (h, j, i).
inline std::vector<float> ConverterPermute(const std::vector<float>& hf, int64_t n_head,
                                           int64_t cols) {
  const int64_t rows = static_cast<int64_t>(hf.size()) / cols, d = rows / n_head;
  std::vector<float> out(hf.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < d / 2; ++j)
        for (int64_t c = 0; c < cols; ++c)
          out[((h * d + 2 * j + i) * cols) + c] = hf[((h * d + i * d / 2 + j) * cols) + c];
  return out;
}

// A safetensors file from a header JSON text and the data section.
inline std::string SafetensorsBytes(const std::string& header, const std::string& data) {
  std::string out;
  Append<uint64_t>(&out, header.size());
  return out + header + data;
}

}  // namespace cohost::runtime::testing
