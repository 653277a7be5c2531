#include "fuzz/fuzz_support.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace dpfleet::fuzz {

void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  Require(file.good(), "cannot write " + path);
}

TempFile::TempFile(const std::string& bytes, const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/dpfleet-fuzz-XXXXXX";
  Require(mkdtemp(pattern.data()) != nullptr, "cannot make a temporary folder");
  folder_ = pattern;
  path_ = folder_ + "/" + name;
  WriteFileOrDie(path_, bytes);
}

TempFile::~TempFile() {
  std::error_code ignored;
  std::filesystem::remove_all(folder_, ignored);
}

}  // namespace dpfleet::fuzz
