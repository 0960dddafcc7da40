// ResolveClientModelPath as a table over a real directory: what a client may
// name under the model root, and that every refusal hides the server's files.

#include "scheduler/model_path.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohost::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ModelPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ =
        std::filesystem::path(::testing::TempDir()) / ("model_path_" + std::to_string(getpid()));
    std::filesystem::remove_all(base_);
    root_ = base_ / "root";
    std::filesystem::create_directories(root_ / "hf");
    std::ofstream(root_ / "m.gguf") << "x";
    std::ofstream(root_ / "hf" / "config.json") << "{}";
    std::ofstream(base_ / "secret.gguf") << "x";
    std::filesystem::create_symlink(base_ / "secret.gguf", root_ / "escape.gguf");
    std::filesystem::create_symlink(root_ / "m.gguf", root_ / "alias.gguf");
  }
  void TearDown() override { std::filesystem::remove_all(base_); }

  std::filesystem::path base_, root_;
};

TEST_F(ModelPathTest, Table) {
  const std::string real_root = std::filesystem::canonical(root_).string();
  const struct {
    std::string path;
    absl::StatusCode code;
    std::string resolves_to;  // relative to the root, when OK
  } cases[] = {
      {"m.gguf", absl::StatusCode::kOk, "m.gguf"},
      {"hf", absl::StatusCode::kOk, "hf"},
      {(root_ / "m.gguf").string(), absl::StatusCode::kOk, "m.gguf"},  // absolute, inside
      {"alias.gguf", absl::StatusCode::kOk, "m.gguf"},                 // a link inside the root
      // Outside, "..", a link out, missing: all one PERMISSION_DENIED.
      {"./hf/../m.gguf", absl::StatusCode::kPermissionDenied, ""},
      {"escape.gguf", absl::StatusCode::kPermissionDenied, ""},
      {"../secret.gguf", absl::StatusCode::kPermissionDenied, ""},
      {(base_ / "secret.gguf").string(), absl::StatusCode::kPermissionDenied, ""},
      {"missing.gguf", absl::StatusCode::kPermissionDenied, ""},
      {"hf/config.json/x", absl::StatusCode::kPermissionDenied, ""},
      {"", absl::StatusCode::kInvalidArgument, ""},
      {std::string("m.gguf\0x", 8), absl::StatusCode::kInvalidArgument, ""},
      {std::string(5000, 'a'), absl::StatusCode::kInvalidArgument, ""},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::string> got = ResolveClientModelPath(root_.string(), c.path);
    EXPECT_EQ(got.status().code(), c.code) << c.path << ": " << got.status();
    if (got.ok()) {
      EXPECT_EQ(*got, real_root + "/" + c.resolves_to) << c.path;
    } else if (c.path.find(base_.string()) == std::string::npos) {
      EXPECT_THAT(std::string(got.status().message()), Not(HasSubstr(base_.string())))
          << "a refusal showed the server's directories";
    }
  }
  // The path rule the operator's paths keep too (CheckFilePath), in a
  // client's words.
  EXPECT_EQ(ResolveClientModelPath(root_.string(), "").status().message(),
            "the model path is empty");
  EXPECT_EQ(ResolveClientModelPath(root_.string(), std::string(5000, 'a')).status().message(),
            "the model path is 5000 bytes long; at most 4096 are allowed");
  // The same words for a missing file, a link out of the root, and a real
  // file outside it: nothing tells what exists.
  EXPECT_EQ(ResolveClientModelPath(root_.string(), "escape.gguf").status().message(),
            "\"escape.gguf\" is not a model under the model root");
  EXPECT_EQ(ResolveClientModelPath(root_.string(), "missing.gguf").status().message(),
            "\"missing.gguf\" is not a model under the model root");
  EXPECT_EQ(ResolveClientModelPath(root_.string(), "/etc/passwd").status().message(),
            "\"/etc/passwd\" is not a model under the model root");
  EXPECT_EQ(ResolveClientModelPath(root_.string(), "/no/such/file").status().message(),
            "\"/no/such/file\" is not a model under the model root");
}

// The root "/" lets a client name any file (an operator's choice), as an
// absolute path or relative to "/", and its messages keep their paths.
TEST_F(ModelPathTest, TheRootDirectoryHoldsEveryPath) {
  const std::string real = std::filesystem::canonical(root_ / "m.gguf").string();
  absl::StatusOr<std::string> got = ResolveClientModelPath("/", real);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, real);
  got = ResolveClientModelPath("/", real.substr(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, real);
  EXPECT_EQ(ResolveClientModelPath("/", "/no/such/file").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(WithoutRoot("/", real + ": bad magic"), real + ": bad magic");
}

TEST_F(ModelPathTest, NoRootMeansLoadingIsOff) {
  absl::Status s = ResolveClientModelPath("", "m.gguf").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--model-root"));
}

TEST_F(ModelPathTest, WithoutRootStripsTheServersDirectory) {
  const std::string real = std::filesystem::canonical(root_).string();
  EXPECT_EQ(WithoutRoot(root_.string(), real + "/m.gguf: bad magic"), "m.gguf: bad magic");
  EXPECT_EQ(WithoutRoot(root_.string(), "cannot read " + real), "cannot read <model root>");
  EXPECT_EQ(WithoutRoot(root_.string(), "nothing to strip"), "nothing to strip");
}

TEST_F(ModelPathTest, WithoutModelPathShowsOnlyTheLastComponent) {
  const std::string real = std::filesystem::canonical(root_ / "m.gguf").string();
  const std::string given = (root_ / "m.gguf").string();
  EXPECT_EQ(WithoutModelPath(given + ": cannot open", given), "m.gguf: cannot open");
  // The real path too (through a link, or a path with "." parts).
  EXPECT_EQ(WithoutModelPath(real + ": bad magic", (root_ / "." / "m.gguf").string()),
            "m.gguf: bad magic");
  // A directory (a Hugging Face model) keeps the names inside it.
  const std::string hf = (root_ / "hf").string();
  EXPECT_EQ(WithoutModelPath(hf + "/config.json: bad json", hf + "/"), "hf/config.json: bad json");
  // A relative path that the loader names absolutely (no file to resolve).
  const std::string relative = "no/such/dir/m.gguf";
  EXPECT_EQ(
      WithoutModelPath(std::filesystem::absolute(relative).string() + ": cannot open", relative),
      "m.gguf: cannot open");
  EXPECT_EQ(WithoutModelPath("nothing to strip", given), "nothing to strip");
  EXPECT_EQ(WithoutModelPath("x", ""), "x");
}

}  // namespace
}  // namespace cohost::scheduler
