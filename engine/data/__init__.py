"""Data: the one decoder, remembered image checks, scan/split/load of a folder, bounded zip import, the sample,
downloads, augmentation layers, allowed roots. Imports config and errors (paths also models, for Keras' cache folder)."""
