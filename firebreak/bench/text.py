"""`firebreak bench text`: how fast posts are read, on this machine.

- Lexical: posts a second on one core through the Aho-Corasick matcher with 10,000 aliases
  loaded (every evasion normalised), the figure the issue sets at ≥ 10,000.
- Contextual: posts a second through the multilingual embedder and the trained head, on one
  thread and on all the machine's cores.
- With labelled data, the classifier's cross-lingual figures: trained on some languages,
  measured per language on others.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from firebreak.text.context import (
    ContextClassifier,
    TextEmbedder,
    evaluate,
    read_labelled,
    train_context_head,
)
from firebreak.text.matcher import bench_matcher


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def _posts(n: int, seed: int = 0) -> list[str]:
    """Posts of 10–60 words drawn from a mixed-language vocabulary."""
    rng = random.Random(seed)
    sentences = (
        "the police said on monday that a group claimed the attack and we condemn it "
        "la policía informó que el grupo reivindicó el ataque y lo condenamos "
        "politiet sier at gruppen tok på seg angrepet vi fordømmer det "
        "الشرطة قالت إن الجماعة أعلنت مسؤوليتها عن الهجوم"
    )
    vocabulary = sentences.split(" ")
    return [" ".join(rng.choices(vocabulary, k=rng.randint(10, 60))) for _ in range(n)]


def run_text_bench(
    out_dir: Path,
    train: Path | None = None,
    evaluation: Path | None = None,
    classifier_posts: int = 256,
) -> dict[str, Any]:
    lexical = bench_matcher(n_aliases=10_000, n_posts=10_000)
    posts = _posts(classifier_posts)
    rates: dict[str, float] = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        embedder = TextEmbedder(threads=threads)
        embedder.embed(posts[:4])  # load the model outside the timing
        started = time.perf_counter()
        embedder.embed(posts)
        rates[f"{threads}_threads"] = round(len(posts) / (time.perf_counter() - started), 1)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "lexical": {"aliases": 10_000, "posts_per_s_one_core": round(lexical)},
        "classifier": {"posts": len(posts), "posts_per_s": rates},
    }
    if train is not None and evaluation is not None:
        embedder = TextEmbedder()
        train_posts, train_sha = read_labelled(train)
        head = train_context_head(train_posts, train_sha, embedder)
        eval_posts, eval_sha = read_labelled(evaluation)
        measured = evaluate(ContextClassifier(head, embedder), eval_posts, eval_sha)
        result["cross_lingual"] = {
            "trained_on": head.trained_on,
            "evaluation": measured,
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"text-{result['date']}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    result["path"] = str(path)
    return result
