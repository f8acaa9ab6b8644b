"""Refinement (thesis 2.2): unpaired image-to-image GANs that make generated people look as if
a real camera took them, keeping who they are.

    synthreid refiner train --data synthetic:data/iv --target market1501:/data/market --out runs/r
    synthreid refine --model runs/r/last.pt --data synthetic:data/iv --out data/iv-refined
"""
