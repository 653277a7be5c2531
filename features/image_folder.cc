#include "features/image_folder.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace dpfleet::features {
namespace fs = std::filesystem;

absl::StatusOr<ImageFolder> ListImageFolder(const std::string& root,
                                            const std::vector<std::string>& classes) {
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    return absl::NotFoundError(absl::StrCat("image folder ", root, " does not exist"));
  }
  std::vector<std::string> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(root, error)) {
    if (entry.is_directory()) found.push_back(entry.path().filename().string());
  }
  std::sort(found.begin(), found.end());
  if (found.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(root, " has no class sub-folders (expected root/<class>/<image>.JPEG)"));
  }
  ImageFolder folder;
  folder.classes = classes.empty() ? found : classes;
  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < folder.classes.size(); ++i) label_of[folder.classes[i]] = i;
  for (const std::string& name : found) {
    const auto label = label_of.find(name);
    if (label == label_of.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(root, " has a class folder '", name, "' that the training split lacks"));
    }
    std::vector<std::string> files;
    for (const fs::directory_entry& entry : fs::directory_iterator(fs::path(root) / name, error)) {
      const std::string extension = absl::AsciiStrToLower(entry.path().extension().string());
      if (entry.is_regular_file() && (extension == ".jpg" || extension == ".jpeg")) {
        files.push_back(entry.path().string());
      }
    }
    std::sort(files.begin(), files.end());
    for (std::string& path : files) folder.images.push_back({std::move(path), label->second});
  }
  if (folder.images.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(root, " holds no .jpg or .jpeg files"));
  }
  return folder;
}

std::pair<int64_t, int64_t> PartRange(int64_t rows, int64_t part, int64_t parts) {
  return {rows * part / parts, rows * (part + 1) / parts};
}

}  // namespace dpfleet::features
