#include "coordinator/worker_pool.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace dpfleet::coordinator {

WorkerPool::WorkerPool(absl::Duration heartbeat_timeout)
    : heartbeat_timeout_(heartbeat_timeout),
      id_prefix_(
          absl::StrCat("w", absl::Hex(std::random_device()() & 0xffffff, absl::kZeroPad6), "-")) {}

bool WorkerPool::AliveLocked(const WorkerRecord& worker) const {
  return absl::Now() - worker.last_heartbeat < heartbeat_timeout_;
}

absl::StatusOr<std::string> WorkerPool::Register(const std::string& principal,
                                                 const std::string& address,
                                                 const std::map<std::string, HeldRows>& datasets) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, worker] : workers_) {
    if (worker.address == address && worker.principal != principal) {
      return absl::PermissionDeniedError(
          absl::StrCat("address ", address, " is registered by worker '", worker.principal, "'; '",
                       principal, "' may not replace it"));
    }
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    it = it->second.address == address ? workers_.erase(it) : std::next(it);
  }
  WorkerRecord record;
  record.worker_id = absl::StrCat(id_prefix_, next_id_++);
  record.principal = principal;
  record.address = address;
  record.datasets = datasets;
  record.last_heartbeat = absl::Now();
  const std::string id = record.worker_id;
  workers_[id] = std::move(record);
  return id;
}

absl::Status WorkerPool::Heartbeat(const std::string& principal, const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("unknown worker ", worker_id));
  if (it->second.principal != principal) {
    return absl::PermissionDeniedError(absl::StrCat(
        "worker ", worker_id, " is '", it->second.principal, "', not '", principal, "'"));
  }
  it->second.last_heartbeat = absl::Now();
  return absl::OkStatus();
}

std::vector<const WorkerRecord*> WorkerPool::HoldersLocked(const std::string& dataset,
                                                           bool idle_only) const {
  std::vector<const WorkerRecord*> holders;
  for (const auto& [id, worker] : workers_) {
    if (AliveLocked(worker) && worker.datasets.count(dataset) > 0 &&
        (!idle_only || worker.job_id.empty())) {
      holders.push_back(&worker);
    }
  }
  // Ids share their prefix: order by n, so that ...-10 follows ...-9.
  std::sort(holders.begin(), holders.end(), [](const WorkerRecord* a, const WorkerRecord* b) {
    return std::make_pair(a->worker_id.size(), a->worker_id) <
           std::make_pair(b->worker_id.size(), b->worker_id);
  });
  return holders;
}

absl::StatusOr<int64_t> WorkerPool::DatasetSize(const std::string& dataset) const {
  absl::ReaderMutexLock lock(&mu_);
  int64_t size = -1;
  for (const WorkerRecord* worker : HoldersLocked(dataset, /*idle_only=*/false)) {
    const int64_t total = worker->datasets.at(dataset).total;
    if (size >= 0 && size != total) {
      return absl::FailedPreconditionError(absl::StrCat("workers disagree on the size of dataset '",
                                                        dataset, "': ", size, " and ", total));
    }
    size = total;
  }
  if (size < 0) {
    return absl::NotFoundError(absl::StrCat("no live worker holds dataset '", dataset, "'"));
  }
  return size;
}

int WorkerPool::CountAlive(const std::string& dataset) const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int>(HoldersLocked(dataset, /*idle_only=*/false).size());
}

absl::Status WorkerPool::CheckPlacement(const std::string& dataset, int count) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<HeldRows> held;
  for (const WorkerRecord* worker : HoldersLocked(dataset, /*idle_only=*/false)) {
    held.push_back(worker->datasets.at(dataset));
  }
  const absl::StatusOr<std::vector<ShardRange>> plan = PlanShards(held, count);
  if (plan.ok()) return absl::OkStatus();
  return absl::Status(plan.status().code(), absl::StrCat("dataset '", dataset, "' with ", count,
                                                         " worker(s): ", plan.status().message()));
}

std::vector<AcquiredWorker> WorkerPool::Acquire(const std::string& dataset, int count,
                                                const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  const std::vector<const WorkerRecord*> idle = HoldersLocked(dataset, /*idle_only=*/true);
  std::vector<HeldRows> held;
  for (const WorkerRecord* worker : idle) held.push_back(worker->datasets.at(dataset));
  const absl::StatusOr<std::vector<ShardRange>> plan = PlanShards(held, count);
  if (!plan.ok()) return {};
  std::vector<AcquiredWorker> acquired;
  for (const ShardRange& range : *plan) {
    WorkerRecord& worker = workers_.at(idle[range.candidate]->worker_id);
    worker.job_id = job_id;
    acquired.push_back({worker, range.begin, range.end});
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
