"""Models: backbone registry (builders, preprocess_input inside the model, weights), model pieces, the saved pipeline, precision, optimizers."""
