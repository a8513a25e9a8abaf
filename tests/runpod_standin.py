"""A local stand-in for RunPod's GraphQL API, for tests that drive the real `runpod` SDK.

It speaks exactly the GraphQL that `runpod` 1.12 and training/executors/runpod_executor.py send
(the shapes come from the SDK's runpod/api/queries and mutations): `gpuTypes(input: {id})`
(create_pod checks the GPU first), `myself { pods {...} }` (get_pods), `myself { networkVolumes
{...} }` (get_user), `pod(input: {podId})` (get_pod), `podFindAndDeployOnDemand` (create_pod),
`podRentInterruptable` (spot) and `podTerminate` (terminate_pod). Anything else is answered
with a GraphQL error, as the real server answers a field it does not know, so a change in what
we send fails loudly instead of passing against a lenient fake.

    with RunPodStandIn(api_key="test-key") as api:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", api.base_url)   # the SDK posts to {base}/graphql
        ...
        api.preempt(pod_id)            # the pod disappears, as a reclaimed spot pod does
        api.exit(pod_id)               # desiredStatus EXITED
        api.no_capacity = True         # deploy mutations answer RunPod's "no instances" error
        api.fail_next("Insufficient balance ...")   # the next deploy mutation answers this error
        api.deploy_answer_delay = 20   # a deploy creates its pod at once but answers 20 s later
        api.slow_start_seconds = 60    # new pods report runtime null until then ...
        api.advance(61)                # ... and this moves the stand-in's clock, no sleeping
        api.requests                   # every request: operation, root fields, inputs, headers

Queries are parsed by a small GraphQL parser (no variables, fragments or directives: neither
the SDK nor our executor uses them), and answers carry only the fields the query selected.
A wrong key is answered 401, which the SDK turns into runpod.error.AuthenticationError.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

NO_CAPACITY_MESSAGE = ("There are no longer any instances available with the requested "
                       "specifications. Please refresh and try again.")

DEFAULT_GPU_TYPES = {
    "NVIDIA H100 PCIe": {
        "id": "NVIDIA H100 PCIe", "displayName": "H100 PCIe", "manufacturer": "Nvidia",
        "memoryInGb": 80, "cudaCores": 14592, "maxGpuCount": 8, "secureCloud": True,
        "communityCloud": True, "securePrice": 7.99, "communityPrice": 7.99,
        "oneMonthPrice": None, "threeMonthPrice": None, "oneWeekPrice": None,
        "communitySpotPrice": 2.49, "secureSpotPrice": 2.49,
    },
}


# --- A small GraphQL parser ---------------------------------------------------------------------


class GraphQLSyntaxError(ValueError):
    pass


class Enum(str):
    """An enum value (`cloudType: SECURE`), kept apart from the string "SECURE"."""


@dataclass
class Field:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    selection: list[Field] | None = None
    alias: str | None = None

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class Operation:
    type: str  # "query" or "mutation"
    name: str | None
    selection: list[Field]


_TOKEN = re.compile(r'''
    (?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<string>"(?:[^"\\\n\r]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<punct>[{}():\[\]!$=@])
''', re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise GraphQLSyntaxError(f"Syntax Error: unexpected character {text[pos]!r} at {pos}")
        if match.lastgroup != "skip":
            tokens.append((match.lastgroup, match.group()))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        token = self.peek()
        if token is None or (kind and token[0] != kind) or (value and token[1] != value):
            raise GraphQLSyntaxError(f"Syntax Error: expected {value or kind}, found {token}")
        self.pos += 1
        return token[1]

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "punct" and token[1] == value

    def document(self) -> Operation:
        op_type, name = "query", None
        if not self.at("{"):
            op_type = self.take("name")
            if op_type not in ("query", "mutation"):
                raise GraphQLSyntaxError(f"Syntax Error: unexpected {op_type!r}")
            if not self.at("{"):
                name = self.take("name")
            if self.at("("):
                raise GraphQLSyntaxError("Syntax Error: variables are not supported by the stand-in")
        operation = Operation(op_type, name, self.selection_set())
        if self.peek() is not None:
            raise GraphQLSyntaxError(f"Syntax Error: unexpected {self.peek()} after the operation")
        return operation

    def selection_set(self) -> list[Field]:
        self.take("punct", "{")
        fields = []
        while not self.at("}"):
            fields.append(self.field())
        self.take("punct", "}")
        if not fields:
            raise GraphQLSyntaxError("Syntax Error: empty selection set")
        return fields

    def field(self) -> Field:
        name, alias = self.take("name"), None
        if self.at(":"):
            self.take("punct", ":")
            alias, name = name, self.take("name")
        args = {}
        if self.at("("):
            self.take("punct", "(")
            while not self.at(")"):
                arg = self.take("name")
                self.take("punct", ":")
                args[arg] = self.value()
            self.take("punct", ")")
        selection = self.selection_set() if self.at("{") else None
        return Field(name, args, selection, alias)

    def value(self) -> Any:
        kind, text = self.peek() or ("eof", "")
        if kind == "string":
            self.pos += 1
            # GraphQL's string escapes (\" \\ \/ \b \f \n \r \t \uXXXX) are JSON's.
            return json.loads(text)
        if kind == "number":
            self.pos += 1
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            self.pos += 1
            return {"true": True, "false": False, "null": None}.get(text, Enum(text))
        if self.at("["):
            self.take("punct", "[")
            items = []
            while not self.at("]"):
                items.append(self.value())
            self.take("punct", "]")
            return items
        if self.at("{"):
            self.take("punct", "{")
            obj = {}
            while not self.at("}"):
                key = self.take("name")
                self.take("punct", ":")
                obj[key] = self.value()
            self.take("punct", "}")
            return obj
        raise GraphQLSyntaxError(f"Syntax Error: unexpected {(kind, text)} where a value belongs")


def parse(query: str) -> Operation:
    return _Parser(query).document()


# --- The stand-in's state -----------------------------------------------------------------------


class GraphQLError(Exception):
    pass


@dataclass
class StandInPod:
    id: str
    name: str
    image_name: str
    gpu_type_id: str
    gpu_count: int
    cloud_type: str
    interruptible: bool
    cost_per_hr: float
    env: dict[str, str]
    container_disk_in_gb: int | None
    volume_in_gb: int | None
    volume_mount_path: str | None
    docker_args: str | None
    ports: str | None
    network_volume_id: str | None
    data_center_id: str | None
    bid_per_gpu: float | None
    created_at: float  # on the stand-in's clock
    starts_after: float
    desired_status: str = "RUNNING"
    last_status_change: str = ""
    machine_id: str = field(default_factory=lambda: secrets.token_hex(6))
    pod_host_id: str = ""
    input: dict = field(default_factory=dict)  # the mutation's input, as parsed


@dataclass
class RecordedRequest:
    operation: str  # "query" or "mutation"
    fields: list[str]  # root fields, e.g. ["podRentInterruptable"]
    args: dict[str, dict]  # root field -> its arguments (parsed values)
    query: str
    headers: dict[str, str]
    status: int = 200


def _js_date(moment: datetime) -> str:
    """The date format RunPod's lastStatusChange uses (JavaScript's Date.toString())."""
    return moment.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


class RunPodStandIn:
    """An in-process HTTP server on 127.0.0.1 answering POST /graphql; see the module docstring."""

    def __init__(self, api_key: str = "test-runpod-key", *, gpu_types: dict | None = None,
                 network_volumes: list[dict] | None = None) -> None:
        self.api_key = api_key
        self.gpu_types = gpu_types if gpu_types is not None else DEFAULT_GPU_TYPES
        self.network_volumes = network_volumes or []
        self.pods: dict[str, StandInPod] = {}
        self.requests: list[RecordedRequest] = []
        self.no_capacity = False
        self.slow_start_seconds = 0.0
        # Seconds a deploy mutation waits, after creating its pod, before answering: the window
        # in which a launcher can die having rented a pod it never recorded.
        self.deploy_answer_delay = 0.0
        self._failures: list[str] = []
        self._clock_offset = 0.0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def __enter__(self) -> RunPodStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="runpod-standin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """What RUNPOD_API_BASE_URL must be set to (the SDK appends /graphql)."""
        assert self._server is not None, "start the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- controls ---

    def now(self) -> float:
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the stand-in's clock: slow starts finish and uptimes grow without sleeping."""
        with self._lock:
            self._clock_offset += seconds

    def fail_next(self, message: str, times: int = 1) -> None:
        """Answer the next `times` deploy mutations with this GraphQL error message."""
        with self._lock:
            self._failures.extend([message] * times)

    def preempt(self, pod_id: str) -> None:
        """The pod is reclaimed: it vanishes from `pod` and `myself.pods`."""
        with self._lock:
            del self.pods[pod_id]

    def exit(self, pod_id: str) -> None:
        """The pod's container ended: desiredStatus EXITED, no runtime."""
        with self._lock:
            pod = self.pods[pod_id]
            pod.desired_status = "EXITED"
            pod.last_status_change = f"Exited by user: {_js_date(datetime.fromtimestamp(self.now(), UTC))}"

    def pod_named(self, name: str) -> StandInPod | None:
        with self._lock:
            return next((p for p in self.pods.values() if p.name == name), None)

    def calls(self, field_name: str) -> list[RecordedRequest]:
        """The recorded requests whose root fields include `field_name`."""
        return [r for r in self.requests if field_name in r.fields]

    # --- request handling ---

    def handle(self, query: str, headers: dict[str, str]) -> tuple[int, dict]:
        try:
            operation = parse(query)
        except GraphQLSyntaxError as exc:
            self.requests.append(RecordedRequest("?", [], {}, query, headers, 400))
            return 400, {"errors": [{"message": str(exc)}]}
        record = RecordedRequest(operation.type, [f.name for f in operation.selection],
                                 {f.name: f.args for f in operation.selection}, query, headers)
        with self._lock:
            self.requests.append(record)
            data, errors = {}, []
            for root in operation.selection:
                try:
                    value = self._resolve_root(operation.type, root)
                    data[root.key] = _project(value, root)
                except GraphQLError as exc:
                    data[root.key] = None
                    errors.append({"message": str(exc), "path": [root.key]})
        body = {"data": data}
        if errors:
            body["errors"] = errors
        if self.deploy_answer_delay and not errors and {"podFindAndDeployOnDemand", "podRentInterruptable"} & {
                f.name for f in operation.selection}:
            time.sleep(self.deploy_answer_delay)
        return 200, body

    def _resolve_root(self, op_type: str, root: Field) -> Any:
        resolvers = {
            "query": {"myself": self._myself, "pod": self._pod, "gpuTypes": self._gpu_types},
            "mutation": {"podFindAndDeployOnDemand": self._deploy_on_demand,
                         "podRentInterruptable": self._rent_interruptable,
                         "podTerminate": self._terminate},
        }[op_type]
        if root.name not in resolvers:
            kind = "Query" if op_type == "query" else "Mutation"
            raise GraphQLError(f'Cannot query field "{root.name}" on type "{kind}".')
        return resolvers[root.name](root.args.get("input") or {})

    def _myself(self, _input: dict) -> dict:
        return {"id": "user_standin", "pubKey": "", "networkVolumes": self.network_volumes,
                "pods": [self._pod_view(p) for p in self.pods.values()]}

    def _pod(self, args: dict) -> dict | None:
        pod = self.pods.get(args.get("podId"))
        return self._pod_view(pod) if pod else None

    def _gpu_types(self, args: dict) -> list[dict]:
        rows = [row for gpu_id, row in self.gpu_types.items() if args.get("id") in (None, gpu_id)]
        return [{**row, "lowestPrice": {"minimumBidPrice": row["secureSpotPrice"],
                                         "uninterruptablePrice": row["securePrice"]}} for row in rows]

    def _deploy_on_demand(self, args: dict) -> dict:
        return self._deploy(args, interruptible=False)

    def _rent_interruptable(self, args: dict) -> dict:
        if not isinstance(args.get("bidPerGpu"), int | float):
            raise GraphQLError('Field "PodRentInterruptableInput.bidPerGpu" of required type "Float!" was not provided.')
        return self._deploy(args, interruptible=True)

    def _deploy(self, args: dict, *, interruptible: bool) -> dict:
        if self._failures:
            raise GraphQLError(self._failures.pop(0))
        gpu = self.gpu_types.get(args.get("gpuTypeId"))
        if gpu is None:
            raise GraphQLError(f"Unknown GPU type {args.get('gpuTypeId')!r}.")
        if self.no_capacity:
            raise GraphQLError(NO_CAPACITY_MESSAGE)
        for required in ("name", "imageName", "cloudType"):
            if required not in args:
                raise GraphQLError(f'Field "{required}" of the deploy input was not provided.')
        if not isinstance(args["cloudType"], Enum) or args["cloudType"] not in ("ALL", "SECURE", "COMMUNITY"):
            raise GraphQLError(f'Value {args["cloudType"]!r} does not exist in "CloudTypeEnum" enum.')
        env = {}
        for item in args.get("env") or []:
            if set(item) != {"key", "value"}:
                raise GraphQLError(f"EnvironmentVariableInput takes key and value, got {sorted(item)}")
            env[item["key"]] = item["value"]
        volume_id = args.get("networkVolumeId")
        if volume_id and volume_id not in {v["id"] for v in self.network_volumes}:
            raise GraphQLError(f"Network volume {volume_id} not found.")
        count = int(args.get("gpuCount", 1))
        price = args["bidPerGpu"] if interruptible else gpu["securePrice"]
        now = self.now()
        pod = StandInPod(
            id=secrets.token_hex(7), name=args["name"], image_name=args["imageName"],
            gpu_type_id=args["gpuTypeId"], gpu_count=count, cloud_type=str(args["cloudType"]),
            interruptible=interruptible, cost_per_hr=round(price * count, 4), env=env,
            container_disk_in_gb=args.get("containerDiskInGb"), volume_in_gb=args.get("volumeInGb"),
            volume_mount_path=args.get("volumeMountPath"), docker_args=args.get("dockerArgs"),
            ports=args.get("ports"), network_volume_id=volume_id, data_center_id=args.get("dataCenterId"),
            bid_per_gpu=args.get("bidPerGpu"), created_at=now, starts_after=now + self.slow_start_seconds,
            last_status_change=f"Rented by User: {_js_date(datetime.fromtimestamp(now, UTC))}",
            input=args,
        )
        pod.pod_host_id = f"{pod.id}-{pod.machine_id[:8]}"
        self.pods[pod.id] = pod
        return self._pod_view(pod)

    def _terminate(self, args: dict) -> None:
        if self.pods.pop(args.get("podId"), None) is None:
            raise GraphQLError("pod not found")
        return None

    def _pod_view(self, pod: StandInPod) -> dict:
        now = self.now()
        running = pod.desired_status == "RUNNING" and now >= pod.starts_after
        uptime = int(now - pod.starts_after) if running else 0
        return {
            "id": pod.id, "name": pod.name, "imageName": pod.image_name,
            "desiredStatus": pod.desired_status, "lastStatusChange": pod.last_status_change,
            "costPerHr": pod.cost_per_hr, "gpuCount": pod.gpu_count,
            "podType": "INTERRUPTABLE" if pod.interruptible else "RESERVED",
            "containerDiskInGb": pod.container_disk_in_gb, "volumeInGb": pod.volume_in_gb,
            "volumeMountPath": pod.volume_mount_path, "dockerArgs": pod.docker_args or "",
            "dockerId": None, "port": None, "ports": pod.ports or "",
            "memoryInGb": 188, "vcpuCount": 16, "machineId": pod.machine_id,
            "env": [f"{k}={v}" for k, v in pod.env.items()],
            "uptimeSeconds": uptime,
            "runtime": {"uptimeInSeconds": uptime, "ports": []} if running else None,
            "machine": {"podHostId": pod.pod_host_id,
                        "gpuDisplayName": self.gpu_types[pod.gpu_type_id]["displayName"]},
        }


