"""Training: the three approaches and the run lifecycle, Keras fit and its callbacks, the content-hashed feature
cache, tf.distribute, TensorBoard, and what reads or times a run's plan: estimate, bench and the lecture's pipeline."""
