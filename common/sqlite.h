#ifndef DPFLEET_COMMON_SQLITE_H_
#define DPFLEET_COMMON_SQLITE_H_

// A small RAII layer over SQLite for the crash-safe stores of dpfleet (the accountant's ledger, the
// coordinator's job store). Every failure becomes an absl::Status naming the statement.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace dpfleet {

// One prepared statement. Bind parameters are 1-based, columns 0-based, as in SQLite.
class SqliteStatement {
 public:
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  SqliteStatement& Bind(int index, const std::string& value);
  SqliteStatement& Bind(int index, int64_t value);
  SqliteStatement& Bind(int index, double value);
  // Binds bytes as a BLOB (no text encoding applied).
  SqliteStatement& BindBlob(int index, const std::string& bytes);

  // Advances to the next row. Returns true when a row is available, false when the statement is
  // done. Errors: kUnavailable when the database is busy, kDataLoss when it is corrupt, kInternal
  // otherwise.
  absl::StatusOr<bool> Step();
  // Runs the statement to completion, ignoring rows.
  absl::Status Run();

  std::string ColumnText(int column) const;
  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnBlob(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  friend class SqliteDb;
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string sql);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
  absl::Status bind_status_;
};

// An open database file. Not thread-safe: callers serialise access.
class SqliteDb {
 public:
  // Opens (creating if needed) the database at `path` in WAL mode with synchronous=FULL, so a
  // commit that returned survives a crash of the process or the machine. Errors: kUnavailable when
  // the file cannot be opened, kDataLoss when it is not a valid database.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);

  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Runs one or more statements without parameters.
  absl::Status Exec(const std::string& sql);
  absl::StatusOr<std::unique_ptr<SqliteStatement>> Prepare(const std::string& sql);

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back when `body` or the commit fails, and
  // returns that failure.
  template <typename Body>
  absl::Status Transaction(Body&& body) {
    absl::Status begun = Exec("BEGIN IMMEDIATE");
    if (!begun.ok()) return begun;
    absl::Status status = body();
    if (status.ok()) status = Exec("COMMIT");
    if (!status.ok()) Exec("ROLLBACK").IgnoreError();
    return status;
  }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// Maps a SQLite result code to a status: SQLITE_BUSY/LOCKED -> kUnavailable, SQLITE_CORRUPT/NOTADB
// -> kDataLoss, SQLITE_CONSTRAINT -> kAlreadyExists, others -> kInternal.
absl::Status SqliteError(int code, const std::string& what);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_SQLITE_H_
