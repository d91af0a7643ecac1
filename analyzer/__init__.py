"""netsift's analyzer: the pipeline from captures to frames, reports, exports and the CLI.

>>> from analyzer import analyze
>>> result = analyze("capture.pcap")      # doctest: +SKIP
>>> result.packets, result.weird          # doctest: +SKIP
"""

from .pipeline import SAMPLE, AnalysisResult, CaptureWarning, Pipeline, analyze, analyze_batch

__all__ = ["analyze", "analyze_batch", "Pipeline", "AnalysisResult", "CaptureWarning", "SAMPLE"]