def _project(value: Any, selected: Field) -> Any:
    """Keep only the selected fields, as a GraphQL server answers."""
    if selected.selection is None or value is None:
        return value
    if isinstance(value, list):
        return [_project(item, selected) for item in value]
    result = {}
    for sub in selected.selection:
        if sub.name not in value:
            raise GraphQLError(f'Cannot query field "{sub.name}" on type "{selected.name}".')
        result[sub.key] = _project(value[sub.name], sub)
    return result


class _Handler(BaseHTTPRequestHandler):
    standin: RunPodStandIn

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if url.path != "/graphql":
            return self._answer(404, {"errors": [{"message": f"no route {url.path}"}]})
        key = parse_qs(url.query).get("api_key", [""])[0]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            key = auth.removeprefix("Bearer ")
        headers = {k: v for k, v in self.headers.items()}
        if key != self.standin.api_key:
            self.standin.requests.append(RecordedRequest("?", [], {}, body.decode(errors="replace"), headers, 401))
            return self._answer(401, {"errors": [{"message": "Unauthorized"}]})
        try:
            query = json.loads(body)["query"]
        except (ValueError, KeyError, TypeError):
            return self._answer(400, {"errors": [{"message": "Must provide query string."}]})
        status, answer = self.standin.handle(query, headers)
        self._answer(status, answer)

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(HTTPStatus(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller died waiting (deploy_answer_delay tests kill it on purpose)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass


__all__ = ["NO_CAPACITY_MESSAGE", "RunPodStandIn", "parse"]
