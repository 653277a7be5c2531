#ifndef DPFLEET_COORDINATOR_JOB_PLAN_H_
#define DPFLEET_COORDINATOR_JOB_PLAN_H_

// Checking a submitted job spec and turning it into a concrete plan: sampling rate, steps, and what
// the accountant must be asked for.

#include <cstdint>

#include "absl/status/statusor.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::coordinator {

// Returns OK when every field of `spec` is well-formed on its own; otherwise kInvalidArgument
// naming the first bad field (clip_norm, sampling_rate, delta, steps, epochs, noise_multiplier,
// target_epsilon, num_workers, model, dataset, optimizer.*). Whether the dataset and enough workers
// exist is checked elsewhere.
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// Returns the noise multiplier the accountant charges for `job`: accounted_noise_multiplier, or
// noise_multiplier for a job stored before that field existed.
double AccountedNoiseMultiplier(const v1::Job& job);

struct JobPlan {
  double sampling_rate = 0;  // q.
  int64_t steps = 0;         // T.
};

// Returns q and T for `spec` on a dataset of `dataset_size` examples: q from sampling_rate,
// expected_batch_size / N or full_batch; T from steps or ceil(epochs / q) (an epoch is N / (qN)
// steps). Errors: kInvalidArgument when expected_batch_size exceeds the dataset or the plan is
// empty.
absl::StatusOr<JobPlan> PlanJob(const v1::JobSpec& spec, int64_t dataset_size);

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_PLAN_H_
