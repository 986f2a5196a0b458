# Exercise 1.2: SE as a Keras layer - solution (loaded by tools/run_course.py for the book and CI)
class MySE(keras.layers.Layer):
    def __init__(self, ratio=8, **kwargs):
        super().__init__(**kwargs)
        self.ratio = int(ratio)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(1, channels // self.ratio)
        self.w1 = self.add_weight(shape=(channels, hidden), initializer="glorot_uniform", name="w1")
        self.w2 = self.add_weight(shape=(hidden, channels), initializer="glorot_uniform", name="w2")

    def call(self, x):
        z = keras.ops.mean(x, axis=(1, 2))                                              # Eq. 3: [B, C]
        s = keras.ops.sigmoid(keras.ops.matmul(keras.ops.relu(keras.ops.matmul(z, self.w1)), self.w2))  # Eq. 4
        return x * keras.ops.reshape(s, (-1, 1, 1, x.shape[-1]))                        # Eq. 5

    def get_config(self):
        config = super().get_config()
        config["ratio"] = self.ratio
        return config
