"""The dpfleet client. Messages travel as dicts with the proto's field names (JobSpec, Job,
StepRecord, GetBudgetResponse in proto/dpfleet.proto); the stubs are generated from that file by
protoc and grpc_python_plugin (bazel build //clients/python:dpfleet_proto)."""

import dataclasses
import os
from typing import Any, Dict, Iterator, List, Optional

import grpc
from google.protobuf import json_format

try:
    from dpfleet_proto import dpfleet_pb2, dpfleet_pb2_grpc
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "dpfleet's generated stubs are missing: run `bazel build //clients/python:dpfleet_proto` "
        "and put bazel-bin/clients/python on PYTHONPATH (next to clients/python)") from error

# The names the servers' certificates carry (common/identity.h: DNS:<role>.dpfleet).
_COORDINATOR_NAME = "coordinator.dpfleet"
_ACCOUNTANT_NAME = "accountant.dpfleet"
_TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


class DpfleetError(Exception):
    """A call the server refused or did not answer: `code` is the grpc.StatusCode, `message` the
    server's explanation (which names the bad field, the dataset, the missing permission...)."""

    def __init__(self, code: grpc.StatusCode, message: str, call: str):
        super().__init__(f"{call}: {code.name}: {message}")
        self.code = code
        self.message = message
        self.call = call


@dataclasses.dataclass(frozen=True)
class Credentials:
    """PEM files: the cluster CA, and this principal's certificate and key."""
    ca: str
    cert: str
    key: str

    @staticmethod
    def from_env() -> "Credentials":
        """From DPFLEET_TLS_CA, DPFLEET_TLS_CERT and DPFLEET_TLS_KEY, as dpctl reads them."""
        names = ("DPFLEET_TLS_CA", "DPFLEET_TLS_CERT", "DPFLEET_TLS_KEY")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise ValueError(f"set {', '.join(missing)} (deploy/local_cluster.sh env prints them)")
        return Credentials(*(os.environ[name] for name in names))

    def channel_credentials(self) -> grpc.ChannelCredentials:
        def read(path):
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as error:
                raise ValueError(f"cannot read the TLS file {path}: {error.strerror}") from error
        return grpc.ssl_channel_credentials(root_certificates=read(self.ca),
                                            private_key=read(self.key),
                                            certificate_chain=read(self.cert))


def _message(message_type, fields: Dict[str, Any], what: str):
    try:
        return json_format.ParseDict(fields, message_type())
    except json_format.ParseError as error:
        raise ValueError(f"bad {what}: {error}") from error


def _dict(message) -> Dict[str, Any]:
    """Every field by its proto name, 64-bit integers as ints (not JSON's strings), enums by name;
    of a oneof, only the member that is set."""
    fields = {}
    for field in message.DESCRIPTOR.fields:
        if field.containing_oneof is not None and not message.HasField(field.name):
            continue
        value = getattr(message, field.name)
        if field.label == field.LABEL_REPEATED:
            fields[field.name] = [_value(field, v) for v in value]
        else:
            fields[field.name] = _value(field, value)
    return fields


