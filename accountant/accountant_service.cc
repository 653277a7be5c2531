#include "accountant/accountant_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "accountant/accounting.h"
#include "common/grpc_status.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

// The proto enum and the library enum share their order: AUTO, RDP, PLD, EXACT.
AccountingMethod FromProto(v1::AccountingMethod method) {
  switch (method) {
    case v1::ACCOUNTING_RDP:
      return AccountingMethod::kRdp;
    case v1::ACCOUNTING_PLD:
      return AccountingMethod::kPld;
    case v1::ACCOUNTING_EXACT:
      return AccountingMethod::kExact;
    default:
      return AccountingMethod::kAuto;
  }
}

v1::AccountingMethod ToProto(AccountingMethod method) {
  switch (method) {
    case AccountingMethod::kRdp:
      return v1::ACCOUNTING_RDP;
    case AccountingMethod::kPld:
      return v1::ACCOUNTING_PLD;
    case AccountingMethod::kExact:
      return v1::ACCOUNTING_EXACT;
    default:
      return v1::ACCOUNTING_METHOD_AUTO;
  }
}

}  // namespace

absl::StatusOr<SubsampledGaussian> MechanismFromProto(const v1::MechanismSpec& spec) {
  const SubsampledGaussian mechanism{.sampling_rate = spec.sampling_rate(),
                                     .noise_multiplier = spec.noise_multiplier(),
                                     .steps = spec.steps()};
  absl::Status valid = ValidateMechanism(mechanism);
  if (!valid.ok()) return absl::InvalidArgumentError("mechanism." + std::string(valid.message()));
  return mechanism;
}

absl::StatusOr<std::string> SessionOfGroup(const v1::LeaseRequest& request) {
  if (request.rank_nonces().empty()) {
    return absl::InvalidArgumentError("rank_nonces: the group has no rank");
  }
  if (request.shards_size() != request.rank_nonces_size()) {
    return absl::InvalidArgumentError(absl::StrCat("shards: ", request.shards_size(),
                                                   " for a group of ", request.rank_nonces_size(),
                                                   " ranks"));
  }
  std::string session;
  for (int rank = 0; rank < request.rank_nonces_size(); ++rank) {
    if (request.rank_nonces(rank).size() != 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rank_nonces[", rank, "] has ", request.rank_nonces(rank).size(), " bytes, not 16"));
    }
    absl::StrAppend(&session, absl::BytesToHexString(request.rank_nonces(rank)));
  }
  std::vector<std::pair<int64_t, int64_t>> shards;
  for (const v1::ShardRange& shard : request.shards()) {
    if (shard.begin() < 0 || shard.end() < shard.begin()) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard [", shard.begin(), ", ", shard.end(), ") is not a row range"));
    }
    shards.emplace_back(shard.begin(), shard.end());
  }
  std::sort(shards.begin(), shards.end());
  for (size_t i = 1; i < shards.size(); ++i) {
    if (shards[i].first < shards[i - 1].second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shards [", shards[i - 1].first, ", ", shards[i - 1].second, ") and [", shards[i].first,
          ", ", shards[i].second, ") overlap: an example in both would count twice in a step"));
    }
  }
  return session;
}

grpc::Status AccountantServiceImpl::RegisterDataset(grpc::ServerContext* context,
                                                    const v1::RegisterDatasetRequest* request,
                                                    v1::RegisterDatasetResponse*) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kAdmin}, "RegisterDataset");
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(ledger_->RegisterDataset(who->name, request->dataset(),
                                               request->epsilon_budget(), request->delta()));
}

