#ifndef DPFLEET_DPCTL_JOB_SPEC_ARGS_H_
#define DPFLEET_DPCTL_JOB_SPEC_ARGS_H_

// The JobSpec that `dpctl submit` sends: from a spec file in protobuf text format (--spec FILE,
// e.g. the recipes under recipes/), with each flag given overriding its field.

#include "absl/status/statusor.h"
#include "dpctl/args.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::dpctl {

// Returns the spec: dpctl's defaults (DP-SGD at learning rate 0.1 on one worker), then the file
// named by --spec merged over them, then every flag that is present. A flag of one of the spec's
// oneofs (--batch-size, --sampling-rate, --full-batch; --steps, --epochs; --noise-multiplier,
// --target-epsilon) replaces whichever member the file set. Validation is the coordinator's.
// Errors: kNotFound for a missing spec file; kInvalidArgument for a file that does not parse
// (naming its line and column), a flag whose value does not parse, an unknown optimizer,
// schedule, clipping mode or loss, or two flags of one oneof.
absl::StatusOr<v1::JobSpec> JobSpecFromArgs(Args& args);

}  // namespace dpfleet::dpctl

#endif  // DPFLEET_DPCTL_JOB_SPEC_ARGS_H_