def _value(field, value):
    if field.message_type is not None:
        return _dict(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value


class Client:
    """Talks to a coordinator (jobs) and, where given, an accountant (budgets)."""

    def __init__(self, coordinator: str, accountant: Optional[str] = None,
                 credentials: Optional[Credentials] = None, timeout_s: float = 60.0):
        credentials = credentials or Credentials.from_env()
        self._timeout_s = timeout_s
        tls = credentials.channel_credentials()
        self._coordinator_channel = grpc.secure_channel(
            coordinator, tls, options=[("grpc.ssl_target_name_override", _COORDINATOR_NAME)])
        self._jobs = dpfleet_pb2_grpc.JobServiceStub(self._coordinator_channel)
        self._accountant = None
        if accountant:
            self._accountant_channel = grpc.secure_channel(
                accountant, tls, options=[("grpc.ssl_target_name_override", _ACCOUNTANT_NAME)])
            self._accountant = dpfleet_pb2_grpc.AccountantServiceStub(self._accountant_channel)

    @staticmethod
    def from_env() -> "Client":
        """From DPFLEET_COORDINATOR, DPFLEET_ACCOUNTANT (optional) and the DPFLEET_TLS_* files."""
        coordinator = os.environ.get("DPFLEET_COORDINATOR")
        if not coordinator:
            raise ValueError("set DPFLEET_COORDINATOR (deploy/local_cluster.sh env prints it)")
        return Client(coordinator, os.environ.get("DPFLEET_ACCOUNTANT"), Credentials.from_env())

    def _call(self, name: str, method, request, timeout_s: Optional[float] = None):
        try:
            return method(request, timeout=timeout_s or self._timeout_s)
        except grpc.RpcError as error:
            raise DpfleetError(error.code(), error.details(), name) from None

    def submit(self, **spec) -> Dict[str, Any]:
        """Submits a job whose JobSpec fields are the keyword arguments (e.g. dataset, model,
        expected_batch_size, steps, clip_norm, target_epsilon, delta, num_workers; optimizer as a
        dict such as {"type": "DP_SGD", "learning_rate": 0.5}, default DP-SGD at 0.1). Returns
        the queued job. Raises DpfleetError (INVALID_ARGUMENT naming a bad field,
        RESOURCE_EXHAUSTED when the budget cannot pay, ...) or ValueError for an unknown field."""
        spec.setdefault("optimizer", {"type": "DP_SGD", "learning_rate": 0.1})
        request = dpfleet_pb2.SubmitJobRequest(spec=_message(dpfleet_pb2.JobSpec, spec, "job spec"))
        return _dict(self._call("SubmitJob", self._jobs.SubmitJob, request).job)

    def get(self, job_id: str) -> Dict[str, Any]:
        """The job's current snapshot."""
        return _dict(self._call("GetJob", self._jobs.GetJob, dpfleet_pb2.GetJobRequest(job_id=job_id)))

    def jobs(self) -> List[Dict[str, Any]]:
        """Every job the caller may read."""
        response = self._call("ListJobs", self._jobs.ListJobs, dpfleet_pb2.ListJobsRequest())
        return [_dict(job) for job in response.jobs]

    def cancel(self, job_id: str) -> Dict[str, Any]:
        return _dict(self._call("CancelJob", self._jobs.CancelJob,
                                dpfleet_pb2.CancelJobRequest(job_id=job_id)))

    def watch(self, job_id: str, progress: bool = True) -> Iterator[Dict[str, Any]]:
        """Yields the job's snapshot after each step and state change until it ends; with
        `progress`, draws a tqdm bar (steps, epsilon spent) where tqdm is installed."""
        tqdm = None
        if progress:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
        bar = None
        stream = self._jobs.WatchJob(dpfleet_pb2.WatchJobRequest(job_id=job_id),
                                     timeout=30 * 24 * 3600)
        try:
            for event in stream:
                job = _dict(event.job)
                if tqdm is not None:
                    if bar is None:
                        bar = tqdm(total=job["total_steps"], unit="step", desc=job_id)
                    bar.n = job["progress"]["step"]
                    bar.set_postfix(state=job["state"],
                                    epsilon=f'{job["progress"]["epsilon_spent"]:.3f}'
                                            f'/{job["planned_epsilon"]:.3f}')
                yield job
        except grpc.RpcError as error:
            raise DpfleetError(error.code(), error.details(), "WatchJob") from None
        finally:
            if bar is not None:
                bar.close()

    def history(self, job_id: str) -> List[Dict[str, Any]]:
        """The job's kept step records, in step order, every page joined."""
        return self._history(job_id)["steps"]

    def evaluations(self, job_id: str) -> List[Dict[str, Any]]:
        """The job's test-accuracy evaluations (JobSpec.evaluate_every_steps and the end)."""
        return self._history(job_id)["evaluations"]

    def _history(self, job_id: str) -> Dict[str, List[Dict[str, Any]]]:
        request = dpfleet_pb2.GetJobHistoryRequest(job_id=job_id)
        steps, evaluations = [], []
        while True:
            page = self._call("GetJobHistory", self._jobs.GetJobHistory, request)
            steps.extend(_dict(record) for record in page.steps)
            evaluations.extend(_dict(record) for record in page.evaluations)
            if page.next_start_index == 0:
                return {"steps": steps, "evaluations": evaluations}
            request.start_index = page.next_start_index

    def _accountant_stub(self):
        if self._accountant is None:
            raise ValueError("this client has no accountant address (Client(..., accountant=...))")
        return self._accountant

    def budget(self, dataset: str) -> Dict[str, Any]:
        """The dataset's budget: epsilon_budget, epsilon_committed, epsilon_reserved,
        epsilon_remaining, delta, ..."""
        return _dict(self._call("GetBudget", self._accountant_stub().GetBudget,
                                dpfleet_pb2.GetBudgetRequest(dataset=dataset)))

    def register_dataset(self, dataset: str, epsilon: float, delta: float) -> None:
        """Gives a dataset its budget (admins only)."""
        self._call("RegisterDataset", self._accountant_stub().RegisterDataset,
                   dpfleet_pb2.RegisterDatasetRequest(dataset=dataset, epsilon_budget=epsilon,
                                                      delta=delta))

    @staticmethod
    def finished(job: Dict[str, Any]) -> bool:
        return job["state"] in _TERMINAL_STATES
