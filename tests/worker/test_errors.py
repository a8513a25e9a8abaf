"""gpu_worker.errors: classification of real exceptions, provoked where they can be."""

from __future__ import annotations

import errno
import json
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_worker.config import WorkerConfig
from gpu_worker.contract import ExitCode
from gpu_worker.data import validate_dataset_file
from gpu_worker.errors import (
    EXIT_CODES,
    ClassifiedError,
    CudaUnavailableError,
    DivergenceError,
    classify_error,
)

CONFIG = WorkerConfig(job_id="j1", dataset="d.jsonl", per_device_batch_size=8, gradient_accumulation_steps=2, max_seq_length=1024).to_dict()


def caught(fn, *args, **kwargs) -> BaseException:
    """Run fn and return what it raised; the exception keeps its real traceback."""
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the point is to capture anything
        return exc
    raise AssertionError(f"{fn!r} did not raise")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_json_safe(result: ClassifiedError) -> None:
    json.dumps(result.to_event_data(), allow_nan=False)


# Out of memory


def test_a_real_cpu_allocation_failure_is_out_of_memory_and_names_the_numbers():
    torch = pytest.importorskip("torch")
    exc = caught(torch.empty, 2**62, dtype=torch.uint8)
    assert "can't allocate memory" in str(exc)
    result = classify_error(exc, CONFIG)
    assert result.error_type == "out_of_memory"
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.details["suggested_config"] == {"per_device_batch_size": 4, "gradient_accumulation_steps": 4}
    assert "from 8 to 4" in result.suggested_fix and "from 2 to 4" in result.suggested_fix
    assert "effective batch at 16" in result.suggested_fix
    assert_json_safe(result)


def test_an_oom_wrapped_in_a_runtime_error_is_still_out_of_memory():
    torch = pytest.importorskip("torch")

    def training_step():
        try:
            torch.empty(2**62, dtype=torch.uint8)
        except RuntimeError as exc:
            raise RuntimeError("training step 12 failed") from exc

    result = classify_error(caught(training_step), CONFIG)
    assert result.error_type == "out_of_memory"
    assert "can't allocate memory" in result.message


def test_torch_cuda_out_of_memory_with_batch_one_halves_the_sequence_length():
    torch = pytest.importorskip("torch")
    exc = torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB"
    )
    result = classify_error(exc, {**CONFIG, "per_device_batch_size": 1, "gradient_accumulation_steps": 8})
    assert result.error_type == "out_of_memory"
    assert result.details["suggested_config"] == {"max_seq_length": 512}
    assert result.details["tried_to_allocate"] == "2.00 GiB"
    assert "from 1024 to 512" in result.suggested_fix


def test_an_odd_batch_keeps_the_effective_batch():
    result = classify_error(MemoryError(), {"per_device_batch_size": 3, "gradient_accumulation_steps": 1})
    assert result.details["suggested_config"] == {"per_device_batch_size": 1, "gradient_accumulation_steps": 3}


def test_a_real_memory_error_without_context_still_gives_a_fix():
    result = classify_error(caught(bytearray, 2**62))
    assert result.error_type == "out_of_memory"
    assert result.details["suggested_config"] == {}
    assert "Halve per_device_batch_size" in result.suggested_fix


# Dataset, configuration, divergence


