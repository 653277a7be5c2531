#include "common/sqlite.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace dpfleet {

absl::Status SqliteError(int code, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", sqlite3_errstr(code));
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

SqliteStatement::SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string sql)
    : db_(db), stmt_(stmt), sql_(std::move(sql)) {}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

SqliteStatement& SqliteStatement::Bind(int index, const std::string& value) {
  const int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                                   SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, "bind in " + sql_);
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, "bind in " + sql_);
  return *this;
}

SqliteStatement& SqliteStatement::Bind(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, "bind in " + sql_);
  return *this;
}

SqliteStatement& SqliteStatement::BindBlob(int index, const std::string& bytes) {
  const int rc = sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                                   SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, "bind in " + sql_);
  return *this;
}

absl::StatusOr<bool> SqliteStatement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, absl::StrCat(sql_, " (", sqlite3_errmsg(db_), ")"));
}

absl::Status SqliteStatement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string SqliteStatement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
}

int64_t SqliteStatement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string SqliteStatement::ColumnBlob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  if (data == nullptr) return "";
  return std::string(static_cast<const char*>(data), sqlite3_column_bytes(stmt_, column));
}

bool SqliteStatement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

double SqliteStatement::ColumnDouble(int column) const {
  return sqlite3_column_double(stmt_, column);
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* handle = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &handle,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_close(handle);
    return SqliteError(rc, "open " + path);
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(handle));
  sqlite3_busy_timeout(handle, 5000);
  absl::Status pragmas =
      db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  if (!pragmas.ok())
    return absl::Status(pragmas.code(), path + ": " + std::string(pragmas.message()));
  // Reading the schema proves the file is a database, not something else at that path.
  absl::Status readable = db->Exec("SELECT count(*) FROM sqlite_master");
  if (!readable.ok()) {
    return absl::Status(readable.code(), path + ": " + std::string(readable.message()));
  }
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

absl::Status SqliteDb::Exec(const std::string& sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  const std::string detail = error != nullptr ? error : "";
  sqlite3_free(error);
  return SqliteError(rc, absl::StrCat(sql, " (", detail, ")"));
}

absl::StatusOr<std::unique_ptr<SqliteStatement>> SqliteDb::Prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteError(rc, absl::StrCat("prepare ", sql, " (", sqlite3_errmsg(db_), ")"));
  }
  return std::unique_ptr<SqliteStatement>(new SqliteStatement(db_, stmt, sql));
}

}  // namespace dpfleet
