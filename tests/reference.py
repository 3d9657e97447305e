"""An independent, plain implementation of the CARES reference gate computation, written from the
reference training script: full model forward with ``output_hidden_states=True``, pick
``hidden_states[k]`` (or a window mean), pool over attended non-image tokens, apply the head.
It shares no code with ``resgate_router.gate`` on purpose."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn


def reference_inputs(processor, image: Image.Image, question: str, profile: str):
    image = image.convert("RGB")
    if profile == "cares":
        w, h = image.size
        if max(w, h) > 768:  # resize_image_with_padding(image, 768)
            ratio = 768 / max(w, h)
            image = image.resize((int(w * ratio), int(h * ratio)), Image.Resampling.LANCZOS)
        square = Image.new("RGB", (768, 768), (0, 0, 0))
        square.paste(image, ((768 - image.width) // 2, (768 - image.height) // 2))
        canvas = Image.new("RGB", (512, 512), (0, 0, 0))  # load_image(mid_path, target_size=(512, 512))
        canvas.paste(square, ((512 - 768) // 2, (512 - 768) // 2))
        image, kwargs = canvas, {}
    else:
        kwargs = {"size": {"longest_edge": 512}}
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=False)
    return processor(text=[prompt], images=[image], return_tensors="pt", **kwargs)


@torch.no_grad()
def reference_logits(model, processor, head_state: dict, image, question, *, profile, layer="middle", window=0):
    enc = reference_inputs(processor, image, question, profile)
    out = model(**enc, output_hidden_states=True, use_cache=False, return_dict=True)
    hidden_states = out.hidden_states
    num_layers = len(hidden_states) - 1
    k = num_layers // 2 if layer == "middle" else max(0, min(num_layers, int(layer)))
    if window == 0:
        hs = hidden_states[k]
    else:
        lo, hi = max(0, k - window), min(num_layers, k + window)
        hs = torch.stack([hidden_states[i] for i in range(lo, hi + 1)], dim=0).mean(dim=0)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    text_mask = (ids != model.config.image_token_id) & (mask == 1)
    fallback = mask == 1
    use = torch.where(text_mask.any(dim=1, keepdim=True), text_mask, fallback)
    pooled = (hs * use.unsqueeze(-1)).sum(dim=1) / use.sum(dim=1, keepdim=True).clamp(min=1)
    d = pooled.shape[-1]
    out_dim, hidden = head_state["head.3.weight"].shape
    head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
    head.load_state_dict({k[len("head.") :]: v for k, v in head_state.items()})
    return head(pooled)
