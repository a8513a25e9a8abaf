"""One attempt of one LoRA/QLoRA SFT job, top to bottom.

    preprocessing   validate every record (before any model is touched), tokenise, split
    model_loading   resolve/convert the base model, load it (4-bit on CUDA), wrap it with LoRA
    training        TRL SFTTrainer, little padding (packed or length-grouped), periodic + emergency checkpoints
    finalizing      save the adapter (PEFT layout), upload it
    validating      evaluators with the model still loaded; summary.json and metrics.jsonl uploaded

`run_job(config)` returns the process exit code (gpu_worker.contract.ExitCode); every failure is
classified by gpu_worker.errors and reported as an `error` event before the worker exits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gpu_worker.allocator import release_free_heap
from gpu_worker.config import WorkerConfig
from gpu_worker.contract import EventType, ExitCode, Stage
from gpu_worker.data import DatasetError
from gpu_worker.errors import classify_error  # imported now: reporting an OOM must not need memory

DEBUG_ENV_VAR = "GPU_WORKER_DEBUG"


class WorkerInterrupted(BaseException):
    """SIGTERM/SIGINT: the job stops (in training, after an emergency checkpoint of the last
    completed step; see _Job.train)."""


class StoppedByControlPlane(Exception):
    """The control plane answered 409/410: this attempt must save nothing more."""


def run_job(config: WorkerConfig) -> int:
    """Run the job; return the exit code. Never raises (except SystemExit from the caller)."""
    from gpu_worker.callbacks import JobState, MetricsSink, Ticker
    from gpu_worker.reporting import Reporter

    output_dir = Path(config.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    state = JobState()
    reporter = Reporter(job_id=config.job_id, attempt=config.attempt, webhook_url=config.webhook_url,
                        secret=config.webhook_secret, outbox_dir=output_dir / "outbox")
    reporter.start()
    sink = MetricsSink(output_dir / "metrics.jsonl")
    ticker = Ticker(reporter, state, sink, config.heartbeat_interval, config.metrics_flush_interval)
    previous_handlers = _install_signal_handlers(state)
    job = _Job(config, output_dir, state, reporter, sink, ticker)
    try:
        state.raise_on_signal = True
        ticker.start()
        job.run()
        state.raise_on_signal = False
        code = ExitCode.SUCCESS
    except WorkerInterrupted:
        code = job.report_interrupted()
    except StoppedByControlPlane:
        code = job.report_stopped()
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a classified error event
        code = job.report_error(exc)
    finally:
        state.raise_on_signal = False
        ticker.stop()
        sink.close()
        reporter.close(timeout=30)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    return code


def _install_signal_handlers(state: Any) -> dict[int, Any]:
    def handle(signum: int, frame: Any) -> None:
        first = state.signal_name is None
        state.signal_name = signal.Signals(signum).name
        # Inside the training loop the step in flight is abandoned at the next decoder layer
        # (callbacks.install_step_abort) or, between steps, the callback stops the loop; either
        # way the last completed step is checkpointed. Anywhere else there is nothing to save,
        # so stop right away.
        if first and state.raise_on_signal:
            raise WorkerInterrupted(state.signal_name)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handle)
    return previous


class _Job:
    def __init__(self, config: WorkerConfig, output_dir: Path, state: Any, reporter: Any,
                 sink: Any, ticker: Any) -> None:
        self.config, self.output_dir, self.state = config, output_dir, state
        self.reporter, self.sink, self.ticker = reporter, sink, ticker
        self.started_at = time.time()
        self.placement: Any = None
        self.store: Any = None
        self.uploader: Any = None
        self.model: Any = None
        self.trainer: Any = None
        self.summary: dict[str, Any] = {"versions": library_versions()}
        self.restore_memory_limit: Any = None
        self.model_path = config.base_model  # resolve_base_model's answer once preprocessing ran
        self.tokenizer: Any = None
        self.suite: dict[str, Any] | None = None
        self.system_prompt: str | None = None

    # ----- stages -----

    def stage(self, name: Stage) -> None:
        self.check_stop()
        self.state.stage = name
        self.reporter.emit(EventType.STAGE_CHANGED, {"stage": name})

    def check_stop(self) -> None:
        if self.reporter.stop_requested:
            raise StoppedByControlPlane(self.reporter.stop_reason)

    def run(self) -> None:
        from gpu_worker import model_loading, stores
        from gpu_worker.evaluation import EVALUATORS

        config = self.config
        unknown = [n for n in config.evaluators if n not in EVALUATORS]
        if unknown:
            from gpu_worker.config import ConfigError

            raise ConfigError(f"evaluators: unknown {', '.join(unknown)}; known: {', '.join(EVALUATORS)}")
        self.placement = model_loading.choose_placement(config.device, config.quantization,
                                                 config.gradient_checkpointing, precision=config.precision)
        self.reporter.emit(EventType.STARTED, {
            "device": self.placement.device, "quantization": self.placement.quantization,
            "precision": self.placement.precision,
            "base_model": config.base_model, "pid": os.getpid(), "host": socket.gethostname(),
        })
        self.store = stores.open_store(config.store, secret=config.webhook_secret, attempt=config.attempt)

        self.stage(Stage.PREPROCESSING)
        dataset_path = self.fetch_dataset()
        from gpu_worker import data

        report = data.validate_dataset_file(dataset_path)  # DatasetError: exit 2, no model loaded
        self.load_validation_suite(report.conversations)  # SuiteError: exit 2, no model loaded
        model_path = model_loading.resolve_base_model(config.base_model)
        self.model_path = model_path
        train_samples, eval_samples = self.tokenize(report, model_path)

        self.stage(Stage.MODEL_LOADING)
        self.restore_memory_limit = apply_memory_limit(config.memory_limit_mb, self.placement.device)
        model, tokenizer = model_loading.load_model_and_tokenizer(model_path, self.placement)
        self.tokenizer = tokenizer
        resume_dir, resume_step = self.fetch_resume_checkpoint()
        trainer = self.build_trainer(model, tokenizer, train_samples, eval_samples)
        self.trainer = trainer
        self.model = trainer.model

        self.stage(Stage.TRAINING)
        if resume_dir is not None:
            self.reporter.emit(EventType.RESUMED, {"resumed_from_step": resume_step})
        self.train(trainer, resume_dir)

        self.stage(Stage.FINALIZING)
        adapter_dir = self.save_adapter(trainer, tokenizer)
        if eval_samples and self.state.last_eval_loss is None:
            self.state.last_eval_loss = float(trainer.evaluate()["eval_loss"])
        self.uploader.wait()
        self.check_stop()
        self.upload_folder(adapter_dir, "adapter")

        self.stage(Stage.VALIDATING)
        results = self.validate(eval_samples)
        self.check_stop()
        self.write_reports(results)
        self.ticker.stop()
        self.reporter.emit(EventType.COMPLETED, {
            "final_train_loss": self.state.last_train_loss,
            "final_eval_loss": self.state.last_eval_loss,
            "steps": self.state.step,
            "adapter_key": "adapter",
            "summary": self.summary,
        })

    # ----- preprocessing -----

    def fetch_dataset(self) -> Path:
        return self.fetch(self.config.dataset, "dataset", ".jsonl")

    def fetch(self, source: str, name: str, default_suffix: str) -> Path:
        """A local path as it is; an http(s) URL (signed by the control plane) downloaded to
        output_dir/data/<name><suffix>."""
        if not source.startswith(("http://", "https://")):
            return Path(source)
        import requests

        suffix = Path(urlparse(source).path).suffix or default_suffix
        target = self.output_dir / "data" / f"{name}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with requests.get(source, stream=True, timeout=60) as response:
            response.raise_for_status()
            tmp = target.with_suffix(target.suffix + ".part")
            with tmp.open("wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    handle.write(chunk)
            os.replace(tmp, target)
        return target

    def load_validation_suite(self, conversations: list[Any]) -> None:
        """The validation suite, checked before any model is loaded, and the system prompt the
        generation evaluators use (the suite's, else the training data's dominant one)."""
        from gpu_worker import validation_suite

        if self.config.validation_suite is None:
            return
        self.suite = validation_suite.load_suite(self.fetch(self.config.validation_suite, "validation_suite", ".json"))
        self.system_prompt = validation_suite.suite_system_prompt(self.suite, conversations)

    def tokenize(self, report: Any, model_path: str) -> tuple[list[dict], list[dict]]:
        from transformers import AutoTokenizer

        from gpu_worker import data

        config = self.config
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        train_convs, eval_convs = data.split_conversations(report.conversations, config.eval_split, config.seed)

        def encode(convs: list[Any]) -> tuple[list[dict], int]:
            samples, truncated = [], 0
            for conv in convs:
                item = data.tokenize_conversation(tokenizer, conv.messages, config.max_seq_length,
                                                  conv.trainable_turns)
                truncated += item["truncated"]
                if any(label != data.IGNORE_INDEX for label in item["labels"][1:]):
                    samples.append({"input_ids": item["input_ids"], "labels": item["labels"]})
            return samples, truncated

        train_samples, train_truncated = encode(train_convs)
        eval_samples, eval_truncated = encode(eval_convs)
        if config.validation_max_samples is not None:
            eval_samples = eval_samples[: config.validation_max_samples]
        if not train_samples:
            from gpu_worker.data import DatasetError

            raise DatasetError(f"no trainable conversation left after tokenising to max_seq_length={config.max_seq_length}")
        self.summary["dataset"] = {
            "format": report.format,
            "records": report.records,
            "train_samples": len(train_samples),
            "eval_samples": len(eval_samples),
            "truncated": train_truncated + eval_truncated,
            "train_tokens": sum(len(s["input_ids"]) for s in train_samples),
            "train_trainable_tokens": sum(sum(1 for x in s["labels"] if x != -100) for s in train_samples),
        }
        return train_samples, eval_samples

    # ----- model + trainer -----

    def fetch_resume_checkpoint(self) -> tuple[Path | None, int | None]:
        from gpu_worker import stores

        wanted = self.config.resume_from
        if wanted is None:
            return None, None
        committed = self.store.committed_checkpoints()
        if wanted == "latest":
            manifest = committed[-1] if committed else None
        else:
            manifest = next((m for m in committed if str(m["step"]) == str(wanted)), None)
            if manifest is None:
                from gpu_worker.config import ConfigError

                steps = ", ".join(str(m["step"]) for m in committed) or "none"
                raise ConfigError(f"resume_from: no committed checkpoint at step {wanted} (committed: {steps})")
        if manifest is None:
            return None, None
        dest = self.output_dir / "resume" / f"checkpoint-{manifest['step']}"
        if dest.exists():
            shutil.rmtree(dest)
        stores.fetch_checkpoint(self.store, manifest, dest)
        return dest, int(manifest["step"])

    def learning_rate(self, model: Any) -> float:
        """The configured rate, scaled to the model's width (config.scaled_learning_rate); both
        go to summary.json."""
        from gpu_worker.config import scaled_learning_rate

        config = self.config
        hidden_size = getattr(model.config, "hidden_size", None)
        effective = scaled_learning_rate(config.learning_rate, config.learning_rate_scaling, hidden_size)
        self.summary["learning_rate"] = {"configured": config.learning_rate, "effective": effective,
                                         "scaling": config.learning_rate_scaling, "hidden_size": hidden_size}
        return effective

    def build_trainer(self, model: Any, tokenizer: Any, train_samples: list[dict],
                      eval_samples: list[dict]) -> Any:
        from datasets import Dataset
        from peft import LoraConfig, get_peft_model
        from transformers import EarlyStoppingCallback, PrinterCallback, set_seed
        from trl import SFTConfig

        from gpu_worker.callbacks import CheckpointUploader, WorkerCallback, cuda_stats

        config, placement = self.config, self.placement
        on_cpu = placement.device == "cpu"
        if on_cpu:
            _score_only_labelled_positions()
            _bound_lm_head_tiles()
        # Memory is bounded by the configuration, not by how long the data's sequences happen to
        # be: a micro-batch holds at most CPU_MICRO_BATCH_TOKENS tokens at max_seq_length (or one
        # sequence), with the accumulation raised to keep the effective batch.
        micro_batch, accumulation = micro_batching(
            config.per_device_batch_size, config.gradient_accumulation_steps, config.max_seq_length,
            CPU_MICRO_BATCH_TOKENS if on_cpu else None)
        if on_cpu and config.gradient_checkpointing is None:
            # Left to us: recompute the activations in the backward only when keeping them
            # for a full micro-batch would pass the activation budget (the balanced preset's
            # 2,048 tokens on SmolLM2: 4.3 GiB), so small models and short sequences keep the speed.
            wanted = needs_gradient_checkpointing(model.config, micro_batch * config.max_seq_length)
            placement = self.placement = dataclasses.replace(placement, gradient_checkpointing=wanted)
        set_seed(config.seed)  # LoRA init is seeded
        target = config.target_modules
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=target, bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        if placement.gradient_checkpointing:
            model.enable_input_require_grads()

        varlen_attention = "flash" in str(getattr(model.config, "_attn_implementation", ""))
        has_eval = bool(eval_samples)
        eval_steps = config.eval_interval if has_eval and config.eval_interval > 0 else None
        early_stopping = config.early_stopping_patience is not None and eval_steps is not None
        args = SFTConfig(
            output_dir=str(self.output_dir / "checkpoints"),
            per_device_train_batch_size=micro_batch,
            per_device_eval_batch_size=micro_batch,
            gradient_accumulation_steps=accumulation,
            learning_rate=self.learning_rate(model),
            num_train_epochs=config.num_epochs,
            max_steps=config.max_steps,
            warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
            lr_scheduler_type=config.lr_scheduler,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
            seed=config.seed,
            data_seed=config.seed,
            full_determinism=on_cpu,  # exact resume on CPU; CUDA keeps its fast kernels
            logging_strategy="steps",
            logging_steps=config.logging_steps,
            eval_strategy="steps" if eval_steps else "no",
            eval_steps=eval_steps,
            save_strategy="steps" if config.checkpoint_interval > 0 else "no",
            save_steps=config.checkpoint_interval if config.checkpoint_interval > 0 else 500,
            save_total_limit=None,  # the uploader removes older local copies once newer ones are committed
            metric_for_best_model="eval_loss" if early_stopping else None,
            greater_is_better=False if early_stopping else None,
            load_best_model_at_end=False,
            use_cpu=on_cpu,
            # bf16 mixed precision (model_loading.choose_precision): on CPU, torch.autocast
            # around forward and loss; the fp32 LoRA weights and AdamW state are untouched.
            bf16=placement.bf16,
            gradient_checkpointing=placement.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if placement.gradient_checkpointing else None,
            # Speed without changing what is learned: no FLOPs on padding. With a varlen
            # attention kernel (flash attention) each batch is one packed sequence with
            # per-sample position_ids, attended block-diagonally. Without one (sdpa, and always on
            # CPU) a packed batch would attend over the whole packed square, which measured
            # slower and took twice the memory (docs/performance.md), so batches are padded and
            # grouped by length instead, which keeps the padding small.
            padding_free=varlen_attention,
            train_sampling_strategy="random" if varlen_attention else "group_by_length",
            max_length=None,  # samples arrive truncated by data.tokenize_conversation
            dataset_kwargs={"skip_prepare_dataset": True},
            remove_unused_columns=False,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            save_only_model=False,
            logging_first_step=False,
            logging_nan_inf_filter=False,  # the divergence rule must see a NaN loss, not an average
        )
        train_dataset = Dataset.from_list(train_samples)
        eval_dataset = Dataset.from_list(eval_samples) if has_eval else None
        self.uploader = CheckpointUploader(self.store, self.reporter, self.state, self.config.attempt,
                                           self.config.keep_checkpoints)
        trainer_cls = _worker_trainer_class()
        trainer = trainer_cls(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                              processing_class=tokenizer)
        self.callback = WorkerCallback(
            state=self.state, sink=self.sink, reporter=self.reporter, uploader=self.uploader,
            warmup_steps=0, gpu_stats=None if on_cpu else cuda_stats, token_counter=trainer.take_token_counts,
        )
        trainer.add_callback(self.callback)
        trainer.remove_callback(PrinterCallback)  # our events and metrics.jsonl replace stdout logs
        if early_stopping:
            trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
        self.eval_dataset = eval_dataset
        return trainer

    def train(self, trainer: Any, resume_dir: Path | None) -> None:
        total = trainer.args.max_steps
        if total is None or total <= 0:
            import math

            batches = math.ceil(len(trainer.train_dataset) / trainer.args.per_device_train_batch_size)
            per_epoch = max(batches // trainer.args.gradient_accumulation_steps, 1)
            total = math.ceil(per_epoch * trainer.args.num_train_epochs)
        self.callback.warmup_steps = trainer.args.get_warmup_steps(total)
        # Known now, before the Trainer's set-up and first step (minutes on a slow machine):
        # the heartbeat carries it at once so the control plane can show steps and a first ETA.
        from gpu_worker.callbacks import ProgressCallback

        self.state.total_steps = total
        self.state.heartbeat_wanted.set()
        trainer.add_callback(ProgressCallback(self.state))
        from gpu_worker.callbacks import StepAborted, install_step_abort

        if resume_dir is not None:
            # Committed already: no emergency checkpoint repeats it, and it is this attempt's
            # last checkpoint until a newer one is committed.
            self.state.last_saved_step = int(resume_dir.name.rsplit("-", 1)[1])
            self.state.last_committed_step = self.state.last_saved_step
        remove_hooks = install_step_abort(
            trainer.model, lambda: self.state.abort_step_on_signal and (
                self.state.signal_name is not None or self.reporter.stop_requested))
        self.state.raise_on_signal = False
        try:
            if self.state.signal_name is not None:
                raise WorkerInterrupted(self.state.signal_name)
            self.state.abort_step_on_signal = True
            try:
                trainer.train(resume_from_checkpoint=str(resume_dir) if resume_dir else None)
            except StepAborted:
                self.state.abort_step_on_signal = False
                if self.reporter.stop_requested and not self.reporter.cancelled:
                    raise StoppedByControlPlane(self.reporter.stop_reason) from None
                # SIGTERM/SIGINT, or a cancel (410) whose signal is still on its way: the
                # control plane takes this attempt's checkpoint and its last word either way.
                self.state.signal_name = self.state.signal_name or "cancel"
                self.save_emergency_checkpoint(trainer)
                raise WorkerInterrupted(self.state.signal_name) from None
        finally:
            self.state.abort_step_on_signal = False
            remove_hooks()
            self.state.raise_on_signal = True
        self.summary["train_runtime_s"] = trainer.state.log_history[-1].get("train_runtime") if trainer.state.log_history else None
        if self.state.stopped_by_control_plane:
            raise StoppedByControlPlane(self.reporter.stop_reason)
        if self.state.interrupted_during_training:
            raise WorkerInterrupted(self.state.signal_name)

    def save_emergency_checkpoint(self, trainer: Any) -> None:
        """After an abandoned step: checkpoint the last completed one, unless it is saved already
        (a periodic checkpoint, the resume source) or none was completed (step 0).

        Weights, optimizer and scheduler are still those of the last completed step (the
        abandoned one never reached its optimizer step; its partial gradients are not saved).
        The RNG has moved on since that step ended (the next epoch's data loader seed, the
        abandoned step's dropout), so the state captured as it ended is put back first: a
        resume then draws what the uninterrupted run drew.
        """
        step = trainer.state.global_step
        if step == 0 or step == self.state.last_saved_step:
            return
        from gpu_worker.callbacks import restore_rng_state

        if self.state.step_in_progress and self.state.rng_after_last_step is not None:
            restore_rng_state(self.state.rng_after_last_step)
        trainer._save_checkpoint(trainer.model, None)
        self.uploader.submit(step, Path(trainer.args.output_dir) / f"checkpoint-{step}")
        self.state.last_saved_step = step

    # ----- finalizing + validating -----

    def save_adapter(self, trainer: Any, tokenizer: Any) -> Path:
        """The adapter in PEFT's layout, naming its base model by Hub id (adapter_config.json's
        base_model_name_or_path, the model card's base_model) so it loads on any machine; where
        this machine found the weights goes to summary.json (`base_model.local_path`)."""
        from gpu_worker.model_loading import base_model_hub_id
        from gpu_worker.stores import share_folder

        adapter_dir = self.output_dir / "adapter"
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        hub_id = base_model_hub_id(self.config.base_model, self.model_path)
        model = trainer.model
        # PEFT writes what the model was loaded from (here the local cache folder); name the Hub
        # id for the duration of the save only, so nothing else sees a changed config.
        base_config = model.get_base_model().config
        peft_configs = list(model.peft_config.values())
        recorded = [c.base_model_name_or_path for c in peft_configs], base_config._name_or_path
        try:
            for peft_config in peft_configs:
                peft_config.base_model_name_or_path = hub_id
            base_config._name_or_path = hub_id
            model.save_pretrained(adapter_dir)
        finally:
            for peft_config, name in zip(peft_configs, recorded[0], strict=True):
                peft_config.base_model_name_or_path = name
            base_config._name_or_path = recorded[1]
        tokenizer.save_pretrained(adapter_dir)
        share_folder(adapter_dir)
        self.summary["base_model"] = {"configured": self.config.base_model, "hub_id": hub_id,
                                      "local_path": self.model_path}
        return adapter_dir

    def upload_folder(self, folder: Path, prefix: str) -> None:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            self.store.put_file(f"{prefix}/{path.relative_to(folder).as_posix()}", path)

    def validate(self, eval_samples: list[dict]) -> dict[str, Any]:
        from gpu_worker.evaluation import EvalContext, run_evaluators

        config = self.config
        if not config.evaluators:
            results: dict[str, Any] = {}
        else:
            context = EvalContext(
                model=self.model, samples=eval_samples, tokenizer=self.tokenizer, suite=self.suite,
                system_prompt=self.system_prompt, device=self.placement.device,
                batch_size=config.validation_batch_size, max_new_tokens=config.validation_max_new_tokens,
                bf16=self.placement.bf16,  # the training's autocast, if it had one
            )
            results = run_evaluators(config.evaluators, context, progress=self.validation_progress())
        self.reporter.emit(EventType.VALIDATION_RESULTS, {"evaluators": results})
        return results

    def validation_progress(self) -> Any:
        """The evaluators' progress(done, total) hook: units done (evaluation.run_evaluators: a
        held-out sample, a reply, a question), and the measured mean time of one, into the
        heartbeats (a heartbeat at once when validation starts and after the first unit, so
        'validating 1/40' and its ETA appear without waiting an interval)."""
        state = self.state
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            first = state.validation_done in (None, 0) and done > 0
            state.validation_done, state.validation_total = done, total
            if done > 0:
                state.seconds_per_validation_sample = (time.monotonic() - started) / done
            if done == 0 or first:
                state.heartbeat_wanted.set()

        return progress

    def write_reports(self, results: dict[str, Any]) -> None:
        from gpu_worker.evaluation import responses

        self.ticker.stop()  # flushes the last points; metrics.jsonl is complete after this
        self.sink.close()
        # One line per generated item: {"evaluator", "id", "base_reply", "trained_reply"}.
        lines = responses(results)
        responses_path = self.output_dir / "validation_responses.jsonl"
        responses_path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        responses_key = "reports/validation_responses.jsonl" if lines else None
        self.summary.update({
            "job_id": self.config.job_id,
            "attempt": self.config.attempt,
            "device": self.placement.device,
            "quantization": self.placement.quantization,
            "precision": self.placement.precision,
            "gradient_checkpointing": self.placement.gradient_checkpointing,
            "final_train_loss": self.state.last_train_loss,
            "final_eval_loss": self.state.last_eval_loss,
            "first_train_loss": self.state.first_train_loss,
            "steps": self.state.step,
            "total_steps": self.state.total_steps,
            "tokens_trained": self.state.tokens_trained,
            # Tokens the model ran on in this attempt, padding included (= tokens_trained when
            # padding-free); the throughput benchmark reports the difference as padding waste.
            "tokens_computed_this_attempt": getattr(self.trainer, "computed_tokens", None),
            "samples_trained": self.state.samples_trained,
            "duration_s": time.time() - self.started_at,
            "peak_memory_mb": peak_memory_mb(),
            # The figures without the per-item lists (replies, log-likelihoods): those are in
            # the validation_results event and, the replies, in validation_responses.jsonl.
            "validation": {name: {k: v for k, v in result.items() if k != "items"} if isinstance(result, dict) else result
                           for name, result in results.items()},
            "validation_responses": responses_key,
            "config": {k: v for k, v in self.config.to_dict().items() if k != "webhook_secret"},
        })
        if responses_key is not None:  # before the summary that names it
            self.store.put_file(responses_key, responses_path)
        path = self.output_dir / "summary.json"
        path.write_text(json.dumps(self.summary, indent=2, default=str))
        self.store.put_file("reports/summary.json", path)
        self.store.put_file("reports/metrics.jsonl", self.output_dir / "metrics.jsonl")

    # ----- endings -----

    def report_interrupted(self) -> int:
        self.state.raise_on_signal = False
        if self.uploader is not None:
            try:
                self.uploader.wait()
            except BaseException as exc:  # noqa: BLE001
                print(f"gpu_worker: emergency checkpoint upload failed: {exc}", file=sys.stderr)
        self.ticker.stop()  # last metrics and heartbeats go before the terminal event
        self.reporter.emit(EventType.INTERRUPTED, {"signal": self.state.signal_name or "SIGTERM",
                                           "last_checkpoint_step": self.state.last_committed_step})
        saved = (f"last committed checkpoint: step {self.state.last_committed_step}"
                 if self.state.last_committed_step is not None else "no checkpoint committed")
        print(f"gpu_worker: interrupted by {self.state.signal_name}; {saved}", file=sys.stderr)
        return ExitCode.INTERRUPTED

    def report_stopped(self) -> int:
        self.state.raise_on_signal = False
        if self.uploader is not None:
            self.uploader.cancel()
            self.uploader.wait()
        print(f"gpu_worker: stopped by the control plane ({self.reporter.stop_reason})", file=sys.stderr)
        return ExitCode.STOPPED_BY_CONTROL_PLANE

    def report_error(self, exc: BaseException) -> int:
        if self.restore_memory_limit is not None:
            self.restore_memory_limit()  # the report itself needs memory
        if self.uploader is not None:
            self.uploader.cancel()
        self.state.raise_on_signal = False
        context = {k: v for k, v in self.config.to_dict().items() if k != "webhook_secret"}
        context.update(stage=self.state.stage, step=self.state.step,
                       device_used=getattr(self.placement, "device", None))
        classified = classify_error(exc, context)
        self.ticker.stop()
        self.reporter.emit(EventType.ERROR, classified.to_event_data())
        if isinstance(exc, DatasetError):
            print(f"gpu_worker: dataset_format: {exc}", file=sys.stderr)  # the whole line/field report
        else:
            print(f"gpu_worker: {classified.error_type}: {classified.message}", file=sys.stderr)
        if classified.suggested_fix:
            print(f"gpu_worker: fix: {classified.suggested_fix}", file=sys.stderr)
        if os.environ.get(DEBUG_ENV_VAR) == "1":
            traceback.print_exception(exc)
        return classified.exit_code


def peak_memory_mb() -> float:
    """This process's peak resident memory so far (its high-water mark, model loading included)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)  # bytes on macOS, KiB on Linux


