#include "coordinator/job_store.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace dpfleet::coordinator {

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  DPFLEET_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  DPFLEET_RETURN_IF_ERROR(db->Exec(R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL UNIQUE,
  snapshot BLOB NOT NULL,
  step_bound INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recovery (
  job_id TEXT PRIMARY KEY,
  record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cancel_requests (
  job_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS history (
  job_id TEXT NOT NULL,
  kind INTEGER NOT NULL,
  step INTEGER NOT NULL,
  record BLOB NOT NULL,
  PRIMARY KEY (job_id, kind, step)
);
)sql"));
  return std::unique_ptr<JobStore>(new JobStore(std::move(db)));
}

absl::Status JobStore::Put(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  DPFLEET_ASSIGN_OR_RETURN(
      auto statement,
      db_->Prepare("INSERT INTO jobs(job_id, snapshot) VALUES (?, ?) "
                   "ON CONFLICT(job_id) DO UPDATE SET snapshot = excluded.snapshot"));
  return statement->Bind(1, job.job_id()).BindBlob(2, job.SerializeAsString()).Run();
}

absl::Status JobStore::SetStepBound(const std::string& job_id, int64_t bound) {
  absl::MutexLock lock(&mu_);
  DPFLEET_ASSIGN_OR_RETURN(auto statement,
                           db_->Prepare("UPDATE jobs SET step_bound = ? WHERE job_id = ?"));
  DPFLEET_RETURN_IF_ERROR(statement->Bind(1, bound).Bind(2, job_id).Run());
  DPFLEET_ASSIGN_OR_RETURN(auto changed, db_->Prepare("SELECT changes()"));
  DPFLEET_ASSIGN_OR_RETURN(const bool row, changed->Step());
  if (!row || changed->ColumnInt(0) == 0) {
    return absl::NotFoundError(absl::StrCat("no stored job '", job_id, "'"));
  }
  return absl::OkStatus();
}

absl::Status JobStore::PutRecovery(const std::string& job_id, const v1::JobRecovery& recovery) {
  absl::MutexLock lock(&mu_);
  DPFLEET_ASSIGN_OR_RETURN(auto statement,
                           db_->Prepare("INSERT OR REPLACE INTO recovery(job_id, record) "
                                        "VALUES (?, ?)"));
  return statement->Bind(1, job_id).BindBlob(2, recovery.SerializeAsString()).Run();
}

absl::Status JobStore::PutCancelRequest(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  DPFLEET_ASSIGN_OR_RETURN(
      auto statement, db_->Prepare("INSERT OR IGNORE INTO cancel_requests(job_id) VALUES (?)"));
  return statement->Bind(1, job_id).Run();
}

namespace {

// The `kind` column of the history table.
enum HistoryKind : int64_t { kStepRecord = 0, kEvaluation = 1 };

}  // namespace

absl::Status JobStore::PutHistory(const std::string& job_id, int64_t from_step,
                                  const v1::JobHistory& history) {
  absl::MutexLock lock(&mu_);
  return db_->Transaction([&]() -> absl::Status {
    DPFLEET_ASSIGN_OR_RETURN(auto erase,
                             db_->Prepare("DELETE FROM history WHERE job_id = ? AND step >= ?"));
    DPFLEET_RETURN_IF_ERROR(erase->Bind(1, job_id).Bind(2, from_step).Run());
    auto insert = [&](HistoryKind kind, int64_t step, const std::string& record) -> absl::Status {
      DPFLEET_ASSIGN_OR_RETURN(
          auto statement,
          db_->Prepare("INSERT INTO history(job_id, kind, step, record) VALUES (?, ?, ?, ?)"));
      return statement->Bind(1, job_id)
          .Bind(2, static_cast<int64_t>(kind))
          .Bind(3, step)
          .BindBlob(4, record)
          .Run();
    };
    for (const v1::StepRecord& record : history.steps()) {
      if (record.step() < from_step) continue;
      DPFLEET_RETURN_IF_ERROR(insert(kStepRecord, record.step(), record.SerializeAsString()));
    }
    for (const v1::EvaluationRecord& record : history.evaluations()) {
      if (record.step() < from_step) continue;
      DPFLEET_RETURN_IF_ERROR(insert(kEvaluation, record.step(), record.SerializeAsString()));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<StoredJob>> JobStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  DPFLEET_ASSIGN_OR_RETURN(
      auto query,
      db_->Prepare(
          "SELECT jobs.job_id, snapshot, step_bound, record, "
          "cancel_requests.job_id IS NOT NULL FROM jobs "
          "LEFT JOIN recovery ON recovery.job_id = jobs.job_id "
          "LEFT JOIN cancel_requests ON cancel_requests.job_id = jobs.job_id ORDER BY seq"));
  std::vector<StoredJob> jobs;
  while (true) {
    DPFLEET_ASSIGN_OR_RETURN(const bool row, query->Step());
    if (!row) break;
    StoredJob stored;
    if (!stored.job.ParseFromString(query->ColumnBlob(1))) {
      return absl::DataLossError(
          absl::StrCat("stored job '", query->ColumnText(0), "' is unreadable"));
    }
    stored.step_bound = query->ColumnInt(2);
    if (!stored.recovery.ParseFromString(query->ColumnBlob(3))) {
      return absl::DataLossError(
          absl::StrCat("the recovery record of job '", query->ColumnText(0), "' is unreadable"));
    }
    stored.cancel_requested = query->ColumnInt(4) != 0;
    jobs.push_back(std::move(stored));
  }
  std::map<std::string, v1::JobHistory*> histories;
  for (StoredJob& stored : jobs) histories[stored.job.job_id()] = &stored.history;
  DPFLEET_ASSIGN_OR_RETURN(
      auto records,
      db_->Prepare("SELECT job_id, kind, step, record FROM history ORDER BY job_id, kind, step"));
  while (true) {
    DPFLEET_ASSIGN_OR_RETURN(const bool row, records->Step());
    if (!row) break;
    auto it = histories.find(records->ColumnText(0));
    if (it == histories.end()) continue;  // Its job was never stored: nothing to show it with.
    const bool parsed =
        records->ColumnInt(1) == kStepRecord
            ? it->second->add_steps()->ParseFromString(records->ColumnBlob(3))
            : it->second->add_evaluations()->ParseFromString(records->ColumnBlob(3));
    if (!parsed) {
      return absl::DataLossError(absl::StrCat("the history of job '", it->first, "' at step ",
                                              records->ColumnInt(2), " is unreadable"));
    }
  }
  return jobs;
}

}  // namespace dpfleet::coordinator
