"""The applications built on the SDK: the command line, the demo page, the audit, the benchmark, and
what they share (heatmap pictures, output files, progress bars). The SDK itself never imports them."""