grpc::Status AccountantServiceImpl::GetBudget(grpc::ServerContext* context,
                                              const v1::GetBudgetRequest* request,
                                              v1::GetBudgetResponse* response) {
  if (const auto who =
          Authorize(*context, {Role::kAdmin, Role::kSubmitter, Role::kReader, Role::kCoordinator},
                    "GetBudget");
      !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  const absl::StatusOr<BudgetSummary> budget = ledger_->GetBudget(request->dataset());
  if (!budget.ok()) return ToGrpcStatus(budget.status());
  if (request->has_mechanism()) {
    const absl::StatusOr<int64_t> max_steps =
        ledger_->MaxSteps(request->dataset(), request->mechanism().sampling_rate(),
                          request->mechanism().noise_multiplier());
    if (!max_steps.ok()) {
      // The ledger's own code: a bad mechanism is INVALID_ARGUMENT, a failing ledger is not.
      return ToGrpcStatus(absl::Status(max_steps.status().code(),
                                       "mechanism." + std::string(max_steps.status().message())));
    }
    response->set_max_steps(*max_steps);
  }
  response->set_epsilon_committed_fixed_composition(budget->epsilon_committed_fixed_composition);
  response->set_dataset(budget->dataset);
  response->set_epsilon_budget(budget->epsilon_budget);
  response->set_delta(budget->delta);
  response->set_epsilon_committed(budget->epsilon_committed);
  response->set_epsilon_reserved(budget->epsilon_reserved);
  response->set_epsilon_remaining(budget->epsilon_remaining);
  response->set_open_reservations(budget->open_reservations);
  response->set_filter(budget->filter);
  return grpc::Status::OK;
}

grpc::Status AccountantServiceImpl::Reserve(grpc::ServerContext* context,
                                            const v1::ReserveRequest* request,
                                            v1::ReserveResponse* response) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kCoordinator}, "Reserve");
  if (!who.ok()) return ToGrpcStatus(who.status());
  const absl::StatusOr<SubsampledGaussian> mechanism = MechanismFromProto(request->mechanism());
  if (!mechanism.ok()) return ToGrpcStatus(mechanism.status());
  const absl::StatusOr<Reservation> reservation =
      ledger_->Reserve(who->name, {.dataset = request->dataset(),
                                   .job_id = request->job_id(),
                                   .mechanism = *mechanism,
                                   .clip_norm = request->clip_norm(),
                                   .idempotency_key = request->idempotency_key(),
                                   .submitter = request->submitter()});
  if (!reservation.ok()) return ToGrpcStatus(reservation.status());
  response->set_reservation_id(reservation->reservation_id);
  response->set_epsilon_after(reservation->epsilon_after);
  return grpc::Status::OK;
}

grpc::Status AccountantServiceImpl::Commit(grpc::ServerContext* context,
                                           const v1::CommitRequest* request,
                                           v1::CommitResponse* response) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kCoordinator}, "Commit");
  if (!who.ok()) return ToGrpcStatus(who.status());
  const absl::StatusOr<CommitResult> committed =
      ledger_->Commit(who->name, request->reservation_id(), request->steps_run());
  if (!committed.ok()) return ToGrpcStatus(committed.status());
  response->set_epsilon_committed(committed->epsilon_committed);
  response->set_steps_committed(committed->steps_committed);
  return grpc::Status::OK;
}

grpc::Status AccountantServiceImpl::Lease(grpc::ServerContext* context,
                                          const v1::LeaseRequest* request,
                                          v1::LeaseResponse* response) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kCoordinator}, "Lease");
  if (!who.ok()) return ToGrpcStatus(who.status());
  const absl::StatusOr<std::string> session = SessionOfGroup(*request);
  if (!session.ok()) return ToGrpcStatus(session.status());
  const absl::StatusOr<LeaseGrant> grant = ledger_->Lease(
      who->name, request->reservation_id(), *session, request->first_step(), request->end_step());
  if (!grant.ok()) return ToGrpcStatus(grant.status());
  v1::TicketBody body;
  body.set_job_id(grant->job_id);
  body.set_dataset(grant->dataset);
  body.set_reservation_id(request->reservation_id());
  body.set_sampling_rate(grant->sampling_rate);
  body.set_noise_multiplier(grant->noise_multiplier);
  body.set_clip_norm(grant->clip_norm);
  *body.mutable_rank_nonces() = request->rank_nonces();
  *body.mutable_shards() = request->shards();
  body.set_first_step(grant->first_step);
  body.set_end_step(grant->end_step);
  body.set_expires_unix_ms(absl::ToUnixMillis(absl::Now() + ticket_lifetime_));
  absl::StatusOr<v1::AdmissionTicket> ticket = signer_->Sign(body);
  if (!ticket.ok()) return ToGrpcStatus(ticket.status());
  *response->mutable_ticket() = *std::move(ticket);
  response->set_steps_leased(grant->steps_leased);
  return grpc::Status::OK;
}

