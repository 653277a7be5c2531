#include "common/sqlite.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

std::string TempPath(const std::string& name) {
  return std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
}

TEST(SqliteDb, TransactionCommitsOrRollsBack) {
  const std::string path = TempPath("tx.db");
  std::remove(path.c_str());
  auto db = *SqliteDb::Open(path);
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER)").ok());
  ASSERT_TRUE(db->Transaction([&] { return db->Exec("INSERT INTO t VALUES (1)"); }).ok());
  const absl::Status failed = db->Transaction([&]() -> absl::Status {
    absl::Status inserted = db->Exec("INSERT INTO t VALUES (2)");
    if (!inserted.ok()) return inserted;
    return absl::AbortedError("changed my mind");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kAborted);
  auto count = *db->Prepare("SELECT count(*), sum(x) FROM t");
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt(0), 1);
  EXPECT_EQ(count->ColumnInt(1), 1);
}

TEST(SqliteDb, BindsAndReadsColumns) {
  const std::string path = TempPath("bind.db");
  std::remove(path.c_str());
  auto db = *SqliteDb::Open(path);
  ASSERT_TRUE(db->Exec("CREATE TABLE t(s TEXT, i INTEGER, d REAL)").ok());
  auto insert = *db->Prepare("INSERT INTO t VALUES (?, ?, ?)");
  ASSERT_TRUE(insert->Bind(1, std::string("job-1")).Bind(2, int64_t{42}).Bind(3, 0.5).Run().ok());
  auto select = *db->Prepare("SELECT s, i, d FROM t");
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnText(0), "job-1");
  EXPECT_EQ(select->ColumnInt(1), 42);
  EXPECT_EQ(select->ColumnDouble(2), 0.5);
  EXPECT_FALSE(*select->Step());
}

TEST(SqliteDb, BlobsKeepEveryByte) {
  const std::string path = TempPath("blob.db");
  std::remove(path.c_str());
  auto db = *SqliteDb::Open(path);
  ASSERT_TRUE(db->Exec("CREATE TABLE t(b BLOB)").ok());
  const std::string bytes("a\0b\xff\0", 5);
  ASSERT_TRUE((*db->Prepare("INSERT INTO t VALUES (?)"))->BindBlob(1, bytes).Run().ok());
  auto select = *db->Prepare("SELECT b FROM t");
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnBlob(0), bytes);
}

TEST(SqliteDb, RefusesAFileThatIsNotADatabase) {
  const std::string path = TempPath("garbage.db");
  std::ofstream(path) << std::string(8192, 'x');
  const auto db = SqliteDb::Open(path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kDataLoss);
}

TEST(SqliteDb, ReportsUnopenablePath) {
  const auto db = SqliteDb::Open("/nonexistent-dir/x.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(db.status().message().find("/nonexistent-dir/x.db"), std::string::npos);
}

}  // namespace
}  // namespace dpfleet
