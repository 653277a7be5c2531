// JobSpec validation and planning: what the coordinator does with a client's SubmitJob before it
// touches the accountant. Input: a serialized JobSpec.

#include <cmath>
#include <cstdint>

#include "coordinator/job_plan.h"
#include "fuzz/fuzz_support.h"
#include "proto/dpfleet.pb.h"

using dpfleet::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dpfleet::v1::JobSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  const absl::Status valid = dpfleet::coordinator::ValidateJobSpec(spec);
  if (!valid.ok()) {
    Require(valid.code() == absl::StatusCode::kInvalidArgument && !valid.message().empty(),
            "ValidateJobSpec refused with " + valid.ToString());
    return 0;
  }
  for (const int64_t examples : {int64_t{1}, int64_t{60000}, int64_t{1281167}}) {
    const absl::StatusOr<dpfleet::coordinator::JobPlan> plan =
        dpfleet::coordinator::PlanJob(spec, examples);
    if (!plan.ok()) {
      Require(plan.status().code() == absl::StatusCode::kInvalidArgument,
              "PlanJob refused a valid spec with " + plan.status().ToString());
      continue;
    }
    // The accountant is asked for exactly this mechanism: it must be one it can account.
    Require(
        std::isfinite(plan->sampling_rate) && plan->sampling_rate > 0 && plan->sampling_rate <= 1,
        "PlanJob planned a sampling rate outside (0, 1]");
    Require(plan->steps > 0, "PlanJob planned no step");
  }
  return 0;
}