def apply_memory_limit(limit_mb: int | None, device: str) -> Any:
    """Enforce `memory_limit_mb`: a CUDA allocator cap, or on CPU an RLIMIT_DATA cap (heap and
    private anonymous mappings), so exceeding it raises a real out-of-memory error.

    Returns a function that lifts the cap again (for the error report), or None.
    """
    if not limit_mb:
        return None
    if device == "cuda":
        import torch

        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit_mb * 2**20 / total))
        return lambda: torch.cuda.set_per_process_memory_fraction(1.0)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = int(limit_mb) * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


# Tokens one CPU forward/backward may hold: one sequence at the presets' max_seq_length, so a
# batch never multiplies the activations (nor the padding) by its size. Without gradient
# checkpointing a training token of SmolLM2-135M with LoRA on every linear layer costs about
# 2.2 MB at the step's peak; with it (needs_gradient_checkpointing below), far less. Measured on
# the sample data's longest conversations (about 920 tokens each, 1 step, docs/performance.md,
# Memory): 3.2-3.8 GB peak without checkpointing, 2.0 GB (bf16) to 2.8 GB (fp32) with it.
CPU_MICRO_BATCH_TOKENS = 2048
# Tokens per LM-head tile on CPU (TRL's default is 4,096). TRL's PyTorch fallback for the tile
# keeps about ten temporaries of tokens x 32,768 vocabulary columns in fp32: 256 tokens bound
# them at about 0.3 GB, where 4,096 allowed 5 GB (measured: 0.44 GB less peak at 683 scored tokens,
# the same CPU time).
CPU_LM_HEAD_TILE_TOKENS = 256