def test_a_real_dataset_error_names_the_first_record_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"current_user_input": "a", "target_response": "b"}\n{"current_user_input": "a"}\n{"x": 1\n')
    result = classify_error(caught(validate_dataset_file, path))
    assert result.error_type == "dataset_format"
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.message == "The dataset has 2 problems; first: line 2: target_response is missing"
    assert result.details["first_problem"] == {"line": 2, "field": "target_response", "reason": "is missing", "record": None}
    assert result.details["problems"][1].startswith("line 3: not valid JSON")


def test_a_whole_file_dataset_error_is_a_dataset_error(tmp_path):
    (tmp_path / "d.jsonl").write_text("")
    result = classify_error(caught(validate_dataset_file, tmp_path / "d.jsonl"))
    assert result.error_type == "dataset_format"
    assert "empty" in result.message


def test_a_real_config_error_is_configuration():
    result = classify_error(caught(WorkerConfig.from_dict, {"job_id": "j"}))
    assert result.error_type == "configuration"
    assert result.exit_code == ExitCode.USER_ERROR
    assert "missing required field(s): dataset" in result.message


def test_divergence_suggests_half_the_learning_rate():
    exc = caught(_raise, DivergenceError("loss is nan", step=40, loss=float("nan")))
    result = classify_error(exc, CONFIG)
    assert result.error_type == "divergence"
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.details["suggested_config"] == {"learning_rate": 1e-4}
    assert result.details["step"] == 40 and result.details["loss"] == "nan"
    assert "from 0.0002 to 0.0001" in result.suggested_fix
    assert_json_safe(result)


def _raise(exc: BaseException) -> None:
    raise exc


# Model access


def test_a_real_gated_repo_error_says_to_accept_the_licence_and_set_hf_token():
    httpx = pytest.importorskip("httpx2")
    hub_utils = pytest.importorskip("huggingface_hub.utils")
    model = "meta-llama/Meta-Llama-3-70B-Instruct"
    response = httpx.Response(
        403,
        headers={"X-Error-Code": "GatedRepo", "X-Error-Message": f"Access to model {model} is restricted."},
        request=httpx.Request("GET", f"https://huggingface.co/{model}/resolve/main/config.json"),
    )
    exc = caught(hub_utils.hf_raise_for_status, response)
    assert type(exc).__name__ == "GatedRepoError"
    result = classify_error(exc, {**CONFIG, "base_model": model})
    assert result.error_type == "model_access"
    assert result.exit_code == ExitCode.USER_ERROR
    assert f"https://huggingface.co/{model}" in result.suggested_fix
    assert "HF_TOKEN" in result.suggested_fix
    assert result.details["http_status"] == 403


def test_a_real_repository_not_found_is_model_access():
    httpx = pytest.importorskip("httpx2")
    hub_utils = pytest.importorskip("huggingface_hub.utils")
    response = httpx.Response(
        401, headers={"X-Error-Code": "RepoNotFound"},
        request=httpx.Request("GET", "https://huggingface.co/acme/private/resolve/main/config.json"),
    )
    result = classify_error(caught(hub_utils.hf_raise_for_status, response), {"base_model": "acme/private"})
    assert result.error_type == "model_access"


def test_a_local_model_path_that_does_not_exist_is_model_access(monkeypatch):
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exc = caught(transformers.AutoConfig.from_pretrained, "/nonexistent/model-folder")
    result = classify_error(exc, {**CONFIG, "base_model": "/nonexistent/model-folder"})
    assert result.error_type == "model_access"
    assert "'/nonexistent/model-folder' is neither an existing local folder" in result.suggested_fix


def test_a_403_from_somewhere_other_than_the_hub_is_not_model_access():
    requests = pytest.importorskip("requests")
    response = requests.Response()
    response.status_code = 403
    exc = requests.HTTPError("403 Client Error: Forbidden for url: https://control-plane/api/worker/x", response=response)
    assert classify_error(exc).error_type == "unknown"


# Disk, network, CUDA


def test_a_real_enospc_is_disk_full():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        exc = caught(os.write, fd, b"checkpoint bytes")
    finally:
        os.close(fd)
    assert exc.errno == errno.ENOSPC
    result = classify_error(exc)
    assert result.error_type == "disk_full"
    assert result.exit_code == ExitCode.INFRASTRUCTURE_ERROR


def test_an_enospc_with_a_path_names_the_path():
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/workspace/checkpoints/step-100/optimizer.pt")
    result = classify_error(exc)
    assert result.error_type == "disk_full"
    assert result.details["path"] == "/workspace/checkpoints/step-100/optimizer.pt"


def test_a_real_requests_connection_error_to_a_closed_port_is_network():
    requests = pytest.importorskip("requests")
    exc = caught(requests.get, f"http://127.0.0.1:{closed_port()}/api/worker/events", timeout=5)
    assert isinstance(exc, requests.ConnectionError)
    result = classify_error(exc)
    assert result.error_type == "network"
    assert result.exit_code == ExitCode.INFRASTRUCTURE_ERROR
    assert "events" in result.details["url"]


def test_a_real_urllib3_error_is_network():
    urllib3 = pytest.importorskip("urllib3")
    exc = caught(urllib3.PoolManager().request, "GET", f"http://127.0.0.1:{closed_port()}/", retries=False)
    assert classify_error(exc).error_type == "network"


def test_a_real_socket_timeout_is_network():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=0.05) as client:
            exc = caught(client.recv, 1)  # the server never sends
    assert isinstance(exc, TimeoutError)
    assert classify_error(exc).error_type == "network"


