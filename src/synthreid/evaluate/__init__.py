"""Evaluation: CMC/mAP protocols, reports and plots.

    from synthreid.evaluate import protocols
    result = protocols.market(qf, q_ids, q_cams, gf, g_ids, g_cams)

This file imports nothing heavy, so the CLI can read the protocol names instantly.
"""

PROTOCOLS = ("thesis", "thesis-mixed", "market", "cuhk03-new", "cuhk03-classic", "cuhk03-openreid")
