#ifndef DPFLEET_FEATURES_IMAGE_FOLDER_H_
#define DPFLEET_FEATURES_IMAGE_FOLDER_H_

// Labelled image datasets in the ImageNet layout: one sub-folder per class, holding that class's
// JPEG files (root/n01440764/n01440764_10026.JPEG).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::features {

struct LabelledImage {
  std::string path;
  int64_t label = 0;
};

struct ImageFolder {
  std::vector<std::string> classes;   // Label i names classes[i].
  std::vector<LabelledImage> images;  // Sorted by class, then file name: the same on every machine.
};

// Lists `root`. With `classes` empty, the classes are root's sub-folders in sorted order;
// otherwise labels follow `classes` (so a test split shares the train split's labels) and root may
// hold a subset of them. Files ending .jpg/.jpeg (any case) are images; other files are ignored.
// Errors: kNotFound for a missing root; kInvalidArgument when root has no class folders or no
// images, or holds a class folder not in `classes`.
absl::StatusOr<ImageFolder> ListImageFolder(const std::string& root,
                                            const std::vector<std::string>& classes = {});

// Rows [begin, end) of part `part` when `rows` rows are split into `parts` contiguous parts whose
// sizes differ by at most one.
std::pair<int64_t, int64_t> PartRange(int64_t rows, int64_t part, int64_t parts);

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_IMAGE_FOLDER_H_