def test_a_real_builtin_connection_refused_is_network():
    exc = caught(socket.create_connection, ("127.0.0.1", closed_port()), timeout=5)
    assert isinstance(exc, ConnectionRefusedError)
    assert classify_error(exc).error_type == "network"


def test_name_resolution_failure_is_network():
    exc = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert classify_error(exc).error_type == "network"
    wrapped = OSError("We couldn't connect to 'https://huggingface.co': Temporary failure in name resolution")
    assert classify_error(wrapped).error_type == "network"


def test_cuda_requested_on_a_cpu_only_torch_is_cuda_unavailable():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    exc = caught(torch.zeros, 1, device="cuda")
    result = classify_error(exc)
    assert result.error_type == "cuda_unavailable"
    assert result.exit_code == ExitCode.INFRASTRUCTURE_ERROR
    assert result.details["suggested_config"] == {"device": "cpu", "quantization": "none"}


@pytest.mark.parametrize(
    "exc",
    [
        CudaUnavailableError("device is 'cuda' but torch.cuda.is_available() is False"),
        RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU"),
        RuntimeError("CUDA driver version is insufficient for CUDA runtime version"),
    ],
)
def test_cuda_driver_failures_are_cuda_unavailable(exc):
    assert classify_error(exc).error_type == "cuda_unavailable"


def test_a_cuda_out_of_memory_error_is_not_mistaken_for_missing_cuda():
    assert classify_error(RuntimeError("CUDA error: out of memory")).error_type == "out_of_memory"


# Unknown, chains, exit codes


def test_an_unknown_error_carries_its_type_message_and_trace_tail():
    exc = caught(json.loads, "{not json")
    result = classify_error(exc)
    assert result.error_type == "unknown"
    assert result.exit_code == ExitCode.UNKNOWN_ERROR
    assert "JSONDecodeError: Expecting property name enclosed in double quotes" in result.message
    tail = result.details["trace_tail"].splitlines()
    assert 0 < len(tail) <= 20
    assert tail[-1].startswith("json.decoder.JSONDecodeError")


def test_the_trace_tail_is_the_last_twenty_lines():
    def level(n: int) -> None:
        # Each level adds a chained exception, so the full traceback is far over 20 lines.
        try:
            if n == 0:
                raise ZeroDivisionError("deep")
            level(n - 1)
        except Exception as exc:
            raise ValueError(f"level {n}") from exc

    result = classify_error(caught(level, 6))
    tail = result.details["trace_tail"].splitlines()
    assert len(tail) == 20 and tail[-1] == "ValueError: level 6"


def test_the_outermost_recognised_exception_wins_over_an_older_context():
    torch = pytest.importorskip("torch")

    def oom_while_handling_a_network_error():
        try:
            raise ConnectionResetError("reset while sending metrics")
        except ConnectionResetError:
            torch.empty(2**62, dtype=torch.uint8)

    assert classify_error(caught(oom_while_handling_a_network_error)).error_type == "out_of_memory"


def test_a_cyclic_chain_does_not_hang():
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert classify_error(a).error_type == "unknown"


def test_an_exception_whose_str_raises_is_still_classified():
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    result = classify_error(Broken())
    assert result.error_type == "unknown" and "Broken" in result.message


def test_every_type_has_the_contracts_exit_code():
    assert EXIT_CODES == {
        "dataset_format": 2, "model_access": 2, "out_of_memory": 2, "divergence": 2, "configuration": 2,
        "network": 3, "disk_full": 3, "cuda_unavailable": 3, "unknown": 1,
    }


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([Exception, RuntimeError, OSError, ValueError, MemoryError, ConnectionError, KeyError]),
    message=st.text(max_size=200),
    context=st.dictionaries(
        st.sampled_from(["per_device_batch_size", "gradient_accumulation_steps", "max_seq_length", "learning_rate", "base_model"]),
        st.one_of(st.none(), st.integers(-3, 64), st.floats(allow_nan=True), st.text(max_size=20)),
    ),
)
def test_classification_never_raises_and_is_always_reportable(kind, message, context):
    result = classify_error(kind(message), context)
    assert result.error_type in EXIT_CODES
    assert result.exit_code == EXIT_CODES[result.error_type]
    assert result.message and result.suggested_fix
    json.dumps(result.to_event_data())
