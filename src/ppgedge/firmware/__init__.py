"""The real firmware build: TFLite Micro + CMSIS-NN compiled for a Cortex-M core, the model's
bundle linked against it, run in QEMU, measured (``ppgedge profile MODEL --measure``).

sources.py (locate and hash the TFLM tree) -> build.py (cached runtime objects, linking) ->
images.py (firmware and harness images) -> qemu.py (emulator, instruction-counting plugin) ->
flash.py (flash/RAM split) -> measure.py (``measure()`` -> ``MeasureReport``); compare.py sets
the measurement beside ``profile``'s estimates. Submodules are imported where used, so
``ppgedge.export.bundle`` can import ``build.BUILD_FLAGS`` without the rest.
"""
