"""Plain decoder-only text LLMs (Llama, Qwen2/3, Mistral, Gemma, SmolLM2...): text-only examples."""

from collections.abc import Sequence

from transformers import AutoModelForCausalLM, AutoTokenizer, BatchFeature

from savs.examples import Example
from savs.models.generic import GenericAdapter


class TextAdapter(GenericAdapter):
    """A causal LM whose processor is its tokenizer; examples must carry no images."""

    family = "text"
    model_types = ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "phi3", "smollm3")
    auto_model = AutoModelForCausalLM

    @classmethod
    def load_processor(cls, name_or_path: str, model_type: str):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if tokenizer.pad_token is None:  # Llama-style tokenizers ship none; batching needs one
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def user_turn(self, example: Example) -> dict:
        return {"role": "user", "content": example.text}

    def encode(self, examples: Sequence[Example], padding_side: str = "left") -> BatchFeature:
        with_images = [e.uid or e.text[:40] for e in examples if e.images]
        if with_images:
            raise ValueError(f"{self.name} is a text-only model; examples with images: {with_images[:3]}")
        return super().encode(examples, padding_side)

    def prefix_barrier_ids(self) -> set[int]:
        return set()
