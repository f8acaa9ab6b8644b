"""The thesis' own numbers (CMC %, ranks 1/5/10/20, CUHK03 test ids, thesis protocol), by our
model names, to print beside ours. PTGAN, finetuning from other models and mixing: not given."""

RANKS = (1, 5, 10, 20)

THESIS_CMC: dict[str, tuple[float, float, float, float]] = {
    "chance": (1.0, 5.0, 10.0, 20.0),
    "generated-I": (2.5, 10.2, 18.5, 31.7),
    "generated-II": (6.5, 19.2, 29.4, 45.6),
    "generated-III": (7.0, 18.8, 28.7, 42.7),
    "generated-IV": (7.0, 21.2, 31.7, 47.0),
    "refined-I-cyclegan": (8.1, 23.9, 35.8, 51.7),
    "refined-II-cyclegan": (13.1, 32.9, 46.0, 62.5),
    "refined-III-cyclegan": (19.2, 43.9, 57.6, 73.6),
    "refined-IV-cyclegan": (22.2, 48.2, 62.0, 76.8),
    "real": (74.1, 94.7, 97.7, 99.0),
    "finetuned-refined-IV-cyclegan": (72.9, 93.0, 96.4, 98.3),
}
