#include "common/audit_log.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace dpfleet {
namespace {

TEST(FormatAuditRecord, IsOneLineOfJsonWithEverythingEscaped) {
  const std::string line = FormatAuditRecord({.unix_ms = 1234,
                                              .method = "/dpfleet.v1.WorkerService/RunStep",
                                              .principal = "mallory \"the coordinator\"",
                                              .peer = "ipv4:10.0.0.7:5123",
                                              .code = "PERMISSION_DENIED",
                                              .message = "line one\nline\\two\x01"});
  EXPECT_EQ(line,
            "{\"unix_ms\":1234,\"method\":\"/dpfleet.v1.WorkerService/RunStep\","
            "\"principal\":\"mallory \\\"the coordinator\\\"\",\"peer\":\"ipv4:10.0.0.7:5123\","
            "\"code\":\"PERMISSION_DENIED\",\"message\":\"line one\\nline\\\\two\\u0001\"}\n");
}

TEST(AuditLog, AppendsWholeLinesFromManyThreadsToAPrivateFile) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/audit.log");
  std::remove(path.c_str());
  {
    auto log = *AuditLog::Open(path);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i) {
          ASSERT_TRUE(log->Append({.method = "/m",
                                   .principal = absl::StrCat("p", t),
                                   .code = "UNAUTHENTICATED",
                                   .message = std::string(300, 'x')})
                          .ok());
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  auto reopened = *AuditLog::Open(path);  // Appends, never truncates.
  ASSERT_TRUE(reopened->Append({.method = "/last"}).ok());
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  const std::vector<std::string> lines = absl::StrSplit(contents.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 801u);
  for (const std::string& line : lines) {
    EXPECT_EQ(line.front(), '{');
    EXPECT_EQ(line.back(), '}');
  }
  EXPECT_NE(lines.back().find("/last"), std::string::npos);
  struct stat file;
  ASSERT_EQ(stat(path.c_str(), &file), 0);
  EXPECT_EQ(file.st_mode & 0777, 0600);
}

TEST(AuditLog, AnUnwritablePathIsAnError) {
  const auto log = AuditLog::Open("/nonexistent-dir/audit.log");
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(log.status().message().find("/nonexistent-dir/audit.log"), std::string::npos);
}

}  // namespace
}  // namespace dpfleet
