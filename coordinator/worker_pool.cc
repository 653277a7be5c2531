#include "coordinator/worker_pool.h"

#include "absl/strings/str_cat.h"

namespace dpfleet::coordinator {

bool WorkerPool::AliveLocked(const WorkerRecord& worker) const {
  return absl::Now() - worker.last_heartbeat < heartbeat_timeout_;
}

std::string WorkerPool::Register(const std::string& address,
                                 const std::map<std::string, int64_t>& datasets) {
  absl::MutexLock lock(&mu_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    it = it->second.address == address ? workers_.erase(it) : std::next(it);
  }
  WorkerRecord record;
  record.worker_id = absl::StrCat("w-", next_id_++);
  record.address = address;
  record.train_examples = datasets;
  record.last_heartbeat = absl::Now();
  const std::string id = record.worker_id;
  workers_[id] = std::move(record);
  return id;
}

absl::Status WorkerPool::Heartbeat(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("unknown worker ", worker_id));
  it->second.last_heartbeat = absl::Now();
  return absl::OkStatus();
}

absl::StatusOr<int64_t> WorkerPool::DatasetSize(const std::string& dataset) const {
  absl::ReaderMutexLock lock(&mu_);
  int64_t size = -1;
  for (const auto& [id, worker] : workers_) {
    auto it = worker.train_examples.find(dataset);
    if (it == worker.train_examples.end() || !AliveLocked(worker)) continue;
    if (size >= 0 && size != it->second) {
      return absl::FailedPreconditionError(absl::StrCat("workers disagree on the size of dataset '",
                                                        dataset, "': ", size, " and ", it->second));
    }
    size = it->second;
  }
  if (size < 0) {
    return absl::NotFoundError(absl::StrCat("no live worker holds dataset '", dataset, "'"));
  }
  return size;
}

int WorkerPool::CountAlive(const std::string& dataset) const {
  absl::ReaderMutexLock lock(&mu_);
  int count = 0;
  for (const auto& [id, worker] : workers_) {
    if (AliveLocked(worker) && worker.train_examples.count(dataset) > 0) ++count;
  }
  return count;
}

std::vector<WorkerRecord> WorkerPool::Acquire(const std::string& dataset, int count,
                                              const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerRecord*> idle;
  for (auto& [id, worker] : workers_) {
    if (worker.job_id.empty() && AliveLocked(worker) && worker.train_examples.count(dataset) > 0) {
      idle.push_back(&worker);
    }
  }
  if (static_cast<int>(idle.size()) < count) return {};
  std::vector<WorkerRecord> acquired;
  for (int i = 0; i < count; ++i) {
    idle[i]->job_id = job_id;
    acquired.push_back(*idle[i]);
  }
  return acquired;
}

void WorkerPool::ReleaseJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, worker] : workers_) {
    if (worker.job_id == job_id) worker.job_id.clear();
  }
}

void WorkerPool::MarkDead(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.last_heartbeat = absl::InfinitePast();
}

bool WorkerPool::IsAlive(const std::string& worker_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it != workers_.end() && AliveLocked(it->second);
}

std::vector<std::pair<WorkerRecord, bool>> WorkerPool::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::pair<WorkerRecord, bool>> workers;
  for (const auto& [id, worker] : workers_) workers.emplace_back(worker, AliveLocked(worker));
  return workers;
}

}  // namespace dpfleet::coordinator
