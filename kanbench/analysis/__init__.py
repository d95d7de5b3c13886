"""What decides: the one judge (judge.py), comparing two runs (compare/), and the interleaved regression gate."""
