"""C and C++ sources of the measurement firmware (startup, harness, linker script, QEMU plugin),
read with importlib.resources; ``${...}`` placeholders are filled per model and board."""
