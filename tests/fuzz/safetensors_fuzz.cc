// A safetensors file (a model directory's: untrusted): opened, and every
// tensor it lists read and converted to fp32. An error is INVALID_ARGUMENT
// or UNIMPLEMENTED (a dtype cohost does not read) and names the file.

#include <string>
#include <vector>

#include "runtime/loader/safetensors_reader.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/input_file.h"
#include "tests/fuzz/model_file_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = cohost::fuzz::WriteInputFile(data, size, "model.safetensors");
  absl::StatusOr<cohost::runtime::SafetensorsFile> file =
      cohost::runtime::SafetensorsFile::Open(path);
  if (!file.ok()) {
    cohost::fuzz::CheckFileError(file.status(), path);
    return 0;
  }
  std::vector<float> values;
  for (const cohost::runtime::SafetensorsTensor& t : file->tensors()) {
    FUZZ_CHECK(file->FindTensor(t.name) == &t, "%s is not found by name", t.name.c_str());
    (void)cohost::runtime::SafetensorsFile::StoredType(t);
    if (t.numel > (1 << 20)) continue;  // the bytes are there (Open checked), the time is not
    values.resize(static_cast<size_t>(t.numel));
    const absl::Status converted = file->ToF32(t, absl::MakeSpan(values));
    FUZZ_CHECK(converted.ok(), "%s", converted.ToString().c_str());
  }
  return 0;
}
