"""C, C++ and Markdown templates of the TensorFlow Lite Micro bundle (``string.Template``,
``${name}`` placeholders), loaded with importlib.resources so they ship inside the package."""
