#include "features/image_folder.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace dpfleet::features {
namespace {
namespace fs = std::filesystem;

std::string MakeFolder(const std::string& name,
                       const std::vector<std::pair<std::string, std::string>>& files) {
  const fs::path root = fs::path(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") / name;
  fs::remove_all(root);
  for (const auto& [folder, file] : files) {
    fs::create_directories(root / folder);
    if (!file.empty()) std::ofstream(root / folder / file) << "x";
  }
  return root.string();
}

TEST(ListImageFolder, LabelsClassesInSortedOrderAndSkipsOtherFiles) {
  const std::string root = MakeFolder("train", {{"zebra", "b.JPEG"},
                                                {"zebra", "a.jpg"},
                                                {"ant", "x.jpeg"},
                                                {"ant", "notes.txt"},
                                                {"mole", ""}});
  auto folder = ListImageFolder(root);
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->classes, (std::vector<std::string>{"ant", "mole", "zebra"}));
  ASSERT_EQ(folder->images.size(), 3u);
  EXPECT_EQ(fs::path(folder->images[0].path).filename(), "x.jpeg");
  EXPECT_EQ(folder->images[0].label, 0);
  EXPECT_EQ(fs::path(folder->images[1].path).filename(), "a.jpg");
  EXPECT_EQ(folder->images[2].label, 2);
}

TEST(ListImageFolder, ATestSplitUsesTheTrainingLabels) {
  const std::string root = MakeFolder("val", {{"zebra", "v.jpg"}});
  auto folder = ListImageFolder(root, {"ant", "mole", "zebra"});
  ASSERT_TRUE(folder.ok());
  EXPECT_EQ(folder->images[0].label, 2);
  auto unknown = ListImageFolder(root, {"ant"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("zebra"), std::string::npos);
}

TEST(ListImageFolder, RefusesMissingOrEmptyFolders) {
  EXPECT_EQ(ListImageFolder("/nonexistent/images").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ListImageFolder(MakeFolder("flat", {{"", "a.jpg"}})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ListImageFolder(MakeFolder("empty", {{"cat", ""}})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PartRange, SplitsRowsIntoContiguousNearlyEqualParts) {
  int64_t next = 0;
  for (int64_t part = 0; part < 3; ++part) {
    const auto [begin, end] = PartRange(10, part, 3);
    EXPECT_EQ(begin, next);
    EXPECT_GE(end - begin, 3);
    next = end;
  }
  EXPECT_EQ(next, 10);
}

}  // namespace
}  // namespace dpfleet::features
