"""The judging domain: Judge protocol, guards, injection detection, rubrics, two judges."""
