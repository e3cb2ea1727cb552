"""Compression stage: make a trained model fit a microcontroller's budget (structured pruning
now; quantisation and export build on its output, an ordinary checkpoint of a smaller model)."""
