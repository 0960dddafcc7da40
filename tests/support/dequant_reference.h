// Blocks of every quantized GGUF type and their values as the gguf package
// dequantizes them (tests/data/dequant_reference.json, written by
// scripts/make_dequant_reference.py): the loader's dequantizer is checked
// against it, and the quantized dot products against that.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cohost::testing {

struct DequantCase {
  std::string type;  // "Q4_K"
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

inline std::vector<DequantCase> LoadDequantReference() {
  std::ifstream f(std::string(COHOST_SOURCE_DIR) + "/tests/data/dequant_reference.json");
  EXPECT_TRUE(f.good()) << "tests/data/dequant_reference.json";
  const nlohmann::json j = nlohmann::json::parse(f);
  std::vector<DequantCase> out;
  for (const nlohmann::json& c : j.at("cases")) {
    DequantCase d;
    d.type = c.at("type").get<std::string>();
    const std::string hex = c.at("bytes").get<std::string>();
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      d.bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    d.values = c.at("values").get<std::vector<float>>();
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace cohost::testing
