"""Graph breaks of ``torch.compile``: where dynamo has to stop tracing a model's forward.

A graph break splits the compiled forward (and backward) into pieces run eagerly between
them: slower steps and more recompiles. Our blocks are written to trace as one graph; the
tests (``tests/train/test_compile.py``) and ``benchmarks/compile_cpu.py`` count the breaks of
each preset family with ``torch._dynamo.explain``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["count_graph_breaks"]


def count_graph_breaks(model: Callable[..., Any], *args: Any, **kwargs: Any,
                       ) -> dict[str, Any]:
    """``dict(graphs=, graph_breaks=, reasons=[...])`` of ``model(*args, **kwargs)`` as
    dynamo traces it (in the model's current train / eval mode); nothing is compiled."""
    import torch._dynamo

    torch._dynamo.reset()  # explain must trace afresh, not reuse an earlier cache entry
    explained = torch._dynamo.explain(model)(*args, **kwargs)
    reasons = []
    for b in explained.break_reasons:
        where = b.user_stack[-1] if b.user_stack else None
        reasons.append(f"{b.reason}" + (f" at {where.filename}:{where.lineno}" if where else ""))
    torch._dynamo.reset()
    return dict(graphs=explained.graph_count, graph_breaks=explained.graph_break_count,
                reasons=reasons)
