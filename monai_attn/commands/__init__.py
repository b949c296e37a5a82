"""Subcommands of the ``monai-attn`` CLI, one module each (see :mod:`monai_attn.cli`)."""