def micro_batching(batch_size: int, accumulation: int, max_seq_length: int,
                   token_budget: int | None) -> tuple[int, int]:
    """(micro-batch, accumulation steps) for `batch_size` x `accumulation` sequences per optimizer
    step, such that a micro-batch of max_seq_length-token sequences holds at most `token_budget`
    tokens (at least one sequence; None: no budget).

    The effective batch is unchanged, and so is what is learned: the length-grouped sampler
    orders samples by the effective batch, so each optimizer step sees the same samples, and the
    loss is normalised by the step's labelled-token count whatever the micro-batching. The
    micro-batch divides `batch_size`, so the product is exact.
    """
    if token_budget is None:
        return batch_size, accumulation
    micro = max(1, min(batch_size, token_budget // max_seq_length))
    while batch_size % micro:
        micro -= 1
    return micro, accumulation * (batch_size // micro)


# What the activations kept for the backward of one CPU micro-batch may take before gradient
# checkpointing is switched on (when the job leaves `gradient_checkpointing` unset).
CPU_ACTIVATION_BUDGET_MB = 1024


def activation_mb_per_token(model_config: Any) -> float:
    """The activations one token's forward keeps for the backward, in MB, without gradient
    checkpointing, for a decoder with LoRA on every linear layer in fp32: per layer about 16
    hidden-sized and 6 intermediate-sized vectors (the norms' inputs and outputs, q/k/v and the
    attention output, the MLP's gate, up, activation and product, and LoRA dropout's copies).
    For SmolLM2-135M (30 layers, 576 / 1,536) that is 2.1 MiB, what was measured live
    (docs/performance.md, Memory); an unknown architecture counts as that."""
    layers = getattr(model_config, "num_hidden_layers", None)
    hidden = getattr(model_config, "hidden_size", None)
    intermediate = getattr(model_config, "intermediate_size", None) or (4 * hidden if hidden else None)
    if not (isinstance(layers, int) and isinstance(hidden, int) and isinstance(intermediate, int)):
        layers, hidden, intermediate = 30, 576, 1536
    return layers * (16 * hidden + 6 * intermediate) * 4 / 2**20


def needs_gradient_checkpointing(model_config: Any, micro_batch_tokens: int,
                                 budget_mb: float = CPU_ACTIVATION_BUDGET_MB) -> bool:
    """Whether a micro-batch of `micro_batch_tokens` would keep more activations than `budget_mb`."""
    return micro_batch_tokens * activation_mb_per_token(model_config) > budget_mb


def _bound_lm_head_tiles() -> None:
    """Bound the memory of TRL's fused LM head on CPU by the tile height, not the sequence length.

    Each tile is an exact slice of the tokens (every token's log-probability and gradient are
    computed from its own row over the whole vocabulary), so the tile height changes no result,
    only how many tokens share one pass. TRL reads the module-level name on every forward and
    backward; if it is renamed, this does nothing and only the bound is lost.
    """
    from trl.kernels import chunked_logprob

    if getattr(chunked_logprob, "TOKEN_CHUNK_SIZE", 0) > CPU_LM_HEAD_TILE_TOKENS:
        chunked_logprob.TOKEN_CHUNK_SIZE = CPU_LM_HEAD_TILE_TOKENS


def _score_only_labelled_positions() -> None:
    """Make TRL's fused LM head project only the positions that carry a label, on every device.

    TRL scores only labelled positions where Triton runs and every position elsewhere, because on
    compiling backends (Neuron) a varying number of positions would recompile each batch. Eager CPU
    has no such cost, and scoring every position wastes the head's FLOPs (576 x 49,152 for
    SmolLM2, about a fifth of the model) on prompt and padding tokens that the loss masks anyway.
    The loss and gradients are the same up to floating-point summation order. TRL reads the
    decision through the module-level name `_use_triton` on every forward, so rebinding that one
    name changes only which rows are projected; the kernel keeps its own reference and still runs
    its PyTorch tile code on CPU. If TRL renames it, this does nothing and training is unaffected.
    """
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "_gpu_worker_compact", False):
        return

    def compact_everywhere(device: Any) -> bool:
        return device.type == "cpu" or original(device)

    compact_everywhere._gpu_worker_compact = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact_everywhere


def _worker_trainer_class() -> type:
    """SFTTrainer plus non-padding token counting and tokenizer-free checkpoints (defined lazily:
    importing trl is slow and must stay out of `--help`)."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from trl import SFTTrainer

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        """Length-grouped order that depends only on (seed, epoch): the Trainer (through
        accelerate) calls set_epoch before each epoch, including the one a resume starts in."""

        def __init__(self, batch_size: int, *, lengths: list[int], seed: int) -> None:
            super().__init__(batch_size, lengths=lengths)
            self.seed = seed
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            self.generator = torch.Generator().manual_seed(self.seed + int(epoch))

    class WorkerTrainer(SFTTrainer):
        _tokens: Any = 0
        _samples = 0
        computed_tokens = 0  # padded positions included; a Python int from the shape, no sync

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.computed_tokens += int(inputs["input_ids"].numel())
            # Accumulated as a tensor: no device sync here; read once per log in take_token_counts.
            if "attention_mask" in inputs:
                self._tokens = self._tokens + inputs["attention_mask"].sum()
                self._samples += int(inputs["input_ids"].shape[0])
            else:  # padding-free: one row, every token real
                self._tokens = self._tokens + inputs["input_ids"].numel()
                cu = inputs.get("cu_seq_lens_q")
                self._samples += int(cu.numel() - 1) if cu is not None else int(inputs["input_ids"].shape[0])
            loss = super().training_step(model, inputs, num_items_in_batch)
            if inputs["input_ids"].device.type == "cpu":
                release_free_heap()
            return loss

        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if type(sampler) is LengthGroupedSampler:
                # transformers' length-grouped sampler shuffles with the global RNG each epoch,
                # which a resume restores to the checkpoint's mid-epoch state: a run resumed in
                # epoch 2 or later would draw other batches than the uninterrupted run. Seeded
                # per epoch instead, as accelerate's seedable RandomSampler is.
                return EpochSeededLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths,
                                                       seed=self.args.data_seed or self.args.seed)
            return sampler

        def take_token_counts(self) -> tuple[int, int]:
            tokens, samples = int(self._tokens), self._samples
            self._tokens, self._samples = 0, 0
            return tokens, samples

        def _save_checkpoint(self, model, trial):
            # The tokenizer never changes during training: keep it out of every checkpoint
            # (several MB for Llama 3) so the training thread writes only adapter + optimizer state.
            processing_class, self.processing_class = self.processing_class, None
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.processing_class = processing_class

    return WorkerTrainer


# What a validation report's appendix names: the libraries that trained and evaluated the model.
VERSIONED = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes")


def library_versions() -> dict[str, str]:
    """Python's version and each VERSIONED library's installed version (those installed)."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
