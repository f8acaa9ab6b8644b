"""Evaluation: CMC/mAP protocols, reports and plots.

    from synthreid.evaluate import protocols
    result = protocols.market(qf, q_ids, q_cams, gf, g_ids, g_cams)
"""

from synthreid.errors import EvaluationError
from synthreid.evaluate.protocols import CMCResult

__all__ = ["CMCResult", "EvaluationError"]
