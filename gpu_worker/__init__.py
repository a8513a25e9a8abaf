"""Runs one attempt of one LoRA/QLoRA fine-tuning job. Never imports Django.

See docs/worker-contract.md for how it talks to the control plane.
"""