grpc::Status AccountantServiceImpl::GrantAccess(grpc::ServerContext* context,
                                                const v1::GrantAccessRequest* request,
                                                v1::GrantAccessResponse*) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kAdmin}, "GrantAccess");
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(ledger_->GrantAccess(who->name, request->dataset(), request->principal()));
}

grpc::Status AccountantServiceImpl::RevokeAccess(grpc::ServerContext* context,
                                                 const v1::RevokeAccessRequest* request,
                                                 v1::RevokeAccessResponse*) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kAdmin}, "RevokeAccess");
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(ledger_->RevokeAccess(who->name, request->dataset(), request->principal()));
}

grpc::Status AccountantServiceImpl::Release(grpc::ServerContext* context,
                                            const v1::ReleaseRequest* request,
                                            v1::ReleaseResponse*) {
  const absl::StatusOr<Principal> who = Authorize(*context, {Role::kCoordinator}, "Release");
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(ledger_->Release(who->name, request->reservation_id()));
}

absl::StatusOr<std::optional<CallLimiter::Slot>> AccountantServiceImpl::CostlyCallSlot(
    const Principal& caller, AccountingMethod method) {
  if (method != AccountingMethod::kPld) return std::nullopt;
  DPFLEET_ASSIGN_OR_RETURN(CallLimiter::Slot slot, pld_calls_.Acquire(caller.name));
  return std::optional<CallLimiter::Slot>(std::move(slot));
}

grpc::Status AccountantServiceImpl::ComputeEpsilon(grpc::ServerContext* context,
                                                   const v1::ComputeEpsilonRequest* request,
                                                   v1::ComputeEpsilonResponse* response) {
  const absl::StatusOr<Principal> who = CallerOf(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  const absl::StatusOr<SubsampledGaussian> mechanism = MechanismFromProto(request->mechanism());
  if (!mechanism.ok()) return ToGrpcStatus(mechanism.status());
  const AccountingMethod method =
      ResolveMethod(FromProto(request->method()), mechanism->sampling_rate);
  absl::StatusOr<std::optional<CallLimiter::Slot>> slot = CostlyCallSlot(*who, method);
  if (!slot.ok()) return ToGrpcStatus(slot.status());
  const absl::StatusOr<double> epsilon = MechanismEpsilon(*mechanism, request->delta(), method);
  if (!epsilon.ok()) return ToGrpcStatus(epsilon.status());
  response->set_epsilon(*epsilon);
  response->set_method(ToProto(method));
  return grpc::Status::OK;
}

grpc::Status AccountantServiceImpl::CalibrateNoise(grpc::ServerContext* context,
                                                   const v1::CalibrateNoiseRequest* request,
                                                   v1::CalibrateNoiseResponse* response) {
  const absl::StatusOr<Principal> who = CallerOf(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  const AccountingMethod method =
      ResolveMethod(FromProto(request->method()), request->sampling_rate());
  absl::StatusOr<std::optional<CallLimiter::Slot>> slot = CostlyCallSlot(*who, method);
  if (!slot.ok()) return ToGrpcStatus(slot.status());
  const absl::StatusOr<CalibratedNoise> noise =
      accountant::CalibrateNoise(request->sampling_rate(), request->steps(),
                                 request->target_epsilon(), request->delta(), method);
  if (!noise.ok()) return ToGrpcStatus(noise.status());
  response->set_noise_multiplier(noise->noise_multiplier);
  response->set_epsilon(noise->epsilon);
  response->set_method(ToProto(noise->method));  // PLD may fall back to RDP's noise.
  return grpc::Status::OK;
}

}  // namespace dpfleet::accountant
